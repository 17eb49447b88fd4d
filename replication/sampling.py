"""Recht et al. (2019)'s three ways of drawing an ImageNet-v2 test set from a
candidate pool, by selection frequency (the share of annotators who said the
image shows its class).

* :func:`matched_frequency` -- MatchedFrequency: per class, match the histogram
  of the reference images' selection frequencies (5 bins, edges 0.2/0.4/0.6/0.8).
* :func:`threshold` -- Threshold0.7: a uniform draw among candidates with
  frequency >= 0.7 (lower thresholds for a few classes).
* :func:`top_images` -- TopImages: the candidates with the highest frequency.

The rules follow the ImageNetV2 repository's ``code/dataset_sampling.py``
(``build_histogram``, ``round_histogram``, ``sample_wnid_histogram``,
``sample_above_threshold``, ``sample_best``); their parameters are in
``imagenetv2/raw/*.json`` of the reference data (``histogram_bins``,
``selection_frequency_threshold``, ``wnid_thresholds``,
``min_num_annotations*``). Where the original draws with Python's ``random``,
these functions draw with one :class:`numpy.random.Generator`: the rules are
the same, the particular images drawn are not.

All functions are vectorized over images; the only Python loops run over the
(at most five) bins.
"""
from __future__ import annotations

import os
import warnings
from typing import Mapping

import numpy as np

from replication.errors import InputError

#: Recht et al.'s MatchedFrequency bin edges (``histogram_bins`` in imagenetv2-b-33.json)
EDGES: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8)
#: Threshold0.7's selection-frequency threshold (imagenetv2-a-44.json)
THRESHOLD = 0.7
#: fewest annotations a candidate (and a reference image) needs (``min_num_annotations*``)
MIN_ANNOTATORS = 10
#: How each ImageNet-v2 set selected candidates on their observed k/n, as the
#: bin edges within which selection was uniform (the deconvolution methods'
#: ``selection_edges``). TopImages selects deterministically by k/n, so no
#: edges describe it; None treats its images as a sample of their pool.
SELECTION_EDGES: dict[str, tuple[float, ...] | None] = {
    "imagenetv2-matched-frequency": EDGES,
    "imagenetv2-threshold0.7": (THRESHOLD,),
    "imagenetv2-top-images": None,
}


class ShortSampleWarning(UserWarning):
    """Some classes got fewer images than asked for (the original code then
    marks the dataset ``is_valid = False`` and keeps the short classes)."""


def largest_remainder(weights: np.ndarray, size: int) -> np.ndarray:
    """Round ``size * weights / sum(weights)`` to integers that sum to ``size``.

    Each bin gets the floor of its share; the leftover units go to the bins
    with the largest fractional remainders, ties to the higher bin (as
    ``round_histogram`` sorts by ``(remainder, index)`` descending). Integer
    weights (histograms) are handled in exact integer arithmetic, so equal
    remainders are exactly equal.

    Parameters
    ----------
    weights : array-like of shape (..., B), non-negative
        One histogram per row; a row summing to 0 rounds to all zeros.
    size : int

    Returns
    -------
    ndarray of shape (..., B), int64; each non-zero row sums to ``size``.

    Examples
    --------
    >>> largest_remainder([1, 2, 3, 4, 10], 10).tolist()
    [0, 1, 2, 2, 5]
    >>> largest_remainder([0, 1, 2, 5, 42], 10).tolist()
    [0, 0, 0, 1, 9]
    """
    w = np.asarray(weights)
    if w.ndim == 0 or np.any(w < 0) or not np.all(np.isfinite(w)):
        raise ValueError("weights must be a non-empty array of non-negative finite numbers")
    size = int(size)
    if size < 0:
        raise ValueError("size must be >= 0")
    if np.issubdtype(w.dtype, np.integer) or np.all(w == np.round(w)):
        w = w.astype(np.int64)
        total = w.sum(axis=-1, keepdims=True)
        safe = np.where(total == 0, 1, total)
        floor = (size * w) // safe
        remainder = ((size * w) % safe).astype(np.float64)
    else:
        w = w.astype(np.float64)
        total = w.sum(axis=-1, keepdims=True)
        share = size * w / np.where(total == 0, 1.0, total)
        floor = np.floor(share).astype(np.int64)
        remainder = share - floor
    floor = np.where(total == 0, 0, floor)
    leftover = np.where(total[..., 0] == 0, 0, size - floor.sum(axis=-1))
    n_bins = w.shape[-1]
    # rank bins by (remainder, index) descending: the r-th ranked bin gets a unit if r < leftover
    order = np.lexsort((-np.arange(n_bins) * np.ones_like(remainder), -remainder), axis=-1)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.broadcast_to(np.arange(n_bins), order.shape), axis=-1)
    return floor + (rank < leftover[..., None])


