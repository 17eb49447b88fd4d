"""Image bootstrap for replication studies, vectorized across replicates.

One :class:`numpy.random.Generator` drives every resample (scipy.stats.bootstrap
style). Resampling is stratified by class when class ids are known: each class
keeps its image count in every replicate. Replicates are drawn in chunks that
bound memory (:func:`replicate_chunks`), with a progress bar on stderr.
"""
from __future__ import annotations

import sys
import warnings
from typing import Iterator

import numpy as np

from replication.study import LevelTable, StudyData

#: cap on replicates x images held at once while drawing counts
_MAX_DRAWS = 20_000_000


def replicate_chunks(n_resamples: int, n_items: int, desc: str = "bootstrap") -> Iterator[int]:
    """Sizes of consecutive chunks of replicates that together make
    ``n_resamples``, each with at most ``_MAX_DRAWS`` draws (replicates times
    ``n_items`` resampled items). A tqdm bar on stderr counts the replicates
    done (shown on a terminal only: ``disable=None``)."""
    from tqdm import tqdm

    chunk = max(1, min(n_resamples, _MAX_DRAWS // max(n_items, 1)))
    with tqdm(total=n_resamples, desc=desc, unit="replicate", file=sys.stderr, disable=None) as bar:
        done = 0
        while done < n_resamples:
            size = min(chunk, n_resamples - done)
            yield size
            done += size
            bar.update(size)


def percentile_interval(draws: np.ndarray, alpha: float) -> np.ndarray:
    """Percentile interval at level ``1 - alpha`` over axis 0 of replicates
    ``draws`` (B, ...), ignoring failed (NaN) replicates; shape (2, ...), NaN
    where a column has no replicate. Columns without NaN take numpy's
    vectorized quantile (``nanquantile`` loops over columns in Python: minutes
    for thousands of models)."""
    q = [alpha / 2, 1 - alpha / 2]
    if draws.shape[0] == 0:
        return np.full((2,) + draws.shape[1:], np.nan)
    out = np.quantile(draws, q, axis=0)
    holes = np.isnan(draws).any(axis=0)
    if holes.any():
        with warnings.catch_warnings():  # all-NaN columns give NaN, not a warning
            warnings.simplefilter("ignore", RuntimeWarning)
            out[:, holes] = np.nanquantile(draws[:, holes], q, axis=0)
    return out


def resample_counts(strata: np.ndarray | None, n_images: int, n_resamples: int,
                    rng: np.random.Generator) -> np.ndarray:
    """How often each image is drawn in each replicate.

    Parameters
    ----------
    strata : ndarray of shape (N,) or None
        Stratum (class) of each image; None for one stratum.
    n_images : int
    n_resamples : int
    rng : numpy.random.Generator

    Returns
    -------
    counts : ndarray of shape (n_resamples, N), int32
        Each row sums to N, and within each stratum to the stratum's size.
    """
    if strata is None:
        strata = np.zeros(n_images, dtype=np.int64)
    order = np.argsort(strata, kind="stable")
    _, start, size = np.unique(strata[order], return_index=True, return_counts=True)
    stratum_of_pos = np.repeat(np.arange(len(start)), size)
    lo, width = start[stratum_of_pos], size[stratum_of_pos]
    # draw a position in sorted order for every (replicate, image slot); strata of one
    # size share one call to rng.integers with a scalar bound (fast), then map to images
    sizes = np.unique(width)
    if len(sizes) == 1:  # equal strata (the usual case): no column scatter
        drawn = order[lo + rng.integers(0, sizes[0], size=(n_resamples, n_images))]
    else:
        drawn = np.empty((n_resamples, n_images), dtype=np.int64)
        for w in sizes:  # distinct stratum sizes: few
            cols = np.flatnonzero(width == w)
            drawn[:, cols] = order[lo[cols] + rng.integers(0, w, size=(n_resamples, len(cols)))]
    drawn += np.arange(n_resamples, dtype=np.int64)[:, None] * n_images
    counts = np.bincount(drawn.ravel(), minlength=n_resamples * n_images).reshape(n_resamples, n_images)
    return counts.astype(np.int32)


def bootstrap_levels(study: StudyData, n_resamples: int, rng: np.random.Generator, *,
                     stratify: bool = True) -> Iterator[LevelTable]:
    """Yield batched :class:`LevelTable` replicates (leading axis = replicate),
    in chunks that bound memory; together they hold ``n_resamples`` replicates.
    Reference and replication images are resampled independently."""
    ref, rep = study.reference, study.replication
    for b in replicate_chunks(n_resamples, max(len(ref), len(rep))):
        ref_w = resample_counts(ref.class_id if stratify else None, len(ref), b, rng)
        rep_w = resample_counts(rep.class_id if stratify else None, len(rep), b, rng)
        yield study.levels(ref_weights=ref_w, rep_weights=rep_w)
