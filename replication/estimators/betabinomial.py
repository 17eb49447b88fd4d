"""``betabinomial``: deconvolution with mixture-of-betas priors (K by BIC).

Both datasets' true selection-frequency distributions are fitted as beta
mixtures by EM on the beta-binomial likelihood; the replication images are
reweighted per level so that their true-s distribution matches the
reference's (see :mod:`replication.deconvolution`). Every bootstrap replicate
refits both priors (warm-started, with K fixed at the BIC choice on the
replicate-mean counts) and the weights.
"""
from __future__ import annotations

from replication.deconvolution import MATCHED_FREQUENCY_EDGES, adjust_levels
from replication.estimators.registry import Adjusted, register_method
from replication.study import LevelTable


@register_method("betabinomial")
def betabinomial(table: LevelTable, *, n_cells: int = 100, ridge: float = 0.1,
        selection_edges=MATCHED_FREQUENCY_EDGES, pool_counts=None) -> Adjusted:
    """Adjusted accuracy (..., M) and level weights (..., L) for a (batched) level table.

    Options as in :func:`~replication.deconvolution.adjust_levels`: ``selection_edges``
    (bins of k/n the replication images were drawn within; default Recht et al.'s
    MatchedFrequency bins, None for a random sample of the pool) and ``pool_counts``
    (the candidate pool's images per level, an array or a PoolSample).
    """
    adj = adjust_levels(table, "betabinomial", n_cells=n_cells, ridge=ridge, selection_edges=selection_edges,
                        pool_counts=pool_counts)
    batch = table.batch_shape
    return Adjusted(accuracy=adj.accuracy.reshape(batch + adj.accuracy.shape[-1:]),
                    level_weights=adj.level_weights.reshape(batch + adj.level_weights.shape[-1:]))
