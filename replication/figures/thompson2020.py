"""Thompson et al. 2020/2021 style: ImageNet top-1 error against training
compute (log-log) with the fitted power law, its extrapolation to 5/3/2 %
error with a 95% prediction band, dollars and CO2 on secondary axes with New
York City's monthly emissions as a reference; and error against year with
the best-of-year fit."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from replication.errors import InputError
from replication.figures._axes import error_ticks
from replication.figures._base import PALETTE, new_figure, register_figure
from replication.figures._data import THOMPSON
from replication.io.tables import read_table, require_unique
from replication.fits.scaling import Conversions, ErrorTrendFit, ScalingFit, ScalingResults

#: evaluation protocols comparable with Thompson et al.'s (trained or fine-tuned on ImageNet)
PROTOCOLS = ("supervised", "fine-tuned")
TARGETS = (5.0, 3.0, 2.0)
#: ticks of the log error axes (percent)
ERROR_TICKS = (2, 3, 5, 10, 20, 40)
_COLUMNS = ("model", "year", "top1_err_pct", "train_compute_flop", "eval_protocol")


def landmark_models(path: Path) -> pd.DataFrame:
    """``thompson/models_manual.csv`` restricted to :data:`PROTOCOLS`."""
    df = read_table(path)
    missing = [c for c in _COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}")
    require_unique(path, df, "model")
    return df[df["eval_protocol"].isin(PROTOCOLS)].reset_index(drop=True)


def compute_fit(models: pd.DataFrame, *, n_bootstrap: int = 1000,
                random_state: int = 0) -> tuple[pd.DataFrame, ScalingResults]:
    """Thompson's power law on the models with a training-compute estimate."""
    has = models.dropna(subset=["train_compute_flop", "top1_err_pct"])
    return has, ScalingFit(n_bootstrap=n_bootstrap, random_state=random_state).fit(
        has["train_compute_flop"], has["top1_err_pct"], names=has["model"])


def _log_axis_pair(conv: Conversions):
    """log10 FLOP <-> log10 USD / log10 lb CO2e (straight shifts on log axes)."""
    usd = (lambda f: f / conv.flop_per_usd * conv.flop_per_unit, lambda u: u * conv.flop_per_usd / conv.flop_per_unit)
    co2 = (lambda f: f / conv.flop_per_lb_co2e * conv.flop_per_unit,
           lambda c: c * conv.flop_per_lb_co2e / conv.flop_per_unit)
    return usd, co2


@register_figure("thompson2020_compute", title="ImageNet error vs training compute, extrapolated (Thompson et al.)",
                 paper="Thompson et al. 2020, The Computational Limits of Deep Learning; IEEE Spectrum 2021",
                 inputs=(THOMPSON,))
