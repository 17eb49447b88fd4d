"""Mixture-of-betas prior fitted by EM on the beta-binomial likelihood.

With s ~ sum_c pi_c Beta(a_c, b_c) and k | s ~ Binomial(n, s), each image's k
is a mixture of beta-binomials. EM alternates responsibilities (E-step) with a
damped Newton step on (log a_c, log b_c) per component (a generalized M-step,
with backtracking so the expected log-likelihood never falls). All fits are
vectorized over a leading batch axis (restarts, bootstrap replicates) and
accelerated with SQUAREM.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import partial

import numpy as np
from numpy.typing import ArrayLike
from scipy import special

from replication.errors import FitError
from replication.priors._base import (ConvergenceWarning, Levels, PriorBatch, Selection, SelectionFrequencyPrior,
                                      check_identifiable, complete_levels, log_choose, one_blas_thread, to_levels)
from replication.priors.registry import register_prior

_LOG_MIN, _LOG_MAX = np.log(1e-3), np.log(1e5)


@dataclass(frozen=True)
class BetaMixtureParams:
    """Batched mixture parameters: weights, alpha, beta of shape (B, K);
    loglik and converged of shape (B,); n_iter: EM iterations run."""

    weights: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    loglik: np.ndarray
    converged: np.ndarray
    n_iter: int


def _logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
    """log(sum(exp(x))) along ``axis`` for finite ``x`` (scipy's version checks
    and converts far more, which costs more than the sum in the EM loop)."""
    top = x.max(axis=axis, keepdims=True)
    return np.log(np.exp(x - top).sum(axis=axis)) + np.squeeze(top, axis=axis)


def _cumulative(terms: np.ndarray) -> np.ndarray:
    """S[..., j] = sum_{i < j} terms[..., i] for j = 0..m: terms (..., m) -> (..., m + 1)."""
    out = np.zeros(terms.shape[:-1] + (terms.shape[-1] + 1,))
    np.cumsum(terms, axis=-1, out=out[..., 1:])
    return out


def _rising(x: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative sums sum_{i < j} f(x + i) for j = 0..m, for f = log, 1/t and
    1/t^2, each of shape (..., m + 1).

    With log these are log rising factorials, log Gamma(x + j) - log Gamma(x);
    with 1/t and 1/t^2 the matching differences of digamma and (minus) trigamma.
    Exact for the integer counts of annotation data, and much cheaper than
    calling the special functions at every level.
    """
    t = x[..., None] + np.arange(m)
    inv = 1.0 / t
    return _cumulative(np.log(t)), _cumulative(inv), _cumulative(inv * inv)


def _log_rising(x: np.ndarray, m: int) -> np.ndarray:
    """The log rising factorials of :func:`_rising` alone, shape (..., m + 1)."""
    return _cumulative(np.log(x[..., None] + np.arange(m)))


def _log_bb(n, k, a, b, lbinom):
    """log beta-binomial pmf: a, b (B, K); integer n, k and lbinom (L,) -> (B, K, L)."""
    ra, rb, rab = _log_rising(np.stack([a, b, a + b]), int(n.max()))
    return lbinom + ra[..., k] + rb[..., n - k] - rab[..., n]


def _q_value(u, n, k, a, b, lbinom):
    """Expected complete log-likelihood per component: u (B, K, L) -> (B, K)."""
    return np.sum(u * _log_bb(n, k, a, b, lbinom), axis=-1)


