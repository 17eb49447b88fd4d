"""Compute scaling of ImageNet error (Thompson et al., "The Computational Limits
of Deep Learning", 2020; IEEE Spectrum, "Deep Learning's Diminishing Returns",
2021).

Specification: least squares of log10(top-1 error as a fraction) on
log10(compute), over all models or over the Pareto frontier (each model whose
error is lower than every model with less compute). With slope b, compute
must grow with the power ``exponent = -1/b`` of the error improvement
(theory says at least 4; Thompson et al. observed about 9 on ImageNet).

>>> res = ScalingFit(frontier=False, n_bootstrap=2000, random_state=0).fit(flop, err_pct, names=models)
>>> res.exponent, res.conf_int(); print(res.summary())
>>> res.predict_log10_compute([5, 3, 2])     # compute for target errors, intervals, USD, lb CO2e
>>> res.predict(np.linspace(15, 25, 50), band=True)   # extrapolation band
>>> best_of_year(years, err_pct, names); ErrorTrendFit().fit(...).crossing_years([5])
>>> backtest(flop, err_pct, years, cutoff_year=2017)

Conversions (:class:`Conversions`) follow Thompson et al.: 1 USD buys
6.874e16 FLOP and 1 lb CO2e is emitted per 3.498e17 FLOP; New York City emits
about 1.038e10 lb CO2e a month. All are overridable.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from replication.bootstrap import percentile_interval, replicate_chunks, resample_counts
from replication.errors import FitError, InputError
from replication.fits.lines import OLSLine, check_fit_options, model_names, weighted_lines
from replication.io.tables import check_percent, name_list
from replication.summary import Summary

THEORY_POWER = 4.0


@dataclass(frozen=True)
class Conversions:
    """Compute -> money and emissions (Thompson et al. 2020/2021 constants).

    Parameters
    ----------
    flop_per_usd : float, default=6.874e16
        FLOP one US dollar of cloud compute buys.
    flop_per_lb_co2e : float, default=3.498e17
        FLOP per pound of CO2-equivalent emitted.
    flop_per_unit : float, default=1.0
        FLOP per unit of the compute column (1 for FLOP; 2e9 for GMACs,
        one multiply-add being two FLOP).
    references : tuple of (name, lb CO2e)
        Emission yardsticks reported beside each target.
    """

    flop_per_usd: float = 6.874e16
    flop_per_lb_co2e: float = 3.498e17
    flop_per_unit: float = 1.0
    references: tuple[tuple[str, float], ...] = (("New York City, one month", 1.038e10),)

    def flop(self, log10_compute: ArrayLike) -> np.ndarray | float:
        """FLOP for 10**log10_compute units of compute (same shape as the input)."""
        return np.power(10.0, np.asarray(log10_compute, dtype=float)) * self.flop_per_unit

    def usd(self, log10_compute: ArrayLike) -> np.ndarray | float:
        """US dollars for 10**log10_compute units of compute."""
        return self.flop(log10_compute) / self.flop_per_usd

    def co2_lbs(self, log10_compute: ArrayLike) -> np.ndarray | float:
        """Pounds of CO2e for 10**log10_compute units of compute."""
        return self.flop(log10_compute) / self.flop_per_lb_co2e


# --------------------------------------------------------------------------- data checks
def _row_text(mask: np.ndarray, names: np.ndarray | None) -> str:
    idx = np.flatnonzero(mask)
    who = f" (model {', '.join(map(str, names[idx[:3]]))})" if names is not None else ""
    return f"row{'s' if len(idx) > 1 else ''} {name_list(idx + 1, 5)}{who}"


def check_points(compute: ArrayLike, error_pct: ArrayLike,
                 names: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Validate compute (> 0) and top-1 error (percent, 0 < e <= 100), shape
    (n_models,) each; ``names`` label rows in error messages. Returns both as
    float arrays of shape (n_models,); at least 3 models are needed."""
    try:
        c = np.asarray(compute, dtype=float).ravel()
        e = np.asarray(error_pct, dtype=float).ravel()
    except (TypeError, ValueError):
        raise InputError("compute and error must be numbers") from None
    names = None if names is None else np.asarray(list(map(str, names)))
    if len(c) != len(e):
        raise InputError(f"compute and error differ in length ({len(c)} vs {len(e)})")
    for arr, what in ((c, "compute"), (e, "error")):
        if np.isnan(arr).any():
            raise InputError(f"{_row_text(np.isnan(arr), names)}: {what} is NaN")
    if (c <= 0).any() or np.isinf(c).any():
        raise InputError(f"{_row_text((c <= 0) | np.isinf(c), names)}: compute must be positive and finite")
    if ((e < 0) | (e > 100)).any():
        raise InputError(f"{_row_text((e < 0) | (e > 100), names)}: error/accuracy outside 0..100 (percent)")
    if (e == 0).any():
        raise InputError(f"{_row_text(e == 0, names)}: an error of 0% has no logarithm")
    check_percent("errors", e[:, None], ["error"], where=lambda rows: _row_text(rows, names))
    if len(c) < 3:
        raise InputError(f"a scaling fit needs at least 3 models, got {len(c)}")
    return c, e


