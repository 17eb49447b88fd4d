"""``npmle``: deconvolution with Kiefer-Wolfowitz nonparametric priors.

As ``betabinomial``, but both datasets' distributions of true selection
frequency are NPMLEs on a grid (no shape assumed); see
:mod:`replication.deconvolution` and :mod:`replication.priors.npmle`. Every
bootstrap replicate refits both priors (warm-started) and the weights.
"""
from __future__ import annotations

from replication.deconvolution import MATCHED_FREQUENCY_EDGES, adjust_levels
from replication.estimators.registry import Adjusted, register_method
from replication.study import LevelTable


@register_method("npmle")
def npmle(table: LevelTable, *, n_cells: int = 100, ridge: float = 0.1,
        selection_edges=MATCHED_FREQUENCY_EDGES, pool_counts=None) -> Adjusted:
    """Adjusted accuracy (..., M) and level weights (..., L) for a (batched) level table.

    Options as in :func:`~replication.deconvolution.adjust_levels`: ``selection_edges``
    (bins of k/n the replication images were drawn within; default Recht et al.'s
    MatchedFrequency bins, None for a random sample of the pool) and ``pool_counts``
    (the candidate pool's images per level, an array or a PoolSample).
    """
    adj = adjust_levels(table, "npmle", n_cells=n_cells, ridge=ridge, selection_edges=selection_edges,
                        pool_counts=pool_counts)
    batch = table.batch_shape
    return Adjusted(accuracy=adj.accuracy.reshape(batch + adj.accuracy.shape[-1:]),
                    level_weights=adj.level_weights.reshape(batch + adj.level_weights.shape[-1:]))
