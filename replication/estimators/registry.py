"""Registry of adjustment methods (``naive``, ``jackknife``, ``betabinomial``, ``npmle``).

A method maps a :class:`~replication.study.LevelTable` (possibly batched over
bootstrap replicates) to an :class:`Adjusted` estimate. Register one with::

    @register_method("naive")
    def naive(table: LevelTable) -> Adjusted: ...
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np

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
    """

    accuracy: np.ndarray
    level_weights: np.ndarray | None = None


Method = Callable[[LevelTable], Adjusted]
METHODS: dict[str, Method] = {}


def register_method(name: str) -> Callable[[Method], Method]:
    """Decorator adding a method under ``name`` (warns when a name is reused)."""
    def deco(fn: Method) -> Method:
        if name in METHODS:
            warnings.warn(f"adjustment method {name!r} registered twice; the later one wins", stacklevel=2)
        METHODS[name] = fn
        return fn
    return deco
