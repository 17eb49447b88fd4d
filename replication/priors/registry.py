"""The registry of prior families: one place from which every list of prior
names, labels and deconvolution methods derives.

A family is a :class:`~replication.priors.SelectionFrequencyPrior` subclass
registered under a name (timm's ``@register_model`` pattern)::

    @register_prior("betabinomial", label="beta mixture")
    class BetaMixturePrior(SelectionFrequencyPrior): ...

Registering a family makes it a deconvolution method of
:class:`~replication.estimators.results.SelectionBiasEstimator` and
``replication bias --methods`` under the same name, a default method of
``bias``, ``placebo`` and ``demo``, and a curve on the Engstrom-style figures.
Adding a family is one module with the class and its registration, plus its
import in :mod:`replication.priors`.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from replication.priors._base import SelectionFrequencyPrior


@dataclass(frozen=True)
class PriorFamily:
    """A registered family of priors.

    name : str                       the method name (``bias --methods NAME``)
    prior : type                     the :class:`SelectionFrequencyPrior` subclass
    label : str                      how figures and reports name it
    options : dict                   constructor arguments for deconvolution fits (e.g. a coarser grid)
    """

    name: str
    prior: type[SelectionFrequencyPrior]
    label: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def create(self, random_state: int | np.random.Generator | None = None) -> SelectionFrequencyPrior:
        """An unfitted prior with the family's deconvolution options; ``random_state``
        goes to families whose fits draw random numbers (those with that parameter)."""
        params = dict(self.options)
        if "random_state" in self.prior._get_param_names():
            params["random_state"] = random_state
        return self.prior(**params)


#: name -> family, in registration order
PRIORS: dict[str, PriorFamily] = {}


def register_prior(name: str, *, label: str, **options: Any) -> Callable[[type], type]:
    """Class decorator registering a prior family under ``name`` (warns when a
    name is registered twice; the later one wins). ``options`` are the
    constructor arguments used by the deconvolution."""
    def deco(cls: type[SelectionFrequencyPrior]) -> type[SelectionFrequencyPrior]:
        if name in PRIORS:
            warnings.warn(f"prior family {name!r} registered twice; the later one wins", stacklevel=2)
        PRIORS[name] = PriorFamily(name, cls, label, dict(options))
        return cls
    return deco


def prior_family(name: str) -> PriorFamily:
    """The family registered under ``name``; ValueError naming the known ones otherwise."""
    if name not in PRIORS:
        raise ValueError(f"unknown prior {name!r}; choose from {', '.join(PRIORS)}")
    return PRIORS[name]
