"""Accuracy as a function of true selection frequency, f(s), from the models'
correctness on the three sets' images.

An image's membership pattern (which of MatchedFrequency, Threshold0.7 and
TopImages drew it), its number of HITs and its class make a posterior of its
true s under the fitted construction model (:func:`pattern_posteriors`). A
model's chance of being right depends on the image, not on what drew it, so

    P(model m correct | pattern, class c) = sum_j P(s_j | pattern, c) f_mc(s_j),
    f_mc(s) = Phi(a_m + delta_c + b_m s),   b_m >= 0,

where delta_c (shared by the models, mean 0) is the class's difficulty: in the
real data, classes whose candidates were rarely good are also hard for every
model (their ImageNet val accuracy is 11 points lower), and without delta_c
that difference would be read as an effect of s. :func:`fit_curves` fits
(a, b, delta) by Fisher scoring on the binomial likelihood of each group's
correct count, alternating between the models' (a_m, b_m) and the classes'
delta_c.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special, stats

from replication.v2public.data import PublicData
from replication.v2public.expected import N_PATTERNS, PATTERN_BITS, Configurations, LevelGrid

#: cells of [0, 1] on which posteriors of s (and the reference distribution) are summarized
N_CURVE_CELLS = 25
_P_MIN = 1e-6


def coarsen(masses: np.ndarray, n_cells: int = N_CURVE_CELLS) -> np.ndarray:
    """Sum fine cell masses (..., C) into ``n_cells`` equal blocks (C must be a multiple)."""
    c = masses.shape[-1]
    if c % n_cells:
        raise ValueError(f"{c} cells do not split into {n_cells} equal blocks")
    return masses.reshape(masses.shape[:-1] + (n_cells, c // n_cells)).sum(axis=-1)


def midpoints(n_cells: int = N_CURVE_CELLS) -> np.ndarray:
    """Midpoints of ``n_cells`` equal cells of [0, 1]."""
    return (np.arange(n_cells) + 0.5) / n_cells


def conditional_weights(conf: Configurations, overlap: np.ndarray, per: int) -> np.ndarray:
    """Replicate weights (B,) conditioned on each class's observed |T & TI|
    (``overlap`` (C,)): the configuration weight times P(overlap | configuration),
    hypergeometric when more than ``per`` candidates pass the threshold (TopImages
    then lies among them), else certain. A class no replicate explains keeps its
    unconditional weights."""
    n_above = np.where(conf.probs[1] > 0, conf.counts, 0.0).sum(axis=1)
    z = np.repeat(overlap, conf.n_reps)
    big = n_above > per
    lik = np.where(big, stats.hypergeom.pmf(z, np.maximum(n_above, per).astype(np.int64), per, per),
                   (z == np.minimum(n_above, per)).astype(float))
    w = conf.per_class(conf.weights * lik)
    total = w.sum(axis=1, keepdims=True)
    w = np.where(total > 0, w / np.where(total > 0, total, 1.0), conf.per_class(conf.weights))
    return w.reshape(-1)


def pattern_posteriors(conf: Configurations, grid: LevelGrid, weights: np.ndarray,
                       n_cells: int = N_CURVE_CELLS) -> np.ndarray:
    """P(s in cell j | pattern p, class c, HIT group g), shape (C, 8, G, n_cells),
    with replicate ``weights`` (B,); pattern 0 (in no set) is left at zero."""
    slices = grid.group_slices()
    out = np.zeros((conf.n_classes, N_PATTERNS, len(slices), n_cells))
    ratio = weights[:, None] / np.maximum(conf.level_prob, 1e-300)
    for p in range(1, N_PATTERNS):
        per_level = conf.pattern_counts(p) * ratio                    # (B, L)
        for g, sl in enumerate(slices):
            mass = (per_level[:, sl] @ grid.binom[sl]) * conf.pool_cells   # (B, C)
            out[:, p, g] = coarsen(conf.per_class(mass).sum(axis=1), n_cells)
    total = out.sum(axis=-1, keepdims=True)
    return out / np.where(total > 0, total, 1.0)


def class_reference(conf: Configurations, weights: np.ndarray, n_cells: int = N_CURVE_CELLS) -> np.ndarray:
    """Each class's reference distribution of s (replicate ``weights``), (C, n_cells)."""
    w = conf.per_class(weights)[..., None]
    return coarsen((conf.per_class(conf.ref_cells) * w).sum(axis=1), n_cells)


