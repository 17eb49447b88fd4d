"""Recht et al. 2019, Fig. 1 style: ImageNet-v2 top-1 against ImageNet val
top-1 for each of the three v2 sets, per-model 95% Clopper-Pearson intervals,
the fitted line with its 95% band, and y = x."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from replication.fits.accuracy import AccuracyResults, accuracy_from_correctness
from replication.errors import InputError
from replication.figures._base import PALETTE, new_figure, register_figure
from replication.figures._data import CORRECT_TOP1, correctness
from replication.figures._families import families
from replication.fits.importers import DATASET_SIZES
from replication.io.tables import validate_accuracy_table
from replication.fits.lines import LineFit

V2_SETS = {
    "imagenetv2-matched-frequency": "MatchedFrequency",
    "imagenetv2-threshold0.7": "Threshold0.7",
    "imagenetv2-top-images": "TopImages",
}
REFERENCE = "imagenet-val"


def accuracy_from_table(table: pd.DataFrame, n_images: dict[str, int] | None = None) -> AccuracyResults:
    """Accuracies from a contract accuracy table (``model`` + dataset-id
    columns in percent) as :class:`AccuracyResults`, with correct counts
    rounded from percent and ``n_images`` (default: 50,000 val and 10,000 per
    v2 set) so that Clopper-Pearson intervals can be drawn."""
    sizes = dict(DATASET_SIZES if n_images is None else n_images)
    datasets = (REFERENCE, *V2_SETS)
    missing = [d for d in datasets if d not in table.columns]
    if missing:
        raise InputError(f"accuracy table: missing column(s) {', '.join(missing)}")
    clean = validate_accuracy_table(table, "accuracy table", datasets)
    n = pd.Series({d: int(sizes[d]) for d in datasets})
    counts = pd.DataFrame([np.rint(clean[d].to_numpy() / 100 * n[d]) for d in datasets], index=datasets,
                          columns=clean["model"].astype(str))
    return AccuracyResults(counts.astype(np.int64), n)


def v2_lines(acc: AccuracyResults, *, scale: str = "linear", n_bootstrap: int = 1000, random_state: int = 0) -> dict:
    """Per v2 set: every model's val and v2 top-1 (percent) with 95%
    Clopper-Pearson intervals, and the line of v2 on val (:class:`LineFit`
    with binomial redraws, one seed per set). ``acc`` comes from
    :func:`~replication.fits.accuracy.accuracy_from_correctness` or
    :func:`accuracy_from_table`."""
    pct, (lo, hi) = acc.accuracy, acc.conf_int()
    models = list(pct.columns)
    out = {}
    for i, (ds, label) in enumerate(V2_SETS.items()):
        fit = LineFit(scale, n_bootstrap=n_bootstrap, random_state=random_state + i).fit(
            pct.loc[REFERENCE].to_numpy(), pct.loc[ds].to_numpy(), names=models,
            n_x=int(acc.n_images[REFERENCE]), n_y=int(acc.n_images[ds]))
        out[ds] = {"label": label, "models": models,
                   "x": pct.loc[REFERENCE].to_numpy(), "x_ci": np.vstack([lo.loc[REFERENCE], hi.loc[REFERENCE]]),
                   "y": pct.loc[ds].to_numpy(), "y_ci": np.vstack([lo.loc[ds], hi.loc[ds]]),
                   "n_x": int(acc.n_images[REFERENCE]), "n_y": int(acc.n_images[ds]),
                   "gap_mean": float((pct.loc[REFERENCE] - pct.loc[ds]).mean()), "fit": fit}
    return out


@register_figure("recht2019_v2_vs_v1", title="ImageNet-v2 vs ImageNet top-1, 67 models (Recht et al. 2019, Fig. 1)",
                 paper="Recht et al. 2019, Do ImageNet Classifiers Generalize to ImageNet?", inputs=(CORRECT_TOP1,))
def draw_v2_vs_v1(reference_dir: Path, *, scale: str = "linear", n_bootstrap: int = 1000,
                  seed: int = 0) -> tuple[Figure, dict]:
    """Three panels (MatchedFrequency, Threshold0.7, TopImages) from the
    per-image correctness matrix."""
    fig, data = v2_vs_v1_figure(accuracy_from_correctness(correctness(reference_dir)), scale=scale,
                                n_bootstrap=n_bootstrap, seed=seed)
    return fig, {**data, "inputs": [reference_dir / CORRECT_TOP1]}


def v2_vs_v1_figure(acc: AccuracyResults, *, scale: str = "linear", n_bootstrap: int = 1000,
                    seed: int = 0) -> tuple[Figure, dict]:
    """The Recht Fig. 1 style figure from any accuracies (see :func:`v2_lines`);
    returns (Figure, data without ``inputs``)."""
    res = v2_lines(acc, scale=scale, n_bootstrap=n_bootstrap, random_state=seed)
    fig, axes = new_figure(1, 3, width=13.0, height=5.4, sharex=True, sharey=True)
    first = next(iter(res.values()))
    fam = families(first["models"])
    lim = (10.0, 90.0)
    grid = np.linspace(lim[0], lim[1], 161)
    numbers = {"scale": scale, "n_bootstrap": n_bootstrap, "seed": seed, "sets": {}}
    fam_handles = []
    for ax, (ds, r) in zip(axes[0], res.items()):
        x, y = r["x"], r["y"]
        xerr, yerr = np.abs(r["x_ci"] - x), np.abs(r["y_ci"] - y)
        fam_handles = []
        for colour, (fname, members) in zip(PALETTE, fam.items()):
            idx = [r["models"].index(m) for m in members]
            fam_handles.append(ax.errorbar(x[idx], y[idx], xerr=xerr[:, idx], yerr=yerr[:, idx], fmt="o", ms=3.5,
                                           elinewidth=0.8, capsize=0, color=colour, label=fname, zorder=3))
        band = r["fit"].predict(grid, band=True)
        d = r["fit"].to_dict(residuals=False)
        hb = ax.fill_between(band["x"], band["lower"], band["upper"], color="#888888", alpha=0.35, lw=0,
                             label="95% band of the line")
        (hl,) = ax.plot(band["x"], band["fit"], color="#333333", lw=1.4,
                        label=f"{scale} fit, slope {d['slope']:.2f} [{d['slope_ci'][0]:.2f}, {d['slope_ci'][1]:.2f}]")
        (hd,) = ax.plot(lim, lim, ls="--", color="black", lw=1.0, label="y = x")
        ax.set_xlim(lim)
        ax.set_ylim(lim)
        change = "drop" if r["gap_mean"] >= 0 else "gain"
        ax.set_title(f"ImageNet-v2 {r['label']}\nmean {change} vs val: {abs(r['gap_mean']):.1f} points")
        ax.set_xlabel("ImageNet val top-1 (%)")
        ax.legend(handles=[hl, hb, hd], loc="upper left")
        numbers["sets"][ds] = {
            "label": r["label"], "models": r["models"], "x": x, "x_ci": r["x_ci"], "y": y, "y_ci": r["y_ci"],
            "n_x": r["n_x"], "n_y": r["n_y"], "gap_mean": r["gap_mean"], "line": d,
            "band": {k: band[k].to_numpy() for k in ("x", "fit", "lower", "upper")}}
    axes[0, 0].set_ylabel("ImageNet-v2 top-1 (%)")
    fig.legend(handles=fam_handles, labels=[f"{f} ({len(m)})" for f, m in fam.items()], loc="outside lower center",
               ncols=4, title="model family (models); error bars: 95% Clopper-Pearson intervals")
    table = [{"model": m, "val (%)": round(float(first["x"][j]), 2),
              **{f"{r['label']} (%)": round(float(r["y"][j]), 2) for r in res.values()},
              "MF drop (points)": round(float(first["x"][j] - first["y"][j]), 2)}
             for j, m in enumerate(first["models"])]
    mf = numbers["sets"]["imagenetv2-matched-frequency"]
    headline = {f"mean drop val -> MatchedFrequency ({len(first['models'])} models)": f"{mf['gap_mean']:.2f} points",
                "slope of the MatchedFrequency line": f"{mf['line']['slope']:.3f} "
                f"[{mf['line']['slope_ci'][0]:.3f}, {mf['line']['slope_ci'][1]:.3f}]"}
    return fig, {"numbers": numbers, "table": table, "headline": headline,
                 "caption": f"Each point is one model ({len(first['models'])}; for the reference data, Recht et al.'s "
                            f"models with per-image correctness from their release); bars are 95% Clopper-Pearson intervals. Grey: least-squares line on the "
                            f"{scale} scale with a 95% bootstrap band ({n_bootstrap} resamples of models, with "
                            f"binomial redraws of each accuracy). Dashed: y = x."}
