"""Registry of adjustment methods: ``naive`` and ``jackknife``, then one
deconvolution method per registered prior family (``betabinomial``,
``npmle``, ...; see :mod:`replication.priors.registry`).

A method maps a :class:`~replication.study.LevelTable` (possibly batched over
bootstrap replicates) to an :class:`Adjusted` estimate. Register one with::

    @register_method("naive")
    def naive(table: LevelTable) -> Adjusted: ...

A prior family needs no registration here: :data:`METHODS` lists it as soon
as it is registered with :func:`replication.priors.register_prior`.
"""
from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from replication.priors import PRIORS
from replication.study import LevelTable


@dataclass(frozen=True)
class Adjusted:
    """One method's estimate on one (possibly batched) level table.

    accuracy : ndarray of shape (..., M)
        Adjusted replication accuracy: the expected accuracy on replication
        images whose TRUE selection frequencies follow the reference images'.
    level_weights : ndarray of shape (..., L) or None
        Importance weight of a replication image at each level, scaled so that
        the mean weight over replication images is 1; then the weighted
        accuracy ``sum_i w_i c_i / N_rep`` equals ``accuracy``. None when the
        method has no such weights.
    warm_start : object or None
        What the method fitted that its fits on bootstrap replicates of the
        same data may start from (passed back as the option ``warm_start``);
        None when it has nothing to reuse.
    """

    accuracy: np.ndarray
    level_weights: np.ndarray | None = None
    warm_start: Any = None


Method = Callable[[LevelTable], Adjusted]


class MethodRegistry(Mapping[str, Method]):
    """Adjustment methods by name, in order: those registered with
    :func:`register_method`, then a deconvolution method for each prior family
    of :data:`replication.priors.PRIORS` (read when asked, so a family
    registered later is listed too)."""

    def __init__(self) -> None:
        self._registered: dict[str, Method] = {}

    def _current(self) -> dict[str, Method]:
        from replication.estimators.deconvolved import deconvolution_method  # it imports this module

        return {**self._registered, **{name: deconvolution_method(name) for name in PRIORS
                                       if name not in self._registered}}

    def __getitem__(self, name: str) -> Method:
        return self._current()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._current())

    def __len__(self) -> int:
        return len(self._current())

    def __repr__(self) -> str:
        return f"MethodRegistry({', '.join(self)})"


METHODS = MethodRegistry()


def register_method(name: str) -> Callable[[Method], Method]:
    """Decorator adding a method under ``name`` (warns when a name is reused)."""
    def deco(fn: Method) -> Method:
        if name in METHODS._registered:
            warnings.warn(f"adjustment method {name!r} registered twice; the later one wins", stacklevel=2)
        METHODS._registered[name] = fn
        return fn
    return deco
