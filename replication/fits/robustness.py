"""Effective robustness of models that are not among those a line was fitted
on (Taori et al. 2020): a user's own models against the line of published
ones.

>>> line = LineFit("logit", n_bootstrap=1000, random_state=0).fit(x_pub, y_pub)
>>> effective_robustness_of(line, ["mine"], [76.2], [64.0], n_x=[50_000], n_y=[10_000])

``er`` is the model's y accuracy minus the line's prediction at its x
accuracy, in percentage points. Its interval combines the uncertainty of
the line (the fit's bootstrap replicates) with the model's own binomial
error in x and y (one redraw of each per replicate).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from replication.bootstrap import percentile_interval
from replication.errors import InputError
from replication.fits.lines import LineResults, _redraw, inverse_transform, transform


def _edge_clip(acc: np.ndarray, n: np.ndarray | None, scale: str) -> np.ndarray:
    """Accuracies (percent) kept half an image from 0 and 100 on a probit or
    logit scale (a handful of images can be all right or all wrong)."""
    if n is None or scale == "linear":
        return acc
    return np.clip(acc, 50.0 / n, 100.0 - 50.0 / n)


def effective_robustness_of(fit: LineResults, names: Sequence[str], x: Sequence[float], y: Sequence[float],
                            n_x: Sequence[int] | None = None, n_y: Sequence[int] | None = None, *,
                            alpha: float | None = None, random_state: int | np.random.Generator | None = 0) -> pd.DataFrame:
    """Effective robustness of models against a fitted line.

    Parameters
    ----------
    fit : LineResults
        A line fitted with bootstrap replicates (``n_bootstrap > 0``).
    names : sequence of str, length m
    x, y : array-like of shape (m,)
        Accuracies in percent on the line's x and y datasets.
    n_x, n_y : array-like of int, shape (m,), optional
        Images behind each accuracy (binomial redraws; without them the
        interval covers the line's uncertainty only).
    alpha : float, optional
        1 - confidence level (default: the fit's).
    random_state : int, Generator or None, default=0

    Returns
    -------
    DataFrame
        ``model, x, y, expected, er, er_lower, er_upper`` (percent; ``er``
        in percentage points above the line).
    """
    if fit.boot_params is None:
        raise InputError("effective robustness intervals need a line fitted with bootstrap replicates")
    alpha = fit.model.alpha if alpha is None else alpha
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n_x = None if n_x is None else np.asarray(n_x, dtype=np.int64)
    n_y = None if n_y is None else np.asarray(n_y, dtype=np.int64)
    if not (len(names) == len(x) == len(y)):
        raise InputError(f"names, x and y differ in length ({len(names)}, {len(x)}, {len(y)})")
    if ((x < 0) | (x > 100) | (y < 0) | (y > 100)).any():
        raise InputError("accuracies must be in percent (0..100)")
    scale = fit.scale
    xs, ys = _edge_clip(x, n_x, scale), _edge_clip(y, n_y, scale)
    expected = fit.predict(xs)["fit"].to_numpy()
    rng = np.random.default_rng(random_state)
    a, b = fit.boot_params[:, :1], fit.boot_params[:, 1:]
    shape = (len(a), len(x))
    xb, yb = _redraw(xs, n_x, shape, scale, rng), _redraw(ys, n_y, shape, scale, rng)
    lower, upper = percentile_interval(yb - inverse_transform(a + b * transform(xb, scale), scale), alpha)
    return pd.DataFrame({"model": list(names), "x": x, "y": y, "expected": expected, "er": ys - expected,
                         "er_lower": lower, "er_upper": upper})
