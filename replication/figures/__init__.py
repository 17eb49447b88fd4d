"""Paper figures, regenerated from a folder laid out like ../shared/reference.

Expected layout of the reference folder (only the files a figure reads are
needed for that figure; each folder may hold a PROVENANCE.md whose ``Source``
line is copied into the figure's JSON and the report)::

    REFERENCE/
      imagenetv2/recht2019_correct_top1.parquet     per-image top-1 correctness, 67 models,
                                                    imagenet-val + 3 ImageNet-v2 sets
      real-reassessed-imagenet/real_votes_annotations.csv
                                                    ImageNet-ReaL votes (k of 5 raters) per val image
      imagenet-testbed/robustness_top1s.csv         Taori et al. testbed top-1 (%) per model and setting
      imagenet-testbed/model_types.csv              testbed model categories
      thompson/models_manual.csv                    landmark models: year, top-1, training FLOP
      timm/results-imagenet.csv                     timm top-1 on val (1,556 configurations)
      timm/results-imagenetv2-matched-frequency.csv timm top-1 on ImageNet-v2 MatchedFrequency
      timm/benchmark-infer-*.csv                    timm inference benchmarks (infer_gmacs)

Each figure is a function ``draw(reference_dir, **options) -> (Figure, data)``
registered in :data:`FIGURES`; :func:`generate` / :func:`generate_all` write
``NAME.png``, ``NAME.pdf`` and ``NAME.json`` (inputs with sha256 and source,
and every number drawn). Figures for which no real data exist (ImageNet-v2
selection frequencies were never published) use the simulator and say so on
the figure.
"""
from __future__ import annotations

from replication.figures._base import (
    DPI, FIGURES, FigureSpec, SavedFigure, describe, figure_bytes, generate, generate_all, mark_simulated,
    register_figure, render, save_figure, style,
)
# registration order = the order of `figures all` and of the report
from replication.figures import recht2019  # noqa: F401,I001
from replication.figures import real_votes  # noqa: F401
from replication.figures import engstrom2020  # noqa: F401
from replication.figures import taori2020  # noqa: F401
from replication.figures import thompson2020  # noqa: F401
from replication.figures import timm_scaling  # noqa: F401

__all__ = ["DPI", "FIGURES", "FigureSpec", "SavedFigure", "describe", "figure_bytes", "generate", "generate_all",
           "mark_simulated", "register_figure", "render", "save_figure", "style"]