def frequency_bin(freq: np.ndarray, edges: tuple[float, ...] = EDGES) -> np.ndarray:
    """Bin index (0..len(edges)) of each selection frequency; a value equal to
    an edge goes to the upper bin (``get_histogram_bin``: ``x < edge``).

    Frequencies computed as ``k / n`` hit an edge exactly when the fraction
    equals it, since both are the double nearest the same rational.
    """
    f = np.asarray(freq, dtype=np.float64)
    if np.any((f < 0) | (f > 1)) or np.any(np.isnan(f)):
        raise ValueError("selection frequencies must lie in [0, 1]")
    return np.searchsorted(np.asarray(edges, dtype=np.float64), f, side="right")


def _eligible(n_annotators: np.ndarray | None, size: int, min_annotators: int | None) -> np.ndarray:
    if n_annotators is None or min_annotators is None:
        return np.ones(size, dtype=bool)
    return np.asarray(n_annotators) >= min_annotators


def rank_within(groups: np.ndarray, priority: np.ndarray) -> np.ndarray:
    """Rank of each item within its group by ascending priority, shape (N,)."""
    order = np.lexsort((priority, groups))
    sorted_groups = groups[order]
    start = np.searchsorted(sorted_groups, sorted_groups, side="left")
    rank = np.empty(len(groups), dtype=np.int64)
    rank[order] = np.arange(len(groups)) - start
    return rank


def _warn_short(classes: np.ndarray, got: np.ndarray, want: np.ndarray, what: str) -> None:
    short = got < want
    if short.any():
        listed = ", ".join(f"{c} ({g}/{w})" for c, g, w in zip(classes[short][:5], got[short][:5], want[short][:5]))
        more = f" and {short.sum() - 5} more" if short.sum() > 5 else ""
        warnings.warn(f"{what}: {short.sum()} class(es) got fewer images than asked: {listed}{more}",
                      ShortSampleWarning, stacklevel=3)


def matched_frequency(ref_freq: np.ndarray, ref_class: np.ndarray, cand_freq: np.ndarray,
                      cand_class: np.ndarray, size_per_class: int, rng: np.random.Generator, *,
                      edges: tuple[float, ...] = EDGES, ref_annotators: np.ndarray | None = None,
                      cand_annotators: np.ndarray | None = None,
                      min_annotators: int | None = MIN_ANNOTATORS) -> np.ndarray:
    """MatchedFrequency: per class, draw candidates whose selection-frequency
    histogram matches the class's reference histogram.

    Per class, the target histogram is the reference images' histogram over
    the bins given by ``edges`` scaled to ``size_per_class`` and rounded by
    :func:`largest_remainder`. In each bin, the target number of candidates
    is drawn uniformly without replacement. A bin with too few candidates
    takes all of them; its shortfall is then filled one image at a time from
    the next higher bin that still has candidates left (after every bin's own
    draw), bins taken in ascending order (``allow_upward_sampling=True``).
    Never from a lower bin: when no higher bin has images left, the class
    stays short -- as in Recht et al.'s code, which then marks the dataset
    invalid -- and a :class:`ShortSampleWarning` names the classes.
    Classes without reference images get no images.

    Parameters
    ----------
    ref_freq, ref_class : ndarray of shape (N_ref,)
        Observed selection frequency (k/n) and class of each reference image.
    cand_freq, cand_class : ndarray of shape (N_cand,)
        The same for the candidates.
    size_per_class : int
        Images per class in the new set (10 for ImageNet-v2).
    rng : numpy.random.Generator
    edges : tuple of float, default=(0.2, 0.4, 0.6, 0.8)
    ref_annotators, cand_annotators : ndarray of shape (N_ref,) / (N_cand,), optional
        Annotator counts; images with fewer than ``min_annotators`` are left
        out of the histogram and of the pool (``min_num_annotations_*``).
    min_annotators : int or None, default=10

    Returns
    -------
    ndarray of int64: indices into the candidates, sorted.
    """
    ref_class = np.asarray(ref_class)
    cand_class = np.asarray(cand_class)
    ref_ok = _eligible(ref_annotators, len(ref_class), min_annotators)
    cand_ok = _eligible(cand_annotators, len(cand_class), min_annotators)
    classes, codes = np.unique(np.concatenate([ref_class[ref_ok], cand_class[cand_ok]]), return_inverse=True)
    n_ref = int(ref_ok.sum())
    ref_code, cand_code = codes[:n_ref], codes[n_ref:]
    n_bins = len(edges) + 1
    n_classes = len(classes)

    ref_bin = frequency_bin(np.asarray(ref_freq)[ref_ok], edges)
    ref_hist = np.bincount(ref_code * n_bins + ref_bin, minlength=n_classes * n_bins).reshape(n_classes, n_bins)
    target = largest_remainder(ref_hist, size_per_class)

    cand_idx = np.flatnonzero(cand_ok)
    cand_bin = frequency_bin(np.asarray(cand_freq)[cand_ok], edges)
    group = cand_code * n_bins + cand_bin
    available = np.bincount(group, minlength=n_classes * n_bins).reshape(n_classes, n_bins)
    rank = rank_within(group, rng.random(len(group)))  # uniform order within (class, bin)

    taken = np.minimum(target, available)  # each bin's own draw
    left = available - taken
    missing = target - taken
    for b in range(n_bins):  # upward filling, lowest bin first
        for above in range(b + 1, n_bins):
            move = np.minimum(missing[:, b], left[:, above])
            taken[:, above] += move
            left[:, above] -= move
            missing[:, b] -= move
    chosen = rank < taken[cand_code, cand_bin]
    _warn_short(classes, taken.sum(axis=1), target.sum(axis=1), "matched_frequency")
    return np.sort(cand_idx[chosen])


