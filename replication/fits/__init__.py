"""Fits across models: v2-vs-v1 accuracy lines and effective robustness
(:mod:`.lines`), accuracy tables with exact intervals (:mod:`.accuracy`),
published result-table importers (:mod:`.importers`), and Thompson et al.'s
compute scaling (:mod:`.scaling`)."""
from replication.fits.accuracy import AccuracyResults, accuracy_from_correctness, clopper_pearson
from replication.fits.importers import import_testbed, import_timm
from replication.fits.lines import LineFit, LineResults
from replication.fits.scaling import Conversions, ErrorTrendFit, ScalingFit, ScalingResults, backtest, best_of_year

__all__ = [
    "AccuracyResults", "accuracy_from_correctness", "clopper_pearson", "import_testbed", "import_timm",
    "LineFit", "LineResults", "Conversions", "ErrorTrendFit", "ScalingFit", "ScalingResults", "backtest",
    "best_of_year",
]
