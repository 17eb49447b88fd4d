"""The construction model fitted to the public memberships by the simulated
generalized method of moments.

Per class c the data are its overlap counts z_c (:data:`~replication.v2public.expected.SUMMARIES`:
|T & TI|, |MF & T|, |MF & TI|, |MF & T & TI|, |T|, and how many of TopImages,
Threshold0.7 and MatchedFrequency were shown in more than one HIT) and its
centred log pool size x_c. Under the model, m_c(theta) = E[z_c] and the
variance of |T & TI| and its covariance with |MF & TI| across classes of that
size are computed by :class:`~replication.v2public.expected.ConfigurationSampler`.
The moment conditions, averaged over classes, are

    z_c - m_c,   (z_c - m_c) x_c for the first three overlaps,
    (z1 - m1)^2 - v1,   (z1 - m1)(z3 - m3) - c13,

with the Monte-Carlo terms' own variance (1 + 1/R) added to the last two. Two
steps: a diagonal weight, then the inverse covariance of the classes'
contributions. The simulated objective is rough and has poor local optima (in a
validation setting with a poorer pool, fits from one start ended with J of
400-600 on 5 dof where a start near the truth reached 35-50), so the first step
runs from several starts: the given one and the best of ``n_screen`` random
points around it (objective evaluated once each), and the second step continues
from the lowest. The estimator turns a class bootstrap into
parameter replicates by one Gauss-Newton step from the estimate on the
recentred resampled moments (a score bootstrap; no refit per replicate; see
:mod:`replication.v2public.estimator`).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from replication.errors import FitError
from replication.v2public.expected import Configurations, ConfigurationSampler
from replication.v2public.model import ConstructionModel

log = logging.getLogger(__name__)

#: overlaps whose deviation is also weighted by the log pool size (columns of the summaries)
_SIZE_MOMENTS = (0, 1, 2)
#: summaries matched in mean: all but |T|, which the model conditions on (full)
MEAN_MOMENTS = (0, 1, 2, 3, 5, 6, 7)
#: SD of the screened starts around the given start, per parameter (vector units: logs of the positive ones)
START_SPREAD = {"pool_location": 0.75, "pool_size_slope": 0.75, "pool_spread": 0.5, "pool_shape": 1.0,
                "pool_tail": 0.75, "ref_location": 0.4, "ref_class_share": 0.1}


def _for_ranking(objectives: list[float]) -> np.ndarray:
    """Objectives as an array, the non-finite ones (a failed evaluation) infinite so that they rank last."""
    values = np.asarray(objectives, float)
    return np.where(np.isfinite(values), values, np.inf)


def class_moments(conf: Configurations, observed: np.ndarray, log_size: np.ndarray) -> np.ndarray:
    """Each class's moment contributions, shape (C, Q)."""
    m = conf.class_mean(conf.summaries)                         # (C, S)
    resid = (observed - m)[:, MEAN_MOMENTS]
    inflate = 1.0 + 1.0 / conf.n_reps
    z1, z3 = conf.summaries[:, 0], conf.summaries[:, 2]
    v1 = conf.class_mean(conf.tti_var + z1 ** 2) - m[:, 0] ** 2
    c13 = conf.class_mean(z1 * z3) - m[:, 0] * m[:, 2]
    resid_full = observed - m
    return np.column_stack([
        resid,
        resid_full[:, _SIZE_MOMENTS] * log_size[:, None],
        resid_full[:, 0] ** 2 - inflate * v1,
        resid_full[:, 0] * resid_full[:, 2] - inflate * c13,
    ])


