"""ImageNet-v2's selection bias from public data alone.

:class:`PublicDataEstimator` (scikit-learn style) fits, on a
:class:`~replication.v2public.data.PublicData` record (pool listing with HIT
counts, the three sets' memberships, every model's correctness), in four steps:

1. **Construction model** (:mod:`~replication.v2public.gmm`): the pool's and the
   reference's distributions of true selection frequency per class, fitted by
   simulated GMM to each class's overlap counts (|T & TI|, |MF & T|, |MF & TI|,
   |MF & T & TI|, HIT composition), conditioned on every Threshold0.7 set being
   full; the first step runs from ``n_starts`` starts (the objective has poor
   local optima) and the fit continues from the lowest. The reference enters
   only through MatchedFrequency's target histogram (the reference's observed
   one), so its within-class shape (``ref_shape``) is
   weakly identified: it is PROFILED over ``ref_shapes`` (the reference's
   location and class share refitted at each, the pool held), and the data
   select the shapes whose J statistic lies within the chi-square(1) critical
   value of the best one.
2. **Posteriors** (:mod:`~replication.v2public.expected`): per class, membership
   pattern and HIT count, the distribution of true s of such images, the class's
   configurations weighted by how well they explain its |T & TI|.
3. **Accuracy curves** (:mod:`~replication.v2public.curves`):
   f_mc(s) = Phi(a_m + delta_c + b_m s) from the correctness of the union of the
   three sets.
4. **Adjusted accuracy**: A_m = mean over classes of the integral of f_mc over the
   class's reference distribution; gap = ImageNet val accuracy - A_m.

Intervals: a bootstrap over classes (``n_bootstrap`` class resamples), linearized:
each replicate's model parameters are one Gauss-Newton step from the fit on the
recentred resampled moments, its curve parameters one scoring step on the
resampled classes' scores plus the parameters' effect (finite differences of the
whole fit), and A to first order in all of them. The Monte-Carlo configurations
are fixed across replicates, so the class bootstrap does not see their error. It
is common to all models (it does not average out of the mean over models) and,
the simulated GMM's objective being rough, as large as the sampling error of the
mean: three simulated constructions refitted with other seeds moved the mean
adjusted gap by 0.3-0.4 points SD, about its bootstrap SE (0.2-0.4 with
``n_reps=32``, so more configurations do not cure it). ``n_mc_refits`` refits of
steps 1, 2 and 4 on independent configurations (each moment fit starting from
the point estimate's model) measure it: each replicate gets a
normal draw with the covariance of their A_m and the point estimate's, whose
configurations stay the first ones. Percentile intervals.

Assumptions (stated again in the README, with their sensitivity):

* A1 Every set was drawn by its published rule from the listed pool on the final
  k/n: MatchedFrequency uniformly within bins matched to the reference histogram
  (20 annotated val images per class), Threshold0.7 uniformly above 0.7 (three
  classes lower), TopImages the best by (k/n, n); near-duplicate and blacklist
  exclusions and carry-over from earlier versions are ignored (random thinning).
* A2 Candidates of a class are i.i.d. given the class; classes differ by one
  logit-scale effect (pool size + normal class effect); the pool family is
  ``pool_family``; the reference is Beta with the class share of that effect.
* A3 Each HIT gave 10 annotations; a candidate's HIT count is unrelated to its s.
* A4 Correctness depends on the image's s and its class only (the same curve for
  the three sets), probit-linear in s; no true shift between the sets and the
  candidates they were drawn from.
* A5 The pool listing is complete for the classes used (``classes="complete"``).
"""
from __future__ import annotations

import dataclasses
import functools
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import special, stats

from replication.errors import FitError, InputError
from replication.sampling import EDGES, frequency_bin
from replication.summary import Summary
from replication.v2public.curves import (CurveFit, ImageGroups, adjusted_accuracy, class_reference,
                                         conditional_weights, fit_curves, midpoints, pattern_posteriors)
from replication.v2public.data import ANNOTATIONS_PER_HIT, REFERENCE_ID, SET_IDS, PublicData
from replication.v2public.expected import SUMMARIES, ClassLayout, ConfigurationSampler, observed_summaries
from replication.v2public.gmm import MEAN_MOMENTS, MomentEstimator, MomentFit, class_moments
from replication.v2public.model import FAMILIES, ConstructionModel

log = logging.getLogger(__name__)

