"""Accuracy lines across models: y-accuracy against x-accuracy after a probit,
logit or linear transform (Recht et al. 2019; Taori et al. 2020; Miller et al.
2021), with bootstrap intervals over models, a pointwise band, and per-model
residuals (effective robustness).

Accuracies are in percent everywhere in this module's API; slope and intercept
live in the transformed space (probit: inverse normal CDF of the fraction;
logit: log-odds of the fraction; linear: percent).

>>> res = LineFit(scale="probit", n_bootstrap=1000, random_state=0).fit(x, y, names=models)
>>> res.params, res.conf_int(); print(res.summary())
>>> res.predict([60, 70, 80], band=True)          # line + pointwise band, percent
>>> res.effective_robustness()                     # per-model residuals + intervals
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import special, stats

from replication.bootstrap import percentile_interval, replicate_chunks, resample_counts
from replication.errors import FitError, InputError
from replication.io.tables import check_percent, name_list, require_columns
from replication.summary import Summary

log = logging.getLogger(__name__)

SCALES = ("linear", "probit", "logit")


# --------------------------------------------------------------------------- transforms
def _check_scale(scale: str) -> None:
    if scale not in SCALES:
        raise InputError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")


def transform(acc_pct: np.ndarray, scale: str) -> np.ndarray:
    """Accuracy in percent -> the scale's axis (percent for ``linear``)."""
    _check_scale(scale)
    a = np.asarray(acc_pct, dtype=float)
    if scale == "linear":
        return a
    p = a / 100.0
    return special.ndtri(p) if scale == "probit" else special.logit(p)


def inverse_transform(t: np.ndarray, scale: str) -> np.ndarray:
    """The scale's axis -> accuracy in percent."""
    _check_scale(scale)
    t = np.asarray(t, dtype=float)
    if scale == "linear":
        return t
    return 100.0 * (special.ndtr(t) if scale == "probit" else special.expit(t))


def transform_slope(acc_pct: np.ndarray, scale: str) -> np.ndarray:
    """d transform / d accuracy (per percentage point) at ``acc_pct``."""
    _check_scale(scale)
    a = np.asarray(acc_pct, dtype=float)
    if scale == "linear":
        return np.ones_like(a)
    p = a / 100.0
    if scale == "probit":
        return 1.0 / (100.0 * stats.norm.pdf(special.ndtri(p)))
    return 1.0 / (100.0 * p * (1.0 - p))


# --------------------------------------------------------------------------- selection
def select_models(df: pd.DataFrame, *, where: dict[str, Sequence[str]] | None = None,
                  exclude_substrings: Sequence[str] = (), at_least: dict[str, float] | None = None,
                  model_col: str = "model", source: str = "<table>") -> pd.DataFrame:
    """Rows of a model table that pass category filters.

    Parameters
    ----------
    where : dict column -> allowed values, optional
        Keep rows whose ``column`` (as a string) is one of the values, e.g.
        ``{"nat_model_type": ["STANDARD"]}``.
    exclude_substrings : sequence of str
        Drop rows whose ``model_col`` contains any of these (case-insensitive),
        e.g. Taori et al.'s ``("aws", "batch64", "subsample")``.
    at_least : dict column -> float, optional
        Keep rows with ``column >= value`` (e.g. ``{"imagenet-val": 55}``).
    """
    keep = np.ones(len(df), dtype=bool)
    for col, values in (where or {}).items():
        require_columns(source, df, [col], what="filter column")
        keep &= df[col].astype(str).isin([str(v) for v in values]).to_numpy()
    if exclude_substrings:
        if model_col not in df.columns:
            raise InputError(f"{source}: no {model_col!r} column to filter names on")
        names = df[model_col].astype(str).str.lower()
        for s in exclude_substrings:
            keep &= ~names.str.contains(str(s).lower(), regex=False).to_numpy()
    for col, value in (at_least or {}).items():
        if col not in df.columns:
            raise InputError(f"{source}: filter column {col!r} not found")
        keep &= (pd.to_numeric(df[col], errors="coerce") >= float(value)).to_numpy()
    if not keep.all():
        log.info("%s: %d of %d rows pass the filters", source, int(keep.sum()), len(df))
    return df.loc[keep].reset_index(drop=True)