def draw_compute(reference_dir: Path, *, n_bootstrap: int = 1000, seed: int = 0) -> tuple[Figure, dict]:
    """Error (%) vs training FLOP on log-log axes, the fit, its extrapolation
    to the targets with a 95% prediction band, USD and lb CO2e on top axes."""
    models = landmark_models(reference_dir / THOMPSON)
    has, res = compute_fit(models, n_bootstrap=n_bootstrap, random_state=seed)
    conv = res.conversions
    proj = res.predict_log10_compute(list(TARGETS))
    d = res.to_dict(list(TARGETS))
    x_hi = float(np.ceil(proj["log10_compute"].max() + 1.0))
    x_lo = float(np.floor(np.log10(has["train_compute_flop"].min())))
    grid = np.linspace(x_lo, x_hi, 200)
    line = res.predict(grid, band=True)
    fig, axes = new_figure(1, 1, width=9.0, height=6.2)
    ax = axes[0, 0]
    ax.set_xscale("log")
    ax.set_yscale("log")
    observed = grid <= np.log10(has["train_compute_flop"].max())
    ax.fill_between(10 ** grid, line["lower"], line["upper"], color="#0072B2", alpha=0.15, lw=0,
                    label="95% prediction interval")
    ax.plot(10 ** grid[observed], line["error_pct"][observed], color="#0072B2",
            label=f"fit: error ∝ compute^{d['slope']:.3f} (compute ∝ improvement^{res.exponent:.1f})")
    ax.plot(10 ** grid[~observed], line["error_pct"][~observed], color="#0072B2", ls="--", label="extrapolation")
    for proto, marker, colour in (("supervised", "o", PALETTE[6]), ("fine-tuned", "s", PALETTE[1])):
        m = has["eval_protocol"] == proto
        ax.scatter(has.loc[m, "train_compute_flop"], has.loc[m, "top1_err_pct"], marker=marker, s=22,
                   color=colour, zorder=3, label=f"{proto} on ImageNet ({int(m.sum())})")
    theory = res.theoretical_log10_compute(np.array(TARGETS))
    x0 = float(np.log10(res.compute[res.frontier_mask].max()))   # where the theory bound starts
    e0 = float(res.predict([x0])["error_pct"].iloc[0])
    ax.plot(10 ** np.r_[x0, theory], np.r_[e0, TARGETS], color="#009E73", ls=":", lw=1.6,
            label="theory bound: compute ∝ improvement^4")
    nyc_name, nyc_lbs = conv.references[0]
    lines_text = ["compute to reach each target (fit; 95% prediction interval):"]
    for r in proj.itertuples(index=False):
        ax.axhline(r.target_error_pct, color="#999999", lw=0.7, ls="-")
        ax.plot([10 ** r.log10_compute], [r.target_error_pct], marker="D", color="#D55E00", ms=5, zorder=4)
        ax.annotate(f"{r.target_error_pct:g}%", (10 ** r.log10_compute, r.target_error_pct), xytext=(6, 3),
                    textcoords="offset points", fontsize=8, color="#D55E00")
        lines_text.append(f"{r.target_error_pct:g}%: 10^{r.log10_compute:.1f} FLOP [10^{r.pi_lower:.1f}, 10^{r.pi_upper:.1f}], "
                          f"${r.usd:.2g}, {r.co2_lbs:.2g} lb CO2e = {r.co2_lbs / nyc_lbs:.2g} NYC-months")
    ax.text(0.98, 0.97, "\n".join(lines_text), transform=ax.transAxes, ha="right", va="top", fontsize=7.5,
            color="#D55E00", bbox={"facecolor": "white", "edgecolor": "#DDDDDD", "alpha": 0.9})
    nyc_flop = nyc_lbs * conv.flop_per_lb_co2e / conv.flop_per_unit
    ax.axvline(nyc_flop, color="#CC79A7", lw=1.2, ls="-.", label=f"CO2 of {nyc_name} ({nyc_lbs:.3g} lb)")
    ax.set_xlim(10 ** x_lo, 10 ** x_hi)
    ax.set_ylim(1.5, 60)
    error_ticks(ax, ERROR_TICKS)
    ax.set_xlabel("training compute (FLOP, log scale)")
    ax.set_ylabel("ImageNet top-1 error (%, log scale)")
    usd, co2 = _log_axis_pair(conv)
    top = ax.secondary_xaxis("top", functions=usd)
    top.set_xlabel("cost at 1 USD per 6.874e16 FLOP (US dollars)")
    top2 = ax.secondary_xaxis(1.13, functions=co2)
    top2.set_xlabel("emissions at 1 lb per 3.498e17 FLOP (lb CO2e)")
    ax.legend(loc="lower left", fontsize=7.5)
    ax.set_title("Extrapolating ImageNet error to 5/3/2% needs enormous compute", pad=4)
    table = [{"target error (%)": r.target_error_pct, "log10 FLOP": round(r.log10_compute, 2),
              "95% PI log10 FLOP": f"[{r.pi_lower:.2f}, {r.pi_upper:.2f}]",
              "theory (4th power) log10 FLOP": round(r.theory_log10_compute, 2),
              "USD": f"{r.usd:.3g}", "lb CO2e": f"{r.co2_lbs:.3g}",
              "NYC months of CO2": f"{r.co2_lbs / nyc_lbs:.3g}"} for r in proj.itertuples(index=False)]
    numbers = {"fit": d, "models": has[["model", "year", "eval_protocol", "train_compute_flop", "top1_err_pct"]]
               .to_dict(orient="list"), "projection": proj.to_dict(orient="list"),
               "line": line.to_dict(orient="list")}
    t5 = d["targets"]["5"]
    headline = {"compute exponent (compute ∝ improvement^k)": f"{res.exponent:.2f} [{d['exponent_ci'][0]:.2f}, {d['exponent_ci'][1]:.2f}]",
                "training FLOP for 5% error": f"10^{t5['log10_compute']:.2f} (95% PI 10^{t5['interval'][0]:.1f} to 10^{t5['interval'][1]:.1f})",
                "cost / CO2 for 5% error": f"${t5['usd']:.3g}; {t5['co2_lbs']:.3g} lb CO2e"}
    return fig, {"inputs": [reference_dir / THOMPSON], "numbers": numbers, "table": table, "headline": headline,
                 "caption": f"{len(has)} landmark models trained or fine-tuned on ImageNet with a training-compute "
                            "estimate (Epoch AI). Least squares of log10 error on log10 compute; the band is the 95% "
                            "regression prediction interval for a new model; diamonds mark the compute at which the "
                            "fitted line reaches each target. Dotted green: the 4th-power theoretical bound."}


