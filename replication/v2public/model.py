"""The parametric model of ImageNet-v2's three-set construction.

Every candidate i of class c has a true selection frequency s_i drawn from the
class's POOL distribution, and every reference (ImageNet val) image of class c
one from the class's REFERENCE distribution. Classes differ: with
``x_c = log(pool size of c) - centre`` and a standard normal class effect
``eta_c``, the class's deviation on the logit scale is

    u_c = pool_size_slope * x_c + pool_spread * eta_c

(Recht et al. collected more candidates for classes whose candidates were
rarely good, so a class's pool size says something about its quality), and

    pool of class c:      family(location = pool_location + u_c,      shape = pool_shape)
    reference of class c: family(location = ref_location + ref_class_share * u_c, shape = ref_shape)

Families (:data:`FAMILIES`): ``beta`` (location = logit of the mean, shape =
the concentration a + b), ``logitnormal`` (location = mean of logit s, shape =
its standard deviation) and ``mixture`` (images that show the class, a Beta of
mean expit(pool_tail) and concentration shape, in share expit(location); the
rest Beta(0.5, 4.5)).

The same model drives the construction simulator
(:mod:`replication.v2public.construction`) and the public-data estimator
(:mod:`replication.v2public.estimator`), which fits its parameters
(:meth:`ConstructionModel.to_vector`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import special

#: cells of [0, 1] on which distributions of s are discretized
N_CELLS = 100


def cell_edges(n_cells: int = N_CELLS) -> np.ndarray:
    """Evenly spaced cell edges on [0, 1], shape (n_cells + 1,)."""
    return np.linspace(0.0, 1.0, int(n_cells) + 1)


def _beta_params(location: np.ndarray, shape: float) -> tuple[np.ndarray, np.ndarray]:
    mean = special.expit(location)
    return mean * shape, (1.0 - mean) * shape


#: locations further apart than this (logit scale) are not interpolated between
_LOCATION_STEP = 0.02
#: locations are clipped to +- this (logit scale): beyond it every mass sits in the first or last cell,
#: and a trial step of the moment fit far outside would ask for billions of knots
_LOCATION_LIMIT = 30.0


def _beta_cells_exact(location: np.ndarray, shape: float, edges: np.ndarray) -> np.ndarray:
    a, b = _beta_params(np.asarray(location, float), shape)
    cdf = special.betainc(a[..., None], b[..., None], edges)
    return np.diff(cdf, axis=-1)


def _interpolated(exact: Callable[[np.ndarray], np.ndarray], location: np.ndarray) -> np.ndarray:
    """``exact(location)`` (cell masses, (..., C)) for few locations; for many, linear
    interpolation between exact masses on a grid of locations :data:`_LOCATION_STEP`
    apart (the incomplete beta function is the cost)."""
    loc = np.clip(np.asarray(location, float), -_LOCATION_LIMIT, _LOCATION_LIMIT)
    if loc.size <= 64:
        return exact(loc)
    lo, hi = float(loc.min()), float(loc.max())
    knots = np.linspace(lo, hi, max(2, int(np.ceil((hi - lo) / _LOCATION_STEP)) + 1))
    table = exact(knots)
    pos = np.clip((loc - lo) / max(knots[1] - knots[0], 1e-300), 0, len(knots) - 1)
    left = np.minimum(pos.astype(np.int64), len(knots) - 2)
    frac = (pos - left)[..., None]
    return (1.0 - frac) * table[left] + frac * table[left + 1]


def _beta_cells(location: np.ndarray, shape: float, tail: float, edges: np.ndarray) -> np.ndarray:
    return _interpolated(lambda loc: _beta_cells_exact(loc, shape, edges), location)


def _beta_sample(location: np.ndarray, shape: float, tail: float, rng: np.random.Generator) -> np.ndarray:
    a, b = _beta_params(np.asarray(location, float), shape)
    return rng.beta(a, b)


def _logitnormal_cells(location: np.ndarray, shape: float, tail: float, edges: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        z = (special.logit(edges) - np.asarray(location, float)[..., None]) / shape
    return np.diff(special.ndtr(z), axis=-1)


def _logitnormal_sample(location: np.ndarray, shape: float, tail: float, rng: np.random.Generator) -> np.ndarray:
    loc = np.asarray(location, float)
    return special.expit(loc + shape * rng.standard_normal(loc.shape))


#: the mixture family's component of images that do not show the class: Beta(mean 0.1, concentration 5)
JUNK = (0.5, 4.5)


def _mixture_cells(location: np.ndarray, shape: float, tail: float, edges: np.ndarray) -> np.ndarray:
    share = special.expit(np.asarray(location, float))[..., None]
    good = _beta_cells_exact(np.array([tail]), shape, edges)[0]
    junk = np.diff(special.betainc(JUNK[0], JUNK[1], edges))
    return share * good + (1.0 - share) * junk


def _mixture_sample(location: np.ndarray, shape: float, tail: float, rng: np.random.Generator) -> np.ndarray:
    share = special.expit(np.asarray(location, float))
    a, b = _beta_params(np.full(share.shape, tail), shape)
    return np.where(rng.random(share.shape) < share, rng.beta(a, b), rng.beta(*JUNK, size=share.shape))


@dataclass(frozen=True)
class Family:
    """A within-class distribution of s: cell masses and samples from a
    location (logit scale), a shape and (mixture only) a tail parameter."""

    name: str
    cells: Callable[[np.ndarray, float, float, np.ndarray], np.ndarray]
    sample: Callable[[np.ndarray, float, float, np.random.Generator], np.ndarray]
    doc: str
    uses_tail: bool = False


FAMILIES: dict[str, Family] = {
    "beta": Family("beta", _beta_cells, _beta_sample,
                   "Beta; location = logit of the mean, shape = concentration a + b"),
    "logitnormal": Family("logitnormal", _logitnormal_cells, _logitnormal_sample,
                          "logit s ~ Normal; location = its mean, shape = its sd"),
    "mixture": Family("mixture", _mixture_cells, _mixture_sample,
                      "images that show the class, Beta(mean expit(tail), concentration shape), with share "
                      "expit(location), and images that do not, Beta(0.5, 4.5)", uses_tail=True),
}


def family(name: str) -> Family:
    """The registered family ``name`` (ValueError listing the valid names)."""
    if name not in FAMILIES:
        raise ValueError(f"unknown family {name!r}; valid: {', '.join(FAMILIES)}")
    return FAMILIES[name]


@dataclass(frozen=True)
class ConstructionModel:
    """Distributions of true selection frequency of ImageNet-v2's candidate
    pool and of the reference (ImageNet val) images, per class (module doc).

    Parameters
    ----------
    pool_location : float
        Logit location of the pool of a class of average log pool size.
    pool_size_slope : float
        Change of a class's logit location per unit of log pool size.
    pool_spread : float
        Standard deviation of the class effects on the logit scale (>= 0).
    pool_shape : float
        Within-class shape of the pool (see :data:`FAMILIES`).
    pool_tail : float
        ``mixture`` family only: logit of the mean s of the images that show the class.
    ref_location : float
        Logit location of the reference images of a class of average log pool size.
    ref_shape : float
        Within-class shape of the reference distribution.
    ref_class_share : float
        Share of a class's pool deviation u_c that its reference distribution shares.
    pool_family, ref_family : str
        Names in :data:`FAMILIES` (the reference's may not be ``mixture``).
    """

    pool_location: float = -1.3
    pool_size_slope: float = -1.25
    pool_spread: float = 0.7
    pool_shape: float = 1.2
    ref_location: float = 0.8
    ref_shape: float = 8.0
    ref_class_share: float = 0.25
    pool_tail: float = 2.0
    pool_family: str = "beta"
    ref_family: str = "beta"

    #: the parameters that can be fitted, in the order of :meth:`to_vector`
    PARAMETERS = ("pool_location", "pool_size_slope", "pool_spread", "pool_shape", "pool_tail", "ref_location",
                  "ref_shape", "ref_class_share")
    #: parameters estimated on the log scale (positive)
    LOG_PARAMETERS = ("pool_spread", "pool_shape", "ref_shape")

    def parameters(self) -> tuple[str, ...]:
        """The parameters of this model's families (``pool_tail`` only for ``mixture``)."""
        return tuple(p for p in self.PARAMETERS if p != "pool_tail" or family(self.pool_family).uses_tail)

    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""
        family(self.pool_family)
        if family(self.ref_family).uses_tail:
            raise ValueError(f"ref_family {self.ref_family!r} is not available for the reference")
        for name in self.PARAMETERS:
            if not np.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be finite, got {getattr(self, name)}")
        if self.pool_spread < 0:
            raise ValueError(f"pool_spread must be >= 0, got {self.pool_spread}")
        for name in ("pool_shape", "ref_shape"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")

    def to_vector(self) -> np.ndarray:
        """The parameters of :meth:`parameters` as an unconstrained vector (logs of the positive ones)."""
        return np.array([np.log(max(getattr(self, p), 1e-8)) if p in self.LOG_PARAMETERS else getattr(self, p)
                         for p in self.parameters()], dtype=float)

    def from_vector(self, theta: np.ndarray, fixed: tuple[str, ...] = ()) -> "ConstructionModel":
        """A copy with the parameters set from ``theta`` (see :meth:`to_vector`);
        names in ``fixed`` keep this model's values."""
        values = {}
        for p, v in zip(self.parameters(), np.asarray(theta, float)):
            if p not in fixed:
                values[p] = float(np.exp(v)) if p in self.LOG_PARAMETERS else float(v)
        return dataclasses.replace(self, **values)

    # -- per-class distributions ------------------------------------------------
    def class_deviation(self, log_size: np.ndarray, eta: np.ndarray) -> np.ndarray:
        """u = pool_size_slope * log_size + pool_spread * eta (broadcasting)."""
        return self.pool_size_slope * np.asarray(log_size, float) + self.pool_spread * np.asarray(eta, float)

    def _pool(self, u: np.ndarray) -> tuple[Family, np.ndarray]:
        return family(self.pool_family), self.pool_location + np.asarray(u, float)

    def _ref(self, u: np.ndarray) -> tuple[Family, np.ndarray]:
        return family(self.ref_family), self.ref_location + self.ref_class_share * np.asarray(u, float)

    def pool_cells(self, u: np.ndarray, edges: np.ndarray) -> np.ndarray:
        """Cell masses of the pool distribution at class deviations ``u``, shape u.shape + (C,)."""
        fam, loc = self._pool(u)
        return fam.cells(loc, self.pool_shape, self.pool_tail, edges)

    def ref_cells(self, u: np.ndarray, edges: np.ndarray) -> np.ndarray:
        """Cell masses of the reference distribution at class deviations ``u``."""
        fam, loc = self._ref(u)
        return fam.cells(loc, self.ref_shape, 0.0, edges)

    def sample_pool(self, u: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One true s per entry of ``u`` (each entry's class deviation)."""
        fam, loc = self._pool(u)
        return fam.sample(loc, self.pool_shape, self.pool_tail, rng)

    def sample_ref(self, u: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One reference true s per entry of ``u``."""
        fam, loc = self._ref(u)
        return fam.sample(loc, self.ref_shape, 0.0, rng)
