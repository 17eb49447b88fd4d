"""What the public ImageNet-v2 record alone says about its selection bias.

- :mod:`~replication.v2public.data`: the public record (pool listing, memberships,
  correctness) as arrays: :class:`PublicData`, :func:`load_public_data`.
- :mod:`~replication.v2public.model`: the construction model (:class:`ConstructionModel`).
- :mod:`~replication.v2public.construction`: the whole three-set construction,
  simulated with known truth (:func:`simulate_construction`).
- :mod:`~replication.v2public.expected`, :mod:`~replication.v2public.gmm`,
  :mod:`~replication.v2public.curves`: expected memberships, the moment fit, f(s).
- :mod:`~replication.v2public.estimator`: :class:`PublicDataEstimator` ->
  :class:`PublicDataResults`.
"""
from replication.v2public.construction import (ConstructionConfig, PoolLayout, SimulatedConstruction,
                                               simulate_construction)
from replication.v2public.data import PublicData, load_public_data
from replication.v2public.estimator import ENGSTROM_2020, PublicDataEstimator, PublicDataResults
from replication.v2public.model import ConstructionModel

__all__ = ["ENGSTROM_2020", "ConstructionConfig", "ConstructionModel", "PoolLayout", "PublicData",
           "PublicDataEstimator", "PublicDataResults", "SimulatedConstruction", "load_public_data",
           "simulate_construction"]