@dataclass(frozen=True)
class ImageGroups:
    """The three sets' images grouped by (class, pattern, HIT group).

    code : (K, 3) int -- class index, pattern, HIT group of each non-empty group
    count : (K,) images; correct : (K, M) correct images per model
    """

    code: np.ndarray
    count: np.ndarray
    correct: np.ndarray

    @classmethod
    def from_public(cls, data: PublicData, classes: np.ndarray, max_hits: int) -> "ImageGroups":
        """Group the set images of ``data`` (classes indexed in ``classes``)."""
        member = data.member.any(axis=1)
        cls_idx = np.searchsorted(classes, data.cand_class[member])
        pattern = (data.member[member] * (1 << np.arange(3))).sum(axis=1)
        group = np.minimum(data.cand_hits[member], max_hits) - 1
        key = (cls_idx * N_PATTERNS + pattern) * max_hits + group
        uniq, inv = np.unique(key, return_inverse=True)
        count = np.bincount(inv).astype(float)
        correct = np.zeros((len(uniq), data.member_correct.shape[1]))
        np.add.at(correct, inv, data.member_correct[member].astype(float))
        code = np.column_stack([uniq // (N_PATTERNS * max_hits), (uniq // max_hits) % N_PATTERNS, uniq % max_hits])
        return cls(code, count, correct)

    def design(self, posteriors: np.ndarray) -> np.ndarray:
        """Each group's posterior over the cells, (K, n_cells)."""
        return posteriors[self.code[:, 0], self.code[:, 1], self.code[:, 2]]


@dataclass(frozen=True)
class CurveFit:
    """f_mc(s) = Phi(a_m + delta_c + b_m s).

    a, b : (M,); delta : (C,) class effects (mean 0; zeros without class effects);
    info : (M, 2, 2) Fisher information of (a_m, b_m); class_scores : (C, M, 2)
    each class's contribution to the score of (a_m, b_m) (zero in sum at the fit)
    """

    a: np.ndarray
    b: np.ndarray
    delta: np.ndarray
    info: np.ndarray
    class_scores: np.ndarray

    def curves(self, s: np.ndarray, delta: float = 0.0) -> np.ndarray:
        """f(s) of every model for a class of effect ``delta``, (M, len(s))."""
        return special.ndtr(self.a[:, None] + delta + self.b[:, None] * np.asarray(s)[None, :])


class _Blocks:
    """The groups' posteriors arranged per class, (C, G, J) with G the most groups
    of a class (zero-padded): the sums over cells of design[k, j] g(a_m +
    delta_c + b_m s_j) are one batched product with g evaluated per (class,
    cell, model) -- C J M values instead of K J M."""

    def __init__(self, design: np.ndarray, cls: np.ndarray, n_classes: int):
        order = np.argsort(cls, kind="stable")
        first = np.searchsorted(cls[order], np.arange(n_classes))
        slot = np.empty(len(cls), np.int64)
        slot[order] = np.arange(len(cls)) - first[cls[order]]
        self.cls, self.slot = cls, slot
        self.design = np.zeros((n_classes, int(slot.max()) + 1 if len(slot) else 1, design.shape[1]), np.float32)
        self.design[cls, slot] = design
        self.mids = midpoints(design.shape[1])

    def terms(self, a: np.ndarray, b: np.ndarray, delta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Predicted probability (M, K) and its derivatives in a (= in delta) and in b
        (the normal integrals in float32: 7 digits, half the cost; sums in float64)."""
        m = len(a)
        stacked = np.empty((len(delta), len(self.mids), 3 * m), np.float32)
        z = (delta[:, None, None] + a[None, None, :] + self.mids[None, :, None] * b[None, None, :]).astype(np.float32)
        stacked[..., :m] = special.ndtr(z)
        dens = np.exp(np.float32(-0.5) * z * z) * np.float32(1 / np.sqrt(2 * np.pi))
        stacked[..., m:2 * m] = dens
        stacked[..., 2 * m:] = dens * self.mids[None, :, None].astype(np.float32)
        out = np.matmul(self.design, stacked)[self.cls, self.slot].T.astype(np.float64)  # (3M, K)
        return np.clip(out[:m], _P_MIN, 1 - _P_MIN), out[m:2 * m], out[2 * m:]


def fit_curves(design: np.ndarray, cls: np.ndarray, count: np.ndarray, correct: np.ndarray, n_classes: int, *,
               class_effects: bool = True, start: CurveFit | None = None, n_iter: int = 12,
               tol: float = 1e-4) -> CurveFit:
    """Fit (a, b, delta) by alternating Fisher scoring (module doc).

    design : (K, J) posteriors of the groups; cls : (K,) their class index;
    count : (K,) images; correct : (K, M) correct images; ``start`` warm-starts.
    """
    blocks = _Blocks(design, cls, n_classes)
    m = correct.shape[1]
    y = correct.T                                                     # (M, K)
    if start is None:
        rate = np.clip(y.sum(axis=1) / count.sum(), 0.02, 0.98)
        a, b, delta = special.ndtri(rate) - 0.6, np.full(m, 1.0), np.zeros(n_classes)
    else:
        a, b, delta = start.a.copy(), start.b.copy(), start.delta.copy()
    for _ in range(n_iter):
        p, dp_a, dp_b = blocks.terms(a, b, delta)
        w = count[None, :] / (p * (1 - p))
        r = (y - count[None, :] * p) / (p * (1 - p))
        g = np.stack([(r * dp_a).sum(axis=1), (r * dp_b).sum(axis=1)], axis=-1)          # (M, 2)
        h = np.stack([np.stack([(w * dp_a * dp_a).sum(1), (w * dp_a * dp_b).sum(1)], -1),
                      np.stack([(w * dp_a * dp_b).sum(1), (w * dp_b * dp_b).sum(1)], -1)], -2)
        step = np.linalg.solve(h + 1e-9 * np.eye(2), g[..., None])[..., 0]
        a, b = a + step[:, 0], np.maximum(b + step[:, 1], 0.0)
        moved = np.abs(step).max()
        if class_effects:
            p, dp_a, _ = blocks.terms(a, b, delta)
            w = count[None, :] / (p * (1 - p))
            r = (y - count[None, :] * p) / (p * (1 - p))
            score = np.bincount(cls, weights=(r * dp_a).sum(axis=0), minlength=n_classes)
            info = np.bincount(cls, weights=(w * dp_a * dp_a).sum(axis=0), minlength=n_classes)
            d_step = score / np.maximum(info, 1e-12)
            delta = delta + d_step
            shift = delta.mean()
            delta, a = delta - shift, a + shift
            moved = max(moved, np.abs(d_step).max())
        if moved < tol:
            break
    p, dp_a, dp_b = blocks.terms(a, b, delta)
    w = count[None, :] / (p * (1 - p))
    r = (y - count[None, :] * p) / (p * (1 - p))
    info = np.stack([np.stack([(w * dp_a * dp_a).sum(1), (w * dp_a * dp_b).sum(1)], -1),
                     np.stack([(w * dp_a * dp_b).sum(1), (w * dp_b * dp_b).sum(1)], -1)], -2)
    by_class = _class_sum(cls, n_classes)
    scores = np.stack([by_class @ (r * dp_a).T, by_class @ (r * dp_b).T], axis=-1)      # (C, M, 2)
    return CurveFit(a, b, delta, info, scores)


def _class_sum(cls: np.ndarray, n_classes: int):
    """Sparse (C, K) matrix summing group values into their classes."""
    from scipy import sparse

    return sparse.csr_matrix((np.ones(len(cls)), (cls, np.arange(len(cls)))), shape=(n_classes, len(cls)))


def adjusted_accuracy(a: np.ndarray, b: np.ndarray, delta: np.ndarray, reference: np.ndarray,
                      class_weights: np.ndarray | None = None) -> np.ndarray:
    """Accuracy at the reference's true s: mean over classes of
    sum_j reference[c, j] f_mc(s_j).

    a, b : (..., M); delta : (C,); reference : (..., C, J) per class;
    class_weights : (..., C) (e.g. bootstrap counts; default 1 each). Returns (..., M).
    """
    mids = midpoints(reference.shape[-1])
    z = a[..., :, None, None] + delta[:, None] + b[..., :, None, None] * mids            # (..., M, C, J)
    per_class = np.einsum("...cj,...mcj->...mc", reference, special.ndtr(z))
    w = np.ones(len(delta)) if class_weights is None else class_weights
    return np.einsum("...c,...mc->...m", w, per_class) / np.sum(w, axis=-1)[..., None]


def pattern_names() -> list[str]:
    """Readable names of the membership patterns (index p = MF + 2 T + 4 TI)."""
    sets = ("MF", "T", "TI")
    return ["none"] + ["&".join(s for s, b in zip(sets, PATTERN_BITS[p]) if b) for p in range(1, N_PATTERNS)]