ROW_COL = "__row__"   # optional column with each row's line number in its file (for messages)


def _where(df: pd.DataFrame, mask: np.ndarray, model_col: str) -> str:
    """'rows 3, 7 (model a, b)' for the flagged rows, using file rows when known."""
    rows = df[ROW_COL].to_numpy()[mask] if ROW_COL in df.columns else np.flatnonzero(mask) + 1
    text = f"row{'s' if len(rows) > 1 else ''} {name_list(rows, 5)}"
    if model_col in df.columns:
        text += f" (model {', '.join(df.loc[mask, model_col].astype(str).head(3))})"
    return text


def clean_columns(df: pd.DataFrame, columns: Sequence[str], *, dropna: bool = False,
                  bounds: tuple[float, float] = (0.0, 100.0), positive: bool = False,
                  what: str = "accuracy (percent)", model_col: str = "model",
                  source: str = "<table>") -> pd.DataFrame:
    """Check that ``columns`` hold numbers in ``bounds`` (default: accuracies
    in percent, 0..100, and not fractions: see
    :func:`~replication.io.tables.fraction_problem`); ``positive`` also
    excludes the lower bound.

    Missing values raise :class:`InputError` naming the rows and models,
    unless ``dropna`` is set: then those rows are dropped and logged (a blank
    cell in a results table means "not evaluated").
    """
    require_columns(source, df.drop(columns=[ROW_COL], errors="ignore"), columns)
    cols = list(columns)
    values = df[cols].apply(pd.to_numeric, errors="coerce")
    not_number = (values.isna() & df[cols].notna()).any(axis=1).to_numpy()
    if not_number.any():
        raise InputError(f"{source}: {_where(df, not_number, model_col)}: {', '.join(cols)} is not a number")
    nan_rows = values.isna().any(axis=1).to_numpy()
    if nan_rows.any():
        if not dropna:
            raise InputError(f"{source}: {_where(df, nan_rows, model_col)}: {', '.join(cols)} is missing or NaN; "
                             f"pass --dropna to skip rows without a value")
        log.warning("%s: dropped %s without a value in %s", source, _where(df, nan_rows, model_col), ", ".join(cols))
        df, values = df.loc[~nan_rows], values.loc[~nan_rows]
    lo, hi = bounds
    bad = (((values <= lo) if positive else (values < lo)) | (values > hi)).any(axis=1).to_numpy()
    if bad.any():
        if np.isfinite(hi):
            rule = f"outside {lo:g}..{hi:g}" + (f" or equal to {lo:g}" if positive else "")
        else:
            rule = f"not {'>' if positive else '>='} {lo:g}"
        raise InputError(f"{source}: {_where(df, bad, model_col)}: {', '.join(cols)} {rule} ({what})")
    if bounds == (0.0, 100.0):
        check_percent(source, values.to_numpy(dtype=float), cols, where=lambda rows: _where(df, rows, model_col))
    out = df.copy()
    out[cols] = values
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------- least squares
def weighted_lines(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares lines of y on x for a batch of weightings.

    x, y : arrays broadcastable to w's shape (B, n); w : (B, n) non-negative
    weights (bootstrap multiplicities). Returns (intercept, slope), each (B,);
    NaN where the weighted x has no spread.
    """
    sw = w.sum(axis=-1)
    xm = (w * x).sum(axis=-1) / sw
    ym = (w * y).sum(axis=-1) / sw
    dx = x - xm[..., None]
    sxx = (w * dx * dx).sum(axis=-1)
    sxy = (w * dx * (y - ym[..., None])).sum(axis=-1)
    scale = (w * np.abs(dx)).sum(axis=-1) / sw
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = np.where(scale > 1e-12 * (1 + np.abs(xm)), sxy / sxx, np.nan)
    return ym - slope * xm, slope


@dataclass(frozen=True)
class OLSLine:
    """Ordinary least squares of y on x with the classical intervals."""

    x: np.ndarray
    y: np.ndarray
    intercept: float
    slope: float
    sigma: float        # residual standard deviation (n - 2 degrees of freedom)
    sxx: float
    r2: float

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray) -> "OLSLine":
        """Ordinary least squares of ``y`` on ``x``, shape (n,) each."""
        x, y = np.asarray(x, float), np.asarray(y, float)
        a, b = weighted_lines(x, y, np.ones((1, len(x))))
        a, b = float(a[0]), float(b[0])
        resid = y - a - b * x
        sst = float(((y - y.mean()) ** 2).sum())
        sigma = float(np.sqrt((resid ** 2).sum() / (len(x) - 2))) if len(x) > 2 else np.nan
        r2 = 1.0 - float((resid ** 2).sum()) / sst if sst > 0 else np.nan
        return cls(x, y, a, b, sigma, float(((x - x.mean()) ** 2).sum()), r2)

    @property
    def n(self) -> int:
        """Number of points."""
        return len(self.x)

    def bse(self) -> tuple[float, float]:
        """Standard errors of (intercept, slope)."""
        se_b = self.sigma / np.sqrt(self.sxx)
        se_a = self.sigma * np.sqrt(1.0 / self.n + self.x.mean() ** 2 / self.sxx)
        return float(se_a), float(se_b)

    def tcrit(self, alpha: float) -> float:
        """Two-sided Student-t critical value at level ``alpha`` with n - 2 degrees of freedom."""
        return float(stats.t.ppf(1 - alpha / 2, self.n - 2))

    def se_mean(self, x0: np.ndarray) -> np.ndarray:
        """Standard error of the fitted mean at x0."""
        return self.sigma * np.sqrt(1.0 / self.n + (np.asarray(x0, float) - self.x.mean()) ** 2 / self.sxx)

    def se_pred(self, x0: np.ndarray) -> np.ndarray:
        """Standard error for a new observation at x0 (prediction interval)."""
        return np.sqrt(self.sigma ** 2 + self.se_mean(x0) ** 2)

    def inverse_interval(self, y0: float, alpha: float = 0.05, prediction: bool = True) -> tuple[float, float]:
        """Inverse (calibration) interval: the x whose prediction (or mean)
        interval contains y0. Returns (-inf, inf) when the slope is not
        distinguishable from zero at this level (the interval is unbounded)."""
        k2 = (self.tcrit(alpha) * self.sigma) ** 2
        u_coef = self.slope ** 2 - k2 / self.sxx
        d = y0 - self.y.mean()
        const = d * d - k2 * ((1.0 if prediction else 0.0) + 1.0 / self.n)
        disc = (self.slope * d) ** 2 - u_coef * const
        if u_coef <= 0 or disc < 0:
            return -np.inf, np.inf
        root = np.sqrt(disc)
        lo, hi = sorted(((self.slope * d - root) / u_coef, (self.slope * d + root) / u_coef))
        return float(lo + self.x.mean()), float(hi + self.x.mean())


# --------------------------------------------------------------------------- model + results
class LineFit:
    """Least-squares line of transformed y-accuracy on transformed x-accuracy.

    Parameters
    ----------
    scale : {"probit", "logit", "linear"}, default="probit"
    n_bootstrap : int, default=1000
        Resamples of models for the intervals; 0 uses the classical OLS
        intervals instead.
    alpha : float, default=0.05
        1 - confidence level of every interval.
    random_state : int, numpy.random.Generator or None
        Seed of the one Generator that drives all resamples.
    """

    def __init__(self, scale: str = "probit", *, n_bootstrap: int = 1000, alpha: float = 0.05,
                 random_state: int | np.random.Generator | None = None) -> None:
        self.scale = scale
        self.n_bootstrap = n_bootstrap
        self.alpha = alpha
        self.random_state = random_state

    def fit(self, x: Sequence[float], y: Sequence[float], *, names: Sequence[str] | None = None,
            n_x: float | Sequence[float] | None = None, n_y: float | Sequence[float] | None = None) -> "LineResults":
        """Fit the line.

        Parameters
        ----------
        x, y : array-like of shape (n_models,)
            Top-1 accuracies in percent.
        names : sequence of str, optional
            Model ids (for residual tables).
        n_x, n_y : int or array-like of shape (n_models,), optional
            Images behind each accuracy. When given, every resample also
            redraws each model's accuracies as binomial proportions, so
            residual intervals include the model's own sampling error.
        """
        _check_scale(self.scale)
        check_fit_options(self.alpha, self.n_bootstrap)
        x, y = _as_percent(x, "x"), _as_percent(y, "y")
        if len(x) != len(y):
            raise InputError(f"x and y differ in length ({len(x)} vs {len(y)})")
        if len(x) < 3:
            raise InputError(f"a line needs at least 3 models, got {len(x)}")
        names = model_names(names, len(x))
        check_percent("accuracies", np.column_stack([x, y]), ["x", "y"],
                      where=lambda rows: f"models {name_list(names[rows], 5)}")
        if self.scale != "linear":
            edge = (x <= 0) | (x >= 100) | (y <= 0) | (y >= 100)
            if edge.any():
                raise InputError(f"models {', '.join(names[edge][:5])}: an accuracy of exactly 0 or 100 "
                                 f"has no {self.scale} value; use --scale linear or drop them")
        n_x, n_y = _counts(n_x, len(x), "n_x"), _counts(n_y, len(x), "n_y")
        tx, ty = transform(x, self.scale), transform(y, self.scale)
        ols = OLSLine.fit(tx, ty)
        if not np.isfinite(ols.slope):
            raise FitError("all models have the same x accuracy; no line can be fitted")
        rng = np.random.default_rng(self.random_state)
        boot = _bootstrap(x, y, n_x, n_y, self.scale, int(self.n_bootstrap), rng)
        return LineResults(self, names, x, y, n_x, n_y, ols, boot)


def check_fit_options(alpha: float, n_bootstrap: int) -> None:
    """InputError unless 0 < alpha < 1 and n_bootstrap >= 0."""
    if not 0 < alpha < 1:
        raise InputError(f"alpha must be in (0, 1), got {alpha}")
    if int(n_bootstrap) < 0:
        raise InputError(f"n_bootstrap must be >= 0, got {n_bootstrap}")


def model_names(names: Sequence[str] | None, n: int) -> np.ndarray:
    """Model ids as an array of str, shape (n,); ``"0"``, ``"1"``, ... when None."""
    return np.asarray([str(i) for i in range(n)] if names is None else list(map(str, names)))


def _as_percent(v, what: str) -> np.ndarray:
    try:
        a = np.asarray(v, dtype=float).ravel()
    except (TypeError, ValueError):
        raise InputError(f"{what}: accuracies must be numbers (percent)") from None
    if np.isnan(a).any():
        raise InputError(f"{what}: rows {name_list(np.flatnonzero(np.isnan(a)) + 1, 5)}: accuracy is NaN")
    if ((a < 0) | (a > 100)).any():
        raise InputError(f"{what}: rows {name_list(np.flatnonzero((a < 0) | (a > 100)) + 1, 5)}: accuracy outside 0..100 (percent)")
    return a


def _counts(n, size: int, what: str) -> np.ndarray | None:
    if n is None:
        return None
    a = np.broadcast_to(np.asarray(n, dtype=float), (size,)).copy()
    if not np.all(np.isfinite(a)) or (a < 1).any() or (a != np.round(a)).any():
        raise InputError(f"{what}: image counts must be integers >= 1")
    return a.astype(np.int64)


@dataclass(frozen=True)
class _Boot:
    intercept: np.ndarray   # (B,)
    slope: np.ndarray       # (B,)
    er: np.ndarray          # (B, n) residual in percent per model
    er_t: np.ndarray        # (B, n) residual on the transformed axis


def _redraw(acc: np.ndarray, n: np.ndarray | None, shape: tuple[int, int], scale: str,
            rng: np.random.Generator) -> np.ndarray:
    """Binomial redraws of accuracies (percent), shape (B, n); the original
    values, broadcast, when there are no counts."""
    if n is None:
        return np.broadcast_to(acc, shape)
    frac = rng.binomial(n, acc / 100.0, size=shape) / n
    if scale != "linear":   # keep the transform finite: at most half an image from the edge
        frac = np.clip(frac, 0.5 / n, 1 - 0.5 / n)
    return 100.0 * frac


def _bootstrap_chunk(x, y, n_x, n_y, scale, n_boot, rng) -> _Boot:
    shape = (n_boot, len(x))
    w = resample_counts(None, len(x), n_boot, rng).astype(float)
    xb, yb = _redraw(x, n_x, shape, scale, rng), _redraw(y, n_y, shape, scale, rng)
    txb, tyb = transform(xb, scale), transform(yb, scale)
    a, b = weighted_lines(txb, tyb, w)
    fit_t = a[:, None] + b[:, None] * txb
    return _Boot(a, b, yb - inverse_transform(fit_t, scale), tyb - fit_t)


def _bootstrap(x, y, n_x, n_y, scale, n_boot, rng) -> _Boot | None:
    if n_boot == 0:
        return None
    parts = [_bootstrap_chunk(x, y, n_x, n_y, scale, size, rng) for size in replicate_chunks(n_boot, len(x))]
    boot = _Boot(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(_Boot)})
    bad = ~np.isfinite(boot.slope)
    if bad.mean() > 0.01:
        log.warning("%d of %d resamples had no spread in x and were left out", int(bad.sum()), n_boot)
    return boot


class LineResults:
    """A fitted accuracy line (returned by :meth:`LineFit.fit`).

    Attributes
    ----------
    model : LineFit
    names : ndarray of str, shape (n,)
    x, y : ndarray of shape (n,), percent
    params : pandas.Series  (intercept, slope) on the transformed axes
    bse : pandas.Series     classical OLS standard errors
    rsquared : float        on the transformed axes
    nobs : int
    boot_params : ndarray of shape (B, 2) or None   bootstrap (intercept, slope)
    """

    def __init__(self, model: LineFit, names: np.ndarray, x: np.ndarray, y: np.ndarray, n_x: np.ndarray | None,
                 n_y: np.ndarray | None, ols: OLSLine, boot: _Boot | None) -> None:
        self.model, self.names, self.x, self.y = model, names, x, y
        self.n_x, self.n_y = n_x, n_y
        self._ols, self._boot = ols, boot
        self.scale = model.scale
        self.params = pd.Series({"intercept": ols.intercept, "slope": ols.slope})
        self.bse = pd.Series(dict(zip(("intercept", "slope"), ols.bse())))
        self.rsquared = ols.r2
        self.nobs = ols.n
        self.boot_params = None if boot is None else np.column_stack([boot.intercept, boot.slope])

    # -- parameters
    @property
    def ci_method(self) -> str:
        """``"ols-t"`` without bootstrap replicates, else ``"bootstrap-percentile"``."""
        return "ols-t" if self._boot is None else "bootstrap-percentile"

    def conf_int(self, alpha: float | None = None) -> pd.DataFrame:
        """Interval for (intercept, slope): bootstrap percentile over models,
        or the OLS t interval when ``n_bootstrap == 0``. Columns lower, upper."""
        alpha = self.model.alpha if alpha is None else alpha
        if self._boot is None:
            t = self._ols.tcrit(alpha)
            lo, hi = self.params - t * self.bse, self.params + t * self.bse
        else:
            lo, hi = percentile_interval(self.boot_params, alpha)
        return pd.DataFrame({"lower": lo, "upper": hi}, index=["intercept", "slope"])

    # -- line and band
    def predict(self, x: Sequence[float], band: bool = False, alpha: float | None = None) -> pd.DataFrame:
        """The line at accuracies ``x`` (percent).

        Returns a DataFrame with ``x``, ``fit`` (percent) and ``fit_t`` (the
        transformed axis); with ``band=True`` also ``lower``/``upper`` (percent)
        and ``lower_t``/``upper_t``: a pointwise interval for the line
        (bootstrap percentile, or the OLS mean interval without bootstrap).
        """
        alpha = self.model.alpha if alpha is None else alpha
        x = np.asarray(x, dtype=float)
        tx = transform(x, self.scale)
        fit_t = self._ols.intercept + self._ols.slope * tx
        out = pd.DataFrame({"x": x, "fit": inverse_transform(fit_t, self.scale), "fit_t": fit_t})
        if band:
            if self._boot is None:
                half = self._ols.tcrit(alpha) * self._ols.se_mean(tx)
                lo_t, hi_t = fit_t - half, fit_t + half
            else:
                grid = self._boot.intercept[:, None] + self._boot.slope[:, None] * tx[None, :]
                lo_t, hi_t = percentile_interval(grid, alpha)
            out["lower_t"], out["upper_t"] = lo_t, hi_t
            out["lower"], out["upper"] = inverse_transform(lo_t, self.scale), inverse_transform(hi_t, self.scale)
        return out

    # -- residuals
    def effective_robustness(self, alpha: float | None = None) -> pd.DataFrame:
        """Per-model residual from the line (Taori et al.'s effective robustness).

        ``er`` = y minus the line's prediction at x, in percentage points;
        ``er_t`` the same on the transformed axis. ``er_lower``/``er_upper``
        (and ``_t``) form an interval that covers the line's uncertainty and,
        when image counts were given, the model's own binomial error in x and y.
        """
        alpha = self.model.alpha if alpha is None else alpha
        pred = self.predict(self.x)
        er_t = transform(self.y, self.scale) - pred["fit_t"].to_numpy()
        out = pd.DataFrame({"model": self.names, "x": self.x, "y": self.y, "expected": pred["fit"].to_numpy(),
                            "er": self.y - pred["fit"].to_numpy(), "er_t": er_t})
        if self._boot is not None:
            (out["er_lower"], out["er_upper"]) = percentile_interval(self._boot.er, alpha)
            (out["er_lower_t"], out["er_upper_t"]) = percentile_interval(self._boot.er_t, alpha)
        else:
            var_t = self._ols.se_mean(transform(self.x, self.scale)) ** 2
            if self.n_y is not None:
                var_t = var_t + (transform_slope(self.y, self.scale) ** 2) * self.y * (100 - self.y) / self.n_y
            if self.n_x is not None:
                var_t = var_t + (self._ols.slope * transform_slope(self.x, self.scale)) ** 2 * self.x * (100 - self.x) / self.n_x
            half_t = stats.norm.ppf(1 - alpha / 2) * np.sqrt(var_t)
            out["er_lower_t"], out["er_upper_t"] = er_t - half_t, er_t + half_t
            # percent: linearize the inverse transform at the model's y
            half = half_t / transform_slope(self.y, self.scale)
            out["er_lower"], out["er_upper"] = out["er"] - half, out["er"] + half
        return out[["model", "x", "y", "expected", "er", "er_lower", "er_upper", "er_t", "er_lower_t", "er_upper_t"]]

    # -- reporting
    def summary(self, alpha: float | None = None) -> Summary:
        """Coefficients (transformed scale) with standard errors and
        ``1 - alpha`` intervals, plus fit information."""
        ci = self.conf_int(alpha)
        table = pd.DataFrame({"coef": self.params, "std err (OLS)": self.bse,
                              "ci lower": ci["lower"], "ci upper": ci["upper"]})
        level = 100 * (1 - (self.model.alpha if alpha is None else alpha))
        info = [("Scale", self.scale), ("Models", str(self.nobs)), ("R-squared", f"{self.rsquared:.4f}"),
                ("Intervals", f"{level:g}% {self.ci_method}"
                 + ("" if self._boot is None else f", B={len(self._boot.slope)}")),
                ("Binomial redraws", "yes" if (self.n_x is not None or self.n_y is not None) else "no")]
        return Summary("Accuracy line (least squares on transformed accuracies)", info, table)

    def to_dict(self, residuals: bool = True) -> dict:
        """The ``replication lines`` JSON (contract keys first)."""
        ci = self.conf_int()
        out = {"n": self.nobs, "scale": self.scale, "slope": float(self.params["slope"]),
               "intercept": float(self.params["intercept"]), "r2": float(self.rsquared),
               "slope_ci": ci.loc["slope"].tolist(), "intercept_ci": ci.loc["intercept"].tolist(),
               "ci_method": self.ci_method, "alpha": self.model.alpha,
               "n_bootstrap": 0 if self._boot is None else len(self._boot.slope)}
        if residuals:
            er = self.effective_robustness()
            out["effective_robustness"] = {
                r.model: {"x": r.x, "y": r.y, "expected": r.expected, "er": r.er, "ci": [r.er_lower, r.er_upper]}
                for r in er.itertuples(index=False)}
        return out
