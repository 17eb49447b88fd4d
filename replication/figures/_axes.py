"""Axis helpers: probit and logit scales on accuracies given in percent."""
from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

from replication.fits.lines import inverse_transform, transform

#: tick positions (percent) for probit / logit accuracy axes
ACCURACY_TICKS = (0.5, 1, 2, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 98, 99)


def _clip(a):
    return np.clip(np.asarray(a, dtype=float), 1e-6, 100 - 1e-6)


def accuracy_scale(ax: Axes, axis: str, scale: str, lo: float, hi: float) -> None:
    """Put ``axis`` ("x" or "y") of ``ax`` on the ``scale`` ("probit",
    "logit" or "linear") of accuracies in percent, limited to [lo, hi] %,
    with tick labels in percent."""
    if scale != "linear":
        functions = (lambda a: transform(_clip(a), scale), lambda t: inverse_transform(t, scale))
        getattr(ax, f"set_{axis}scale")("function", functions=functions)
        ticks = [t for t in ACCURACY_TICKS if lo <= t <= hi]
        target = ax.xaxis if axis == "x" else ax.yaxis
        target.set_major_locator(FixedLocator(ticks))
        target.set_minor_locator(NullLocator())
        target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    getattr(ax, f"set_{axis}lim")(lo, hi)


def error_ticks(ax: Axes, ticks: tuple[float, ...]) -> None:
    """Plain-number ``ticks`` on a log y axis of errors in percent, no minor labels."""
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def interval_bars(ax: Axes, pos, value, lower, upper, *, horizontal: bool = False, color=None, label=None,
                  ms: float = 3.5, capsize: float = 0.0, elinewidth: float | None = None) -> None:
    """Points ``value`` at positions ``pos`` with the intervals [lower, upper]
    as bars (vertical, or along x when ``horizontal``), arrays of shape (n,).
    Unlike ``errorbar`` with errors relative to the point, an interval that
    does not contain its point (a percentile bootstrap interval from few
    replicates can miss it) is drawn where it is."""
    lower = np.asarray(lower, dtype=float)
    spans = {"xerr" if horizontal else "yerr": [np.zeros_like(lower), np.asarray(upper, dtype=float) - lower]}
    ax.errorbar(*((lower, pos) if horizontal else (pos, lower)), **spans, fmt="none", ecolor=color,
                capsize=capsize, elinewidth=elinewidth)
    ax.plot(*((value, pos) if horizontal else (pos, value)), "o", ms=ms, color=color, label=label)