#: Engstrom et al. 2020: the part of the MatchedFrequency drop left after correcting
#: the selection-frequency bias with their own annotations (a comparison only)
ENGSTROM_2020 = {"remaining_gap": 0.036, "remaining_gap_se": 0.015, "raw_gap": 0.117, "raw_gap_se": 0.010}
#: reference shapes (Beta concentrations) profiled by default
DEFAULT_REF_SHAPES = (4.0, 8.0, 16.0, 32.0, 64.0)
#: starting values of the pool's parameters, per family
POOL_STARTS: dict[str, dict[str, float]] = {
    "beta": dict(pool_location=-1.3, pool_size_slope=-1.25, pool_spread=0.7, pool_shape=1.2),
    "logitnormal": dict(pool_location=-2.3, pool_size_slope=-2.3, pool_spread=1.0, pool_shape=2.6),
    "mixture": dict(pool_location=-2.0, pool_size_slope=-2.1, pool_spread=1.5, pool_shape=5.9, pool_tail=1.1),
}
#: starting values of the reference's parameters
REF_START = dict(ref_location=0.84, ref_class_share=0.12)
_REF_PARAMETERS = ("ref_location", "ref_class_share")


def default_start(pool_family: str, ref_shape: float) -> ConstructionModel:
    """The moment fit's default start: :data:`POOL_STARTS` of the family, :data:`REF_START`, ``ref_shape``."""
    return ConstructionModel(pool_family=pool_family, ref_shape=ref_shape, **POOL_STARTS.get(pool_family, {}),
                             **REF_START)


@dataclass(frozen=True)
class ShapeFit:
    """Everything fitted at one reference shape.

    model : ConstructionModel; objective : J statistic; curves : CurveFit;
    reference : (C, J) each class's reference distribution; adjusted : (M,) A_m;
    boot_adjusted : (B, M) replicates of A_m (class bootstrap plus Monte-Carlo draws);
    mc_adjusted : (K + 1, M) A_m on ``n_mc_refits`` = K further configurations (the first: ``adjusted``)
    """

    ref_shape: float
    model: ConstructionModel
    objective: float
    curves: CurveFit
    reference: np.ndarray
    adjusted: np.ndarray
    boot_adjusted: np.ndarray
    mc_adjusted: np.ndarray


@dataclass(frozen=True)
class _Downstream:
    """Moments, curves, reference distributions and A_m (M,) at one model."""

    moments: np.ndarray
    curves: CurveFit
    reference: np.ndarray

    @functools.cached_property
    def adjusted(self) -> np.ndarray:
        """A_m, (M,) (computed once: the fit and its shape's bootstrap both read it)."""
        return adjusted_accuracy(self.curves.a, self.curves.b, self.curves.delta, self.reference)


