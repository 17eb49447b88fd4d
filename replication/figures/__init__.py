"""Paper figures, regenerated from a folder laid out like ../shared/reference.

Expected layout of the reference folder (only the files a figure reads are
needed for that figure; a PROVENANCE.md in a folder, or else the line of the
folder's README.md that names the file, is copied into each figure's JSON and
the report with the file's size and sha256)::

    REFERENCE/
      imagenetv2/recht2019_correct_top1.parquet      recht2019_v2_vs_v1, real_votes, engstrom2020_placebo
          per-image top-1 correctness of 67 models on imagenet-val and the 3 ImageNet-v2 sets
      real-reassessed-imagenet/real_votes_annotations.csv
                                                     real_votes, engstrom2020_histograms, engstrom2020_placebo
          ImageNet-ReaL votes: dataset,image_id,class_id,n_annotators(=5),n_selected
      imagenet-testbed/robustness_top1s.csv          taori2020_effective_robustness
      imagenet-testbed/model_types.csv               (model categories for the same figure)
      thompson/models_manual.csv                     thompson2020_compute, thompson2020_year
          model, year, top1_err_pct, train_compute_flop, eval_protocol
      timm/results-imagenet.csv                      timm_scaling (required)
      timm/results-imagenetv2-matched-frequency.csv  timm_scaling (required)
      timm/results-{imagenet-real,imagenet-a,imagenet-r,sketch}.csv   joined when present
      timm/benchmark-infer-*.csv                     timm_scaling: infer_gmacs per image
      imagenet-testbed/*, timm/results-*.csv         shift_lines (plus, optionally, the user's evaluate
                                                     outputs: option ``evaluations``)
      imagenetv2/hit_candidate_pool.parquet, raw/sampling_thresholds_a.json
                                                     v2public_adjusted (with recht2019_correct_top1.parquet)

The engstrom2020_* figures (except the ReaL column of the histograms and
the placebo study, which use the real ReaL votes) draw a simulated study,
because ImageNet-v2 selection frequencies were never published; they say so
in red on the figure and ``"simulated": true`` in the JSON.

Each figure is a function ``draw(reference_dir, **options) -> (Figure, data)``
registered in :data:`FIGURES`; :func:`generate` / :func:`generate_all` write
``NAME.png``, ``NAME.pdf`` and ``NAME.json`` (inputs with sha256 and source,
and every number drawn). Figures for which no real data exist (ImageNet-v2
selection frequencies were never published) use the simulator and say so on
the figure.
"""
from __future__ import annotations

from replication.figures._base import (
    DPI, FIGURES, FigureSpec, SavedFigure, describe, figure_bytes, figure_files, generate, generate_all,
    mark_simulated, register_figure, render, render_all, save_figure, style,
)
# registration order = the order of `figures all` and of the report
from replication.figures import recht2019  # noqa: F401,I001
from replication.figures import real_votes  # noqa: F401
from replication.figures import engstrom2020  # noqa: F401
from replication.figures import taori2020  # noqa: F401
from replication.figures import thompson2020  # noqa: F401
from replication.figures import timm_scaling  # noqa: F401
from replication.figures import shifts  # noqa: F401
from replication.figures import v2public  # noqa: F401

__all__ = ["DPI", "FIGURES", "FigureSpec", "SavedFigure", "describe", "figure_bytes", "figure_files", "generate",
           "generate_all", "mark_simulated", "register_figure", "render", "render_all", "save_figure", "style"]
