"""``naive``: plug-in reweighting on the OBSERVED selection frequency k/n.

The replication set's accuracy among images with observed frequency f,
averaged with the reference set's share of images at f:

    acc = sum_f  p_ref(f) * correct_rep(f) / count_rep(f)

Levels are grouped by the exact fraction k/n (so 5/10 and 6/12 are one
level when the number of annotators differs between images). Reference
images at a fraction that no replication image has cannot be matched; the
reference shares are renormalized over the fractions present in the
replication set (the estimate is the reweighted accuracy of the images that
exist). This is the estimator whose bias Engstrom et al. (2020) describe: it
matches on noisy k/n, not on the true selection frequency.
"""
from __future__ import annotations

import numpy as np

from replication.estimators.registry import Adjusted, register_method
from replication.study import LevelTable


def fraction_groups(levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group ``(n, k)`` levels by the reduced fraction k/n.

    Returns ``(fractions, group)``: the distinct fractions as an (F, 2) array
    of reduced ``(n, k)`` pairs and each level's index into them, shape (L,).
    """
    n, k = levels[:, 0], levels[:, 1]
    g = np.gcd(n, k)
    g = np.where(g == 0, 1, g)
    reduced = np.stack([n // g, k // g], axis=1)
    fractions, group = np.unique(reduced, axis=0, return_inverse=True)
    return fractions, group.reshape(-1)


def plug_in(table: LevelTable) -> Adjusted:
    """The plug-in estimate for a (possibly batched) level table; see module doc.

    Returns accuracy of shape (..., M) and level weights of shape (..., L)
    (replication image weights with mean 1; 0 where a level has no
    replication image). NaN where no reference image shares a fraction with
    any replication image.
    """
    _, group = fraction_groups(table.levels)
    onehot = np.zeros((len(group), group.max() + 1))
    onehot[np.arange(len(group)), group] = 1.0
    ref_f = table.ref_count @ onehot                       # (..., F)
    rep_f = table.rep_count @ onehot                       # (..., F)
    correct_f = np.einsum("...lm,lf->...fm", table.rep_correct, onehot)
    present = rep_f > 0
    ref_share = np.where(present, ref_f, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ref_share = ref_share / ref_share.sum(axis=-1, keepdims=True)
        acc_f = np.where(present[..., None], correct_f / np.where(present, rep_f, 1.0)[..., None], 0.0)
        accuracy = np.einsum("...f,...fm->...m", ref_share, acc_f)
        n_rep = table.rep_count.sum(axis=-1, keepdims=True)
        weight_f = np.where(present, ref_share * n_rep / np.where(present, rep_f, 1.0), 0.0)
    level_weights = weight_f @ onehot.T                    # (..., L)
    return Adjusted(accuracy=accuracy, level_weights=level_weights)


@register_method("naive")
def naive(table: LevelTable) -> Adjusted:
    """Plug-in reweighting on observed k/n (see module doc)."""
    return plug_in(table)
