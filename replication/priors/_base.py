"""Shared machinery of the selection-frequency priors.

A prior g is a distribution of the TRUE selection frequency s in [0, 1]; the
data are k-of-n counts, k | s ~ Binomial(n, s), with n allowed to vary per
image. Every prior exposes the same read-outs: its density or cell masses on a
grid, the fitted marginal P(k | n) (for goodness-of-fit checks), posteriors of
s given (k, n), and samples.

Fitting works on *levels*: the distinct (n, k) pairs with a (possibly
fractional) count of images at each, so fits on level tables and bootstrap
replicates cost O(levels), not O(images). Every method takes the counts in one
order: ``(n_selected, n_annotators[, counts])``.

A new family of priors subclasses :class:`SelectionFrequencyPrior` (``fit``
on levels, the read-outs below) and is registered with
:func:`replication.priors.register_prior`; :meth:`~SelectionFrequencyPrior.fit_batch`
(one fit per bootstrap replicate) and :meth:`~SelectionFrequencyPrior.goodness_of_fit`
come with the base class.
"""
from __future__ import annotations

import functools
import inspect
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable

import numpy as np
from numpy.typing import ArrayLike
from scipy import special
from threadpoolctl import threadpool_limits

from replication.errors import FitError
from replication.sampling import frequency_bin

#: fewest images a prior is fitted on
MIN_IMAGES = 10


def log_choose(n: ArrayLike, k: ArrayLike) -> np.ndarray:
    """log C(n, k) via log-gamma, broadcasting, as float64."""
    n, k = np.asarray(n, float), np.asarray(k, float)
    return special.gammaln(n + 1) - special.gammaln(k + 1) - special.gammaln(n - k + 1)


