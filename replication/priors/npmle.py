"""Kiefer-Wolfowitz nonparametric maximum-likelihood prior (NPMLE).

The NPMLE maximizes sum_i log integral Binomial(k_i; n_i, s) dG(s) over ALL
distributions G on [0, 1]; it assumes no shape. We solve it on a fine grid of
atoms by EM accelerated with SQUAREM (Varadhan & Roland 2008), started from
the uniform grid. It stops when the dual certificate max_s D(s) <= 1 + 1e-6,
with D(s) = sum_i Binomial(k_i; n_i, s) / (N P(k_i | n_i)) (D <= 1 everywhere,
with equality on the support, characterizes the optimum), or when the mean
log-likelihood per image rises by less than ``tol`` in an iteration.

When the observed k-frequencies lie inside the binomial moment space the
optimum is a whole set of priors (all matching the observed frequencies); EM
from the uniform grid then returns a spread-out member of that set rather
than a sparse vertex, which keeps the deconvolution stable across bootstrap
replicates. Single fits and bootstrap fits use the same routine.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import partial

import numpy as np
from numpy.typing import ArrayLike

from replication.priors._base import (ConvergenceWarning, Levels, PriorBatch, Selection, SelectionFrequencyPrior,
                                      check_identifiable, complete_levels, log_binom_pmf, one_blas_thread, to_levels)
from replication.priors.registry import register_prior


@dataclass(frozen=True)
class NPMLEParams:
    """Batched grid NPMLE: weights (B, G) on grid (G,), loglik and converged (B,)."""

    grid: np.ndarray
    weights: np.ndarray
    loglik: np.ndarray
    converged: np.ndarray
    n_iter: int


@one_blas_thread
def fit_npmle_levels(lv: Levels, grid: np.ndarray, weights0: np.ndarray | None = None, *,
                     max_iter: int = 2000, tol: float = 1e-6, selection: Selection | None = None) -> NPMLEParams:
    """SQUAREM-accelerated EM for the grid NPMLE, batched over rows of ``lv.counts`` (B, L).

    Parameters
    ----------
    grid : ndarray of shape (G,)
        Candidate atoms in [0, 1].
    weights0 : ndarray of shape (G,) or (B, G), optional
        Starting weights (default uniform); zeros stay zero under EM, so keep them positive.
    tol : float
        Stop a row when its mean log-likelihood per image rises by less than
        tol in an iteration, or (without selection) when its dual gap
        max_s D(s) - 1 < 1e-6.
    selection : Selection, optional
        Fit the pool prior of images selected on k within bins (truncated-data
        EM; ``lv`` must then hold every k = 0..n, see ``complete_levels``).
    """
    counts = np.atleast_2d(np.asarray(lv.counts, float))
    bsz = counts.shape[0]
    lik = np.exp(log_binom_pmf(lv.k[:, None], lv.n[:, None], grid[None, :]))   # (L, G)
    total = counts.sum(axis=1, keepdims=True)
    w = np.full((bsz, len(grid)), 1.0 / len(grid)) if weights0 is None else \
        np.broadcast_to(np.asarray(weights0, float), (bsz, len(grid))).copy()
    w = np.maximum(w, 1e-12)
    w /= w.sum(axis=1, keepdims=True)

    def em(x):
        m = np.maximum(x @ lik.T, 1e-300)
        full = counts if selection is None else selection.augment(counts, m)
        return x * ((full / m) @ lik) / full.sum(axis=1, keepdims=True)

    def loglik(x):
        m = np.maximum(x @ lik.T, 1e-300)
        return np.sum(counts * np.log(m), axis=1) if selection is None else selection.loglik(counts, m)

    def gap(x):
        if selection is not None:
            return np.full(bsz, np.inf)
        m = np.maximum(x @ lik.T, 1e-300)
        return ((counts / m) @ lik / total).max(axis=1) - 1.0

    converged = np.zeros(bsz, bool)
    ll = loglik(w)
    it = 0
    for it in range(1, max_iter + 1):
        if converged.all():
            break
        w1 = em(w)
        w2 = em(w1)
        r, v = w1 - w, w2 - 2 * w1 + w
        alpha = -np.sqrt(np.sum(r * r, axis=1)) / np.maximum(np.sqrt(np.sum(v * v, axis=1)), 1e-300)
        alpha = np.clip(alpha, -100.0, -1.0)[:, None]
        wa = np.maximum(w - 2 * alpha * r + alpha * alpha * v, 0.0)
        wa = em(wa / np.maximum(wa.sum(axis=1, keepdims=True), 1e-300))
        ll_a, ll_2 = loglik(wa), loglik(w2)
        better = ll_a >= ll_2
        w = np.where(converged[:, None], w, np.where(better[:, None], wa, w2))
        ll_new = np.where(converged, ll, np.where(better, ll_a, ll_2))  # loglik(w), row by row
        converged |= ((ll_new - ll) < tol * total[:, 0]) | (gap(w) < 1e-6)
        ll = ll_new
    return NPMLEParams(grid=grid, weights=w, loglik=loglik(w), converged=converged, n_iter=it)


def atoms_to_cells(atoms: np.ndarray, weights: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Sum atom weights (..., A) at ``atoms`` (A,) into cells: (..., C)."""
    cell = np.clip(np.searchsorted(edges, atoms, side="right") - 1, 0, len(edges) - 2)
    onehot = np.zeros((len(atoms), len(edges) - 1))
    onehot[np.arange(len(atoms)), cell] = 1.0
    return weights @ onehot


