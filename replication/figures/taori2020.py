"""Taori et al. 2020 style: a natural shift (default ImageNet-v2
MatchedFrequency; any of the testbed's: ``y=``) against ImageNet val on
logit axes for the testbed's models, coloured by model category, with the
line fitted on standard models, and each model's effective robustness."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from replication.errors import InputError
from replication.figures._axes import accuracy_scale
from replication.figures._base import PALETTE, new_figure, register_figure
from replication.figures._data import DATASET_LABELS, TESTBED_TOP1, TESTBED_TYPES
from replication.fits.importers import import_testbed
from replication.fits.lines import LineFit, LineResults, select_models

X, Y = "imagenet-val", "imagenetv2-matched-frequency"
#: Taori et al.'s line: standard models with val >= 55 %, names without these substrings
LINE_EXCLUDE = ("aws", "batch64", "subsample")
LINE_MIN_VAL = 55.0
#: categories drawn in their own colour; the rest are "other"
CATEGORIES = ("STANDARD", "MORE_DATA", "ROBUST_INTV", "LOW_ACCURACY_CNN")


def taori_line(table: pd.DataFrame, *, y: str = Y, n_bootstrap: int = 1000,
               random_state: int = 0) -> tuple[LineResults, pd.DataFrame, pd.DataFrame]:
    """Taori et al.'s line (logit axes) of ``y`` on val over the testbed
    table's standard models, and every evaluated model's effective
    robustness against it. Models at 0% or 100% on ``y`` (no logit) stay
    out of the line."""
    if y not in table.columns or y == X:
        raise InputError(f"testbed table: no shift column {y!r} (have {', '.join(c for c in DATASET_LABELS if c in table and c != X)})")
    evaluated = table.dropna(subset=[X, y]).reset_index(drop=True)
    std = select_models(evaluated, where={"nat_model_type": ["STANDARD"]}, exclude_substrings=LINE_EXCLUDE,
                        at_least={X: LINE_MIN_VAL}, source="testbed")
    std = std[(std[y] > 0) & (std[y] < 100)]
    fit = LineFit("logit", n_bootstrap=n_bootstrap, random_state=random_state).fit(
        std[X], std[y], names=std["model"], n_x=std[f"{X}_n"], n_y=std[f"{y}_n"])
    # residual of every evaluated model from the standard models' line
    expected = fit.predict(evaluated[X].to_numpy())["fit"].to_numpy()
    er = pd.DataFrame({"model": evaluated["model"], "category": evaluated["nat_model_type"].fillna("unknown"),
                       "x": evaluated[X], "y": evaluated[y], "expected": expected,
                       "effective_robustness": evaluated[y].to_numpy() - expected})
    return fit, std, er


@register_figure("taori2020_effective_robustness",
                 title="Effective robustness on ImageNet-v2, testbed models (Taori et al. 2020)",
                 paper="Taori et al. 2020, Measuring Robustness to Natural Distribution Shifts",
                 inputs=(TESTBED_TOP1, TESTBED_TYPES))
def draw_effective_robustness(reference_dir: Path, *, n_bootstrap: int = 1000, seed: int = 0,
                              y: str = Y) -> tuple[Figure, dict]:
    """Left: the shift ``y`` (a testbed column: imagenetv2-matched-frequency,
    imagenet-a, imagenet-r, imagenet-sketch, objectnet) vs val on logit axes
    with the line and y = x. Right: effective robustness (points) against
    val accuracy."""
    imported = import_testbed(reference_dir / TESTBED_TOP1, reference_dir / TESTBED_TYPES)
    fit, std, er = taori_line(imported.table, y=y, n_bootstrap=n_bootstrap, random_state=seed)
    y_name = DATASET_LABELS.get(y, y)
    fig, axes = new_figure(1, 2, width=12.0, height=5.4)
    ax, axr = axes[0]
    lo, hi = 0.2, 95.0
    cats = [c for c in CATEGORIES if (er["category"] == c).any()]
    groups = [(c, er["category"] == c) for c in cats] + [("other", ~er["category"].isin(cats))]
    handles = []
    for colour, (cat, mask) in zip(PALETTE, groups):
        if not mask.any():
            continue
        label = f"{cat.replace('_', ' ').lower()} ({int(mask.sum())})"
        handles.append(ax.scatter(er.loc[mask, "x"], er.loc[mask, "y"], s=12, color=colour, alpha=0.8,
                                  edgecolors="none", label=label, zorder=3))
        axr.scatter(er.loc[mask, "x"], er.loc[mask, "effective_robustness"], s=12, color=colour, alpha=0.8,
                    edgecolors="none", zorder=3)
    grid = np.linspace(lo, hi, 200)
    band = fit.predict(grid, band=True)
    d = fit.to_dict(residuals=False)
    hb = ax.fill_between(band["x"], band["lower"], band["upper"], color="#888888", alpha=0.35, lw=0,
                         label="95% band")
    (hl,) = ax.plot(band["x"], band["fit"], color="#333333",
                    label=f"line on {d['n']} standard models: logit slope {d['slope']:.2f}")
    (hd,) = ax.plot([lo, hi], [lo, hi], ls="--", color="black", lw=1.0, label="y = x")
    accuracy_scale(ax, "x", "logit", lo, hi)
    accuracy_scale(ax, "y", "logit", lo, hi)
    ax.set_xlabel("ImageNet val top-1 (%, logit axis)")
    ax.set_ylabel(f"{y_name} top-1 (%, logit axis)")
    ax.set_title("Accuracy on the line")
    ax.legend(handles=[hl, hb, hd, *handles], loc="upper left", title="model category (models)")
    axr.axhline(0, color="#333333", lw=1.0)
    accuracy_scale(axr, "x", "logit", lo, hi)
    axr.set_xlabel("ImageNet val top-1 (%, logit axis)")
    axr.set_ylabel("effective robustness (points above the line)")
    axr.set_title(f"Effective robustness = {y_name} top-1 minus the line's prediction")
    best = er.sort_values("effective_robustness", ascending=False).head(8)
    for r in best.head(2).itertuples(index=False):
        axr.annotate(r.model, (r.x, r.effective_robustness), xytext=(-6, 0), textcoords="offset points",
                     ha="right", va="center", fontsize=7.5)
    by_cat = er.groupby("category")["effective_robustness"].agg(["count", "mean", "max"]).reset_index()
    table = [{"category": r.category, "models": int(r.count), "mean ER (points)": round(float(r.mean), 2),
              "max ER (points)": round(float(r.max), 2)} for r in by_cat.itertuples(index=False)]
    numbers = {"y": y, "line": d, "line_models": std["model"].tolist(),
               "band": {k: band[k].to_numpy() for k in ("x", "fit", "lower", "upper")},
               "models": er.to_dict(orient="list"), "import_messages": imported.messages}
    headline = {f"testbed line (logit, {y_name} on val), slope": f"{d['slope']:.3f} [{d['slope_ci'][0]:.3f}, {d['slope_ci'][1]:.3f}]",
                "largest effective robustness": f"{best.iloc[0]['model']}: {best.iloc[0]['effective_robustness']:.1f} points"}
    return fig, {"inputs": [reference_dir / TESTBED_TOP1, reference_dir / TESTBED_TYPES], "numbers": numbers,
                 "table": table, "headline": headline,
                 "caption": f"{len(er)} testbed models with both accuracies. Line: least squares on logit axes over "
                            f"the {d['n']} STANDARD models with val >= {LINE_MIN_VAL:g}% whose names contain none of "
                            f"{', '.join(LINE_EXCLUDE)} (Taori et al.'s choice); band: 95% bootstrap over models."}