def _newton_step(u, n, k, la, lb, lbinom):
    """One damped Newton ascent step on (log a, log b) for each (B, K), with backtracking."""
    a, b = np.exp(la), np.exp(lb)
    (log_a, log_b, log_ab), (ra, rb, rab), (sa, sb, sab) = _rising(np.stack([a, b, a + b]), int(n.max()))
    r_ab, s_ab = rab[..., n], sab[..., n]
    ga = np.sum(u * (ra[..., k] - r_ab), axis=-1)
    gb = np.sum(u * (rb[..., n - k] - r_ab), axis=-1)
    haa = np.sum(u * (s_ab - sa[..., k]), axis=-1)
    hbb = np.sum(u * (s_ab - sb[..., n - k]), axis=-1)
    hab = np.sum(u * s_ab, axis=-1)
    gx, gy = a * ga, b * gb
    hxx, hyy, hxy = a * a * haa + a * ga, b * b * hbb + b * gb, a * b * hab
    det = hxx * hyy - hxy * hxy
    concave = (hxx < 0) & (det > 0)
    safe_det = np.where(concave, det, 1.0)
    dx_n = -(hyy * gx - hxy * gy) / safe_det
    dy_n = -(hxx * gy - hxy * gx) / safe_det
    scale = np.maximum(np.maximum(np.abs(hxx), np.abs(hyy)), 1e-12)
    dx = np.where(concave, dx_n, gx / scale)
    dy = np.where(concave, dy_n, gy / scale)
    size = np.maximum(np.hypot(dx, dy), 1e-300)
    shrink = np.minimum(1.0, 2.0 / size)
    dx, dy = dx * shrink, dy * shrink
    base = np.sum(u * (lbinom + log_a[..., k] + log_b[..., n - k] - log_ab[..., n]), axis=-1)   # _q_value at (a, b)
    new_la, new_lb = la.copy(), lb.copy()
    pending = np.ones(la.shape, bool)
    t = 1.0
    for _ in range(12):
        cand_a = np.clip(la + t * dx, _LOG_MIN, _LOG_MAX)
        cand_b = np.clip(lb + t * dy, _LOG_MIN, _LOG_MAX)
        val = _q_value(u, n, k, np.exp(cand_a), np.exp(cand_b), lbinom)
        ok = pending & (val >= base)
        new_la = np.where(ok, cand_a, new_la)
        new_lb = np.where(ok, cand_b, new_lb)
        pending &= ~ok
        if not pending.any():
            break
        t *= 0.5
    return new_la, new_lb


@one_blas_thread
def fit_beta_mixture_levels(lv: Levels, weights0: np.ndarray, alpha0: np.ndarray, beta0: np.ndarray, *,
                            max_iter: int = 500, tol: float = 1e-7,
                            selection: Selection | None = None) -> BetaMixtureParams:
    """EM for a K-component beta mixture on level counts, batched.

    Parameters
    ----------
    lv : Levels
        Levels (L,) with counts of shape (B, L) (or (L,), taken as B = 1).
    weights0, alpha0, beta0 : ndarray of shape (B, K) or (K,)
        Starting values (broadcast over the batch).
    max_iter : int
    tol : float
        Stop when the mean log-likelihood per image changes by less than tol.
    selection : Selection, optional
        Fit the pool prior of images selected on k within bins (truncated-data
        EM; ``lv`` must then hold every k = 0..n, see ``complete_levels``).
    """
    counts = np.atleast_2d(lv.counts)
    bsz = counts.shape[0]
    n, k = lv.n.astype(np.int64), lv.k.astype(np.int64)
    lbinom = log_choose(n, k)
    w = np.broadcast_to(np.asarray(weights0, float), (bsz, np.shape(weights0)[-1])).copy()
    w = np.maximum(w, 1e-12) / np.maximum(w, 1e-12).sum(axis=1, keepdims=True)
    la = np.clip(np.log(np.broadcast_to(np.asarray(alpha0, float), w.shape)), _LOG_MIN, _LOG_MAX)
    lb = np.clip(np.log(np.broadcast_to(np.asarray(beta0, float), w.shape)), _LOG_MIN, _LOG_MAX)
    total = counts.sum(axis=1)

    def loglik(theta):
        w_, la_, lb_ = theta
        logp = np.log(np.maximum(w_, 1e-300))[..., None] + _log_bb(n, k, np.exp(la_), np.exp(lb_), lbinom)
        lse = _logsumexp(logp, axis=1)                               # (B, L)
        if selection is None:
            return np.sum(counts * lse, axis=1), logp, lse
        return selection.loglik(counts, np.exp(lse)), logp, lse

    def em(theta):
        _, logp, lse = loglik(theta)
        full = counts if selection is None else selection.augment(counts, np.exp(lse))
        u = np.exp(logp - lse[:, None, :]) * full[:, None, :]        # (B, K, L)
        w_ = np.maximum(u.sum(axis=2) / full.sum(axis=1)[:, None], 1e-12)
        return (w_ / w_.sum(axis=1, keepdims=True),) + _newton_step(u, n, k, theta[1], theta[2], lbinom)

    theta = (w, la, lb)
    ll = loglik(theta)[0]
    converged = np.zeros(bsz, bool)
    it = 0
    for it in range(1, max_iter + 1):
        # SQUAREM (Varadhan & Roland 2008) on (w, log a, log b), falling back to two plain EM steps
        t1 = em(theta)
        t2 = em(t1)
        r = [x1 - x0 for x0, x1 in zip(theta, t1)]
        v = [x2 - 2 * x1 + x0 for x0, x1, x2 in zip(theta, t1, t2)]
        rn = np.sqrt(sum(np.sum(x * x, axis=1) for x in r))
        vn = np.sqrt(sum(np.sum(x * x, axis=1) for x in v))
        alpha = np.clip(-rn / np.maximum(vn, 1e-300), -100.0, -1.0)[:, None]
        wa = np.maximum(theta[0] - 2 * alpha * r[0] + alpha * alpha * v[0], 1e-12)
        ta = (wa / wa.sum(axis=1, keepdims=True),
              np.clip(theta[1] - 2 * alpha * r[1] + alpha * alpha * v[1], _LOG_MIN, _LOG_MAX),
              np.clip(theta[2] - 2 * alpha * r[2] + alpha * alpha * v[2], _LOG_MIN, _LOG_MAX))
        ta = em(ta)
        ll_a, ll_2 = loglik(ta)[0], loglik(t2)[0]
        better = ll_a >= ll_2
        new = tuple(np.where(better[:, None], xa, x2) for xa, x2 in zip(ta, t2))
        new = tuple(np.where(converged[:, None], x0, xn) for x0, xn in zip(theta, new))
        ll_new = np.where(converged, ll, np.where(better, ll_a, ll_2))  # loglik(new), row by row
        converged |= np.abs(ll_new - ll) < tol * total
        theta, ll = new, ll_new
        if converged.all():
            break
    return BetaMixtureParams(weights=theta[0], alpha=np.exp(theta[1]), beta=np.exp(theta[2]), loglik=ll,
                             converged=converged, n_iter=it)


