"""Your models among the published ones on six natural shifts.

For each shift (ImageNet-v2 MatchedFrequency, ImageNet-ReaL, -A, -R,
-Sketch, ObjectNet): the shift's top-1 against ImageNet val top-1 on logit
axes for the imagenet-testbed's 338 models and timm's 1,556
configurations, the line of standard ImageNet-1k models -- the baseline of
effective robustness (Taori et al. 2020) -- with its 95% band, and the
user's own models from ``replication evaluate`` outputs (``evaluations=``
a folder) with their effective robustness and 95% intervals (the line's
bootstrap and each model's binomial error,
:func:`replication.fits.robustness.effective_robustness_of`).

The line: Taori et al.'s (the testbed's STANDARD models, val >= 55%, names
without aws/batch64/subsample) where the testbed has the shift; for
ImageNet-ReaL, which it lacks, timm's configurations trained on ImageNet-1k
only (by name tag) with val >= 55%.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from replication.figures._axes import accuracy_scale
from replication.figures._base import PALETTE, new_figure, register_figure
from replication.figures._data import DATASET_LABELS, TESTBED_TOP1, TESTBED_TYPES, TIMM_DIR
from replication.figures.taori2020 import LINE_MIN_VAL, taori_line
from replication.figures.timm_scaling import pretraining
from replication.fits.importers import DATASET_SIZES, TIMM_RESULTS, import_testbed, import_timm
from replication.fits.lines import LineFit, LineResults
from replication.fits.robustness import effective_robustness_of

X = "imagenet-val"
SHIFTS = ("imagenetv2-matched-frequency", "imagenet-real", "imagenet-a", "imagenet-r", "imagenet-sketch", "objectnet")
#: images behind timm's published accuracies (the datasets' full sizes; ReaL: val images with a ReaL label)
TIMM_SIZES = {"imagenet-val": 50_000, "imagenetv2-matched-frequency": 10_000, "imagenet-real": 46_837,
              "imagenet-a": 7_500, "imagenet-r": 30_000, "imagenet-sketch": 50_889}
MARKERS = ("o", "s", "D", "^", "v", "P", "X", "*")
_ER_COLUMNS = ["model", "x", "y", "expected", "er", "er_lower", "er_upper", "n_x", "n_y"]


def shift_line(y: str, testbed: pd.DataFrame, timm: pd.DataFrame, *, n_bootstrap: int = 1000,
               seed: int = 0) -> tuple[LineResults, str]:
    """The effective-robustness baseline of shift ``y`` (logit axes) and a
    sentence saying which models it was fitted on."""
    if y in testbed.columns and testbed[y].notna().any():
        fit, _, _ = taori_line(testbed, y=y, n_bootstrap=n_bootstrap, random_state=seed)
        return fit, f"testbed STANDARD models with val >= {LINE_MIN_VAL:g}% ({fit.nobs})"
    both = timm.dropna(subset=[X, y])
    keep = (pretraining(both["timm_model"]) == "ImageNet-1k") & (both[X] >= LINE_MIN_VAL) & (both[y] > 0) & (both[y] < 100)
    std = both[keep]
    fit = LineFit("logit", n_bootstrap=n_bootstrap, random_state=seed).fit(
        std[X], std[y], names=std["model"], n_x=TIMM_SIZES[X], n_y=TIMM_SIZES[y])
    return fit, f"timm ImageNet-1k configurations with val >= {LINE_MIN_VAL:g}% ({fit.nobs})"


def _points(table: pd.DataFrame, y: str) -> pd.DataFrame:
    """``model, x, y`` of the rows of a published table with val and ``y`` (none when it lacks ``y``)."""
    if y not in table.columns:
        return pd.DataFrame({"model": [], "x": [], "y": []})
    both = table.dropna(subset=[X, y])
    return pd.DataFrame({"model": both["model"].astype(str), "x": both[X], "y": both[y]}).reset_index(drop=True)


def user_models(evaluations: str | Path) -> tuple[pd.DataFrame, list[Path]]:
    """(accuracy per (model, dataset) of the evaluate outputs in
    ``evaluations``: ``model, dataset, n, correct, accuracy``; the files read)."""
    from evaluators.collect import accuracy_counts

    folder = Path(evaluations)
    acc = accuracy_counts(folder)
    return acc, [folder / d / f"{m}.parquet" for m, d in zip(acc["model"], acc["dataset"])]


def user_robustness(acc: pd.DataFrame, y: str, fit: LineResults, *, seed: int = 0) -> pd.DataFrame:
    """Effective robustness on ``y`` of the user's models evaluated on both
    val and ``y`` (empty when none is)."""
    wide = acc.pivot(index="model", columns="dataset", values=["accuracy", "n"])
    if X not in wide["accuracy"] or y not in wide["accuracy"]:
        return pd.DataFrame(columns=_ER_COLUMNS)
    both = wide.dropna(subset=[("accuracy", X), ("accuracy", y)])
    if both.empty:
        return pd.DataFrame(columns=_ER_COLUMNS)
    n_x, n_y = both[("n", X)].astype(int).to_numpy(), both[("n", y)].astype(int).to_numpy()
    er = effective_robustness_of(fit, both.index.tolist(), both[("accuracy", X)], both[("accuracy", y)],
                                 n_x=n_x, n_y=n_y, random_state=seed)
    return er.assign(n_x=n_x, n_y=n_y)


@register_figure("shift_lines", title="Your models on six natural shifts among the testbed's 338 models and timm's "
                                      "1,556 configurations",
                 paper="Taori et al. 2020 (effective robustness); Radford et al. 2021; timm results",
                 inputs=(TESTBED_TOP1, TESTBED_TYPES, f"{TIMM_DIR}/{TIMM_RESULTS[X]}",
                         f"{TIMM_DIR}/{TIMM_RESULTS['imagenet-real']}"))
def draw_shift_lines(reference_dir: Path, *, evaluations: str | Path | None = None, n_bootstrap: int = 1000,
                     seed: int = 0) -> tuple[Figure, dict]:
    """One panel per shift: published points, the standard models' line
    and band, y = x, and the user's models (``evaluations``: a folder of
    ``replication evaluate`` outputs) with their effective robustness."""
    acc, user_files = user_models(evaluations) if evaluations is not None else (None, [])
    testbed = import_testbed(reference_dir / TESTBED_TOP1, reference_dir / TESTBED_TYPES).table
    timm = import_timm(reference_dir / TIMM_DIR, gmacs=False).table
    names = sorted(acc["model"].unique()) if acc is not None else []
    no_val = sorted(set(names) - set(acc.loc[acc["dataset"] == X, "model"])) if acc is not None else []
    style = {m: (PALETTE[(i + 1) % len(PALETTE)], MARKERS[i % len(MARKERS)]) for i, m in enumerate(names)}
    fig, axes = new_figure(2, 3, width=15.0, height=9.6)
    lo, hi = 0.5, 97.0
    numbers, table, headline = {"shifts": {}}, [], {}
    for ax, y in zip(axes.ravel(), SHIFTS):
        fit, source = shift_line(y, testbed, timm, n_bootstrap=n_bootstrap, seed=seed)
        label = DATASET_LABELS[y]
        tb, tm = _points(testbed, y), _points(timm, y)
        for pts, name, kw in ((tm, "timm", {"s": 4, "color": "#BBBBBB", "alpha": 0.6}),
                              (tb, "testbed", {"s": 7, "color": PALETTE[0], "alpha": 0.7})):
            if len(pts):
                ax.scatter(pts["x"], pts["y"], edgecolors="none", label=f"{name} ({len(pts):,})", **kw)
        grid = np.linspace(30.0, 92.0, 150)
        band = fit.predict(grid, band=True)
        d = fit.to_dict(residuals=False)
        ax.fill_between(band["x"], band["lower"], band["upper"], color="#333333", alpha=0.25, lw=0)
        ax.plot(band["x"], band["fit"], color="#222222", lw=1.2, label=f"line: logit slope {d['slope']:.2f}")
        ax.plot([lo, hi], [lo, hi], ls="--", color="black", lw=0.8)
        er = user_robustness(acc, y, fit, seed=seed) if acc is not None else pd.DataFrame(columns=_ER_COLUMNS)
        for r in er.itertuples(index=False):
            colour, marker = style[r.model]
            ax.scatter([r.x], [r.y], s=60, color=colour, marker=marker, edgecolors="black", linewidths=0.6, zorder=5,
                       label=f"{r.model}: ER {r.er:+.1f} [{r.er_lower:+.1f}, {r.er_upper:+.1f}]")
            table.append({"model": r.model, "shift": y, "val top-1 (%)": round(r.x, 2), "shift top-1 (%)": round(r.y, 2),
                          "line at val (%)": round(r.expected, 2), "effective robustness (points)": round(r.er, 2),
                          "95% CI low": round(r.er_lower, 2), "95% CI high": round(r.er_upper, 2),
                          "images (val, shift)": f"{r.n_x:,}, {r.n_y:,}"})
        accuracy_scale(ax, "x", "logit", 30.0, 95.0)
        accuracy_scale(ax, "y", "logit", lo, hi)
        ax.set_xlabel("ImageNet val top-1 (%, logit axis)")
        ax.set_ylabel(f"{label} top-1 (%, logit axis)")
        ax.set_title(label)
        ax.legend(loc="upper left", fontsize=6.5, markerscale=1.0)
        numbers["shifts"][y] = {"line": d, "line_models": source,
                                "band": {k: band[k].to_numpy() for k in ("x", "fit", "lower", "upper")},
                                "testbed": tb.to_dict(orient="list"), "timm": tm.to_dict(orient="list"),
                                "user_models": er.to_dict(orient="list")}
        headline[f"{label} line (logit), slope"] = (f"{d['slope']:.3f} [{d['slope_ci'][0]:.3f}, {d['slope_ci'][1]:.3f}] "
                                                    f"on {source}")
    if table:
        best = max(table, key=lambda r: r["effective robustness (points)"])
        headline["largest effective robustness among your models"] = (
            f"{best['model']} on {DATASET_LABELS[best['shift']]}: {best['effective robustness (points)']:+.2f} points "
            f"[{best['95% CI low']:+.2f}, {best['95% CI high']:+.2f}]")
    numbers["user_accuracies"] = acc.to_dict(orient="list") if acc is not None else None
    users = (f"Large markers: the {len(names)} model(s) in {evaluations} (evaluate outputs), with effective robustness "
             "(ER: points above the line) and its 95% interval (the line's bootstrap and the model's binomial error "
             "on both datasets)." if names else "No evaluate outputs given (figures/report --evaluations DIR): "
             "published models only.")
    inputs = [reference_dir / TESTBED_TOP1, reference_dir / TESTBED_TYPES]
    inputs += [reference_dir / TIMM_DIR / f for f in TIMM_RESULTS.values() if (reference_dir / TIMM_DIR / f).is_file()]
    notes = [f"not placed (no {X} outputs in {evaluations}): {', '.join(no_val)}"] if no_val else []
    return fig, {"inputs": inputs + user_files, "numbers": numbers, "table": table, "headline": headline, "notes": notes,
                 "caption": "Top-1 on each shift against ImageNet val, logit axes; small points: timm's configurations "
                            "(grey) and the testbed's models (blue). Line: least squares on logit axes over standard "
                            "ImageNet-1k models (the testbed's STANDARD models with Taori et al.'s filter; for ReaL, "
                            "timm's ImageNet-1k configurations), with a 95% bootstrap band; dashed: y = x. " + users}