@register_figure("thompson2020_year", title="ImageNet error over the years, best model of each year (Thompson et al.)",
                 paper="Thompson et al. 2020; IEEE Spectrum 2021", inputs=(THOMPSON,))
def draw_year(reference_dir: Path) -> tuple[Figure, dict]:
    """Error (%, log axis) vs year: all landmark models, the best of each
    year, the fitted exponential trend with its prediction band, and the
    years at which the trend crosses 5/3/2 %."""
    models = landmark_models(reference_dir / THOMPSON).dropna(subset=["year", "top1_err_pct"])
    res = ErrorTrendFit().fit(models["year"], models["top1_err_pct"], models["model"])
    cross = res.crossing_years(list(TARGETS))
    last = float(np.ceil(min(cross["year"].max() + 5, 2060)))
    years = np.linspace(models["year"].min(), last, 200)
    line = res.predict(years, band=True)
    fig, axes = new_figure(1, 1, width=9.0, height=5.2)
    ax = axes[0, 0]
    ax.set_yscale("log")
    ax.scatter(models["year"], models["top1_err_pct"], s=14, color="#999999", label=f"landmark models ({len(models)})")
    ax.scatter(res.best["year"], res.best["error_pct"], s=30, color="#000000", zorder=3,
               label=f"best of each year ({len(res.best)})")
    ax.fill_between(line["year"], line["lower"], line["upper"], color="#0072B2", alpha=0.15, lw=0,
                    label="95% prediction interval")
    halving = np.log10(2) / -res.params["slope"]
    ax.plot(line["year"], line["error_pct"], color="#0072B2", label=f"fit on best of year: error halves every {halving:.1f} years")
    for r in cross.itertuples(index=False):
        ax.axhline(r.target_error_pct, color="#999999", lw=0.7)
        ax.plot([r.year], [r.target_error_pct], marker="D", color="#D55E00", ms=5, zorder=4)
        ax.annotate(f"{r.target_error_pct:g}% in {r.year:.0f} [{r.lower:.0f}, {r.upper:.0f}]", (r.year, r.target_error_pct),
                    xytext=(7, 4), textcoords="offset points", ha="left", fontsize=7.5, color="#D55E00")
    ax.set_ylim(1.5, 60)
    error_ticks(ax, ERROR_TICKS)
    ax.set_xlabel("year of publication")
    ax.set_ylabel("ImageNet top-1 error (%, log scale)")
    ax.set_title("Best ImageNet error by year, with the exponential trend")
    ax.legend(loc="upper right")
    d = res.to_dict(list(TARGETS))
    headline = {f"year the trend reaches {k}% error": f"{v['year']:.1f} [{v['interval'][0]:.1f}, {v['interval'][1]:.1f}]"
                for k, v in d["crossing_years"].items()}
    table = [{"year": int(r.year), "best model": r.model, "top-1 error (%)": r.error_pct}
             for r in res.best.itertuples(index=False)]
    return fig, {"inputs": [reference_dir / THOMPSON], "numbers": {"trend": d, "line": line.to_dict(orient="list")},
                 "table": table, "headline": headline,
                 "caption": "Least squares of log10 error on year over the lowest-error model of each year "
                            f"(protocols: {', '.join(PROTOCOLS)}); band: 95% prediction interval; diamonds: the "
                            "years at which the trend reaches each target, with inverse prediction intervals."}
