"""Cached loaders for the reference-folder tables that several figures read."""
from __future__ import annotations

import functools
from pathlib import Path

import pandas as pd

from replication.io.tables import load_annotations, load_correctness

CORRECT_TOP1 = "imagenetv2/recht2019_correct_top1.parquet"
REAL_VOTES = "real-reassessed-imagenet/real_votes_annotations.csv"
TESTBED_TOP1 = "imagenet-testbed/robustness_top1s.csv"
TESTBED_TYPES = "imagenet-testbed/model_types.csv"
THOMPSON = "thompson/models_manual.csv"
TIMM_DIR = "timm"

#: dataset id -> name on figures
DATASET_LABELS = {
    "imagenet-val": "ImageNet val",
    "imagenetv2-matched-frequency": "ImageNet-v2 MatchedFrequency",
    "imagenetv2-threshold0.7": "ImageNet-v2 Threshold0.7",
    "imagenetv2-top-images": "ImageNet-v2 TopImages",
    "imagenet-real": "ImageNet-ReaL",
    "imagenet-a": "ImageNet-A",
    "imagenet-r": "ImageNet-R",
    "imagenet-sketch": "ImageNet-Sketch",
    "objectnet": "ObjectNet",
}


@functools.lru_cache(maxsize=4)
def _correctness(path: str, mtime_ns: int) -> pd.DataFrame:
    return load_correctness(path)


def correctness(root: Path) -> pd.DataFrame:
    """The validated top-1 correctness matrix of Recht et al.'s 67 models
    (cached; callers must not modify it)."""
    path = Path(root) / CORRECT_TOP1
    return _correctness(str(path), path.stat().st_mtime_ns)


def real_votes(root: Path) -> pd.DataFrame:
    """The validated ImageNet-ReaL vote annotations (5 raters per image)."""
    return load_annotations(Path(root) / REAL_VOTES)