class PublicDataEstimator:
    """The selection-frequency bias of ImageNet-v2 MatchedFrequency from the public record.

    Parameters
    ----------
    pool_family : {"mixture", "beta", "logitnormal"}, default="mixture"
        Within-class family of the candidates' true s (:data:`~replication.v2public.model.FAMILIES`).
    ref_shapes : sequence of float, default=(4, 8, 16, 32, 64)
        Beta concentrations of the reference's within-class distribution to profile.
    class_effects : bool, default=True
        Class difficulty delta_c in the accuracy curves.
    max_hits : int, default=3
        HIT counts above this are treated as this (1: every candidate had 10 annotations).
    impute_unlisted : bool, default=False
        Add the candidates of the missing HIT file to classes with unlisted set images
        (:meth:`~replication.v2public.expected.ClassLayout.from_public`).
    extra_candidates : float, default=0.0
        One-HIT non-members added per listed candidate (negative: removed).
    ref_hits : int or None, default=None
        HITs per annotated reference image (None: like the candidates').
    n_reps : int, default=8
        Monte-Carlo configurations per class for the moment fit and the derivatives.
    n_starts : int, default=5
        Starts of the moment fit's first step: the default start and the best
        ``n_starts - 1`` of 64 random points around it (:class:`~replication.v2public.gmm.MomentEstimator`).
    n_reps_posterior : int, default=24
        Configurations per class for the posteriors and reference distributions of
        the point estimates (conditioning a class on its |T & TI| needs more).
    n_mc_refits : int, default=4
        Refits of the construction model, posteriors and A_m on independent
        configurations; their spread (Monte-Carlo error) is added to the bootstrap
        replicates (0: not measured, intervals from the class bootstrap alone).
    n_bootstrap : int, default=1000
        Class-bootstrap replicates.
    estimate_rejected_shapes : bool, default=False
        Also estimate at the reference shapes the data reject (the profile then
        shows what they would give; the identified range never uses them).
    confidence_level : float, default=0.95
    random_state : int or None, default=0
        Seeds the Monte-Carlo configurations and the bootstrap.
    """

    def __init__(self, *, pool_family: str = "mixture", ref_shapes: tuple[float, ...] = DEFAULT_REF_SHAPES,
                 class_effects: bool = True, max_hits: int = 3, impute_unlisted: bool = False,
                 extra_candidates: float = 0.0, ref_hits: int | None = None, n_reps: int = 8,
                 n_starts: int = 5, n_reps_posterior: int = 24, n_mc_refits: int = 4, n_bootstrap: int = 1000,
                 estimate_rejected_shapes: bool = False, confidence_level: float = 0.95, random_state: Any = 0):
        self.pool_family = pool_family
        self.ref_shapes = ref_shapes
        self.class_effects = class_effects
        self.max_hits = max_hits
        self.impute_unlisted = impute_unlisted
        self.extra_candidates = extra_candidates
        self.ref_hits = ref_hits
        self.n_reps = n_reps
        self.n_starts = n_starts
        self.n_reps_posterior = n_reps_posterior
        self.n_mc_refits = n_mc_refits
        self.n_bootstrap = n_bootstrap
        self.estimate_rejected_shapes = estimate_rejected_shapes
        self.confidence_level = confidence_level
        self.random_state = random_state

    def _check(self) -> tuple[float, ...]:
        if self.pool_family not in FAMILIES:
            raise InputError(f"unknown pool family {self.pool_family!r}; valid: {', '.join(FAMILIES)}")
        shapes = tuple(float(k) for k in self.ref_shapes)
        if not shapes or any(not np.isfinite(k) or k <= 0 for k in shapes):
            raise InputError(f"ref_shapes must be positive numbers, got {self.ref_shapes!r}")
        for name, low in (("max_hits", 1), ("n_reps", 1), ("n_starts", 1), ("n_reps_posterior", 1), ("n_mc_refits", 0),
                          ("n_bootstrap", 2)):
            if int(getattr(self, name)) < low:
                raise InputError(f"{name} must be >= {low}, got {getattr(self, name)}")
        if not 0 < float(self.confidence_level) < 1:
            raise InputError(f"confidence_level must lie in (0, 1), got {self.confidence_level}")
        return tuple(sorted(set(shapes)))

    def fit(self, data: PublicData) -> "PublicDataResults":
        """Fit on a public record; returns a new :class:`PublicDataResults`."""
        shapes = self._check()
        rng = np.random.default_rng(self.random_state)
        layout = ClassLayout.from_public(data, max_hits=self.max_hits, extra_candidates=self.extra_candidates,
                                         impute_unlisted=self.impute_unlisted, ref_hits=self.ref_hits)
        if len(layout.classes) < 20:
            raise FitError(f"only {len(layout.classes)} classes: too few to fit the construction model")
        seed = int(rng.integers(2**32))
        sampler = ConfigurationSampler(layout, n_reps=self.n_reps, seed=seed)
        observed = observed_summaries(data, layout.classes)
        groups = ImageGroups.from_public(data, layout.classes, self.max_hits)
        work = _Work(self, observed, groups)

        middle = shapes[len(shapes) // 2]
        start = default_start(self.pool_family, middle)
        main, ref_gmm, models = _construction(sampler, observed, start, shapes, int(self.n_starts), seed)
        objective = {}
        for k, m in models.items():
            g = ref_gmm.moments(m).mean(axis=0)
            objective[k] = float(len(observed) * g @ main.weight @ g)
        best = min(shapes, key=lambda k: objective[k])
        crit = stats.chi2.ppf(float(self.confidence_level), 1)
        estimated = [k for k in shapes if self.estimate_rejected_shapes or objective[k] - objective[best] <= crit]
        log.info("construction model: J = %.1f on %d dof; reference shape profile %s", main.objective, main.dof,
                 ", ".join(f"{k:g}: {v:.1f}" for k, v in objective.items()))

        class_weights = _class_resamples(len(layout.classes), int(self.n_bootstrap), rng)
        # derivatives (Monte Carlo of the moment fit) at the best shape, used for every shape's bootstrap
        base_best = work.downstream(sampler, models[best], None)
        columns = work.columns(sampler, models[best], main.names, base_best)
        order = sorted(estimated, key=lambda v: abs(np.log(v / best)))
        post_sampler = ConfigurationSampler(layout, n_reps=self.n_reps_posterior, seed=seed)
        points = work.points(post_sampler, {k: models[k] for k in order}, base_best.curves)
        # the Monte-Carlo error: the same steps on independent configurations
        refits: dict[float, list[np.ndarray]] = {k: [] for k in order}
        for refit_seed in rng.integers(2**32, size=int(self.n_mc_refits)):
            _, _, models_r = _construction(ConfigurationSampler(layout, n_reps=self.n_reps, seed=int(refit_seed)),
                                           observed, main.model, tuple(order))
            post_r = ConfigurationSampler(layout, n_reps=self.n_reps_posterior, seed=int(refit_seed))
            for k, point in work.points(post_r, models_r, base_best.curves).items():
                refits[k].append(point.adjusted)
        noise = rng.standard_normal((int(self.n_bootstrap), int(self.n_mc_refits) + 1))
        fits = {k: work.shape_fit(k, models[k], objective[k], ref_gmm.moments(models[k]), points[k], columns,
                                  main.weight, class_weights, np.stack([points[k].adjusted, *refits[k]]), noise)
                for k in order}
        return PublicDataResults(estimator=self, data=data, layout=layout, observed=observed, main=main,
                                 fits={k: fits[k] for k in estimated}, objectives=objective, best=best,
                                 class_weights=class_weights,
                                 val=work.per_class(data, "val"), mf=work.per_class(data, "mf"))


def _construction(sampler: ConfigurationSampler, observed: np.ndarray, start: ConstructionModel,
                  shapes: tuple[float, ...], n_starts: int = 1,
                  seed: int | None = 0) -> tuple[MomentFit, MomentEstimator, dict[float, ConstructionModel]]:
    """The construction model from ``sampler``'s configurations: the moment fit
    (reference shape held at ``start``'s; first step from ``n_starts`` starts, the
    screened ones seeded by ``seed``), the estimator of the reference's
    parameters, and the model refitted at each of ``shapes`` (in their order)."""
    main = MomentEstimator(sampler, observed, fixed=("ref_shape",), n_starts=n_starts, random_state=seed).fit(start)
    ref_gmm = MomentEstimator(sampler, observed, max_iter=6,
                              fixed=tuple(p for p in main.model.parameters() if p not in _REF_PARAMETERS))
    return main, ref_gmm, {k: ref_gmm.refit(dataclasses.replace(main.model, ref_shape=k), main.weight)
                           for k in shapes}


def _class_resamples(n_classes: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap counts of each class, (B, C), each row summing to C."""
    draws = rng.integers(0, n_classes, size=(n_boot, n_classes))
    return np.stack([np.bincount(row, minlength=n_classes) for row in draws]).astype(float)


class _Work:
    """The steps after the construction model, shared by the reference shapes."""

    #: finite-difference step in parameter units
    STEP = 0.03

    def __init__(self, est: PublicDataEstimator, observed: np.ndarray, groups: ImageGroups):
        self.est, self.observed, self.groups = est, observed, groups
        self.n_classes = len(observed)

    def downstream(self, sampler: ConfigurationSampler, model: ConstructionModel, start: CurveFit | None,
                   n_iter: int = 12) -> _Downstream:
        """Moments, posteriors (each class conditioned on its |T & TI|), curves and
        reference distributions at ``model``, from ``sampler``'s configurations."""
        conf = sampler.evaluate(model)
        weights = conditional_weights(conf, self.observed[:, 0], sampler.per_class)
        post = pattern_posteriors(conf, sampler.grid, weights)
        g = self.groups
        curves = fit_curves(g.design(post), g.code[:, 0], g.count, g.correct, self.n_classes,
                            class_effects=self.est.class_effects, start=start, n_iter=n_iter)
        moments = class_moments(conf, self.observed, sampler.layout.log_size)
        return _Downstream(moments, curves, class_reference(conf, weights))

    def points(self, sampler: ConfigurationSampler, models: dict[float, ConstructionModel],
               start: CurveFit) -> dict[float, _Downstream]:
        """The downstream at each reference shape's model from ``sampler``, in the
        order of ``models``, each curve fit starting from the previous one's."""
        out = {}
        for k, model in models.items():
            out[k] = self.downstream(sampler, model, start)
            start = out[k].curves
        return out

    def columns(self, sampler: ConfigurationSampler, model: ConstructionModel, names: tuple[str, ...],
                base: _Downstream) -> dict[str, tuple]:
        """Forward-difference derivatives of the mean moments, (a, b), delta and the
        reference distributions in each parameter of ``names`` (``base``: the
        downstream at ``model`` from the same sampler)."""
        out = {}
        vec = model.to_vector()
        for name in names:
            step = np.zeros_like(vec)
            step[model.parameters().index(name)] = self.STEP
            pert = self.downstream(sampler, model.from_vector(vec + step), base.curves, n_iter=3)
            out[name] = ((pert.moments.mean(axis=0) - base.moments.mean(axis=0)) / self.STEP,
                         (pert.curves.a - base.curves.a) / self.STEP, (pert.curves.b - base.curves.b) / self.STEP,
                         (pert.curves.delta - base.curves.delta) / self.STEP,
                         (pert.reference - base.reference) / self.STEP)
        return out

    def shape_fit(self, shape: float, model: ConstructionModel, objective: float, moments: np.ndarray,
                  base: _Downstream, columns: dict[str, tuple], weight: np.ndarray, class_weights: np.ndarray,
                  mc_adjusted: np.ndarray, noise: np.ndarray) -> ShapeFit:
        """Point estimate and linearized bootstrap replicates at one reference shape
        (``moments``: the classes' moment contributions at ``model``), plus normal
        Monte-Carlo draws with the covariance of ``mc_adjusted`` ((K + 1, M), A_m on
        independent configurations, the first ``base``'s) from ``noise`` (B, K + 1)."""
        names = list(columns)
        jac = np.column_stack([columns[n][0] for n in names])               # (Q, P)
        g = moments
        star = class_weights @ g / g.shape[0] - g.mean(axis=0)             # (B, Q)
        jw = jac.T @ weight
        d_theta = -np.linalg.solve(jw @ jac + 1e-10 * np.eye(len(names)), jw @ star.T).T   # (B, P)
        cf = base.curves
        score = np.einsum("bc,cmk->bmk", class_weights - 1.0, cf.class_scores)          # (B, M, 2)
        # pinv: a model whose curve sits at 0 or 1 has a singular information (a validation study hit one)
        d_ab = np.einsum("mkl,bml->bmk", np.linalg.pinv(cf.info), score)
        d_ab += np.einsum("bp,pmk->bmk", d_theta, np.stack([np.stack([columns[n][1], columns[n][2]], -1)
                                                            for n in names]))
        d_delta = d_theta @ np.stack([columns[n][3] for n in names])      # (B, C)
        d_ref = np.stack([columns[n][4] for n in names])                    # (P, C, J)
        mids = midpoints(base.reference.shape[1])
        z = cf.a[:, None, None] + cf.delta[None, :, None] + cf.b[:, None, None] * mids      # (M, C, J)
        phi, dens = special.ndtr(z), np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi)
        u = np.einsum("cj,mcj->mc", base.reference, phi)
        va = np.einsum("cj,mcj->mc", base.reference, dens)
        vb = np.einsum("cj,mcj->mc", base.reference, dens * mids)
        ug = np.einsum("pcj,mcj->pmc", d_ref, phi)
        n = class_weights.sum(axis=1)[:, None]
        boot = (class_weights @ u.T + d_ab[..., 0] * (class_weights @ va.T) + d_ab[..., 1] * (class_weights @ vb.T)
                + np.einsum("bc,mc,bc->bm", class_weights, va, d_delta)
                + np.einsum("bp,bc,pmc->bm", d_theta, class_weights, ug)) / n
        spread = mc_adjusted - mc_adjusted.mean(axis=0)
        boot += noise @ spread / np.sqrt(max(len(spread) - 1, 1))
        return ShapeFit(shape, model, objective, cf, base.reference, base.adjusted, boot, mc_adjusted)

    @staticmethod
    def per_class(data: PublicData, which: str) -> tuple[np.ndarray, np.ndarray]:
        """(images (C,), correct (C, M)) per class of the val images or the MatchedFrequency images."""
        classes = np.unique(data.cand_class)
        if which == "val":
            code, correct = np.searchsorted(classes, data.val_class), data.val_correct
        else:
            rows = data.member[:, 0]
            code, correct = np.searchsorted(classes, data.cand_class[rows]), data.member_correct[rows]
        count = np.bincount(code, minlength=len(classes)).astype(float)
        sums = np.zeros((len(classes), correct.shape[1]))
        np.add.at(sums, code, correct.astype(float))
        return count, sums


class PublicDataResults:
    """Results of :meth:`PublicDataEstimator.fit` (statsmodels style).

    Attributes
    ----------
    models : tuple of str
    reference_accuracy, replication_accuracy, gap : Series
        ImageNet val and raw MatchedFrequency accuracy, and the raw gap, per model.
    ref_shape : float
        The profiled reference shape with the smallest J statistic.
    adjusted_accuracy, adjusted_gap : Series
        At ``ref_shape``.
    profile : DataFrame
        Per reference shape: J statistic, its excess over the best, whether the data
        keep it, and (for the estimated shapes) the mean adjusted gap and interval.
    construction_model : ConstructionModel
        The fitted model at ``ref_shape``.
    """

    def __init__(self, *, estimator: PublicDataEstimator, data: PublicData, layout: ClassLayout,
                 observed: np.ndarray, main: MomentFit, fits: dict[float, ShapeFit], objectives: dict[float, float],
                 best: float, class_weights: np.ndarray, val: tuple, mf: tuple):
        self.estimator = estimator
        self.models = tuple(data.models)
        self.n_classes = len(layout.classes)
        self.info = dict(data.info)
        self.layout = layout
        self.observed = observed
        self.moment_fit = main
        self.fits = fits
        self.objectives = dict(objectives)
        self.ref_shape = best
        self.class_weights = class_weights
        idx = pd.Index(self.models, name="model")
        self.reference_accuracy = pd.Series(val[1].sum(axis=0) / val[0].sum(), index=idx)
        self.replication_accuracy = pd.Series(mf[1].sum(axis=0) / mf[0].sum(), index=idx)
        self.gap = self.reference_accuracy - self.replication_accuracy
        self.set_accuracy = data.set_accuracy()
        self._boot_val = (class_weights @ val[1]) / (class_weights @ val[0])[:, None]
        self._boot_mf = (class_weights @ mf[1]) / (class_weights @ mf[0])[:, None]
        fit = fits[best]
        self.construction_model = fit.model
        self.adjusted_accuracy = pd.Series(fit.adjusted, index=idx)
        self.adjusted_gap = self.reference_accuracy - self.adjusted_accuracy
        self.bounds = _shape_free_bounds(fit, layout, self.reference_accuracy.to_numpy())

    # -- intervals -------------------------------------------------------------
    @property
    def alpha(self) -> float:
        return 1.0 - float(self.estimator.confidence_level)

    def _interval(self, draws: np.ndarray, alpha: float | None) -> np.ndarray:
        a = self.alpha if alpha is None else alpha
        return np.quantile(draws, [a / 2, 1 - a / 2], axis=0)

    def _fit(self, ref_shape: float | None) -> ShapeFit:
        k = self.ref_shape if ref_shape is None else float(ref_shape)
        if k not in self.fits:
            raise InputError(f"no estimate at reference shape {k:g}; estimated: {', '.join(f'{v:g}' for v in self.fits)}"
                             " (the data reject the others; estimate_rejected_shapes=True estimates them too)")
        return self.fits[k]

    def bootstrap_gap(self, ref_shape: float | None = None) -> np.ndarray:
        """Replicates of the adjusted gap at ``ref_shape`` (default the best), (B, M)."""
        return self._boot_val - self._fit(ref_shape).boot_adjusted

    def conf_int(self, alpha: float | None = None, ref_shape: float | None = None) -> pd.DataFrame:
        """Per model: adjusted accuracy and adjusted gap with percentile intervals,
        at ``ref_shape`` (default the best), and the raw gap's interval."""
        k = self.ref_shape if ref_shape is None else ref_shape
        fit = self._fit(k)
        acc = self._interval(fit.boot_adjusted, alpha)
        gap = self._interval(self.bootstrap_gap(k), alpha)
        raw = self._interval(self._boot_val - self._boot_mf, alpha)
        return pd.DataFrame({"adjusted_accuracy": fit.adjusted, "accuracy_lower": acc[0], "accuracy_upper": acc[1],
                             "adjusted_gap": self.reference_accuracy.to_numpy() - fit.adjusted,
                             "gap_lower": gap[0], "gap_upper": gap[1], "raw_gap": self.gap.to_numpy(),
                             "raw_lower": raw[0], "raw_upper": raw[1]},
                            index=pd.Index(self.models, name="model"))

    def kept_shapes(self, alpha: float | None = None) -> tuple[float, ...]:
        """Reference shapes whose J exceeds the best by less than the chi-square(1) quantile."""
        a = self.alpha if alpha is None else alpha
        crit = stats.chi2.ppf(1 - a, 1)
        best = self.objectives[self.ref_shape]
        return tuple(k for k, j in self.objectives.items() if j - best <= crit)

    def mean_gap(self, alpha: float | None = None, ref_shape: float | None = None) -> dict:
        """The adjusted gap averaged over models: value and interval."""
        k = self.ref_shape if ref_shape is None else ref_shape
        draws = self.bootstrap_gap(k).mean(axis=1)
        lo, hi = self._interval(draws, alpha)
        value = float((self.reference_accuracy.to_numpy() - self._fit(k).adjusted).mean())
        return {"value": value, "ci": [float(lo), float(hi)]}

    def identified_range(self, alpha: float | None = None) -> pd.DataFrame:
        """Per model and for the mean (row ``mean``): the range of adjusted gaps over
        the kept reference shapes (``low``, ``high``) and the union of their intervals
        (``ci_low``, ``ci_high``)."""
        kept = self.kept_shapes(alpha)
        rows = {}
        for key in (*self.models, "mean"):
            points, los, his = [], [], []
            for k in kept:
                if key == "mean":
                    mg = self.mean_gap(alpha, k)
                    points.append(mg["value"])
                    los.append(mg["ci"][0])
                    his.append(mg["ci"][1])
                else:
                    ci = self.conf_int(alpha, k).loc[key]
                    points.append(ci["adjusted_gap"])
                    los.append(ci["gap_lower"])
                    his.append(ci["gap_upper"])
            rows[key] = {"low": min(points), "high": max(points), "ci_low": min(los), "ci_high": max(his)}
        return pd.DataFrame.from_dict(rows, orient="index")

    def profile(self, alpha: float | None = None) -> pd.DataFrame:
        """Per reference shape: J, delta J, kept, mean adjusted gap and its interval,
        the reference's mean s."""
        kept = set(self.kept_shapes(alpha))
        best = self.objectives[self.ref_shape]
        mids = midpoints(self.fits[self.ref_shape].reference.shape[1])
        rows = []
        for k, j in self.objectives.items():
            row = {"ref_shape": k, "J": j, "delta_J": j - best, "kept": k in kept}
            if k in self.fits:
                f, mg = self.fits[k], self.mean_gap(alpha, k)
                row.update({"ref_location": f.model.ref_location, "ref_class_share": f.model.ref_class_share,
                            "ref_mean_s": float(f.reference.mean(axis=0) @ mids),
                            "mean_gap": mg["value"], "gap_lower": mg["ci"][0], "gap_upper": mg["ci"][1]})
            rows.append(row)
        return pd.DataFrame(rows).set_index("ref_shape")

    # -- read-outs -------------------------------------------------------------
    def reference_distribution(self, ref_shape: float | None = None) -> np.ndarray:
        """The fitted reference distribution of s averaged over classes, masses on
        equal cells of [0, 1], at ``ref_shape`` (default the best)."""
        return self._fit(ref_shape).reference.mean(axis=0)

    def moments_table(self) -> pd.DataFrame:
        """Observed and fitted class summaries (means over classes); |T| is not
        matched (the model is conditioned on full Threshold0.7 sets)."""
        observed = self.observed.mean(axis=0)
        fitted = np.full(len(SUMMARIES), np.nan)
        fitted[list(MEAN_MOMENTS)] = observed[list(MEAN_MOMENTS)] - self.moment_fit.moments.mean(axis=0)[
            :len(MEAN_MOMENTS)]
        return pd.DataFrame({"observed": observed, "fitted": fitted}, index=pd.Index(SUMMARIES, name="summary"))

    def summary(self, alpha: float | None = None) -> Summary:
        """Per-model table (percentage points) and the notes a reader needs."""
        a = self.alpha if alpha is None else alpha
        ci = self.conf_int(a)
        rng = self.identified_range(a)
        table = pd.DataFrame({"val acc": 100 * self.reference_accuracy, "MF acc": 100 * self.replication_accuracy,
                              "raw gap": 100 * self.gap, "adj gap": 100 * ci["adjusted_gap"],
                              "lo": 100 * ci["gap_lower"], "hi": 100 * ci["gap_upper"],
                              "range lo": 100 * rng["ci_low"].reindex(ci.index),
                              "range hi": 100 * rng["ci_high"].reindex(ci.index)})
        level = round(100 * (1 - a), 1)
        mg = self.mean_gap(a)
        raw = self._interval((self._boot_val - self._boot_mf).mean(axis=1), a)
        m = rng.loc["mean"]
        fit = self.moment_fit
        notes = [
            f"{self.n_classes} classes ({self.info.get('classes', '?')}), {len(self.models)} models; percentage points; "
            f"{level:g}% class-bootstrap percentile intervals, {self.class_weights.shape[0]} replicates",
            f"mean raw gap (val - MatchedFrequency): {100 * self.gap.mean():.2f} [{100 * raw[0]:.2f}, {100 * raw[1]:.2f}]",
            f"mean adjusted gap at reference shape {self.ref_shape:g}: {100 * mg['value']:.2f} "
            f"[{100 * mg['ci'][0]:.2f}, {100 * mg['ci'][1]:.2f}]",
            f"identified range over the reference shapes the data keep ({', '.join(f'{k:g}' for k in self.kept_shapes(a))}): "
            f"{100 * m['low']:.2f} to {100 * m['high']:.2f}; with intervals {100 * m['ci_low']:.2f} to {100 * m['ci_high']:.2f}",
            f"without a shape for the reference (same bin shares, any distribution): mean adjusted gap between "
            f"{100 * self.bounds['mean_gap_low']:.2f} and {100 * self.bounds['mean_gap_high']:.2f} (at the estimates)",
            f"Engstrom et al. 2020 (their own annotations; a comparison only): {100 * ENGSTROM_2020['remaining_gap']:.1f} "
            f"± {100 * ENGSTROM_2020['remaining_gap_se']:.1f} of {100 * ENGSTROM_2020['raw_gap']:.1f} remain",
            f"construction model ({self.construction_model.pool_family} pool): J = {fit.objective:.1f} on {fit.dof} "
            f"dof (p = {stats.chi2.sf(fit.objective, fit.dof):.2g}); first step from {len(fit.start_objectives)} "
            f"starts, J {', '.join(f'{j:.0f}' for j in fit.start_objectives)}",
        ]
        return Summary("ImageNet-v2 selection bias from public data: adjusted MatchedFrequency gaps", table=table,
                       notes=notes, float_format="8.2f")

    def to_dict(self, alpha: float | None = None) -> dict:
        """JSON-able results: per model (bias-contract keys plus intervals and
        range), summary, profile, the fitted model, bounds and assumptions."""
        a = self.alpha if alpha is None else alpha
        ci = self.conf_int(a)
        rng = self.identified_range(a)
        models = {}
        for i, name in enumerate(self.models):
            row = ci.loc[name]
            models[name] = {
                "reference_accuracy": float(self.reference_accuracy[name]),
                "replication_accuracy": float(self.replication_accuracy[name]),
                "gap": float(self.gap[name]), "gap_ci": [float(row["raw_lower"]), float(row["raw_upper"])],
                "adjusted": {"v2public": {
                    "replication_accuracy": float(row["adjusted_accuracy"]), "gap": float(row["adjusted_gap"]),
                    "ci": [float(row["gap_lower"]), float(row["gap_upper"])],
                    "gap_ci": [float(row["gap_lower"]), float(row["gap_upper"])],
                    "replication_accuracy_ci": [float(row["accuracy_lower"]), float(row["accuracy_upper"])],
                    "identified_range": [float(rng.loc[name, "low"]), float(rng.loc[name, "high"])],
                    "identified_range_ci": [float(rng.loc[name, "ci_low"]), float(rng.loc[name, "ci_high"])],
                    "shape_free_bounds": [float(self.bounds["gap_low"][i]), float(self.bounds["gap_high"][i])]}}}
        raw = self._interval((self._boot_val - self._boot_mf).mean(axis=1), a)
        mean_range = rng.loc["mean"]
        fit = self.moment_fit
        return {
            "reference": REFERENCE_ID, "replication": SET_IDS[0], "models": models,
            "summary": {"mean_gap": float(self.gap.mean()), "mean_gap_ci": [float(raw[0]), float(raw[1])],
                        "adjusted_mean_gap": {"v2public": self.mean_gap(a)},
                        "identified_range": [float(mean_range["low"]), float(mean_range["high"])],
                        "identified_range_ci": [float(mean_range["ci_low"]), float(mean_range["ci_high"])],
                        "shape_free_bounds": [float(self.bounds["mean_gap_low"]), float(self.bounds["mean_gap_high"])],
                        "engstrom2020": dict(ENGSTROM_2020)},
            "confidence_level": 1 - a, "n_bootstrap": int(self.class_weights.shape[0]),
            "n_classes": self.n_classes, "data": self.info,
            "ref_shape": self.ref_shape, "kept_ref_shapes": list(self.kept_shapes(a)),
            "profile": self.profile(a).reset_index().to_dict(orient="records"),
            "construction_model": dataclasses.asdict(self.construction_model),
            "moment_fit": {"J": fit.objective, "dof": fit.dof, "p_value": float(stats.chi2.sf(fit.objective, fit.dof)),
                           "first_step_J_by_start": [float(j) for j in fit.start_objectives],
                           "parameters": dict(zip(fit.names, map(float, fit.theta))),
                           "standard_errors": dict(zip(fit.names, map(float, np.sqrt(np.diag(fit.covariance())))))},
            "observed_summaries": dict(zip(SUMMARIES, map(float, self.observed.mean(axis=0)))),
            "curves": {"a": dict(zip(self.models, map(float, self.fits[self.ref_shape].curves.a))),
                       "b": dict(zip(self.models, map(float, self.fits[self.ref_shape].curves.b))),
                       "class_effect_sd": float(self.fits[self.ref_shape].curves.delta.std())},
            "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(self.estimator).items()},
        }


def _bin_probability(layout: ClassLayout, s: np.ndarray) -> np.ndarray:
    """P(MatchedFrequency bin b | s) for an annotated reference image, (len(s), 5),
    over its number of annotations (the layout's reference HIT shares)."""
    out = np.zeros((len(s), len(EDGES) + 1))
    for g, share in enumerate(layout.ref_hit_shares):
        n = ANNOTATIONS_PER_HIT * (g + 1)
        k = np.arange(n + 1)
        pmf = stats.binom.pmf(k[None, :], n, s[:, None])
        out += share * pmf @ np.eye(len(EDGES) + 1)[frequency_bin(k / n, EDGES)]
    return out


def _shape_free_bounds(fit: ShapeFit, layout: ClassLayout, val: np.ndarray) -> dict[str, Any]:
    """Smallest and largest adjusted accuracy and gap over ALL reference
    distributions with the fitted one's shares of MatchedFrequency bins 3 and 4
    (the shares the overlaps identify), at the estimated curves averaged over
    classes: a linear programme solved by enumerating its vertices (at most three
    cells carry mass). ``val`` (M,): val accuracies."""
    mids = midpoints(fit.reference.shape[1])
    bins = _bin_probability(layout, mids)                                 # (J, 5)
    constraints = np.vstack([np.ones(len(mids)), bins[:, 3], bins[:, 4]])  # (3, J)
    target = constraints @ fit.reference.mean(axis=0)
    idx = np.array([(i, j, k) for i in range(len(mids)) for j in range(i + 1, len(mids))
                    for k in range(j + 1, len(mids))])
    mats = constraints[:, idx].transpose(1, 0, 2)                           # (V, 3, 3)
    ok = np.abs(np.linalg.det(mats)) > 1e-12
    sol = np.linalg.solve(mats[ok], np.broadcast_to(target, (int(ok.sum()), 3))[..., None])[..., 0]
    feasible = np.all(sol >= -1e-10, axis=1)
    verts, weights = idx[ok][feasible], np.clip(sol[feasible], 0, None)
    curves = special.ndtr(fit.curves.a[:, None, None] + fit.curves.delta[None, :, None]
                          + fit.curves.b[:, None, None] * mids).mean(axis=1)           # (M, J)
    values = np.einsum("vk,mvk->mv", weights, curves[:, verts])                        # (M, V)
    mean_values = values.mean(axis=0)
    return {"accuracy_low": values.min(axis=1), "accuracy_high": values.max(axis=1),
            "gap_low": val - values.max(axis=1), "gap_high": val - values.min(axis=1),
            "mean_gap_low": float(val.mean() - mean_values.max()), "mean_gap_high": float(val.mean() - mean_values.min()),
            "bin_shares": target[1:].tolist()}
