"""``jackknife``: Engstrom et al. (2020)'s delete-d jackknife over annotators.

The plug-in estimate (:mod:`replication.estimators.naive`) is biased by the
noise in k/n, and the bias shrinks roughly like 1/n. Dropping d of an image's
n annotators at random leaves a hypergeometric number of selections::

    P(k' | n, k) = C(k, k') C(n - k, n - d - k') / C(n, n - d)

so the table averaged over all ways of dropping d annotators (the delete-d
jackknife, computed exactly rather than by resampling) is a linear map of
the level table: counts and correct counts at (n, k) are spread over the
levels (n - d, k'). Both datasets are thinned. With the plug-in estimates
A(n) on the full table and A(n - d) on the thinned one, the line through
(x_full, A(n)) and (x_thin, A(n - d)) in x = 1/n is extrapolated to x = 0
(infinitely many annotators)::

    A_jack = A(n) + (A(n) - A(n - d)) * x_full / (x_thin - x_full)

When n differs between images, x_full and x_thin are the means of 1/n and
1/(n - d) over all images of both datasets. Every image needs more than d
annotators.
"""
from __future__ import annotations

import numpy as np

from replication.errors import FitError
from replication.estimators.naive import plug_in
from replication.estimators.registry import Adjusted, register_method
from replication.priors._base import log_choose
from replication.study import LevelTable

DEFAULT_D = 1


def hypergeom_pmf(x: np.ndarray, total: np.ndarray, good: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """P(x good among ``draws`` taken without replacement from ``total`` items of
    which ``good`` are good); 0 outside the support. Broadcasts. (Same as
    ``scipy.stats.hypergeom.pmf(x, total, good, draws)``, without importing
    scipy.stats, which costs seconds at start-up.)"""
    x, total, good, draws = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (x, total, good, draws)))
    ok = (x >= np.maximum(0, draws - (total - good))) & (x <= np.minimum(good, draws))
    xs = np.where(ok, x, 0.0)
    bad_draws = np.where(ok, draws - xs, 0.0)
    log_p = (log_choose(good, np.minimum(xs, good)) + log_choose(total - good, np.minimum(bad_draws, total - good))
             - log_choose(total, draws))
    return np.where(ok, np.exp(log_p), 0.0)


def thinning_matrix(levels: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
    """The delete-d map from levels (n, k) to levels (n - d, k').

    Returns ``(thinned_levels, H)``: the (T, 2) reachable levels, sorted, and
    the (L, T) matrix of hypergeometric probabilities; each row sums to 1.
    """
    n, k = levels[:, 0], levels[:, 1]
    if np.any(n <= d):
        raise FitError(f"jackknife with d={d} needs more than {d} annotators per image; "
                       f"some images have n={int(n[n <= d].min())}")
    kp = np.arange(int(k.max()) + 1)
    prob = hypergeom_pmf(kp[None, :], n[:, None], k[:, None], (n - d)[:, None])  # (L, K')
    rows, cols = np.nonzero(prob > 0)
    pairs = np.stack([n[rows] - d, kp[cols]], axis=1)
    thinned, target = np.unique(pairs, axis=0, return_inverse=True)
    h = np.zeros((len(levels), len(thinned)))
    np.add.at(h, (rows, target.reshape(-1)), prob[rows, cols])
    h /= h.sum(axis=1, keepdims=True)
    return thinned, h


def thin(table: LevelTable, d: int) -> tuple[LevelTable, np.ndarray]:
    """The expected level table after dropping d annotators per image, and the
    thinning matrix H of shape (L, T) that produced it."""
    thinned, h = thinning_matrix(table.levels, d)
    out = LevelTable(
        levels=thinned,
        ref_count=table.ref_count @ h,
        rep_count=table.rep_count @ h,
        rep_correct=np.einsum("...lm,lt->...tm", table.rep_correct, h),
        ref_correct=table.ref_correct,
        models=table.models,
    )
    return out, h


def _mean_inverse_n(table: LevelTable, shift: int = 0) -> np.ndarray:
    """Mean of 1/(n - shift) over all images of both datasets, shape (...,)."""
    counts = table.ref_count + table.rep_count
    return (counts @ (1.0 / (table.n - shift))) / counts.sum(axis=-1)


def delete_d(table: LevelTable, d: int = DEFAULT_D) -> Adjusted:
    """Delete-d jackknife estimate for a (possibly batched) table.

    Returns accuracy of shape (..., M) and level weights of shape (..., L):
    ``(1 + c) w_full - c H w_thin`` with ``c = x_full / (x_thin - x_full)``,
    whose weighted replication accuracy equals the estimate (weights may be
    negative).
    """
    d = int(d)
    if d < 1:
        raise FitError(f"jackknife needs d >= 1 annotators dropped, got {d}")
    thinned, h = thin(table, d)
    full, part = plug_in(table), plug_in(thinned)
    x_full = _mean_inverse_n(table)
    x_thin = _mean_inverse_n(table, shift=d)
    c = (x_full / (x_thin - x_full))[..., None]
    accuracy = full.accuracy + (full.accuracy - part.accuracy) * c
    level_weights = (1.0 + c) * full.level_weights - c * (part.level_weights @ h.T)
    return Adjusted(accuracy=accuracy, level_weights=level_weights)


@register_method("jackknife")
def jackknife(table: LevelTable, *, d: int = DEFAULT_D) -> Adjusted:
    """Delete-d jackknife over annotators, extrapolated linearly in 1/n to
    infinitely many annotators (see module doc). ``d`` defaults to 1."""
    return delete_d(table, d)
