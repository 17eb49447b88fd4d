"""The world a planned study is simulated in: how true selection frequencies
are distributed among reference images and among the candidate pool, how each
model's accuracy rises with s, and the true shift.

A :class:`Scenario` comes from a simulator preset (:meth:`Scenario.from_preset`)
or from pilot votes (:meth:`Scenario.from_pilot`): the reference prior is
fitted to the pilot's reference images; the pool prior to its replication
images (selection-aware, as the deconvolution does) when it has any, else it
is assumed; each model's accuracy curve f(s) is fitted to the pilot's
correctness when given (the simulator's probit form, by maximum likelihood
over the posterior of s), else assumed. Every scenario lists what was
measured and what was assumed.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd
from scipy import optimize, special

from replication.deconvolution import cell_edges
from replication.errors import FitError, InputError
from replication.io.tables import model_columns
from replication.priors import BetaMixturePrior
from replication.priors._base import normalize_rows
from replication.simulate import SimulationConfig, accuracy_curve, model_curves

#: cells of [0, 1] for fitting the curves, and for the population truth
CURVE_CELLS = 100
TRUTH_CELLS = 4000
#: probabilities are kept this far from 0 and 1 in the curves' log-likelihood
_CLIP = 1e-9


class Prior(Protocol):
    """A distribution of true selection frequency that can be sampled and discretized."""

    def sample(self, size: int, rng: np.random.Generator) -> np.ndarray: ...

    def cell_mass(self, edges: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class BetaPrior:
    """Beta(a, b) of the true selection frequency (the simulator presets' priors)."""

    a: float
    b: float

    def sample(self, size: int, rng: np.random.Generator) -> np.ndarray:
        """``size`` draws, shape (size,)."""
        return rng.beta(self.a, self.b, size)

    def cell_mass(self, edges: np.ndarray) -> np.ndarray:
        """Probability of each cell between consecutive ``edges``, shape (C,)."""
        return np.diff(special.betainc(self.a, self.b, np.asarray(edges, float)))

    def __str__(self) -> str:
        return f"Beta({self.a:g}, {self.b:g})"


@dataclass(frozen=True)
class ProbitCurves:
    """The simulator's curves: P(correct | s) = Phi(a_m + b_m (s - pivot) - shift)."""

    curves: pd.DataFrame
    pivot: float

    def __call__(self, s: np.ndarray, shift: float = 0.0) -> np.ndarray:
        """P(correct) of every model at each s, shape (len(s), M)."""
        return accuracy_curve(np.asarray(s, float), self.curves, self.pivot, shift)


@dataclass(frozen=True)
class Scenario:
    """What a planned study is simulated from.

    reference_prior, pool_prior : Prior
        True selection frequency of reference images and of the candidate pool.
    curves : callable ``(s, shift) -> (N, M)``
        P(correct | s) of each model.
    shift : float
        True distribution shift (probit units) on replication images.
    models : tuple of str
    measured, assumed : tuple of str
        What the scenario took from data and what it assumed.
    """

    reference_prior: Prior
    pool_prior: Prior
    curves: object
    shift: float
    models: tuple[str, ...]
    measured: tuple[str, ...] = field(default=())
    assumed: tuple[str, ...] = field(default=())

    def true_mean_gap(self) -> float:
        """The estimand: mean over models of integral (f_m - f_m shifted) g_ref, by quadrature."""
        edges = cell_edges(TRUTH_CELLS)
        mid = (edges[1:] + edges[:-1]) / 2
        mass = self.reference_prior.cell_mass(edges)
        return float(mass @ (self.curves(mid) - self.curves(mid, self.shift)).mean(axis=1))

    def mean_correct(self, s: np.ndarray, rng: np.random.Generator, shift: float = 0.0) -> np.ndarray:
        """Each image's share of models that classify it correctly, shape (N,): one
        Bernoulli draw per (image, model), independent given s."""
        return (rng.random((len(s), len(self.models))) < self.curves(s, shift)).mean(axis=1)

    def describe(self) -> dict:
        """The scenario as JSON-able text and numbers."""
        return {"reference_prior": str(self.reference_prior), "pool_prior": str(self.pool_prior),
                "shift_probit": self.shift, "models": len(self.models), "true_mean_gap": self.true_mean_gap(),
                "measured": list(self.measured), "assumed": list(self.assumed)}

    @classmethod
    def from_preset(cls, name: str, *, n_models: int | None = None, shift: float | None = None,
                    pool_prior: tuple[float, float] | None = None, seed: int = 0) -> "Scenario":
        """The simulator preset ``name`` (:data:`replication.simulate.PRESETS`)."""
        config = preset_config(name, n_models=n_models)
        curves = model_curves(config, np.random.default_rng(seed))
        return cls(BetaPrior(*config.reference_prior), BetaPrior(*(pool_prior or config.candidate_prior)),
                   ProbitCurves(curves, config.pivot), config.shift if shift is None else float(shift),
                   tuple(curves.index), assumed=(f"everything: simulator preset {name!r}",))

    @classmethod
    def from_pilot(cls, annotations: pd.DataFrame, correctness: pd.DataFrame | None = None, *,
                   reference: str, replication: str, selection_edges: tuple[float, ...] | None,
                   assume: str = "engstrom2020", shift: float | None = None,
                   pool_prior: tuple[float, float] | None = None, n_models: int | None = None,
                   random_state: int = 0, path: str = "<pilot>") -> "Scenario":
        """Fit what the pilot measures; take the rest from the preset ``assume``.

        ``annotations`` is a validated annotations table; ``correctness`` (validated,
        optional) must cover the pilot's reference images.
        """
        config = preset_config(assume, n_models=n_models)
        measured, assumed = [], []
        ref = annotations[annotations["dataset"] == reference]
        if ref.empty:
            raise InputError(f"{path}: the pilot has no {reference} (reference) images; datasets present: "
                             f"{', '.join(sorted(annotations['dataset'].unique()))}")
        ref_prior = _fit_prior(ref, None, random_state, f"{path}: reference images")
        measured.append(f"reference prior g_ref: beta mixture fitted to {len(ref):,} {reference} images "
                        f"({_annotators(ref)} annotators)")

        rep = annotations[annotations["dataset"] == replication]
        pool = None
        if pool_prior is not None:
            assumed.append(f"pool prior: Beta{tuple(pool_prior)} (--pool-prior)")
        elif rep.empty:
            assumed.append(f"pool prior: {BetaPrior(*config.candidate_prior)} from preset {assume!r}; the pilot "
                           f"has no {replication} images, and reference images say nothing about the pool")
        else:
            try:
                pool = _fit_prior(rep, selection_edges, random_state, f"{path}: replication images")
                how = "as a random sample of the pool" if selection_edges is None else \
                    f"as selected within bins {selection_edges} (truncated-data EM)"
                measured.append(f"pool prior: beta mixture fitted to {len(rep):,} {replication} images {how}")
            except FitError as exc:
                assumed.append(f"pool prior: {BetaPrior(*config.candidate_prior)} from preset {assume!r}; "
                               f"the pilot's {replication} images cannot give it ({exc})")
        if pool is None:
            pool = BetaPrior(*(pool_prior or config.candidate_prior))

        if correctness is None:
            curves = model_curves(config, np.random.default_rng(random_state))
            models, curve_fn = tuple(curves.index), ProbitCurves(curves, config.pivot)
            assumed.append(f"accuracy curves f(s): the {len(models)} probit curves of preset {assume!r} "
                           "(give --pilot-correct to fit them)")
        else:
            curve_fn = pilot_curves(ref, correctness, ref_prior, config.pivot, path)
            models = tuple(curve_fn.curves.index)
            measured.append(f"accuracy curves f(s): probit curves of {len(models)} models fitted to the pilot's "
                            f"{reference} images (extrapolated below the s they reach)")
        shift_value = config.shift if shift is None else float(shift)
        assumed.append(f"true shift: {shift_value:g} probit units on replication images "
                       f"({'--shift' if shift is not None else f'preset {assume!r}'})")
        return cls(ref_prior, pool, curve_fn, shift_value, models, tuple(measured), tuple(assumed))


def preset_config(name: str, *, n_models: int | None = None) -> SimulationConfig:
    """The preset's configuration (InputError naming the valid presets)."""
    try:
        config = SimulationConfig.preset(name)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    return config if n_models is None else dataclasses.replace(config, n_models=int(n_models))


def _annotators(df: pd.DataFrame) -> str:
    lo, hi = int(df["n_annotators"].min()), int(df["n_annotators"].max())
    return str(lo) if lo == hi else f"{lo}-{hi}"


def _fit_prior(df: pd.DataFrame, selection_edges, random_state: int, what: str) -> BetaMixturePrior:
    try:
        return BetaMixturePrior(random_state=random_state).fit(
            n_selected=df["n_selected"].to_numpy(), n_annotators=df["n_annotators"].to_numpy(),
            selection_edges=selection_edges)
    except FitError as exc:
        raise FitError(f"{what}: {exc}") from None


def pilot_curves(ref: pd.DataFrame, correctness: pd.DataFrame, prior: BetaMixturePrior, pivot: float,
                 path: str) -> ProbitCurves:
    """Each model's probit curve P(correct | s) = Phi(a + b (s - pivot)), b >= 0 (the
    simulator's family), fitted by maximum likelihood to the pilot's reference
    images: an image at level (n, k) is correct with probability
    E[Phi(a + b (s - pivot)) | k, n] under the reference prior. The form
    extrapolates the curve below the s that reference images reach."""
    models = model_columns(correctness)
    merged = ref.merge(correctness, on=["dataset", "image_id"], how="left", indicator=True, suffixes=("", "_cor"))
    missing = (merged["_merge"] == "left_only").to_numpy()
    if missing.any():
        first = ", ".join(merged.loc[missing, "image_id"].head(3))
        raise InputError(f"{path}: {int(missing.sum())} pilot image(s) have no correctness row (first: {first})")
    levels, level = np.unique(merged[["n_annotators", "n_selected"]].to_numpy(), axis=0, return_inverse=True)
    level = level.reshape(-1)
    count = np.bincount(level, minlength=len(levels)).astype(float)
    correct = np.stack([np.bincount(level, weights=merged[m].to_numpy(float), minlength=len(levels))
                        for m in models], axis=1)                                        # (L, M)
    edges = cell_edges(CURVE_CELLS)
    x = (edges[1:] + edges[:-1]) / 2 - pivot
    posterior = normalize_rows(prior.level_cell_joint(n_selected=levels[:, 1], n_annotators=levels[:, 0],
                                                      edges=edges))                        # (L, C)

    def negloglik(theta: np.ndarray, c: np.ndarray) -> float:
        p = np.clip(posterior @ special.ndtr(theta[0] + theta[1] * x), _CLIP, 1 - _CLIP)
        return -float(c @ np.log(p) + (count - c) @ np.log1p(-p))

    params = []
    for j in range(len(models)):  # a loop over models (tens), two parameters each
        start = [special.ndtri(np.clip(correct[:, j].sum() / count.sum(), 0.01, 0.99)), 1.0]
        fit = optimize.minimize(negloglik, start, args=(correct[:, j],), method="L-BFGS-B",
                                bounds=[(-10.0, 10.0), (0.0, 50.0)])
        params.append(fit.x)
    params = np.array(params)
    return ProbitCurves(pd.DataFrame({"intercept": params[:, 0], "slope": params[:, 1]},
                                     index=pd.Index(models, name="model")), pivot)
