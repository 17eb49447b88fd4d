"""Expected memberships under the construction model, by Monte Carlo over the
classes' annotation-level configurations.

A class's candidates are exchangeable given their number of annotations n, so
what the three samplers do to a candidate depends only on its level (n, k) and
on the class's CONFIGURATION K: how many of its candidates sit at each level
(and, for MatchedFrequency, the class's target histogram t). Given K and t,
with a candidate at level l of k/n = x:

* Threshold0.7 draws ``per`` of the A candidates with x >= the class's
  threshold: P(T | l) = 1[x >= threshold] min(1, per / A);
* TopImages takes the ``per`` highest by (x, n) with ties in random id order:
  P(I | l) = clip((per - R_l) / K_l, 0, 1), R_l = candidates ranked above l;
* MatchedFrequency draws t_b of the P_b candidates of bin b, filling a lower
  bin's shortfall from the next higher bin with candidates left (Recht's
  ``allow_upward_sampling``): P(M | l) = drawn_b / P_b;

and the three events are independent (two independent draws, and an id order).
So E[candidates at l with pattern (M, T, I) | K, t] = K_l P(M|l)^M (1-P(M|l))^(1-M) ...
exactly. :class:`ConfigurationSampler` draws R configurations per class from the
model with common random numbers (fixed uniforms mapped through the model's
level distributions, so results move smoothly with the parameters) and
averages these exact conditional expectations: expected overlap counts per
class (the estimator's moments) and, per membership pattern, the distribution
of true s (its posteriors).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import special, stats

from replication.sampling import EDGES, THRESHOLD, frequency_bin, largest_remainder
from replication.v2public.data import ANNOTATIONS_PER_HIT, PublicData
from replication.v2public.model import N_CELLS, ConstructionModel, cell_edges

#: membership patterns: index p = MF + 2 * T + 4 * TI
N_PATTERNS = 8
PATTERN_BITS = np.array([[(p >> j) & 1 for j in range(3)] for p in range(N_PATTERNS)], dtype=bool)
#: class summaries matched by the estimator, in this order
SUMMARIES = ("T&TI", "MF&T", "MF&TI", "MF&T&TI", "T", "TI(n>10)", "T(n>10)", "MF(n>10)")


@dataclass(frozen=True)
class LevelGrid:
    """All annotation levels (n, k), k = 0..n, for n = 10, 20, ..., 10 * max_hits.

    n, k, x = k / n, group (index of n) : ndarray of shape (L,)
    rank : position of each level in TopImages' order (x descending, then n descending)
    mf_bin : MatchedFrequency bin of x (edges 0.2/0.4/0.6/0.8; an edge goes up)
    binom : ndarray of shape (L, C), P(k | n, s) at the cell midpoints
    """

    max_hits: int
    n_cells: int = N_CELLS

    @cached_property
    def n(self) -> np.ndarray:
        return np.concatenate([np.full(ANNOTATIONS_PER_HIT * h + 1, ANNOTATIONS_PER_HIT * h)
                               for h in range(1, self.max_hits + 1)])

    @cached_property
    def k(self) -> np.ndarray:
        return np.concatenate([np.arange(ANNOTATIONS_PER_HIT * h + 1) for h in range(1, self.max_hits + 1)])

    @cached_property
    def x(self) -> np.ndarray:
        return self.k / self.n

    @cached_property
    def group(self) -> np.ndarray:
        return self.n // ANNOTATIONS_PER_HIT - 1

    @cached_property
    def order(self) -> np.ndarray:
        """Levels in TopImages' order (best first)."""
        return np.lexsort((-self.n, -self.x))

    @cached_property
    def mf_bin(self) -> np.ndarray:
        return frequency_bin(self.x, EDGES)

    @cached_property
    def edges(self) -> np.ndarray:
        return cell_edges(self.n_cells)

    @cached_property
    def binom(self) -> np.ndarray:
        mid = (self.edges[1:] + self.edges[:-1]) / 2
        return stats.binom.pmf(self.k[:, None], self.n[:, None], mid[None, :])

    def group_slices(self) -> list[slice]:
        """The levels of each n, as slices of the level axis."""
        bounds = np.concatenate([[0], np.cumsum(ANNOTATIONS_PER_HIT * np.arange(1, self.max_hits + 1) + 1)])
        return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def _sorted_uniforms(counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For rows with ``counts`` (B,) items each: sorted uniforms offset by the row
    index (row + u), one flat sorted array."""
    row = np.repeat(np.arange(len(counts)), counts)
    return np.sort(row + rng.random(len(row)))


def _level_counts(sorted_u: np.ndarray, cdf: np.ndarray) -> np.ndarray:
    """Counts per level from each row's CDF (B, L_g) and its row's sorted uniforms."""
    rows = np.arange(cdf.shape[0])[:, None]
    upper = np.searchsorted(sorted_u, rows + cdf)
    lower = np.concatenate([np.searchsorted(sorted_u, rows), upper[:, :-1]], axis=1)
    return (upper - lower).astype(float)


def _level_cdf(cells: np.ndarray, binom: np.ndarray) -> np.ndarray:
    """CDF over a group's levels for rows of cell masses (B, C); the last entry is exactly 1."""
    probs = np.clip(cells @ binom.T, 0.0, None)
    cdf = np.cumsum(probs, axis=-1)
    cdf = cdf / cdf[..., -1:]
    cdf[..., -1] = 1.0
    return cdf


@dataclass(frozen=True)
class ClassLayout:
    """The classes of a public record as the model sees them.

    classes : (C,) ids; log_size : (C,) centred log pool sizes; group_counts : (C, G)
    candidates per number of HITs (capped at ``max_hits``); threshold : (C,)
    Threshold0.7's threshold per class; ref_hit_shares : (G,) shares of HIT counts
    assumed for the annotated reference images.
    """

    classes: np.ndarray
    log_size: np.ndarray
    group_counts: np.ndarray
    threshold: np.ndarray
    ref_hit_shares: np.ndarray
    centre: float

    @classmethod
    def from_public(cls, data: PublicData, *, max_hits: int = 3, extra_candidates: float = 0.0,
                    impute_unlisted: bool = False, ref_hits: int | None = None,
                    centre: float | None = None) -> "ClassLayout":
        """The classes of ``data``. ``extra_candidates``: one-HIT candidates in no set
        added to every class per listed candidate (the listing misses some; negative:
        that share of one-HIT non-members was never eligible). ``impute_unlisted``:
        a class with u set images missing from the listing gets
        u * (listed candidates) / (listed set images) - u one-HIT non-members, as if
        the missing HIT file held candidates like the listed ones. ``ref_hits``:
        every annotated reference image had that many HITs (None: shares like the
        candidates')."""
        classes, code = np.unique(data.cand_class, return_inverse=True)
        hits = np.minimum(data.cand_hits, max_hits)
        counts = np.zeros((len(classes), max_hits))
        np.add.at(counts, (code, hits - 1), 1.0)
        if extra_candidates:
            counts[:, 0] = np.maximum(counts[:, 0] + np.round(extra_candidates * counts.sum(axis=1)), 0)
        if impute_unlisted and data.cand_unlisted is not None:
            unlisted = np.bincount(code, weights=data.cand_unlisted, minlength=len(classes))
            listed = np.bincount(code, weights=~data.cand_unlisted, minlength=len(classes))
            members = np.bincount(code, weights=data.member.any(axis=1) & ~data.cand_unlisted, minlength=len(classes))
            counts[:, 0] += np.round(np.maximum(unlisted * listed / np.maximum(members, 1.0) - unlisted, 0.0))
        counts = counts.astype(np.int64)
        logs = np.log(counts.sum(axis=1))
        centre = float(logs.mean()) if centre is None else centre
        thr = np.array([data.class_thresholds.get(int(c), THRESHOLD) for c in classes])
        if ref_hits is None:
            shares = counts.sum(axis=0) / counts.sum()
        else:
            shares = np.zeros(max_hits)
            shares[min(ref_hits, max_hits) - 1] = 1.0
        return cls(classes, logs - centre, counts, thr, shares, centre)


@dataclass(frozen=True)
class Configurations:
    """R configurations per class at one parameter value (arrays over rows
    = (class, replicate) pairs, class-major).

    counts : (B, L) candidates per level; probs : (3, B, L) a candidate's probability
    of each membership (MF, T, TI) given its level; pool_cells, ref_cells : (B, C) cell masses;
    level_prob : (B, L) P(level | n) under the pool distribution;
    summaries : (B, S) expected class summaries (:data:`SUMMARIES`);
    tti_var : (B,) variance of |T & TI| given the configuration;
    weights : (B,) each replicate's weight within its class (summing to 1 per class):
    the model is conditioned on every class's Threshold0.7 and MatchedFrequency
    sets being full, as all 1,000 real ones are (Recht et al. relaxed the
    threshold of three classes and collected candidates until the sets could be
    drawn), so replicates where a set comes out short get weight 0
    """

    counts: np.ndarray
    probs: np.ndarray
    pool_cells: np.ndarray
    ref_cells: np.ndarray
    level_prob: np.ndarray
    summaries: np.ndarray
    tti_var: np.ndarray
    n_classes: int
    n_reps: int
    weights: np.ndarray

    def pattern_counts(self, pattern: int) -> np.ndarray:
        """Expected candidates per level with membership ``pattern`` (index p =
        MF + 2 T + 4 TI), shape (B, L)."""
        out = self.counts.copy()
        for j in range(3):
            out *= self.probs[j] if PATTERN_BITS[pattern, j] else 1.0 - self.probs[j]
        return out

    def per_class(self, values: np.ndarray) -> np.ndarray:
        """Reshape a row array (B, ...) to (C, R, ...)."""
        return values.reshape((self.n_classes, self.n_reps) + values.shape[1:])

    def class_mean(self, values: np.ndarray) -> np.ndarray:
        """Weighted mean over each class's replicates of a row array (B, ...) -> (C, ...)."""
        w = self.weights.reshape((-1,) + (1,) * (values.ndim - 1))
        return self.per_class(values * w).sum(axis=1)


class ConfigurationSampler:
    """Draws and evaluates class configurations with common random numbers.

    Parameters
    ----------
    layout : ClassLayout
    n_reps : int
        Configurations per class (R).
    per_class : int
        Images per class in each set.
    ref_annotated : int
        Annotated reference images per class (their histogram is matched).
    seed : int
        Seeds the fixed uniforms and class effects.
    """

    def __init__(self, layout: ClassLayout, *, n_reps: int = 8, per_class: int = 10, ref_annotated: int = 20,
                 seed: int = 0, grid: LevelGrid | None = None):
        self.layout = layout
        self.n_reps = int(n_reps)
        self.per_class = int(per_class)
        self.grid = grid or LevelGrid(layout.group_counts.shape[1])
        rng = np.random.default_rng(seed)
        n_cls, reps = len(layout.classes), self.n_reps
        # class effects stratified over the replicates: one in each of R equal-probability strata
        self.eta = special.ndtri((np.arange(reps)[None, :] + rng.random((n_cls, reps))) / reps)
        self.cand_u = [_sorted_uniforms(np.repeat(layout.group_counts[:, g], reps), rng)
                       for g in range(layout.group_counts.shape[1])]
        ref_groups = rng.choice(len(layout.ref_hit_shares), size=(n_cls * reps, ref_annotated),
                                p=layout.ref_hit_shares)
        self.ref_u = [_sorted_uniforms((ref_groups == g).sum(axis=1), rng)
                      for g in range(len(layout.ref_hit_shares))]
        self._cache = None

    def _pool_side(self, model: ConstructionModel) -> tuple:
        """What depends on the pool distribution only (cached for the last pool:
        refits of the reference's parameters reuse it)."""
        key = (model.pool_family, *(getattr(model, p) for p in model.parameters() if p.startswith("pool_")))
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        lay, grid, per = self.layout, self.grid, self.per_class
        u = model.class_deviation(lay.log_size[:, None], self.eta).reshape(-1)
        pool = model.pool_cells(u, grid.edges)
        slices = grid.group_slices()
        level_prob = np.concatenate([np.clip(pool @ grid.binom[sl].T, 0, None) for sl in slices], axis=1)
        counts = np.concatenate([_level_counts(self.cand_u[g], _level_cdf(pool, grid.binom[sl]))
                                 for g, sl in enumerate(slices)], axis=1)
        threshold = np.repeat(lay.threshold, self.n_reps)
        p_t = _threshold_prob(counts, grid.x[None, :] >= threshold[:, None] - 1e-12, per)
        p_ti = _top_images_prob(counts, grid.order, per)
        n_above = np.where(p_t > 0, counts, 0.0).sum(axis=1)
        value = (u, pool, level_prob, counts, p_t, p_ti, n_above)
        self._cache = (key, value)
        return value

    def evaluate(self, model: ConstructionModel) -> Configurations:
        """Configurations and expected memberships at ``model``."""
        grid, per = self.grid, self.per_class
        u, pool, level_prob, counts, p_t, p_ti, n_above = self._pool_side(model)
        ref = model.ref_cells(u, grid.edges)
        ref_counts = np.concatenate([_level_counts(self.ref_u[g], _level_cdf(ref, grid.binom[sl]))
                                     for g, sl in enumerate(grid.group_slices())], axis=1)
        n_bins = len(EDGES) + 1
        bin_onehot = np.eye(n_bins)[grid.mf_bin]                       # (L, 5)
        target = largest_remainder(np.rint(ref_counts @ bin_onehot).astype(np.int64), per).astype(float)
        p_mf = _matched_frequency_prob(counts, target, bin_onehot)
        mf_full = (counts * p_mf).sum(axis=1) >= per - 1e-9
        weights = _full_weights(np.where(mf_full, n_above, np.minimum(n_above, per - 1.0)), per, self.n_reps)
        probs = np.stack([p_mf, p_t, p_ti])                             # (3, B, L)
        summaries, tti_var = _summaries(counts, probs, (grid.n > ANNOTATIONS_PER_HIT).astype(float), per)
        return Configurations(counts, probs, pool, ref, level_prob, summaries, tti_var,
                              len(self.layout.classes), self.n_reps, weights)


def _full_weights(n_above: np.ndarray, per: int, n_reps: int) -> np.ndarray:
    """Per-class normalized weights of the replicates whose sets are full: at
    least ``per`` candidates pass Threshold0.7 (``n_above``; the caller lowers it
    below ``per`` where MatchedFrequency is short); a class with none keeps its
    replicates with the most."""
    a = n_above.reshape(-1, n_reps)
    ok = a >= per
    ok = np.where(ok.any(axis=1, keepdims=True), ok, a >= a.max(axis=1, keepdims=True))
    return (ok / ok.sum(axis=1, keepdims=True)).reshape(-1)


def _threshold_prob(counts: np.ndarray, above: np.ndarray, per: int) -> np.ndarray:
    n_above = (counts * above).sum(axis=1, keepdims=True)
    return np.where(above, np.minimum(1.0, per / np.maximum(n_above, 1.0)), 0.0)


def _top_images_prob(counts: np.ndarray, order: np.ndarray, per: int) -> np.ndarray:
    ranked = counts[:, order]
    before = np.cumsum(ranked, axis=1) - ranked
    p = np.clip((per - before) / np.maximum(ranked, 1.0), 0.0, 1.0)
    out = np.empty_like(p)
    out[:, order] = p
    return out


def _matched_frequency_prob(counts: np.ndarray, target: np.ndarray, bin_onehot: np.ndarray) -> np.ndarray:
    """Inclusion probability per level: each bin's own draw, then the upward
    filling of lower bins' shortfalls (as :func:`replication.sampling.matched_frequency`)."""
    available = counts @ bin_onehot
    taken = np.minimum(target, available)
    left = available - taken
    missing = target - taken
    n_bins = bin_onehot.shape[1]
    for b in range(n_bins):
        for above in range(b + 1, n_bins):
            move = np.minimum(missing[:, b], left[:, above])
            taken[:, above] += move
            left[:, above] -= move
            missing[:, b] -= move
    share = taken / np.maximum(available, 1.0)
    return share @ bin_onehot.T


def _summaries(counts: np.ndarray, probs: np.ndarray, more_hits: np.ndarray,
               per: int) -> tuple[np.ndarray, np.ndarray]:
    """Expected :data:`SUMMARIES` per row (B, S) and the variance of |T & TI| given the configuration."""
    m, t, i = counts * probs[0], probs[1], probs[2]
    ct = counts * t
    mt = m * t
    out = np.stack([
        (ct * i).sum(axis=1), mt.sum(axis=1), (m * i).sum(axis=1), (mt * i).sum(axis=1), ct.sum(axis=1),
        (counts * i) @ more_hits, ct @ more_hits, m @ more_hits,
    ], axis=1)
    n_above = np.where(t > 0, counts, 0.0).sum(axis=1)
    # |T & TI| is hypergeometric when more than `per` candidates pass the threshold
    # (TopImages then lies inside them); otherwise T is all of them and the overlap is fixed
    a = np.maximum(n_above, per + 1.0)
    var = np.where(n_above > per, per * (per / a) * (1 - per / a) * (a - per) / (a - 1), 0.0)
    return out, var


def observed_summaries(data: PublicData, classes: np.ndarray) -> np.ndarray:
    """The :data:`SUMMARIES` of each class of a public record, shape (C, S)."""
    code = np.searchsorted(classes, data.cand_class)
    mf, t, ti = data.member[:, 0], data.member[:, 1], data.member[:, 2]
    more = data.cand_hits > 1
    cols = [t & ti, mf & t, mf & ti, mf & t & ti, t, ti & more, t & more, mf & more]
    return np.stack([np.bincount(code, weights=c.astype(float), minlength=len(classes)) for c in cols], axis=1)