def atoms_level_cell_joint(atoms: np.ndarray, weights: np.ndarray, n_selected: np.ndarray, n_annotators: np.ndarray,
                           edges: np.ndarray) -> np.ndarray:
    """P(k_l | n_l, s in cell j) P(s in cell j) for discrete priors: atoms (A,),
    weights (..., A), levels (L,) -> (..., L, C)."""
    lik = np.exp(log_binom_pmf(np.asarray(n_selected)[:, None], np.asarray(n_annotators)[:, None],
                               atoms[None, :]))  # (L, A)
    return np.stack([atoms_to_cells(atoms, weights * lik[l], edges) for l in range(len(lik))], axis=-2)


@register_prior("npmle", label="NPMLE", grid_size=201, tol=1e-9)   # a 201-point grid: 0.005 apart
class NPMLEPrior(SelectionFrequencyPrior):
    """Kiefer-Wolfowitz NPMLE of the selection-frequency distribution.

    Parameters
    ----------
    grid_size : int, default=1001
        Atoms of the grid, evenly spaced on [0, 1] (ends included).
    max_iter : int, default=5000
        SQUAREM iterations.
    tol : float, default=1e-10
        Stop when the mean log-likelihood per image rises by less than this.

    Attributes
    ----------
    atoms_ : ndarray of shape (A,)
        Grid points that carry mass (> 1e-12 of the largest), increasing.
    weights_ : ndarray of shape (A,)
        Their probabilities.
    loglik_ : float
    converged_ : bool
    n_iter_ : int
    """

    discrete = True

    def __init__(self, grid_size: int = 1001, *, max_iter: int = 5000, tol: float = 1e-10):
        self.grid_size = grid_size
        self.max_iter = max_iter
        self.tol = tol

    @property
    def n_parameters_(self) -> int:
        """2 * (separate clusters of mass) - 1: a location and a weight per
        cluster, where a cluster is a run of grid points each holding > 1e-6."""
        heavy = self.weights_ > 1e-6
        step = 1.0 / (int(self.grid_size) - 1)
        starts = np.sum(heavy & ~np.concatenate([[False], heavy[:-1] & (np.diff(self.atoms_) < 1.5 * step)]))
        return max(1, 2 * int(starts) - 1)

    def _fit_levels(self, lv: Levels, selection: Selection | None) -> None:
        grid = np.linspace(0.0, 1.0, int(self.grid_size))
        fit = fit_npmle_levels(lv, grid, max_iter=self.max_iter, tol=self.tol, selection=selection)
        w = fit.weights[0]
        keep = w > 1e-12 * w.max()
        self.atoms_, self.weights_ = grid[keep], w[keep] / w[keep].sum()
        self.converged_ = bool(fit.converged[0])
        self.n_iter_ = int(fit.n_iter)
        if not self.converged_:
            warnings.warn(f"NPMLEPrior: EM did not converge in {self.max_iter} iterations",
                          ConvergenceWarning, stacklevel=3)

    def cell_mass(self, edges: ArrayLike) -> np.ndarray:
        """Summed atom weights in each cell [edges[j], edges[j+1]], shape (C,)."""
        return atoms_to_cells(self.atoms_, self.weights_, np.asarray(edges, float))

    def level_cell_joint(self, n_selected: np.ndarray, n_annotators: np.ndarray, edges: ArrayLike) -> np.ndarray:
        """P(k_l | n_l, s in cell j) P(s in cell j) for levels (L,), shape (L, C)."""
        return atoms_level_cell_joint(self.atoms_, self.weights_, n_selected, n_annotators, np.asarray(edges, float))

    def _lik(self, k, n) -> np.ndarray:
        return np.exp(log_binom_pmf(np.asarray(k)[..., None], np.asarray(n)[..., None], self.atoms_))

    def _marginal(self, n_selected, n_annotators) -> np.ndarray:
        return self._lik(n_selected, n_annotators) @ self.weights_

    def posterior_mean(self, n_selected: ArrayLike, n_annotators: ArrayLike) -> np.ndarray:
        """E[s | k, n] over the atoms, same shape as ``n_selected``."""
        joint = self._lik(n_selected, n_annotators) * self.weights_
        return (joint @ self.atoms_) / joint.sum(axis=-1)

    def fit_batch(self, n_selected: ArrayLike, n_annotators: ArrayLike, counts: ArrayLike, *,
                  selection_edges: tuple[float, ...] | None = None, start: "NPMLEPrior | None" = None,
                  batch_max_iter: int = 100, batch_tol: float = 1e-7) -> PriorBatch:
        """Fit every row of ``counts`` (B, N) on this prior's grid in one
        vectorized EM, warm-started from ``start`` or from the fit to the
        row-mean counts, mixed with 10% uniform so that no atom is lost."""
        lv = to_levels(n_selected, n_annotators, np.atleast_2d(np.asarray(counts, float)))
        check_identifiable(lv, "NPMLE prior")
        pooled = self._pooled(lv.k, lv.n, lv.counts, selection_edges, start)
        if lv.counts.shape[0] == 1 and start is None:
            return PriorBatch.of([pooled])
        grid = np.linspace(0.0, 1.0, int(self.grid_size))
        start = np.zeros(len(grid))
        start[np.round(pooled.atoms_ * (len(grid) - 1)).astype(int)] = pooled.weights_
        selection = None
        if selection_edges is not None:
            lv, selection, _ = complete_levels(lv, selection_edges)
        fit = fit_npmle_levels(lv, grid, 0.9 * start + 0.1 / len(grid), max_iter=batch_max_iter, tol=batch_tol,
                               selection=selection)
        return PriorBatch(pooled, partial(atoms_to_cells, grid, fit.weights),
                          partial(atoms_level_cell_joint, grid, fit.weights))

    def sample(self, size: int, rng: np.random.Generator) -> np.ndarray:
        """Draw ``size`` atoms by weight, shape (size,)."""
        return rng.choice(self.atoms_, size=size, p=self.weights_)


__all__ = ["NPMLEPrior", "NPMLEParams", "fit_npmle_levels", "atoms_to_cells", "atoms_level_cell_joint"]
