"""timm's published results: ImageNet-v2 MatchedFrequency against ImageNet val
for every configuration on probit axes with the fitted line, and top-1 error
against inference GMACs per image with the Pareto frontier and its power law."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from replication.figures._axes import accuracy_scale, error_ticks
from replication.figures._base import new_figure, register_figure
from replication.figures._data import TIMM_DIR
from replication.fits.importers import TIMM_RESULTS, import_timm
from replication.fits.lines import LineFit, LineResults
from replication.fits.scaling import ScalingFit, ScalingResults, pareto_frontier

X, Y = "imagenet-val", "imagenetv2-matched-frequency"
#: pretrained-tag fragments that mean data beyond ImageNet-1k (a name heuristic)
EXTRA_DATA = re.compile(r"in21k|in22k|in12k|laion|openai|clip|jft|ig1b|_ig|m38m|dfn|datacomp|merged|wsl|yfcc|"
                        r"cc12m|webli|metaclip|sw_in|semi|lvd|mim_|dist_in22k|apple|siglip", re.IGNORECASE)


def pretraining(model_ids: pd.Series) -> np.ndarray:
    """``"extra data"`` when the timm tag (after the '.') names a dataset
    beyond ImageNet-1k, else ``"ImageNet-1k"``; a heuristic on names."""
    tags = model_ids.astype(str).str.split(".", n=1).str[1].fillna("")
    return np.where(tags.str.contains(EXTRA_DATA), "extra data", "ImageNet-1k")


def timm_fits(table: pd.DataFrame, *, n_bootstrap: int = 1000,
              random_state: int = 0) -> tuple[pd.DataFrame, LineResults, pd.DataFrame, ScalingResults]:
    """The probit line of v2 on val over every configuration with both
    accuracies, and the frontier power law of error on GMACs per image."""
    both = table.dropna(subset=[X, Y]).reset_index(drop=True)
    line = LineFit("probit", n_bootstrap=n_bootstrap, random_state=random_state).fit(
        both[X], both[Y], names=both["model"], n_x=50_000, n_y=10_000)
    comp = table.dropna(subset=[X, "infer_gmacs"]).reset_index(drop=True)
    scaling = ScalingFit(frontier=True, n_bootstrap=n_bootstrap, random_state=random_state).fit(
        comp["infer_gmacs"], 100 - comp[X], names=comp["model"])
    return both, line, comp, scaling


@register_figure("timm_scaling", title="timm's 1,556 configurations: v2 vs val on probit axes; error vs GMACs",
                 paper="timm results (Wightman); Miller et al. 2021 accuracy on the line; Thompson et al. scaling",
                 inputs=(f"{TIMM_DIR}/{TIMM_RESULTS[X]}", f"{TIMM_DIR}/{TIMM_RESULTS[Y]}"))
def draw_timm(reference_dir: Path, *, n_bootstrap: int = 1000, seed: int = 0) -> tuple[Figure, dict]:
    """Left: ImageNet-v2 against val top-1 (percent, probit axes) over timm's
    configurations with the fitted line. Right: val top-1 error against
    inference GMACs per image with the frontier power law. Intervals from
    ``n_bootstrap`` replicates seeded by ``seed``."""
    folder = reference_dir / TIMM_DIR
    imported = import_timm(folder)
    both, line, comp, scaling = timm_fits(imported.table, n_bootstrap=n_bootstrap, random_state=seed)
    kind = pretraining(both["timm_model"])
    fig, axes = new_figure(1, 2, width=13.0, height=5.8)
    ax, axc = axes[0]
    lo, hi = 40.0, 92.0
    for label, colour in (("ImageNet-1k", "#0072B2"), ("extra data", "#D55E00")):
        m = kind == label
        ax.scatter(both.loc[m, X], both.loc[m, Y], s=5, alpha=0.5, color=colour, edgecolors="none",
                   label=f"pretrained on {label} ({int(m.sum())}; by name tag)", zorder=3)
    grid = np.linspace(lo, hi, 200)
    band = line.predict(grid, band=True)
    d = line.to_dict(residuals=False)
    ax.fill_between(band["x"], band["lower"], band["upper"], color="#444444", alpha=0.3, lw=0, label="95% band")
    ax.plot(band["x"], band["fit"], color="#222222",
            label=f"probit line: slope {d['slope']:.3f}, R² {d['r2']:.3f}")
    ax.plot([lo, hi], [lo, hi], ls="--", color="black", lw=1.0, label="y = x")
    accuracy_scale(ax, "x", "probit", lo, hi)
    accuracy_scale(ax, "y", "probit", 25.0, hi)
    ax.set_xlabel("ImageNet val top-1 (%, probit axis)")
    ax.set_ylabel("ImageNet-v2 MatchedFrequency top-1 (%, probit axis)")
    ax.set_title(f"{len(both):,} timm configurations on the line")
    ax.legend(loc="upper left", markerscale=2.5)

    err = 100 - comp[X].to_numpy()
    g = comp["infer_gmacs"].to_numpy()
    front = pareto_frontier(g, err)
    axc.set_xscale("log")
    axc.set_yscale("log")
    axc.scatter(g[~front], err[~front], s=5, alpha=0.4, color="#999999", edgecolors="none",
                label=f"configurations ({len(comp):,})")
    order = np.argsort(g[front])
    axc.step(g[front][order], err[front][order], where="post", color="#D55E00", lw=1.0)
    axc.scatter(g[front], err[front], s=14, color="#D55E00", zorder=3,
                label=f"Pareto frontier ({int(front.sum())}: lowest error so far)")
    sd = scaling.to_dict([5.0])
    xs = np.linspace(np.log10(g.min()), np.log10(g.max()), 100)
    fit = scaling.predict(xs, band=True, interval="mean")
    axc.plot(10 ** xs, fit["error_pct"], color="#0072B2",
             label=f"frontier fit: error ∝ GMACs^{sd['slope']:.3f} (exponent {sd['exponent']:.1f})")
    axc.fill_between(10 ** xs, fit["lower"], fit["upper"], color="#0072B2", alpha=0.15, lw=0,
                     label="95% interval of the fitted line")
    axc.set_xlabel("inference compute (GMACs per image, log scale)")
    axc.set_ylabel("ImageNet val top-1 error (%, log scale)")
    axc.set_title("Error against compute per image")
    error_ticks(axc, (5, 10, 20, 30, 50, 70))
    axc.legend(loc="lower left")
    er = line.effective_robustness()
    numbers = {"n_configurations": len(imported.table), "import_messages": imported.messages,
               "line": d, "band": {k: band[k].to_numpy() for k in ("x", "fit", "lower", "upper")},
               "points": {"model": both["model"].tolist(), "x": both[X].to_numpy(), "y": both[Y].to_numpy(),
                          "pretraining": kind.tolist()},
               "compute": {"model": comp["model"].tolist(), "gmacs": g, "error_pct": err, "frontier": front},
               "frontier_fit": sd}
    table = [{"pretraining (by tag)": k, "configurations": int((kind == k).sum()),
              "mean residual from the line (points)": round(float(er.loc[kind == k, "er"].mean()), 3)}
             for k in ("ImageNet-1k", "extra data")]
    headline = {"timm probit line (v2 on val), slope": f"{d['slope']:.3f} [{d['slope_ci'][0]:.3f}, {d['slope_ci'][1]:.3f}], "
                                                          f"{d['n']} configurations",
                "GMACs exponent on the error frontier": f"{sd['exponent']:.2f} [{sd['exponent_ci'][0]:.2f}, {sd['exponent_ci'][1]:.2f}]"}
    gmacs_files = sorted({str(s) for s in comp["gmacs_source"].dropna().unique()})
    inputs = [folder / TIMM_RESULTS[k] for k in TIMM_RESULTS if (folder / TIMM_RESULTS[k]).is_file()]
    inputs += [folder / f for f in gmacs_files]
    return fig, {"inputs": inputs, "numbers": numbers, "table": table, "headline": headline,
                 "caption": "timm's published results (every configuration; models at two image sizes are two "
                            "points). Left: least squares on probit axes with a 95% bootstrap band (resampling "
                            "configurations, binomial redraws of each accuracy). Right: GMACs per image from timm's "
                            "inference benchmarks; the power law is fitted on the Pareto frontier only."}