@dataclass(frozen=True)
class MomentFit:
    """A fitted construction model.

    model : the fitted ConstructionModel
    theta : (P,) the free parameters (:meth:`ConstructionModel.to_vector`, fixed ones left out)
    names : names of the free parameters
    moments : (C, Q) each class's moment contributions at the fit
    weight : (Q, Q) the weight matrix
    jacobian : (Q, P) derivative of the mean moments
    objective : float, J statistic (C * g' W g)
    dof : int, number of moments minus parameters
    start_objectives : (K,) first-step objective reached from each start (the given one first)
    """

    model: ConstructionModel
    theta: np.ndarray
    names: tuple[str, ...]
    moments: np.ndarray
    weight: np.ndarray
    jacobian: np.ndarray
    objective: float
    dof: int
    start_objectives: np.ndarray

    def covariance(self) -> np.ndarray:
        """Sandwich covariance of theta (clustered by class), (P, P)."""
        g = self.moments - self.moments.mean(axis=0)
        s = g.T @ g / len(g)
        jw = self.jacobian.T @ self.weight
        bread = np.linalg.pinv(jw @ self.jacobian)
        return bread @ jw @ s @ jw.T @ bread / len(g)


class MomentEstimator:
    """Fits the free parameters of a :class:`ConstructionModel` to class summaries.

    Parameters
    ----------
    sampler : ConfigurationSampler
    observed : ndarray of shape (C, S)
        The classes' observed summaries.
    fixed : tuple of str
        Model parameters held at the start model's values.
    diff_step : float
        Step of the finite-difference Jacobian (in parameter units).
    n_starts : int
        Starts of the first step: the given one and the ``n_starts - 1`` best screened points.
    n_screen : int
        Random points screened for starts: the start's parameters plus normal noise
        of :data:`START_SPREAD` (parameter units).
    random_state : int or None
        Seeds the screened points.
    """

    def __init__(self, sampler: ConfigurationSampler, observed: np.ndarray, *, fixed: tuple[str, ...] = (),
                 diff_step: float = 0.03, max_iter: int = 15, tol: float = 1e-3, n_starts: int = 1,
                 n_screen: int = 64, random_state: int | None = 0):
        self.sampler = sampler
        self.observed = observed
        self.fixed = tuple(fixed)
        self.diff_step = diff_step
        self.max_iter = max_iter
        self.tol = tol
        self.n_starts = n_starts
        self.n_screen = n_screen
        self.random_state = random_state

    def _free(self, start: ConstructionModel) -> list[int]:
        return [i for i, p in enumerate(start.parameters()) if p not in self.fixed]

    def free_names(self, start: ConstructionModel) -> tuple[str, ...]:
        """The parameters this estimator fits, in the order of its vectors."""
        return tuple(start.parameters()[i] for i in self._free(start))

    def free_vector(self, model: ConstructionModel) -> np.ndarray:
        """The fitted parameters of ``model`` as a vector."""
        return model.to_vector()[self._free(model)]

    def model_at(self, start: ConstructionModel, theta: np.ndarray) -> ConstructionModel:
        """``start`` with the fitted parameters set from ``theta``."""
        return self._model(start, theta)

    def _model(self, start: ConstructionModel, theta: np.ndarray) -> ConstructionModel:
        full = start.to_vector()
        full[self._free(start)] = theta
        return start.from_vector(full, fixed=self.fixed)

    def moments(self, model: ConstructionModel) -> np.ndarray:
        """(C, Q) moment contributions at ``model``."""
        return class_moments(self.sampler.evaluate(model), self.observed, self.sampler.layout.log_size)

    def jacobian(self, start: ConstructionModel, theta: np.ndarray, at: np.ndarray | None = None) -> np.ndarray:
        """Forward-difference Jacobian of the mean moments, (Q, P), from ``at``
        (the mean moments at theta; computed when None)."""
        base = self.moments(self._model(start, theta)).mean(axis=0) if at is None else at
        cols = []
        for j in range(len(theta)):
            step = np.zeros_like(theta)
            step[j] = self.diff_step
            cols.append((self.moments(self._model(start, theta + step)).mean(axis=0) - base) / self.diff_step)
        return np.column_stack(cols)

    def refit(self, start: ConstructionModel, weight: np.ndarray) -> ConstructionModel:
        """Minimize the GMM objective with ``weight`` from ``start``."""
        return self._model(start, self._solve(start, self.free_vector(start), weight)[0])

    def _evaluate(self, start: ConstructionModel, theta: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, float]:
        """The mean moments (Q,) at ``theta`` and the objective C * g' W g (as computed: may be non-finite)."""
        gbar = self.moments(self._model(start, theta)).mean(axis=0)
        return gbar, float(len(self.observed) * gbar @ weight @ gbar)

    def _solve(self, start: ConstructionModel, theta0: np.ndarray,
               weight: np.ndarray) -> tuple[np.ndarray, float]:
        """Levenberg-Marquardt on the weighted mean moments; returns the parameters and
        their objective. A forward-difference Jacobian costs P + 1 evaluations, so one
        is reused while its steps keep lowering the objective (a chord method) and
        refreshed when they stop."""
        theta = np.asarray(theta0, float)
        gbar, obj = self._evaluate(start, theta, weight)
        damping, jac, fresh = 1e-3, None, False
        for _ in range(self.max_iter):
            if jac is None:
                jac, fresh = self.jacobian(start, theta, at=gbar), True
            jw = jac.T @ weight
            hess, grad = jw @ jac, jw @ gbar
            improved = False
            for _ in range(6 if fresh else 2):
                step = -np.linalg.solve(hess + damping * np.diag(np.diag(hess) + 1e-12), grad)
                cand = theta + step
                if not np.all(np.isfinite(cand)):
                    damping *= 10
                    continue
                g_new, obj_new = self._evaluate(start, cand, weight)
                if np.isfinite(obj_new) and obj_new < obj:
                    improved, damping = True, max(damping / 10, 1e-6)
                    break
                damping *= 10
            if not improved:
                if fresh:
                    break
                jac = None                                    # stale Jacobian: refresh and retry
                continue
            rel = (obj - obj_new) / max(obj, 1e-12)
            theta, gbar, obj, fresh = cand, g_new, obj_new, False
            if rel < self.tol:
                break
        if not np.all(np.isfinite(theta)):
            raise FitError("the construction model's moment fit diverged")
        return theta, obj

    def starts(self, start: ConstructionModel, weight: np.ndarray) -> np.ndarray:
        """Starting vectors, (n_starts, P): ``start``'s and the ``n_starts - 1`` screened
        points with the lowest objective under ``weight``."""
        theta = self.free_vector(start)
        if self.n_starts <= 1:
            return theta[None, :]
        spread = np.array([START_SPREAD.get(p, 0.5) for p in self.free_names(start)])
        rng = np.random.default_rng(self.random_state)
        points = theta + rng.standard_normal((max(int(self.n_screen), self.n_starts - 1), len(theta))) * spread
        values = _for_ranking([self._evaluate(start, p, weight)[1] for p in points])
        return np.vstack([theta, points[np.argsort(values, kind="stable")[:self.n_starts - 1]]])

    def fit(self, start: ConstructionModel) -> MomentFit:
        """Two-step GMM from ``start`` (first step also from the screened starts)."""
        g0 = self.moments(start)
        w1 = np.diag(1.0 / np.maximum(g0.var(axis=0), 1e-8))
        solved = [self._solve(start, theta0, w1) for theta0 in self.starts(start, w1)]
        first = _for_ranking([obj for _, obj in solved])
        theta = solved[int(np.argmin(first))][0]
        log.debug("moment fit: first-step J from %d starts: %s", len(first), np.round(first, 1))
        g1 = self.moments(self._model(start, theta))
        centred = g1 - g1.mean(axis=0)
        w2 = np.linalg.pinv(centred.T @ centred / len(centred))
        w2 = (w2 + w2.T) / 2 + 1e-10 * np.eye(len(w2))
        theta = self._solve(start, theta, w2)[0]
        model = self._model(start, theta)
        g = self.moments(model)
        gbar = g.mean(axis=0)
        jac = self.jacobian(start, theta, at=gbar)
        return MomentFit(model=model, theta=theta, names=self.free_names(start), moments=g, weight=w2, jacobian=jac,
                         objective=float(len(g) * gbar @ w2 @ gbar), dof=g.shape[1] - len(theta),
                         start_objectives=first)