def beta_mixture_cell_mass(weights: np.ndarray, alpha: np.ndarray, beta: np.ndarray,
                           edges: np.ndarray) -> np.ndarray:
    """Mass of each cell under batched mixtures: params (..., K) -> (..., C)."""
    cdf = special.betainc(alpha[..., None], beta[..., None], np.asarray(edges, float))  # (..., K, C+1)
    return np.sum(weights[..., None] * np.diff(cdf, axis=-1), axis=-2)


def beta_mixture_level_cell_joint(weights: np.ndarray, alpha: np.ndarray, beta: np.ndarray, n_selected: np.ndarray,
                                  n_annotators: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """P(k_l | n_l, s in cell j) P(s in cell j), exactly, for batched mixtures:
    params (..., K), levels (L,) -> (..., L, C).

    Binom(k; n, s) Beta(s; a, b) = BB(k; n, a, b) Beta(s; a + k, b + n - k), so
    each cell's integral is a beta-binomial pmf times a regularized incomplete
    beta difference.
    """
    n, k = np.asarray(n_annotators, float), np.asarray(n_selected, float)
    lbinom = log_choose(n, k)
    a, b = alpha[..., None], beta[..., None]                                   # (..., K, 1)
    log_bb = lbinom + special.betaln(k + a, n - k + b) - special.betaln(a, b)  # (..., K, L)
    cdf = special.betainc((a + k)[..., None], (b + n - k)[..., None], np.asarray(edges, float))  # (..., K, L, C+1)
    return np.sum((weights[..., None] * np.exp(log_bb))[..., None] * np.diff(cdf, axis=-1), axis=-3)


@register_prior("betabinomial", label="beta mixture")
class BetaMixturePrior(SelectionFrequencyPrior):
    """Mixture of beta distributions for the true selection frequency.

    Parameters
    ----------
    n_components : int or None, default=None
        Number of beta components; None chooses it by BIC over
        1..``max_components`` (capped so that 3K - 1 parameters do not exceed
        the degrees of freedom of the k distribution: max n, or the number of
        within-bin frequencies under selection), stopping at the first K whose
        BIC is no lower than K - 1's.
    max_components : int, default=4
    n_init : int, default=4
        EM starts (the first from quantiles of k/n, the rest random); the best
        log-likelihood wins.
    max_iter : int, default=500
    tol : float, default=1e-7
        Convergence threshold on the mean log-likelihood per image.
    random_state : int, Generator or None, default=None

    Attributes
    ----------
    weights_, alpha_, beta_ : ndarray of shape (K,)
    n_components_ : int
    loglik_ : float
    converged_ : bool
    n_iter_ : int
    bic_ : dict of int to float (only when n_components is None): the K tried

    Examples
    --------
    >>> prior = BetaMixturePrior(random_state=0).fit(k, n)
    >>> prior.marginal_k(10), prior.posterior_mean(k, n)
    """

    def __init__(self, n_components: int | None = None, *, max_components: int = 4, n_init: int = 4,
                 max_iter: int = 500, tol: float = 1e-7,
                 random_state: int | np.random.Generator | None = None):
        self.n_components = n_components
        self.max_components = max_components
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    @property
    def n_parameters_(self) -> int:
        """Free parameters: K weights (summing to 1) and K (alpha, beta) pairs, 3K - 1."""
        return 3 * len(self.weights_) - 1

    def _fit_levels(self, lv: Levels, selection: Selection | None) -> None:
        rng = np.random.default_rng(self.random_state)
        if self.n_components is not None:
            if int(self.n_components) < 1:
                raise FitError(f"n_components must be >= 1, got {self.n_components}")
            candidates = [int(self.n_components)]
        else:
            dof = int(lv.n.max())
            if selection is not None:                 # only within-bin frequencies are informative
                dof = selection.within_bin_dof(lv.counts)
            cap = max(1, (dof + 1) // 3)
            candidates = list(range(1, max(1, min(int(self.max_components), cap)) + 1))
        best, self.bic_ = None, {}
        total = lv.counts.sum()
        for kc in candidates:
            fit = _fit_restarts(lv, kc, max(1, int(self.n_init)), rng, self.max_iter, self.tol, selection)
            bic = -2.0 * float(fit.loglik[0]) + (3 * kc - 1) * np.log(total)
            self.bic_[kc] = bic
            if best is not None and bic >= best[0]:
                break                      # a component more fits no better: nor will more still
            best = (bic, fit)
        fit = best[1]
        order = np.argsort(fit.alpha[0] / (fit.alpha[0] + fit.beta[0]))
        self.weights_ = fit.weights[0][order]
        self.alpha_ = fit.alpha[0][order]
        self.beta_ = fit.beta[0][order]
        self.n_components_ = len(self.weights_)
        self.converged_ = bool(fit.converged[0])
        self.n_iter_ = int(fit.n_iter)
        if self.n_components is not None:
            del self.bic_
        if not self.converged_:
            warnings.warn(f"BetaMixturePrior: EM did not converge in {self.max_iter} iterations",
                          ConvergenceWarning, stacklevel=3)

    def cell_mass(self, edges: np.ndarray) -> np.ndarray:
        """Mixture mass of each cell [edges[j], edges[j+1]], shape (C,)."""
        return beta_mixture_cell_mass(self.weights_, self.alpha_, self.beta_, edges)

    def level_cell_joint(self, n_selected: np.ndarray, n_annotators: np.ndarray, edges: np.ndarray) -> np.ndarray:
        """P(k_l | n_l, s in cell j) P(s in cell j) for levels (L,), shape (L, C)."""
        return beta_mixture_level_cell_joint(self.weights_, self.alpha_, self.beta_, n_selected, n_annotators, edges)

    def pdf(self, s: ArrayLike) -> np.ndarray:
        """Exact mixture density sum_j w_j Beta(s; alpha_j, beta_j), same shape as ``s``."""
        s = np.asarray(s, float)
        dens = np.exp(special.xlogy(self.alpha_ - 1, s[..., None]) + special.xlog1py(self.beta_ - 1, -s[..., None])
                      - special.betaln(self.alpha_, self.beta_))
        return np.sum(self.weights_ * dens, axis=-1)

    def _log_components(self, k, n) -> np.ndarray:
        k, n = np.asarray(k, float), np.asarray(n, float)
        lbinom = log_choose(n, k)
        return np.log(self.weights_) + (lbinom[..., None] + special.betaln(k[..., None] + self.alpha_,
                                        n[..., None] - k[..., None] + self.beta_) - special.betaln(self.alpha_, self.beta_))

    def _marginal(self, n_selected, n_annotators) -> np.ndarray:
        return np.exp(special.logsumexp(self._log_components(n_selected, n_annotators), axis=-1))

    def posterior_mean(self, n_selected: ArrayLike, n_annotators: ArrayLike) -> np.ndarray:
        """E[s | k, n] (conjugate Beta update per component), same shape as ``n_selected``."""
        k, n = np.asarray(n_selected, float), np.asarray(n_annotators, float)
        logc = self._log_components(k, n)
        resp = np.exp(logc - special.logsumexp(logc, axis=-1, keepdims=True))
        return np.sum(resp * (k[..., None] + self.alpha_) / (n[..., None] + self.alpha_ + self.beta_), axis=-1)

    def fit_batch(self, n_selected: ArrayLike, n_annotators: ArrayLike, counts: ArrayLike, *,
                  selection_edges: tuple[float, ...] | None = None, start: "BetaMixturePrior | None" = None,
                  batch_max_iter: int = 300) -> PriorBatch:
        """Fit every row of ``counts`` (B, N) in one vectorized EM, warm-started
        from ``start`` or from a full fit (which also chooses K by BIC when
        ``n_components`` is None) to the row-mean counts."""
        lv = to_levels(n_selected, n_annotators, np.atleast_2d(np.asarray(counts, float)))
        check_identifiable(lv, "beta-mixture prior")
        pooled = self._pooled(lv.k, lv.n, lv.counts, selection_edges, start)
        if lv.counts.shape[0] == 1 and start is None:
            return PriorBatch.of([pooled])
        selection = None
        if selection_edges is not None:
            lv, selection, _ = complete_levels(lv, selection_edges)
        fit = fit_beta_mixture_levels(lv, pooled.weights_, pooled.alpha_, pooled.beta_, max_iter=batch_max_iter,
                                      tol=self.tol, selection=selection)
        return PriorBatch(pooled, partial(beta_mixture_cell_mass, fit.weights, fit.alpha, fit.beta),
                          partial(beta_mixture_level_cell_joint, fit.weights, fit.alpha, fit.beta))

    def sample(self, size: int, rng: np.random.Generator) -> np.ndarray:
        """Draw ``size`` selection frequencies: a component by weight, then a Beta draw; shape (size,)."""
        comp = rng.choice(len(self.weights_), size=size, p=self.weights_)
        return rng.beta(self.alpha_[comp], self.beta_[comp])


def initial_values(lv: Levels, n_components: int, n_init: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Starting (weights, alpha, beta), each (n_init, K): the first start puts
    component means at quantiles of the observed k/n, the others at random ones."""
    counts = np.atleast_2d(lv.counts).mean(axis=0)
    freq = lv.k / lv.n
    order = np.argsort(freq)
    cdf = np.cumsum(counts[order]) / counts.sum()
    qs = (np.arange(n_components) + 0.5) / n_components
    means = np.clip(freq[order][np.minimum(np.searchsorted(cdf, qs), len(order) - 1)], 0.05, 0.95)
    mu = np.vstack([means[None, :], np.sort(rng.uniform(0.05, 0.95, (n_init - 1, n_components)), axis=1)])
    phi = np.vstack([np.full((1, n_components), 4.0), rng.uniform(1.5, 20.0, (n_init - 1, n_components))])
    w = np.full((n_init, n_components), 1.0 / n_components)
    return w, mu * phi, (1 - mu) * phi


def _fit_restarts(lv: Levels, n_components: int, n_init: int, rng, max_iter: int, tol: float,
                  selection: Selection | None) -> BetaMixtureParams:
    """Run ``n_init`` EM starts as one batch; keep the best (as a batch of 1)."""
    w0, a0, b0 = initial_values(lv, n_components, n_init, rng)
    batch = Levels(n=lv.n, k=lv.k, counts=np.broadcast_to(lv.counts, (n_init, len(lv.n))))
    fit = fit_beta_mixture_levels(batch, w0, a0, b0, max_iter=max_iter, tol=tol, selection=selection)
    i = int(np.argmax(fit.loglik))
    return BetaMixtureParams(weights=fit.weights[i:i + 1], alpha=fit.alpha[i:i + 1], beta=fit.beta[i:i + 1],
                             loglik=fit.loglik[i:i + 1], converged=fit.converged[i:i + 1], n_iter=fit.n_iter)


__all__ = ["BetaMixturePrior", "BetaMixtureParams", "fit_beta_mixture_levels", "beta_mixture_cell_mass",
           "beta_mixture_level_cell_joint"]