def threshold(cand_freq: np.ndarray, cand_class: np.ndarray, size_per_class: int, rng: np.random.Generator, *,
              threshold: float = THRESHOLD, class_thresholds: Mapping[int, float] | None = None,
              cand_annotators: np.ndarray | None = None,
              min_annotators: int | None = MIN_ANNOTATORS) -> np.ndarray:
    """Threshold: per class, ``size_per_class`` candidates drawn uniformly among
    those with selection frequency >= the class's threshold (``threshold``,
    or ``class_thresholds[class]``; see :func:`load_class_thresholds`). A class
    with too few such candidates keeps all of them (and warns).

    Returns indices into the candidates, sorted (int64).
    """
    freq = np.asarray(cand_freq, dtype=np.float64)
    cls = np.asarray(cand_class)
    limit = np.full(len(freq), float(threshold))
    for c, t in (class_thresholds or {}).items():
        limit[cls == c] = t
    ok = _eligible(cand_annotators, len(freq), min_annotators) & (freq >= limit)
    idx = np.flatnonzero(ok)
    classes, code = np.unique(cls[idx], return_inverse=True)
    rank = rank_within(code, rng.random(len(idx)))
    _warn_short(classes, np.minimum(np.bincount(code, minlength=len(classes)), size_per_class),
                np.full(len(classes), size_per_class), "threshold")
    return np.sort(idx[rank < size_per_class])


def top_images(cand_freq: np.ndarray, cand_class: np.ndarray, size_per_class: int, *,
               cand_annotators: np.ndarray | None = None, cand_ids: np.ndarray | None = None,
               min_annotators: int | None = MIN_ANNOTATORS) -> np.ndarray:
    """TopImages: per class, the ``size_per_class`` candidates with the highest
    selection frequency; ties broken by more annotators, then (as the
    original's descending sort on the candidate id) by the larger ``cand_ids``
    (default: the later position). Deterministic.

    Returns indices into the candidates, sorted (int64).
    """
    freq = np.asarray(cand_freq, dtype=np.float64)
    cls = np.asarray(cand_class)
    n = np.zeros(len(freq)) if cand_annotators is None else np.asarray(cand_annotators)
    ok = _eligible(cand_annotators, len(freq), min_annotators)
    idx = np.flatnonzero(ok)
    ids = np.arange(len(freq)) if cand_ids is None else np.asarray(cand_ids)
    _, id_rank = np.unique(ids[idx], return_inverse=True)
    classes, code = np.unique(cls[idx], return_inverse=True)
    order = np.lexsort((-id_rank, -n[idx], -freq[idx], code))
    sorted_code = code[order]
    pos = np.arange(len(idx)) - np.searchsorted(sorted_code, sorted_code, side="left")
    _warn_short(classes, np.minimum(np.bincount(code, minlength=len(classes)), size_per_class),
                np.full(len(classes), size_per_class), "top_images")
    return np.sort(idx[order[pos < size_per_class]])


def load_class_thresholds(thresholds_json: str | os.PathLike) -> dict[int, float]:
    """Per-class threshold exceptions keyed by class index (0..999).

    ``thresholds_json`` maps wnid -> threshold (``sampling_thresholds_a.json``);
    the wnids map to class indices through the shipped class table
    (:func:`replication.classes.imagenet_classes`, ImageNetV2's ``class_info.json``).
    InputError naming the file for a bad file, an unknown wnid or a threshold
    outside [0, 1].
    """
    from replication.classes import imagenet_classes
    from replication.io.jsonfile import read_json

    by_wnid = read_json(thresholds_json, dict, "an object mapping wnids to thresholds")
    index = imagenet_classes().wnid_to_index
    unknown = [w for w in by_wnid if w not in index]
    if unknown:
        raise InputError(f"{thresholds_json}: unknown wnid(s) {', '.join(unknown)}")
    bad = [w for w, t in by_wnid.items() if not isinstance(t, (int, float)) or not 0 <= t <= 1]
    if bad:
        raise InputError(f"{thresholds_json}: threshold(s) of {', '.join(bad)} not a number in [0, 1]")
    return {index[w]: float(t) for w, t in by_wnid.items()}
