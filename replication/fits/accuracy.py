"""Per-model, per-dataset top-1 accuracy from a correctness matrix, with exact
(Clopper-Pearson) binomial intervals.

>>> res = accuracy_from_correctness(load_correctness("correct.parquet"))
>>> res.table          # model, <dataset> (percent), <dataset>_ci_low/_ci_high, <dataset>_n
>>> print(res.summary())
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special

from replication.errors import InputError
from replication.io.tables import DATASET_IDS, model_columns
from replication.summary import Summary


def clopper_pearson(k: np.ndarray, n: np.ndarray, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Exact binomial interval for k successes of n, as fractions.

    Returns (lower, upper) with lower = 0 where k = 0 and upper = 1 where k = n.
    """
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        lo = np.where(k > 0, special.betaincinv(k, n - k + 1, alpha / 2), 0.0)
        hi = np.where(k < n, special.betaincinv(k + 1, n - k, 1 - alpha / 2), 1.0)
    return lo, hi


@dataclass
class AccuracyResults:
    """Top-1 accuracy of every model on every dataset of a correctness matrix.

    Attributes
    ----------
    correct : DataFrame of shape (n_datasets, n_models)   correct images
    n_images : Series of length n_datasets                images per dataset
    alpha : float
    """

    correct: pd.DataFrame
    n_images: pd.Series
    alpha: float = 0.05

    @property
    def accuracy(self) -> pd.DataFrame:
        """Top-1 in percent, shape (n_datasets, n_models)."""
        return 100.0 * self.correct.div(self.n_images, axis=0)

    def conf_int(self, alpha: float | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Clopper-Pearson (lower, upper) in percent, each (n_datasets, n_models)."""
        alpha = self.alpha if alpha is None else alpha
        n = np.broadcast_to(self.n_images.to_numpy()[:, None], self.correct.shape)
        lo, hi = clopper_pearson(self.correct.to_numpy(), n, alpha)
        like = dict(index=self.correct.index, columns=self.correct.columns)
        return pd.DataFrame(100 * lo, **like), pd.DataFrame(100 * hi, **like)

    @property
    def table(self) -> pd.DataFrame:
        """The accuracy table: ``model``, then per dataset ``<id>`` (percent),
        ``<id>_ci_low``, ``<id>_ci_high`` (percent) and ``<id>_n`` (images)."""
        acc, (lo, hi) = self.accuracy, self.conf_int()
        cols = {"model": list(self.correct.columns)}
        for d in self.correct.index:
            cols[d] = acc.loc[d].to_numpy()
            cols[f"{d}_ci_low"] = lo.loc[d].to_numpy()
            cols[f"{d}_ci_high"] = hi.loc[d].to_numpy()
            cols[f"{d}_n"] = np.full(len(self.correct.columns), int(self.n_images[d]))
        return pd.DataFrame(cols)

    def summary(self) -> Summary:
        """Per dataset: images, models, mean/min/max top-1 accuracy (percent)."""
        acc = self.accuracy
        table = pd.DataFrame({"images": self.n_images, "models": acc.shape[1], "mean top-1 (%)": acc.mean(axis=1),
                              "min": acc.min(axis=1), "max": acc.max(axis=1)})
        info = [("Models", str(acc.shape[1])), ("Datasets", ", ".join(acc.index)),
                ("Intervals", f"{100 * (1 - self.alpha):g}% Clopper-Pearson")]
        return Summary("Top-1 accuracy from a correctness matrix", info, table)

    def to_dict(self) -> dict:
        """JSON-ready: per model and dataset, ``accuracy`` and ``ci`` as fractions in [0, 1]."""
        acc, (lo, hi) = self.accuracy, self.conf_int()
        return {"alpha": self.alpha, "n_images": self.n_images.to_dict(),
                "models": {m: {d: {"accuracy": acc.loc[d, m] / 100, "ci": [lo.loc[d, m] / 100, hi.loc[d, m] / 100]}
                               for d in acc.index} for m in acc.columns}}


def accuracy_from_correctness(correct: pd.DataFrame, alpha: float = 0.05) -> AccuracyResults:
    """Count correct images per dataset and model of a validated correctness
    matrix (see :func:`replication.io.tables.load_correctness`)."""
    if not 0 < alpha < 1:
        raise InputError(f"alpha must be in (0, 1), got {alpha}")
    models = model_columns(correct)
    counts = correct.groupby("dataset", sort=False)[models].sum()
    known = [d for d in DATASET_IDS if d in counts.index]
    order = known + sorted(d for d in counts.index if d not in known)
    n = correct.groupby("dataset", sort=False).size()
    return AccuracyResults(counts.loc[order].astype(np.int64), n.loc[order].astype(np.int64), alpha)