def log_binom_pmf(k: np.ndarray, n: np.ndarray, s: np.ndarray) -> np.ndarray:
    """log Binomial(k; n, s) (scipy's argument order), broadcasting; exact 0/1 limits at s = 0 and s = 1."""
    n, k, s = np.asarray(n, float), np.asarray(k, float), np.asarray(s, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = log_choose(n, k) + special.xlogy(k, s) + special.xlog1py(n - k, -s)
    return out


def one_blas_thread(fit: Callable) -> Callable:
    """Run an EM loop with BLAS on one thread. Its products are small (a batch
    of replicates times a grid of levels), so threads only add synchronization:
    on a loaded 2-core machine a batched NPMLE fit ran 20x slower with them."""
    @functools.wraps(fit)
    def wrapper(*args, **kwargs):
        with threadpool_limits(limits=1, user_api="blas"):
            return fit(*args, **kwargs)
    return wrapper


def normalize_rows(joint: np.ndarray) -> np.ndarray:
    """Divide each row (last axis) by its sum; rows summing to 0 stay 0."""
    total = joint.sum(axis=-1, keepdims=True)
    return joint / np.where(total > 0, total, 1.0)


@dataclass(frozen=True)
class Levels:
    """Distinct (n, k) levels with image counts: n, k of shape (L,), counts (..., L)."""

    n: np.ndarray
    k: np.ndarray
    counts: np.ndarray


def to_levels(n_selected: ArrayLike, n_annotators: ArrayLike, counts: ArrayLike | None = None) -> Levels:
    """Collapse per-image (or per-level, with ``counts``) data to distinct levels.

    ``counts`` may carry leading batch axes, shape (..., N); it weights each
    (k, n) pair (e.g. the number of images at a level, a bootstrap count).
    """
    k = np.asarray(n_selected).reshape(-1)
    n = np.asarray(n_annotators).reshape(-1)
    if k.shape != n.shape:
        raise FitError(f"n_selected has {k.size} entries but n_annotators has {n.size}")
    if k.size == 0:
        raise FitError("no images to fit a prior on")
    if not (np.all(np.isfinite(k)) and np.all(np.isfinite(n))):
        raise FitError("n_selected / n_annotators contain NaN or infinite values")
    if np.any(k != np.round(k)) or np.any(n != np.round(n)):
        raise FitError("n_selected / n_annotators must be integers")
    k, n = k.astype(np.int64), n.astype(np.int64)
    if np.any(n < 1) or np.any(k < 0) or np.any(k > n):
        bad = int(np.flatnonzero((n < 1) | (k < 0) | (k > n))[0])
        raise FitError(f"entry {bad}: need 0 <= n_selected <= n_annotators and n_annotators >= 1 "
                       f"(got k={k[bad]}, n={n[bad]})")
    c = np.ones(k.shape) if counts is None else np.asarray(counts, float)
    if c.shape[-1] != k.size:
        raise FitError(f"counts has {c.shape[-1]} entries per row but there are {k.size} levels")
    if np.any(~np.isfinite(c)) or np.any(c < 0):
        raise FitError("counts must be finite and non-negative")
    pairs, inv = np.unique(np.stack([n, k], axis=1), axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    onehot = np.zeros((k.size, len(pairs)))
    onehot[np.arange(k.size), inv] = 1.0
    return Levels(n=pairs[:, 0], k=pairs[:, 1], counts=c @ onehot)


@dataclass(frozen=True)
class Selection:
    """Selection on k within bins: images reached the dataset through a draw
    that depends on k only through its bin, uniformly inside a bin (Recht et
    al.'s MatchedFrequency: bins of k/n with edges 0.2/0.4/0.6/0.8, a value on
    an edge in the upper bin). Only the within-bin frequencies of k then carry
    information on the prior of the POOL the images were drawn from.

    group : ndarray of shape (L,), int
        Selection bin of each level, unique across numbers of annotators.
    n_group : ndarray of shape (L,), int
        Index of each level's number of annotators.
    """

    group: np.ndarray
    n_group: np.ndarray

    @cached_property
    def _bin_onehot(self) -> np.ndarray:
        """(L, G): 1 where level l lies in selection bin g (built once, used every EM step)."""
        g = np.zeros((len(self.group), self.group.max() + 1))
        g[np.arange(len(self.group)), self.group] = 1.0
        return g

    @cached_property
    def _bin_to_n(self) -> np.ndarray:
        """(G, N): 1 where bin g holds levels of the n_group-th number of annotators."""
        first = np.zeros(self.group.max() + 1, np.int64)
        first[self.group] = self.n_group
        to_n = np.zeros((len(first), first.max() + 1))
        to_n[np.arange(len(first)), first] = 1.0
        return to_n

    def within_bin_dof(self, counts: np.ndarray) -> int:
        """Degrees of freedom the within-bin frequencies of k leave: the sum of
        (levels - 1) over the bins where some batch row of ``counts`` (..., L)
        has images."""
        seen = np.atleast_2d(counts).sum(axis=0) > 0
        groups_seen = np.unique(self.group[seen])
        return int(np.sum(np.bincount(self.group)[groups_seen] - 1))

    def augment(self, counts: np.ndarray, marginal: np.ndarray) -> np.ndarray:
        """Complete-data counts of the truncated-data EM (Dempster, Laird & Rubin
        1977): each image observed in bin B stands for (1 - P_B) / P_B unseen
        draws from the other bins, spread by the fitted marginal.
        counts, marginal (P(k | n)): (..., L) -> (..., L)."""
        g = self._bin_onehot
        seen = counts @ g
        ratio = seen / np.maximum(marginal @ g, 1e-300)               # (..., G)
        per_n = ratio @ self._bin_to_n                                # (..., N)
        other = per_n[..., self.n_group] - ratio[..., self.group]
        return counts + marginal * other

    def loglik(self, counts: np.ndarray, marginal: np.ndarray) -> np.ndarray:
        """Conditional log-likelihood sum_l c_l log(P(k_l | n_l) / P(bin of l | n_l)), (...,)."""
        in_bin = (marginal @ self._bin_onehot)[..., self.group]
        return np.sum(counts * (np.log(np.maximum(marginal, 1e-300)) - np.log(np.maximum(in_bin, 1e-300))), axis=-1)


def complete_levels(lv: Levels, edges: tuple[float, ...]) -> tuple[Levels, Selection, np.ndarray]:
    """All levels k = 0..n for every n present (counts 0 where unseen), their
    selection bins, and the index of each original level in the completed set."""
    ns = np.unique(lv.n)
    n_full = np.concatenate([np.full(v + 1, v) for v in ns])
    k_full = np.concatenate([np.arange(v + 1) for v in ns])
    n_group = np.searchsorted(ns, n_full)
    bins = frequency_bin(k_full / n_full, tuple(edges))
    _, group = np.unique(np.stack([n_group, bins], axis=1), axis=0, return_inverse=True)
    offset = np.concatenate([[0], np.cumsum(ns + 1)[:-1]])
    index = offset[np.searchsorted(ns, lv.n)] + lv.k
    counts = np.zeros(lv.counts.shape[:-1] + (len(n_full),))
    counts[..., index] = lv.counts
    selection = Selection(group=group.reshape(-1), n_group=n_group)
    dof = selection.within_bin_dof(counts)
    if dof < 2:
        raise FitError(
            f"selection on k/n in bins with edges {tuple(edges)} leaves {dof} within-bin degree(s) of freedom "
            f"with n = {', '.join(map(str, ns))} annotators: the selected images carry no information on the "
            "distribution of the pool they were drawn from (give the pool's annotations, or no selection)")
    return Levels(n=n_full, k=k_full, counts=counts), selection, index


def check_identifiable(lv: Levels, what: str = "prior") -> None:
    """Raise FitError when a batch row has too few images or all its images
    sit at k = 0 (or all at k = n): such data pin s to an end of [0, 1] and
    no prior of s can be fitted (a degenerate prior)."""
    total = lv.counts.sum(axis=-1)
    if np.any(total < MIN_IMAGES):
        raise FitError(f"too few images to fit the {what}: {float(np.min(total)):g} "
                       f"(need at least {MIN_IMAGES})")
    used = lv.counts > 0
    at_zero = np.all(~used | (lv.k == 0), axis=-1)
    at_top = np.all(~used | (lv.k == lv.n), axis=-1)
    if np.any(at_zero):
        raise FitError(f"degenerate {what}: every image has n_selected = 0, so the selection "
                       "frequencies are all at 0 and their distribution cannot be fitted")
    if np.any(at_top):
        raise FitError(f"degenerate {what}: every image has n_selected = n_annotators, so the "
                       "selection frequencies are all at 1 and their distribution cannot be fitted")


@dataclass(frozen=True)
class GoodnessOfFit:
    """Pearson chi-square test of the fitted marginal of k against observed counts.

    Cells are the (n, k) levels, pooled within each group (each n, or under
    selection each n and selection bin) so that every pooled cell expects at
    least 5 images. ``dof`` = cells - groups - fitted parameters (at least 1).
    """

    statistic: float
    dof: int
    pvalue: float
    n_cells: int


@dataclass(frozen=True)
class PriorBatch:
    """Priors of one family fitted to every row of a batch of counts (B rows).

    pooled : the prior fitted to the row-mean counts (the fit itself when B = 1)
    cell_mass : edges (C + 1,) -> (B, C), each row's mass in each cell
    level_cell_joint : (n_selected, n_annotators (L,), edges) -> (B, L, C), each
        row's P(k_l | n_l, s in cell j) P(s in cell j)
    """

    pooled: "SelectionFrequencyPrior"
    cell_mass: Callable[[np.ndarray], np.ndarray]
    level_cell_joint: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]

    @classmethod
    def of(cls, rows: list["SelectionFrequencyPrior"], pooled: "SelectionFrequencyPrior | None" = None) -> "PriorBatch":
        """The batch of fitted priors ``rows`` (one per row); ``pooled`` defaults to the first."""
        return cls(rows[0] if pooled is None else pooled, lambda edges: np.stack([p.cell_mass(edges) for p in rows]),
                   lambda k, n, edges: np.stack([p.level_cell_joint(k, n, edges) for p in rows]))


class ConvergenceWarning(UserWarning):
    """An EM fit stopped at ``max_iter`` before it converged."""


class SelectionFrequencyPrior(ABC):
    """Base class: a fitted distribution of true selection frequency s.

    scikit-learn's estimator shape without importing scikit-learn (seconds at
    start-up): parameters stored by ``__init__`` under their own names,
    ``get_params``/``set_params`` (so ``sklearn.base.clone`` works), ``fit``
    returning ``self``, fitted attributes ending in ``_``.

    Subclasses implement ``_fit_levels``, ``cell_mass``, ``level_cell_joint``,
    ``_marginal``, ``posterior_mean``, ``sample`` and ``n_parameters_``, and may
    override :meth:`fit_batch` with a vectorized fit of many replicates.
    """

    #: whether the fitted distribution is a set of atoms (figures draw it summed into bins, not as a density)
    discrete: bool = False

    # -- fitting -----------------------------------------------------------
    def fit(self, n_selected: ArrayLike, n_annotators: ArrayLike, counts: ArrayLike | None = None, *,
            selection_edges: tuple[float, ...] | None = None) -> "SelectionFrequencyPrior":
        """Fit to k-of-n counts.

        Parameters
        ----------
        n_selected, n_annotators : array-like of int, shape (N,)
            Selections k and annotators n per image (or per level).
        counts : array-like of shape (N,), default=None
            Sample weights: number of images with that (k, n) (None: 1 each).
        selection_edges : tuple of float, default=None
            The images were selected from a pool on k/n within bins with these
            edges (see :class:`Selection`); the prior fitted is then the POOL's,
            by truncated-data EM on the within-bin frequencies. None: the images
            are a random sample of their pool.

        Returns
        -------
        self
        """
        lv = to_levels(n_selected, n_annotators, counts)
        if lv.counts.ndim != 1:
            raise FitError("counts must be one-dimensional for fit()")
        check_identifiable(lv, type(self).__name__)
        selection = None
        if selection_edges is not None:
            lv, selection, _ = complete_levels(lv, selection_edges)
        self._fit_levels(lv, selection)
        self.n_images_ = float(lv.counts.sum())
        marginal = self._marginal(lv.k, lv.n)
        if selection is None:
            self.loglik_ = float(np.sum(lv.counts * np.log(np.maximum(marginal, 1e-300))))
        else:
            self.loglik_ = float(selection.loglik(lv.counts, marginal))
        return self

    @abstractmethod
    def _fit_levels(self, lv: Levels, selection: Selection | None) -> None:
        """Set the fitted attributes from one level table (1-D counts)."""

    def fit_batch(self, n_selected: ArrayLike, n_annotators: ArrayLike, counts: ArrayLike, *,
                  selection_edges: tuple[float, ...] | None = None,
                  start: "SelectionFrequencyPrior | None" = None) -> PriorBatch:
        """Fit this prior's family to every row of ``counts`` (B, N) at the
        levels ``n_selected``, ``n_annotators`` (N,) (bootstrap replicates).

        The pooled fit is ``start`` when given (a fitted prior of this family,
        e.g. the fit to the data the rows resample), else a fit with this
        prior's parameters (an unfitted copy; ``self`` is not changed) to the
        row-mean counts. This default fits every row on its own; families
        override it with a vectorized fit warm-started from the pooled one.
        """
        counts = np.atleast_2d(np.asarray(counts, float))
        pooled = self._pooled(n_selected, n_annotators, counts, selection_edges, start)
        rows = [pooled] if counts.shape[0] == 1 and start is None else [
            self.unfitted().fit(n_selected, n_annotators, row, selection_edges=selection_edges) for row in counts]
        return PriorBatch.of(rows, pooled)

    def _pooled(self, n_selected: ArrayLike, n_annotators: ArrayLike, counts: np.ndarray,
                selection_edges: tuple[float, ...] | None,
                start: "SelectionFrequencyPrior | None") -> "SelectionFrequencyPrior":
        """``start``, or an unfitted copy of this prior fitted to the row-mean of ``counts`` (B, N)."""
        if start is not None:
            return start
        return self.unfitted().fit(n_selected, n_annotators, np.atleast_2d(counts).mean(axis=0),
                                   selection_edges=selection_edges)

    def unfitted(self) -> "SelectionFrequencyPrior":
        """An unfitted prior with the same parameters; a ``random_state``
        Generator is shared, not copied, so every fit draws from the one stream."""
        return type(self)(**self.get_params())

    @classmethod
    def _get_param_names(cls) -> list[str]:
        """The parameters of ``__init__`` (scikit-learn's convention: each stored under its own name)."""
        params = inspect.signature(cls.__init__).parameters.values()
        return sorted(p.name for p in params if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor parameters (``deep`` is accepted for scikit-learn's ``clone``)."""
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params: Any) -> "SelectionFrequencyPrior":
        """Set constructor parameters; returns ``self``."""
        unknown = set(params) - set(self._get_param_names())
        if unknown:
            raise ValueError(f"invalid parameter(s) {', '.join(sorted(unknown))} for {type(self).__name__}")
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()}
        shown = [f"{k}={v!r}" for k, v in self.get_params().items() if not (v is defaults.get(k) or
                                                                            (np.isscalar(v) and v == defaults.get(k)))]
        return f"{type(self).__name__}({', '.join(shown)})"

    # -- read-outs ----------------------------------------------------------
    @abstractmethod
    def cell_mass(self, edges: np.ndarray) -> np.ndarray:
        """Prior probability of each cell [edges[j], edges[j+1]], shape (C,)."""

    @abstractmethod
    def level_cell_joint(self, n_selected: np.ndarray, n_annotators: np.ndarray, edges: np.ndarray) -> np.ndarray:
        """P(k_l | n_l, s in cell j) P(s in cell j) for levels (L,), shape (L, C)."""

    @abstractmethod
    def _marginal(self, n_selected: np.ndarray, n_annotators: np.ndarray) -> np.ndarray:
        """P(k | n) under the prior, elementwise."""

    @abstractmethod
    def posterior_mean(self, n_selected: ArrayLike, n_annotators: ArrayLike) -> np.ndarray:
        """E[s | k, n] for each entry.

        Parameters
        ----------
        n_selected, n_annotators : array-like of int, shape (N,)
            Selections k and annotators n per image.

        Returns
        -------
        ndarray of shape (N,)
            Posterior mean of the true selection frequency, in [0, 1].
        """

    @abstractmethod
    def sample(self, size: int, rng: np.random.Generator) -> np.ndarray:
        """Draw ``size`` true selection frequencies from the prior, shape (size,)."""

    def pdf(self, s: ArrayLike) -> np.ndarray:
        """Density of the prior at ``s`` (array-like in [0, 1]), same shape as ``s``.

        The default spreads each cell's mass evenly over a grid of 200 cells
        (a histogram density); continuous priors override it with the exact pdf.
        """
        edges = np.linspace(0.0, 1.0, 201)
        dens = self.cell_mass(edges) / np.diff(edges)
        idx = np.clip(np.searchsorted(edges, np.asarray(s, float), side="right") - 1, 0, 199)
        return dens[idx]

    def marginal(self, n_selected: ArrayLike, n_annotators: ArrayLike) -> np.ndarray:
        """Fitted P(k | n) for each (k, n) entry.

        Parameters
        ----------
        n_selected, n_annotators : array-like of int, shape (N,)
            Selections k and annotators n.

        Returns
        -------
        ndarray of shape (N,)
            Probabilities in [0, 1].
        """
        return self._marginal(np.asarray(n_selected), np.asarray(n_annotators))

    def marginal_k(self, n: int) -> np.ndarray:
        """Fitted distribution of k for an image with ``n`` annotators, shape (n + 1,)."""
        k = np.arange(int(n) + 1)
        return self._marginal(k, np.full_like(k, int(n)))

    def loglik(self, n_selected: ArrayLike, n_annotators: ArrayLike, counts: ArrayLike | None = None) -> float:
        """Log-likelihood sum_i counts_i log P(k_i | n_i) of data under the fitted prior.

        Parameters
        ----------
        n_selected, n_annotators : array-like of int, shape (N,)
            Selections k and annotators n per image (or per level).
        counts : array-like of shape (N,), default=None
            Images at each entry (None: 1 each).

        Returns
        -------
        float
            Natural-log likelihood (unconditional: no selection correction).
        """
        lv = to_levels(n_selected, n_annotators, counts)
        return float(np.sum(lv.counts * np.log(np.maximum(self._marginal(lv.k, lv.n), 1e-300))))

    def posterior(self, n_selected: ArrayLike, n_annotators: ArrayLike,
                  edges: ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Posterior of s on a grid of cells.

        Parameters
        ----------
        n_selected, n_annotators : array-like of int, shape (N,)
            Selections k and annotators n per image.
        edges : array-like of shape (C + 1,), default=None
            Cell edges in [0, 1] (None: 200 equal cells).

        Returns
        -------
        midpoints : ndarray of shape (C,)
        probs : ndarray of shape (N, C)
            P(s in cell c | k_i, n_i); rows sum to 1.
        """
        edges = np.linspace(0.0, 1.0, 201) if edges is None else np.asarray(edges, float)
        k = np.asarray(n_selected).reshape(-1)
        n = np.asarray(n_annotators).reshape(-1)
        return (edges[1:] + edges[:-1]) / 2, normalize_rows(self.level_cell_joint(k, n, edges))

    def bic(self, n_selected: ArrayLike, n_annotators: ArrayLike, counts: ArrayLike | None = None) -> float:
        """Bayesian information criterion -2 loglik + p log N (lower is better)."""
        lv = to_levels(n_selected, n_annotators, counts)
        return -2.0 * self.loglik(lv.k, lv.n, lv.counts) + self.n_parameters_ * np.log(lv.counts.sum())

    def expected_counts(self, n_selected: ArrayLike, n_annotators: ArrayLike, counts: ArrayLike | None = None,
                        selection_edges: tuple[float, ...] | None = None) -> dict[str, np.ndarray]:
        """Observed and expected image counts at every level k = 0..n of each n
        present, and each level's group: its n, or (with ``selection_edges``)
        its n and selection bin.

        Without selection, each n's images spread by the marginal P(k | n).
        With selection (images drawn from this prior's pool uniformly within
        bins of k/n, see :class:`Selection`), each bin keeps its observed number
        of images (the draw fixed it), spread within the bin by the marginal.

        Returns arrays of shape (L_full,): ``n_selected``, ``n_annotators``,
        ``observed``, ``expected``, ``group``.
        """
        lv = to_levels(n_selected, n_annotators, counts)
        out = {key: [] for key in ("n_selected", "n_annotators", "observed", "expected", "group")}
        for i, v in enumerate(np.unique(lv.n)):
            kk = np.arange(v + 1)
            obs = np.zeros(v + 1)
            at = lv.n == v
            np.add.at(obs, lv.k[at], lv.counts[at])
            m = self.marginal_k(v)
            bins = np.zeros(v + 1, int) if selection_edges is None else frequency_bin(kk / v, tuple(selection_edges))
            in_bin = np.bincount(bins, weights=m)[bins]
            seen = np.bincount(bins, weights=obs)[bins]
            out["n_selected"].append(kk)
            out["n_annotators"].append(np.full(v + 1, v))
            out["observed"].append(obs)
            out["expected"].append(seen * m / np.maximum(in_bin, 1e-300))
            out["group"].append(i * (len(selection_edges or ()) + 1) + bins)
        return {key: np.concatenate(val) for key, val in out.items()}

    def goodness_of_fit(self, n_selected: ArrayLike, n_annotators: ArrayLike, counts: ArrayLike | None = None,
                        min_expected: float = 5.0, *,
                        selection_edges: tuple[float, ...] | None = None) -> GoodnessOfFit:
        """Pearson chi-square test of the observed counts against
        :meth:`expected_counts` (see :class:`GoodnessOfFit`).

        Parameters
        ----------
        n_selected, n_annotators : array-like of int, shape (N,)
            Selections k and annotators n per image (or per level).
        counts : array-like of shape (N,), default=None
            Images at each entry (None: 1 each).
        min_expected : float, default=5.0
            Adjacent k cells within each group are pooled until each expects at
            least this many images.
        selection_edges : tuple of float, default=None
            The images were selected from this prior's pool within bins of k/n
            with these edges (test the selection model the deconvolution fits).

        Returns
        -------
        GoodnessOfFit
        """
        e = self.expected_counts(n_selected, n_annotators, counts, selection_edges)
        stat, cells, groups = 0.0, 0, 0
        for g in np.unique(e["group"]):
            at = e["group"] == g
            if e["observed"][at].sum() == 0:
                continue
            obs, exp = _pool_cells(e["observed"][at], e["expected"][at], min_expected)
            stat += float(np.sum((obs - exp) ** 2 / exp))
            cells += len(obs)
            groups += 1
        dof = max(1, cells - groups - int(self.n_parameters_))
        return GoodnessOfFit(statistic=stat, dof=dof, pvalue=float(special.chdtrc(dof, stat)), n_cells=cells)


def _pool_cells(obs: np.ndarray, exp: np.ndarray, min_expected: float) -> tuple[np.ndarray, np.ndarray]:
    """Merge adjacent cells (left to right) until each expects >= min_expected."""
    out_o, out_e, acc_o, acc_e = [], [], 0.0, 0.0
    for o, e in zip(obs, exp):
        acc_o += o
        acc_e += e
        if acc_e >= min_expected:
            out_o.append(acc_o)
            out_e.append(acc_e)
            acc_o = acc_e = 0.0
    if acc_e > 0 or acc_o > 0:
        if out_e:
            out_o[-1] += acc_o
            out_e[-1] += acc_e
        else:
            out_o.append(acc_o)
            out_e.append(acc_e)
    return np.asarray(out_o), np.maximum(np.asarray(out_e), 1e-300)