def pareto_frontier(compute: np.ndarray, error: np.ndarray) -> np.ndarray:
    """Mask of models whose error is lower than that of every model with less
    (or equal, and listed before in compute-then-error order) compute."""
    order = np.lexsort((error, compute))
    e = np.asarray(error, float)[order]
    best_before = np.concatenate([[np.inf], np.minimum.accumulate(e)[:-1]])
    mask = np.zeros(len(e), dtype=bool)
    mask[order] = e < best_before
    return mask


def _frontier_weights(e_sorted: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Frontier of each bootstrap replicate, for points sorted by (compute, error).
    counts: (B, n) multiplicities -> (B, n) 0/1 weights."""
    present = counts > 0
    running = np.minimum.accumulate(np.where(present, e_sorted, np.inf), axis=1)
    before = np.concatenate([np.full((counts.shape[0], 1), np.inf), running[:, :-1]], axis=1)
    return (present & (e_sorted < before)).astype(float)


def _exponent(slope):
    slope = np.asarray(slope, dtype=float)
    with np.errstate(divide="ignore"):
        return np.where(slope < 0, -1.0 / slope, np.inf)


# --------------------------------------------------------------------------- the fit
class ScalingFit:
    """Thompson et al.'s power law of error in compute.

    Parameters
    ----------
    frontier : bool, default=False
        Fit only the Pareto frontier (lowest error so far in compute order).
    n_bootstrap : int, default=1000
        Resamples of models (the frontier is recomputed in each); 0 skips the
        bootstrap intervals (the regression prediction interval remains).
    alpha : float, default=0.05
    random_state : int, Generator or None
        Seed of the one Generator behind every resample.
    conversions : Conversions, optional
    """

    def __init__(self, frontier: bool = False, *, n_bootstrap: int = 1000, alpha: float = 0.05,
                 random_state: int | np.random.Generator | None = None,
                 conversions: Conversions | None = None) -> None:
        self.frontier = frontier
        self.n_bootstrap = n_bootstrap
        self.alpha = alpha
        self.random_state = random_state
        self.conversions = conversions

    def fit(self, compute: Sequence[float], error_pct: Sequence[float], *,
            names: Sequence[str] | None = None) -> "ScalingResults":
        """Fit log10(error / 100) on log10(compute).

        Parameters
        ----------
        compute : array-like of shape (n,)   compute per model (> 0), any unit
        error_pct : array-like of shape (n,) top-1 error in percent (0 < e <= 100)
        names : sequence of str, optional
        """
        check_fit_options(self.alpha, self.n_bootstrap)
        c, e = check_points(compute, error_pct, names)
        names = model_names(names, len(c))
        used = pareto_frontier(c, e) if self.frontier else np.ones(len(c), dtype=bool)
        if used.sum() < 3:
            raise FitError(f"the Pareto frontier has only {int(used.sum())} model(s); a fit needs at least 3")
        x, y = np.log10(c), np.log10(e / 100.0)
        if np.ptp(x[used]) == 0:
            raise FitError("all models have the same compute; no slope can be fitted")
        ols = OLSLine.fit(x[used], y[used])
        rng = np.random.default_rng(self.random_state)
        boot = self._bootstrap(x, y, int(self.n_bootstrap), rng)
        return ScalingResults(self, names, c, e, used, ols, boot, self.conversions or Conversions())

    def _bootstrap(self, x, y, n_boot, rng) -> np.ndarray | None:
        """(B, 2) bootstrap (intercept, slope); NaN rows where a replicate has no spread."""
        if n_boot == 0:
            return None
        order = np.lexsort((y, x))
        xs, ys = x[order], y[order]
        parts = []
        for size in replicate_chunks(n_boot, len(x)):
            counts = resample_counts(None, len(x), size, rng).astype(float)
            w = _frontier_weights(ys, counts) if self.frontier else counts
            a, b = weighted_lines(xs, ys, w)
            few = (w > 0).sum(axis=1) < 2
            a[few], b[few] = np.nan, np.nan
            parts.append(np.column_stack([a, b]))
        return np.concatenate(parts)


class ScalingResults:
    """A fitted compute-scaling law (from :meth:`ScalingFit.fit`).

    Attributes
    ----------
    names, compute, error_pct : ndarray of shape (n,)   every input model
    frontier_mask : ndarray of bool, shape (n,)         models the fit used
    params : Series (intercept, slope)                  log10 error-fraction on log10 compute
    bse : Series                                        OLS standard errors
    rsquared : float;  nobs : int (models used)
    exponent : float                                    -1 / slope
    boot_params : ndarray (B, 2) or None
    conversions : Conversions
    """

    def __init__(self, model: ScalingFit, names: np.ndarray, compute: np.ndarray, error_pct: np.ndarray,
                 used: np.ndarray, ols: OLSLine, boot: np.ndarray | None, conversions: Conversions) -> None:
        self.model, self.names, self.compute, self.error_pct = model, names, compute, error_pct
        self.frontier_mask = used
        self._ols = ols
        self.boot_params = boot
        self.conversions = conversions
        self.params = pd.Series({"intercept": ols.intercept, "slope": ols.slope})
        self.bse = pd.Series(dict(zip(("intercept", "slope"), ols.bse())))
        self.rsquared = ols.r2
        self.nobs = ols.n
        self.exponent = float(_exponent(ols.slope))

    # -- parameters
    def _alpha(self, alpha):
        return self.model.alpha if alpha is None else alpha

    def conf_int(self, alpha: float | None = None, method: str | None = None) -> pd.DataFrame:
        """Interval for intercept, slope and exponent. ``method``: "bootstrap"
        (default when resamples exist) or "ols" (t interval; the exponent's by
        transforming the slope's)."""
        alpha = self._alpha(alpha)
        method = method or ("ols" if self.boot_params is None else "bootstrap")
        if method == "bootstrap":
            if self.boot_params is None:
                raise FitError("no bootstrap resamples (n_bootstrap=0)")
            lo, hi = percentile_interval(self.boot_params, alpha)
        elif method == "ols":
            t = self._ols.tcrit(alpha)
            lo, hi = (self.params - t * self.bse).to_numpy(), (self.params + t * self.bse).to_numpy()
        else:
            raise InputError(f"unknown interval method {method!r}; use 'bootstrap' or 'ols'")
        exp_lo, exp_hi = _exponent(lo[1]), _exponent(hi[1])   # -1/slope increases with slope < 0
        return pd.DataFrame({"lower": [lo[0], lo[1], float(exp_lo)], "upper": [hi[0], hi[1], float(exp_hi)]},
                            index=["intercept", "slope", "exponent"])

    # -- the line
    def predict(self, log10_compute: Sequence[float], band: bool = False, alpha: float | None = None,
                interval: str = "prediction") -> pd.DataFrame:
        """The fitted error at ``log10_compute``.

        Columns ``log10_compute``, ``log10_error`` (fraction), ``error_pct``;
        with ``band=True`` also ``lower``/``upper`` (error, percent): the
        regression ``interval`` ("prediction" for a new model, "mean" for the
        line) or, with ``interval="bootstrap"``, the pointwise bootstrap band.
        """
        alpha = self._alpha(alpha)
        x = np.asarray(log10_compute, dtype=float)
        fit = self._ols.intercept + self._ols.slope * x
        out = pd.DataFrame({"log10_compute": x, "log10_error": fit, "error_pct": 100 * 10 ** fit})
        if band:
            if interval == "bootstrap":
                if self.boot_params is None:
                    raise FitError("no bootstrap resamples (n_bootstrap=0)")
                lo, hi = percentile_interval(self.boot_params[:, :1] + self.boot_params[:, 1:] * x[None, :], alpha)
            elif interval in ("prediction", "mean"):
                se = self._ols.se_pred(x) if interval == "prediction" else self._ols.se_mean(x)
                lo, hi = fit - self._ols.tcrit(alpha) * se, fit + self._ols.tcrit(alpha) * se
            else:
                raise InputError(f"unknown interval {interval!r}; use prediction, mean or bootstrap")
            out["lower"], out["upper"] = 100 * 10 ** lo, 100 * 10 ** hi
        return out

    def theoretical_log10_compute(self, target_error_pct: ArrayLike, power: float = THEORY_POWER) -> np.ndarray:
        """Compute needed if compute grew only with ``power`` (theory: 4) of the
        error improvement, starting from the fitted line at the largest compute
        used in the fit."""
        x0 = float(self._ols.x.max())
        y0 = self._ols.intercept + self._ols.slope * x0
        return x0 + power * (y0 - np.log10(np.asarray(target_error_pct, dtype=float) / 100.0))

    def predict_log10_compute(self, target_error_pct: Sequence[float] | float,
                              alpha: float | None = None) -> pd.DataFrame:
        """Compute needed to reach each target error (percent).

        Columns: ``target_error_pct``, ``log10_compute``; ``pi_lower``/
        ``pi_upper``: inverse regression prediction interval (the compute at
        which a new model's prediction interval contains the target; infinite
        when the slope is not significant); ``boot_lower``/``boot_upper``:
        bootstrap percentile interval over models; ``theory_log10_compute``
        (4th-power bound); ``compute``, ``usd``, ``co2_lbs`` and one column
        per emission reference (multiples of it).
        """
        alpha = self._alpha(alpha)
        t = np.atleast_1d(np.asarray(target_error_pct, dtype=float))
        if np.isnan(t).any() or ((t <= 0) | (t >= 100)).any():
            raise InputError(f"target errors must be in (0, 100) percent, got {t.tolist()}")
        y0 = np.log10(t / 100.0)
        x0 = (y0 - self._ols.intercept) / self._ols.slope
        pi = np.array([self._ols.inverse_interval(v, alpha, prediction=True) for v in y0]).reshape(-1, 2)
        out = pd.DataFrame({"target_error_pct": t, "log10_compute": x0, "pi_lower": pi[:, 0], "pi_upper": pi[:, 1]})
        if self.boot_params is not None:
            a, b = self.boot_params[:, :1], self.boot_params[:, 1:]
            with np.errstate(divide="ignore", invalid="ignore"):
                xb = np.where(b < 0, (y0[None, :] - a) / b, np.inf)
            xb[np.isnan(b[:, 0])] = np.nan
            out["boot_lower"], out["boot_upper"] = percentile_interval(xb, alpha)
        out["theory_log10_compute"] = self.theoretical_log10_compute(t)
        conv = self.conversions
        out["compute"] = 10.0 ** x0
        out["usd"], out["co2_lbs"] = conv.usd(x0), conv.co2_lbs(x0)
        for name, lbs in conv.references:
            out[f"co2 / {name}"] = out["co2_lbs"] / lbs
        return out

    # -- reporting
    def summary(self, targets: Sequence[float] = (5.0,), alpha: float | None = None) -> Summary:
        """Coefficients with intervals, fit information and the compute, cost and
        CO2 needed for each target error in ``targets`` (percent)."""
        ci = self.conf_int(alpha)
        params = pd.concat([self.params, pd.Series({"exponent": self.exponent})])
        bse = pd.concat([self.bse, pd.Series({"exponent": np.nan})])
        table = pd.DataFrame({"coef": params, "std err (OLS)": bse, "ci lower": ci["lower"], "ci upper": ci["upper"]})
        level = 100 * (1 - self._alpha(alpha))
        info = [("Specification", "log10(error fraction) ~ log10(compute)"),
                ("Points", f"{'Pareto frontier' if self.model.frontier else 'all models'}: "
                           f"{self.nobs} of {len(self.compute)}"),
                ("R-squared", f"{self.rsquared:.4f}"),
                ("Intervals", f"{level:g}% {'bootstrap' if self.boot_params is not None else 'OLS t'}")]
        notes = []
        for r in self.predict_log10_compute(targets, alpha).itertuples(index=False):
            boot = f"; bootstrap [{r.boot_lower:.2f}, {r.boot_upper:.2f}]" if self.boot_params is not None else ""
            notes.append(f"{r.target_error_pct:g}% error: log10 compute {r.log10_compute:.2f} "
                         f"(prediction interval [{r.pi_lower:.2f}, {r.pi_upper:.2f}]{boot}; "
                         f"4th-power theory {r.theory_log10_compute:.2f}); "
                         f"${r.usd:.3g}, {r.co2_lbs:.3g} lb CO2e")
        return Summary("Compute scaling (Thompson et al. specification)", info, table, notes)

    def to_dict(self, targets: Sequence[float] = (5.0, 3.0, 2.0), alpha: float | None = None) -> dict:
        """The ``replication scaling`` JSON (contract keys first)."""
        ci = self.conf_int(alpha)
        out = {"n": self.nobs, "slope": float(self.params["slope"]), "intercept": float(self.params["intercept"]),
               "r2": float(self.rsquared), "exponent": self.exponent, "targets": {},
               "exponent_ci": ci.loc["exponent"].tolist(), "slope_ci": ci.loc["slope"].tolist(),
               "frontier": bool(self.model.frontier), "n_input": len(self.compute),
               "models": self.names[self.frontier_mask].tolist(),
               "theory_power": THEORY_POWER,
               "conversions": {"flop_per_usd": self.conversions.flop_per_usd,
                               "flop_per_lb_co2e": self.conversions.flop_per_lb_co2e,
                               "flop_per_unit": self.conversions.flop_per_unit,
                               "references_lbs": dict(self.conversions.references)}}
        for r in self.predict_log10_compute(targets, alpha).to_dict("records"):
            entry = {"log10_compute": r["log10_compute"], "usd": r["usd"], "co2_lbs": r["co2_lbs"],
                     "interval": [r["pi_lower"], r["pi_upper"]], "interval_method": "regression prediction interval",
                     "theory_log10_compute": r["theory_log10_compute"]}
            if "boot_lower" in r:
                entry["bootstrap_interval"] = [r["boot_lower"], r["boot_upper"]]
            entry["co2_references"] = {name: r[f"co2 / {name}"] for name, _ in self.conversions.references}
            out["targets"][f"{r['target_error_pct']:g}"] = entry
        return out


# --------------------------------------------------------------------------- error over time
def best_of_year(years: Sequence[float], error_pct: Sequence[float],
                 names: Sequence[str] | None = None, compute: Sequence[float] | None = None) -> pd.DataFrame:
    """The lowest-error model of each year: columns ``year``, ``model``,
    ``error_pct`` (and ``compute`` when given), sorted by year."""
    y = np.asarray(years, dtype=float)
    e = np.asarray(error_pct, dtype=float)
    if np.isnan(y).any() or np.isnan(e).any():
        raise InputError("years and errors must not be NaN")
    df = pd.DataFrame({"year": y.astype(int), "model": list(map(str, names)) if names is not None else np.arange(len(y)).astype(str),
                       "error_pct": e})
    if compute is not None:
        df["compute"] = np.asarray(compute, dtype=float)
    best = df.sort_values(["year", "error_pct"], kind="stable").drop_duplicates("year", keep="first")
    return best.reset_index(drop=True)


class ErrorTrendFit:
    """Least squares of log10(error fraction) on calendar year, over the
    best model of each year.

    Parameters
    ----------
    alpha : float, default=0.05
    """

    def __init__(self, *, alpha: float = 0.05) -> None:
        self.alpha = alpha

    def fit(self, years: Sequence[float], error_pct: Sequence[float],
            names: Sequence[str] | None = None) -> "ErrorTrendResults":
        """Fit on the best model of each year.

        Parameters
        ----------
        years : sequence of float, shape (n_models,)
            Calendar year of each model.
        error_pct : sequence of float, shape (n_models,)
            Top-1 error in percent.
        names : sequence of str, default=None
            Model names (kept in the best-of-year table and error messages).

        Returns
        -------
        ErrorTrendResults
        """
        table = best_of_year(years, error_pct, names)
        check_points(np.ones(len(table)), table["error_pct"], table["model"])
        if table["year"].nunique() < 3:
            raise InputError(f"an error trend needs at least 3 distinct years, got {table['year'].nunique()}")
        ols = OLSLine.fit(table["year"].to_numpy(float), np.log10(table["error_pct"].to_numpy() / 100))
        return ErrorTrendResults(self, table, ols)


@dataclass
class ErrorTrendResults:
    """Fitted error trend over years (from :meth:`ErrorTrendFit.fit`).

    ``best`` is the best-of-year table the line was fitted on; ``params``
    holds (intercept, slope) of log10(error fraction) per year.
    """

    model: ErrorTrendFit
    best: pd.DataFrame
    _ols: OLSLine = field(repr=False)

    @property
    def params(self) -> pd.Series:
        """``intercept`` and ``slope`` (per year) of log10(error fraction)."""
        return pd.Series({"intercept": self._ols.intercept, "slope": self._ols.slope})

    @property
    def rsquared(self) -> float:
        """R-squared of the line on the best-of-year points."""
        return self._ols.r2

    def predict(self, years: Sequence[float], band: bool = False, alpha: float | None = None) -> pd.DataFrame:
        """Fitted error (percent) by year; ``band`` adds the prediction interval."""
        alpha = self.model.alpha if alpha is None else alpha
        x = np.asarray(years, dtype=float)
        fit = self._ols.intercept + self._ols.slope * x
        out = pd.DataFrame({"year": x, "error_pct": 100 * 10 ** fit})
        if band:
            half = self._ols.tcrit(alpha) * self._ols.se_pred(x)
            out["lower"], out["upper"] = 100 * 10 ** (fit - half), 100 * 10 ** (fit + half)
        return out

    def crossing_years(self, target_error_pct: Sequence[float], alpha: float | None = None) -> pd.DataFrame:
        """Year at which the trend reaches each target error, with the inverse
        prediction interval (``lower``, ``upper``)."""
        alpha = self.model.alpha if alpha is None else alpha
        t = np.atleast_1d(np.asarray(target_error_pct, dtype=float))
        y0 = np.log10(t / 100)
        pi = np.array([self._ols.inverse_interval(v, alpha) for v in y0]).reshape(-1, 2)
        return pd.DataFrame({"target_error_pct": t, "year": (y0 - self._ols.intercept) / self._ols.slope,
                             "lower": pi[:, 0], "upper": pi[:, 1]})

    def summary(self, targets: Sequence[float] = (5.0,)) -> Summary:
        """Fit information, the best-of-year table and the year each target
        error (percent) is reached."""
        notes = [f"{r.target_error_pct:g}% error reached in {r.year:.1f} (interval {r.lower:.1f} to {r.upper:.1f})"
                 for r in self.crossing_years(targets).itertuples(index=False)]
        info = [("Specification", "log10(error fraction) ~ year, best model of each year"),
                ("Years", f"{int(self.best['year'].min())}-{int(self.best['year'].max())} ({len(self.best)})"),
                ("R-squared", f"{self.rsquared:.4f}"),
                ("Error halves every", f"{np.log10(2) / -self._ols.slope:.2f} years" if self._ols.slope < 0 else "never")]
        return Summary("Error over time", info, self.best, notes)

    def to_dict(self, targets: Sequence[float] = (5.0, 3.0, 2.0)) -> dict:
        """JSON-ready fit: slope per year, intercept, r2, best-of-year rows and
        crossing years (with intervals) keyed by target error in percent."""
        cross = self.crossing_years(targets)
        return {"slope_per_year": self._ols.slope, "intercept": self._ols.intercept, "r2": self.rsquared,
                "best_of_year": self.best.to_dict("records"),
                "crossing_years": {f"{r.target_error_pct:g}": {"year": r.year, "interval": [r.lower, r.upper]}
                                   for r in cross.itertuples(index=False)}}


# --------------------------------------------------------------------------- backtest
@dataclass
class BacktestResults:
    """Fit on models up to ``cutoff_year``, then compare with later models.

    ``table`` (one row per later model): ``model``, ``year``, ``error_pct``,
    ``log10_compute`` (actual), ``projected_log10_compute`` (compute the early
    fit says that error needs), ``pi_lower``/``pi_upper`` (its prediction
    interval), ``inside``, ``log10_ratio`` (actual minus projected) and
    ``projected_error_pct`` (the early fit's error at the actual compute).
    """

    cutoff_year: float
    fit: ScalingResults
    table: pd.DataFrame

    def summary(self) -> Summary:
        """Cutoff, early-fit exponent, coverage of the prediction intervals and
        the later-model table."""
        t = self.table
        info = [("Cutoff year", f"{self.cutoff_year:g}"), ("Models fitted", str(self.fit.nobs)),
                ("Exponent (early fit)", f"{self.fit.exponent:.2f}"), ("Later models", str(len(t))),
                ("Inside prediction interval", f"{int(t['inside'].sum())} of {len(t)}"),
                ("Median |log10 actual/projected|", f"{np.median(np.abs(t['log10_ratio'])):.2f}" if len(t) else "-")]
        return Summary("Backtest of the compute extrapolation", info, t)

    def to_dict(self) -> dict:
        """JSON-ready backtest: cutoff, fit size, exponent, coverage (fraction
        of later models inside their interval), median |log10 ratio| and rows."""
        t = self.table
        return {"cutoff_year": self.cutoff_year, "n_fit": self.fit.nobs, "exponent": self.fit.exponent,
                "n_later": len(t), "coverage": float(t["inside"].mean()) if len(t) else None,
                "median_abs_log10_ratio": float(np.median(np.abs(t["log10_ratio"]))) if len(t) else None,
                "later": t.to_dict("records")}


def backtest(compute: ArrayLike, error_pct: ArrayLike, years: ArrayLike, cutoff_year: float, *,
             names: Sequence[str] | None = None, frontier: bool = False, alpha: float = 0.05) -> BacktestResults:
    """Fit Thompson's law on models with ``year <= cutoff_year`` and project
    the compute needed for the errors later models reached."""
    c, e = check_points(compute, error_pct, names)
    yr = np.asarray(years, dtype=float)
    if np.isnan(yr).any():
        raise InputError("years must not be NaN")
    names = model_names(names, len(c))
    early = yr <= cutoff_year
    if early.sum() < 3:
        raise InputError(f"only {int(early.sum())} model(s) up to {cutoff_year:g}; the backtest needs at least 3")
    fit = ScalingFit(frontier, n_bootstrap=0, alpha=alpha).fit(c[early], e[early], names=names[early])
    later = ~early
    proj = fit.predict_log10_compute(e[later], alpha) if later.any() else None
    actual = np.log10(c[later])
    table = pd.DataFrame({"model": names[later], "year": yr[later], "error_pct": e[later], "log10_compute": actual})
    if proj is not None:
        table["projected_log10_compute"] = proj["log10_compute"].to_numpy()
        table["pi_lower"], table["pi_upper"] = proj["pi_lower"].to_numpy(), proj["pi_upper"].to_numpy()
        table["inside"] = (actual >= table["pi_lower"]) & (actual <= table["pi_upper"])
        table["log10_ratio"] = actual - table["projected_log10_compute"]
        table["projected_error_pct"] = fit.predict(actual)["error_pct"].to_numpy()
    else:
        for col in ("projected_log10_compute", "pi_lower", "pi_upper", "inside", "log10_ratio", "projected_error_pct"):
            table[col] = pd.Series(dtype=float)
    return BacktestResults(float(cutoff_year), fit, table.sort_values(["year", "model"]).reset_index(drop=True))
