"""A replication study as data: per-image arrays and their sufficient statistics.

Every estimator in :mod:`replication.estimators` works on a :class:`LevelTable`:
image counts and correct counts at each distinct annotation level
``(n_annotators, n_selected)``. Bootstrap replicates are LevelTables with a
leading batch axis, so estimators vectorize across replicates.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from replication.errors import InputError
from replication.io.tables import select_models

DEFAULT_REFERENCE = "imagenet-val"
DEFAULT_REPLICATION = "imagenetv2-matched-frequency"


@dataclass(frozen=True)
class LevelTable:
    """Sufficient statistics of a study, by annotation level.

    Attributes
    ----------
    levels : ndarray of shape (L, 2), int64
        Distinct ``(n, k)`` = (annotators, selections) pairs, sorted by n then k.
    ref_count, rep_count : ndarray of shape (..., L), float64
        Number of reference / replication images at each level (fractional
        for weighted or thinned tables). Leading axes are bootstrap replicates.
    rep_correct : ndarray of shape (..., L, M), float64
        Correct replication images at each level, per model.
    ref_correct : ndarray of shape (..., M), float64
        Correct reference images per model (all levels together).
    models : tuple of str, length M
    """

    levels: np.ndarray
    ref_count: np.ndarray
    rep_count: np.ndarray
    rep_correct: np.ndarray
    ref_correct: np.ndarray
    models: tuple[str, ...]

    @property
    def n(self) -> np.ndarray:
        """Annotators at each level, shape (L,)."""
        return self.levels[:, 0]

    @property
    def k(self) -> np.ndarray:
        """Selections at each level, shape (L,)."""
        return self.levels[:, 1]

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """Leading bootstrap batch axes of the counts (``()`` for one table)."""
        return self.rep_count.shape[:-1]

    def reference_accuracy(self) -> np.ndarray:
        """Top-1 accuracy on the reference images, shape (..., M)."""
        return self.ref_correct / self.ref_count.sum(axis=-1, keepdims=True)

    def replication_accuracy(self) -> np.ndarray:
        """Raw top-1 accuracy on the replication images, shape (..., M)."""
        return self.rep_correct.sum(axis=-2) / self.rep_count.sum(axis=-1)[..., None]


@dataclass(frozen=True)
class DatasetImages:
    """Per-image arrays of one dataset of a study (N images, M models)."""

    name: str
    image_id: np.ndarray   # (N,) str
    n: np.ndarray          # (N,) int64 annotators
    k: np.ndarray          # (N,) int64 selections
    class_id: np.ndarray | None  # (N,) int64, or None when unknown
    correct: np.ndarray    # (N, M) int8 0/1

    def __len__(self) -> int:
        return len(self.image_id)


def _dataset_rows(df: pd.DataFrame, dataset: str, what: str, path: str, available: list[str]) -> pd.DataFrame:
    rows = df[df["dataset"] == dataset]
    if rows.empty:
        raise InputError(f"{path}: no {what} rows for dataset {dataset!r}; datasets present: {', '.join(available)}")
    return rows


def _join(ann: pd.DataFrame, cor: pd.DataFrame, dataset: str, models: list[str],
          annotations_path: str, correctness_path: str) -> DatasetImages:
    merged = ann.merge(cor, on=["dataset", "image_id"], how="outer", indicator=True, suffixes=("", "_cor"))
    only_ann = (merged["_merge"] == "left_only").to_numpy()
    only_cor = (merged["_merge"] == "right_only").to_numpy()
    if only_ann.any():
        ids = merged.loc[only_ann, "image_id"].head(3).tolist()
        raise InputError(f"{correctness_path}: {only_ann.sum()} {dataset} image(s) of {annotations_path} "
                         f"have no correctness row (first: {', '.join(ids)})")
    if only_cor.any():
        ids = merged.loc[only_cor, "image_id"].head(3).tolist()
        raise InputError(f"{annotations_path}: {only_cor.sum()} {dataset} image(s) of {correctness_path} "
                         f"have no annotation row (first: {', '.join(ids)})")
    merged = merged.sort_values("image_id", kind="stable").reset_index(drop=True)
    class_id = None
    if "class_id" in merged.columns:
        class_id = merged["class_id"].to_numpy(np.int64)
    elif "label" in merged.columns:
        class_id = merged["label"].to_numpy(np.int64)
    return DatasetImages(
        name=dataset,
        image_id=merged["image_id"].to_numpy(str),
        n=merged["n_annotators"].to_numpy(np.int64),
        k=merged["n_selected"].to_numpy(np.int64),
        class_id=class_id,
        correct=merged[models].to_numpy(np.int8),
    )


@dataclass(frozen=True)
class StudyData:
    """The per-image data of a replication study: a reference and a replication
    dataset, each with annotation counts and per-model correctness."""

    reference: DatasetImages
    replication: DatasetImages
    models: tuple[str, ...]

    @classmethod
    def from_tables(cls, annotations: pd.DataFrame, correctness: pd.DataFrame, *,
                    reference: str = DEFAULT_REFERENCE, replication: str = DEFAULT_REPLICATION,
                    annotations_path: str = "<annotations>", correctness_path: str = "<correctness>",
                    models: list[str] | None = None) -> "StudyData":
        """Join validated annotation and correctness tables (see
        :mod:`replication.io.tables`) for the two named datasets."""
        if reference == replication:
            raise InputError(f"reference and replication are the same dataset ({reference!r})")
        all_models = select_models(correctness, models, correctness_path)
        ann_sets = sorted(annotations["dataset"].unique())
        cor_sets = sorted(correctness["dataset"].unique())
        parts = []
        for ds in (reference, replication):
            ann = _dataset_rows(annotations, ds, "annotation", annotations_path, ann_sets)
            cor = _dataset_rows(correctness, ds, "correctness", correctness_path, cor_sets)
            cor = cor[[c for c in ("dataset", "image_id", "label") if c in cor.columns] + all_models]
            parts.append(_join(ann, cor, ds, all_models, annotations_path, correctness_path))
        return cls(reference=parts[0], replication=parts[1], models=tuple(all_models))

    @functools.cached_property
    def _level_index(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Computed once per study (bootstrap chunks and weights reuse it)."""
        n = np.concatenate([self.reference.n, self.replication.n])
        k = np.concatenate([self.reference.k, self.replication.k])
        base = int(k.max()) + 1
        keys, inverse = np.unique(n * base + k, return_inverse=True)  # 1-D keys sort fast; same order as (n, k)
        levels = np.stack([keys // base, keys % base], axis=1)
        inverse = inverse.reshape(-1)
        n_ref = len(self.reference)
        return levels, inverse[:n_ref], inverse[n_ref:]

    @functools.cached_property
    def _casts(self) -> dict:
        return {}

    def _correct_as(self, dtype: type) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The reference correctness (N_ref, M) and the replication correctness
        sorted by level (N_rep, M) as ``dtype``, the replication images' sort
        order and each level's bounds in it (L + 1,): made once per dtype, not
        per bootstrap chunk (at 1,556 models the float copies are hundreds of MB)."""
        if dtype not in self._casts:
            _, _, rep_lv = self.level_index()
            order = np.argsort(rep_lv, kind="stable")
            bounds = np.searchsorted(rep_lv[order], np.arange(len(self.level_index()[0]) + 1))
            self._casts[dtype] = (self.reference.correct.astype(dtype), self.replication.correct[order].astype(dtype),
                                  order, bounds)
        return self._casts[dtype]

    def level_index(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(levels, ref_level, rep_level)``: the (L, 2) distinct levels of both
        datasets and each image's index into them."""
        return self._level_index

    def levels(self, ref_weights: np.ndarray | None = None,
               rep_weights: np.ndarray | None = None) -> LevelTable:
        """Collapse to a :class:`LevelTable`. Optional per-image weights of shape
        (..., N_ref) and (..., N_rep) (e.g. bootstrap counts) give a batched table."""
        levels, ref_lv, rep_lv = self.level_index()
        n_levels = len(levels)
        ref_w = np.ones(len(self.reference), np.int64) if ref_weights is None else np.asarray(ref_weights)
        rep_w = np.ones(len(self.replication), np.int64) if rep_weights is None else np.asarray(rep_weights)
        dtype = _exact_dtype(ref_w, rep_w)
        ref_w, rep_w = ref_w.astype(dtype, copy=False), rep_w.astype(dtype, copy=False)
        ref_count = _per_level_sum(ref_w, ref_lv, n_levels)
        rep_count = _per_level_sum(rep_w, rep_lv, n_levels)
        ref_cor, rep_cor, order, bounds = self._correct_as(dtype)
        rep_correct = _per_level_matmul(rep_w[..., order], bounds, rep_cor)
        ref_correct = ref_w @ ref_cor
        as64 = lambda a: a.astype(np.float64, copy=False)  # noqa: E731
        return LevelTable(levels=levels, ref_count=as64(ref_count), rep_count=as64(rep_count),
                          rep_correct=as64(rep_correct), ref_correct=as64(ref_correct), models=self.models)


def _exact_dtype(*weights: np.ndarray) -> type:
    """float32 when every weight is a non-negative integer and each batch row sums
    below 2**24 (then every sum of weights times 0/1 values is an integer that
    float32 holds exactly, and BLAS runs twice as fast); float64 otherwise."""
    for w in weights:
        if not np.issubdtype(w.dtype, np.integer) or (w.size and (w.min() < 0 or w.sum(axis=-1).max() >= 2**24)):
            return np.float64
    return np.float32


def _per_level_sum(weights: np.ndarray, level: np.ndarray, n_levels: int) -> np.ndarray:
    """Sum weights (..., N) over images at each level -> (..., L)."""
    onehot = np.zeros((len(level), n_levels), dtype=weights.dtype)
    onehot[np.arange(len(level)), level] = 1.0
    return weights @ onehot


def _per_level_matmul(weights: np.ndarray, bounds: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """Weighted correct counts (..., L, M) from weights (..., N) and correct
    (N, M) of images sorted by level, level l holding images bounds[l]:bounds[l + 1]."""
    n_levels = len(bounds) - 1
    out = np.zeros(weights.shape[:-1] + (n_levels, correct.shape[1]), dtype=weights.dtype)
    for lv in range(n_levels):  # a loop over levels (tens), not images
        a, b = bounds[lv], bounds[lv + 1]
        if b > a:
            out[..., lv, :] = weights[..., a:b] @ correct[a:b]
    return out
