"""Deconvolution methods: one per registered prior family (``betabinomial``,
``npmle``, ...), adjusting by deconvolving selection frequencies.

Both datasets' true selection-frequency distributions are fitted from the
k-of-n counts with the family's priors -- beta mixtures by EM on the
beta-binomial likelihood (K by BIC) for ``betabinomial``, grid NPMLEs (no
shape assumed) for ``npmle`` -- and the replication images are reweighted per
level so that their true-s distribution matches the reference's (see
:mod:`replication.deconvolution`). Every bootstrap replicate refits both
priors (warm-started) and the weights.
"""
from __future__ import annotations

import functools

from replication.deconvolution import MATCHED_FREQUENCY_EDGES, adjust_levels
from replication.estimators.registry import Adjusted, Method
from replication.study import LevelTable


@functools.lru_cache(maxsize=None)
def deconvolution_method(prior: str) -> Method:
    """The adjustment method of the prior family ``prior`` (one function per name)."""
    def method(table: LevelTable, *, n_cells: int = 100, ridge: float = 0.1,
               selection_edges=MATCHED_FREQUENCY_EDGES, pool_counts=None, random_state=0,
               warm_start=None) -> Adjusted:
        adj = adjust_levels(table, prior, n_cells=n_cells, ridge=ridge, selection_edges=selection_edges,
                            pool_counts=pool_counts, random_state=random_state, warm_start=warm_start)
        batch = table.batch_shape
        return Adjusted(accuracy=adj.accuracy.reshape(batch + adj.accuracy.shape[-1:]),
                        level_weights=adj.level_weights.reshape(batch + adj.level_weights.shape[-1:]),
                        warm_start=(adj.ref_prior, adj.pool_prior))

    method.__name__ = method.__qualname__ = prior
    method.__doc__ = f"""Adjusted accuracy (..., M) and level weights (..., L) for a (batched)
    level table, with {prior} priors.

    Options as in :func:`~replication.deconvolution.adjust_levels`: ``selection_edges``
    (bins of k/n the replication images were drawn within; default Recht et al.'s
    MatchedFrequency bins, None for a random sample of the pool), ``pool_counts``
    (the candidate pool's images per level), ``random_state`` (the estimator's
    Generator: random starts of the priors and the pool's bootstrap draws) and
    ``warm_start`` (the point estimate's priors, for bootstrap replicates).
    """
    return method
