"""Deconvolution of selection frequencies: adjusted accuracy, importance
weights and monotone accuracy curves f(s) = P(correct | s).

Setting. Each dataset has a distribution of TRUE selection frequency s; an
image's k of n selections is Binomial(n, s). A model's replication accuracy at
true frequency s is f(s), non-decreasing. The adjusted replication accuracy is
the accuracy the model would have on replication images whose true s were
distributed like the reference images': integral f(s) g_ref(s) ds.

Priors. g_ref is fitted to the reference images' counts (a random sample of
the reference pool). The replication images were SELECTED on their noisy k
(MatchedFrequency draws candidates uniformly within bins of k/n), so their k
are not Binomial draws from their own s-distribution; what carries over is the
posterior p(s | k) under the prior g_pool of the CANDIDATE POOL. g_pool is
fitted either to the pool's annotations when available (``pool_counts``), or
to the replication images alone by truncated-data EM on the within-bin
frequencies of k (``selection_edges``, Recht et al.'s bins by default; this
needs n large enough that bins hold several k values: n = 10 works, n <= 4
does not), or, with ``selection_edges=None``, to the replication images as a
random sample of their pool. Priors are mixtures of betas or NPMLEs (see
:mod:`replication.priors`), discretized on cells of [0, 1].

Estimator. One weight w_l per annotation level l = (n, k) reweights the
replication images; given their levels, the weighted images' true-s
distribution is h_w(s) = sum_l p_l w_l p_pool(s | l) (p_l: observed share of
replication images at l), and the weighted accuracy sum_i w_i c_i / N_rep has
expectation integral f h_w. For a non-decreasing f with values in [0, 1] (a
mixture of steps 1[s >= t]) its bias is a mixture of the tail differences
D_t = int_t^1 (h_w - g_ref) ds, so w >= 0 minimizes sum_t dt D_t^2 (non-negative
least squares, with mean weight exactly 1 so a constant f is reproduced) plus
``ridge`` * sum_l p_l w_l^2 / (4 N_rep), a bound on the weighted accuracy's
variance. The ADJUSTED ACCURACY IS DEFINED as the weighted accuracy, so the
per-image weights reproduce it exactly.

Why not w = E[g_ref(s) / g_rep(s) | k, n] (posterior expectation)? For one n
that weight is m_ref(k) / m_rep(k), the ratio of the fitted marginals of k,
and its weighted accuracy has expectation sum_k m_ref(k) E_rep[f(s) | k]:
exactly the naive plug-in's, with all of its bias (0.714 instead of 0.8 in the
Beta(8,2)/Beta(2,2), n = 10, f(s) = s example). The weights here make the
reweighted true-s distribution match g_ref, which the posterior expectation
does not.

Curves. f(s) per model is a non-decreasing step function on the cells, fitted
by non-negative least squares on its increments to the observed shares of
replication images that are at level l and correct, sum_j p_l p_pool(s_j | l)
f(s_j), with the constraint integral f g_ref = the adjusted accuracy (so the
curve, the weights and the adjusted accuracy agree exactly).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize

from replication.errors import FitError
from replication.priors import PriorBatch, SelectionFrequencyPrior, prior_family
from replication.priors._base import normalize_rows
from replication.sampling import EDGES
from replication.study import LevelTable

#: Recht et al.'s MatchedFrequency bins of k/n (a value on an edge goes up)
MATCHED_FREQUENCY_EDGES = EDGES
#: weight of the exact-constraint rows in the least-squares problems
_EXACT = 1e4


def cell_edges(n_cells: int) -> np.ndarray:
    """Evenly spaced cell edges on [0, 1], shape (n_cells + 1,)."""
    return np.linspace(0.0, 1.0, int(n_cells) + 1)


def fit_priors(n_selected: np.ndarray, n_annotators: np.ndarray, counts: np.ndarray, prior: str, *,
               selection_edges: tuple[float, ...] | None = None,
               random_state: int | np.random.Generator | None = 0,
               start: SelectionFrequencyPrior | None = None) -> PriorBatch:
    """Fit a registered prior family (:data:`replication.priors.PRIORS`) to
    every row of ``counts`` (B, L) at levels (n_selected, n_annotators) (L,),
    with :meth:`~replication.priors.SelectionFrequencyPrior.fit_batch`. Levels
    without images in any row are left out of the fit; ``selection_edges``
    fits the pool prior of images selected on k within those bins (see
    :class:`~replication.priors._base.Selection`); ``random_state`` drives
    the family's random starts; ``start`` (a fitted prior of the family)
    warm-starts the rows instead of a fit to their mean."""
    family = prior_family(prior)
    counts = np.atleast_2d(np.asarray(counts, float))
    used = counts.sum(axis=0) > 0
    return family.create(random_state).fit_batch(n_selected[used], n_annotators[used], counts[:, used],
                                                 selection_edges=selection_edges, start=start)


def balancing_weights(posterior: np.ndarray, share: np.ndarray, n_rep: float, g_ref: np.ndarray,
                      ridge: float) -> np.ndarray:
    """Per-level weights of one table (see the module docstring).

    Parameters
    ----------
    posterior : ndarray of shape (L, C)
        P(s in cell j | level l) for a replication image, under the pool prior.
    share : ndarray of shape (L,)
        Observed share of replication images at each level (sums to 1).
    n_rep : float
        Number of replication images.
    g_ref : ndarray of shape (C,)
        Cell masses of the fitted reference prior.
    ridge : float
        Weight of the variance bound against the squared-bias bound.

    Returns
    -------
    w : ndarray of shape (L,)
        Non-negative, sum(share * w) == 1; zero at levels without replication images.
    """
    obs = share > 0
    n_cells = len(g_ref)
    dt = 1.0 / n_cells
    tails = np.triu(np.ones((n_cells, n_cells)))[1:]                 # rows t = 1..C-1: cells j >= t
    design = np.sqrt(dt) * tails @ (share[obs, None] * posterior[obs]).T   # (C-1, L_obs)
    target = np.sqrt(dt) * tails @ g_ref
    rows = [design, _EXACT * share[obs][None, :], np.diag(np.sqrt(ridge * share[obs] / (4.0 * n_rep)))]
    rhs = [target, [_EXACT], np.zeros(obs.sum())]
    sol, _ = optimize.nnls(np.vstack(rows), np.concatenate(rhs), maxiter=50 * obs.sum() + 100)
    w = np.zeros(len(share))
    w[obs] = sol
    total = float(share @ w)
    if not np.isfinite(total) or total <= 0:
        raise FitError("the replication images cannot be reweighted toward the reference prior "
                       "(all balancing weights are zero)")
    return w / total


@dataclass(frozen=True)
class BatchAdjustment:
    """Adjusted accuracies and level weights for a flat batch of tables.

    accuracy : (B, M); level_weights : (B, L); g_ref, g_pool : (B, C) cell masses;
    posterior : (B, L, C), P(s in cell j | level l) for a replication image;
    ref_prior, pool_prior : priors fitted to the batch-mean counts.
    """

    accuracy: np.ndarray
    level_weights: np.ndarray
    g_ref: np.ndarray
    g_pool: np.ndarray
    posterior: np.ndarray
    ref_prior: SelectionFrequencyPrior
    pool_prior: SelectionFrequencyPrior


def adjust_levels(table: LevelTable, prior: str, *, n_cells: int = 100, ridge: float = 0.1,
                  selection_edges: tuple[float, ...] | None = MATCHED_FREQUENCY_EDGES,
                  pool_counts: np.ndarray | None = None,
                  random_state: int | np.random.Generator | None = 0,
                  warm_start: tuple[SelectionFrequencyPrior, SelectionFrequencyPrior] | None = None
                  ) -> BatchAdjustment:
    """Fit the priors and the balancing weights for every replicate of a
    (possibly batched) level table; batch axes are flattened to one of size B.

    ``pool_counts`` (L,): images of the replication set's candidate pool at
    each level of the table (a random sample of the pool, not selected on k);
    when given, the pool prior is fitted to them and ``selection_edges`` is
    not used. A batched table (bootstrap replicates) gets a bootstrap replicate
    of the pool per table replicate (multinomial over the pool's levels).
    ``random_state`` (a seed or the caller's Generator) drives those draws and
    the priors' random starts. ``warm_start``: the (reference, pool) priors of
    a fit to the data that the table's replicates resample (its
    ``ref_prior``, ``pool_prior``): every replicate's fit starts from them.
    """
    rng = np.random.default_rng(random_state)   # a Generator passes through unchanged
    k, n = table.k, table.n
    n_levels = len(n)
    ref_count = table.ref_count.reshape(-1, n_levels)
    rep_count = table.rep_count.reshape(-1, n_levels)
    rep_correct = table.rep_correct.reshape(-1, n_levels, len(table.models))
    edges = cell_edges(n_cells)
    ref_start, pool_start = (None, None) if warm_start is None else warm_start
    ref = fit_priors(k, n, ref_count, prior, random_state=rng, start=ref_start)
    if pool_counts is not None:
        pool_counts = np.asarray(pool_counts, float)
        if pool_counts.shape != (n_levels,):
            raise FitError(f"pool_counts has shape {pool_counts.shape}, the table {n_levels} levels")
        if table.batch_shape != ():
            total = pool_counts.sum()
            pool_counts = rng.multinomial(int(round(total)), pool_counts / total, size=len(rep_count)).astype(float)
        pool = fit_priors(k, n, pool_counts, prior, random_state=rng, start=pool_start)
    else:
        pool = fit_priors(k, n, rep_count, prior, selection_edges=selection_edges, random_state=rng,
                          start=pool_start)
    n_rep = rep_count.sum(axis=1)
    share = rep_count / n_rep[:, None]
    ref_mass, pool_mass = ref.cell_mass(edges), pool.cell_mass(edges)
    pool_posterior = normalize_rows(pool.level_cell_joint(k, n, edges))     # (the reference's is not needed)
    posterior = np.broadcast_to(pool_posterior, (len(n_rep),) + pool_posterior.shape[1:])
    g_ref = np.broadcast_to(ref_mass, (len(n_rep), n_cells))
    w = np.stack([balancing_weights(posterior[b], share[b], n_rep[b], g_ref[b], ridge)
                  for b in range(len(n_rep))])                       # a loop over replicates (tiny NNLS each)
    accuracy = np.einsum("bl,blm->bm", w, rep_correct) / n_rep[:, None]
    return BatchAdjustment(accuracy=accuracy, level_weights=w, g_ref=ref_mass, g_pool=pool_mass,
                           posterior=pool_posterior, ref_prior=ref.pooled, pool_prior=pool.pooled)


def fit_monotone_curves(posterior: np.ndarray, y: np.ndarray, share: np.ndarray, g_ref: np.ndarray,
                        target: np.ndarray, smooth: float = 1e-6) -> np.ndarray:
    """Non-decreasing step curves f (M, C) in [0, 1] per model.

    Parameters
    ----------
    posterior : ndarray of shape (L, C)
        P(s in cell j | level l) for a replication image.
    y : ndarray of shape (L, M)
        Observed share of replication images that are at level l and correct.
    share : ndarray of shape (L,)
        Observed share of replication images at level l (row weights 1/sqrt(share)).
    g_ref : ndarray of shape (C,)
    target : ndarray of shape (M,)
        Required value of sum_j f_j g_ref[j] (the adjusted accuracy).
    smooth : float
        Ridge on the increments (spreads them, making the steps gentler).
    """
    n_cells = posterior.shape[1]
    joint = share[:, None] * posterior
    lower = np.tril(np.ones((n_cells, n_cells)))                     # f = lower @ (a, d_1..d_{C-1})
    obs = share > 0
    scale = 1.0 / np.sqrt(share[obs])
    data = np.hstack([(joint[obs] @ lower) * scale[:, None], np.zeros((obs.sum(), 1))])
    eq_mean = np.concatenate([g_ref @ lower, [0.0]])[None, :]
    eq_top = np.concatenate([np.ones(n_cells), [1.0]])[None, :]     # f_C + slack = 1
    ridge = np.hstack([np.zeros((n_cells - 1, 1)), np.sqrt(smooth) * np.eye(n_cells - 1), np.zeros((n_cells - 1, 1))])
    design = np.vstack([data, _EXACT * eq_mean, _EXACT * eq_top, ridge])
    curves = np.empty((y.shape[1], n_cells))
    for m in range(y.shape[1]):                                       # a loop over models (tens)
        rhs = np.concatenate([y[obs, m] * scale, [_EXACT * target[m]], [_EXACT], np.zeros(n_cells - 1)])
        sol, _ = optimize.nnls(design, rhs, maxiter=20 * n_cells)
        f = lower @ sol[:-1]
        curves[m] = f + (target[m] - g_ref @ f)                      # exact: a constant shift keeps f monotone
    return curves


@dataclass(frozen=True)
class DeconvolutionResult:
    """One deconvolution fit of an unbatched level table.

    Attributes
    ----------
    prior : str
    models : tuple of str
    levels : ndarray of shape (L, 2)
    edges, midpoints : cell edges (C+1,) and midpoints (C,)
    ref_prior, pool_prior : fitted priors of the reference images and of the
        replication images' candidate pool
    g_ref, g_pool : ndarray of shape (C,)
        Their cell masses.
    g_rep : ndarray of shape (C,)
        Estimated true-s distribution of the replication images,
        sum_l p_l P(s in cell | l).
    posterior : ndarray of shape (L, C)
        P(s in cell j | level l) for a replication image.
    level_weights : ndarray of shape (L,)
        Importance weight of a replication image at each level (mean 1 over
        replication images).
    reference_accuracy, replication_accuracy, adjusted_accuracy : ndarray of shape (M,)
    curves : ndarray of shape (M, C)
        Non-decreasing f(s) per model on the cells; sum_j curves[m, j] g_ref[j]
        equals adjusted_accuracy[m].
    """

    prior: str
    models: tuple[str, ...]
    levels: np.ndarray
    edges: np.ndarray
    midpoints: np.ndarray
    ref_prior: SelectionFrequencyPrior
    pool_prior: SelectionFrequencyPrior
    g_ref: np.ndarray
    g_pool: np.ndarray
    g_rep: np.ndarray
    posterior: np.ndarray
    level_weights: np.ndarray
    reference_accuracy: np.ndarray
    replication_accuracy: np.ndarray
    adjusted_accuracy: np.ndarray
    curves: np.ndarray

    def curve(self, model: str) -> tuple[np.ndarray, np.ndarray]:
        """(midpoints, f) of one model's fitted accuracy curve."""
        return self.midpoints, self.curves[self.models.index(model)]


class Deconvolution:
    """Selection-frequency deconvolution of a replication study.

    Parameters
    ----------
    prior : str, default="betabinomial"
        A registered prior family (:data:`replication.priors.PRIORS`).
    n_cells : int, default=100
        Cells of [0, 1] on which priors, weights and curves are discretized.
    ridge : float, default=0.1
        Variance-vs-bias trade-off of the balancing weights (see module docs).
    selection_edges : tuple of float or None, default=(0.2, 0.4, 0.6, 0.8)
        Bins of k/n within which the replication images were drawn uniformly
        from their pool (MatchedFrequency); None: a random sample of the pool.
    random_state : int, Generator or None, default=0
        Drives the priors' random starts (the beta mixtures' EM restarts).

    Examples
    --------
    >>> res = Deconvolution("npmle").fit(study.levels())
    >>> res.adjusted_accuracy, res.curve("resnet50")
    """

    def __init__(self, prior: str = "betabinomial", *, n_cells: int = 100, ridge: float = 0.1,
                 selection_edges: tuple[float, ...] | None = MATCHED_FREQUENCY_EDGES,
                 random_state: int | np.random.Generator | None = 0):
        self.prior = prior
        self.n_cells = n_cells
        self.ridge = ridge
        self.selection_edges = selection_edges
        self.random_state = random_state

    def fit(self, table: LevelTable, pool_counts: np.ndarray | None = None) -> DeconvolutionResult:
        """Fit an unbatched :class:`~replication.study.LevelTable`; ``pool_counts``
        (L,) optionally gives the replication set's candidate pool per level."""
        if table.batch_shape != ():
            raise ValueError("Deconvolution.fit takes an unbatched LevelTable; use adjust_levels for batches")
        adj = adjust_levels(table, self.prior, n_cells=self.n_cells, ridge=self.ridge,
                            selection_edges=self.selection_edges, pool_counts=pool_counts,
                            random_state=self.random_state)
        edges = cell_edges(self.n_cells)
        n_rep = table.rep_count.sum()
        share = table.rep_count / n_rep
        posterior = adj.posterior[0]
        curves = fit_monotone_curves(posterior, table.rep_correct / n_rep, share, adj.g_ref[0], adj.accuracy[0])
        return DeconvolutionResult(
            prior=self.prior, models=tuple(table.models), levels=table.levels, edges=edges,
            midpoints=(edges[1:] + edges[:-1]) / 2, ref_prior=adj.ref_prior, pool_prior=adj.pool_prior,
            g_ref=adj.g_ref[0], g_pool=adj.g_pool[0], g_rep=share @ posterior, posterior=posterior,
            level_weights=adj.level_weights[0], reference_accuracy=table.reference_accuracy(),
            replication_accuracy=table.replication_accuracy(), adjusted_accuracy=adj.accuracy[0], curves=curves)
