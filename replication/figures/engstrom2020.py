"""Engstrom et al. 2020 style figures, from any replication study (annotation
table + correctness matrix) or from the simulator:

- observed k/n histograms per dataset with the fitted priors (beta mixture
  and NPMLE) and their densities g(s);
- f(s) = P(correct | s) curves of chosen models (monotone deconvolution);
- adjusted and raw replication accuracy against reference accuracy, with the
  least-squares line through each;
- the plug-in estimate against 1/n as annotators are dropped, with the
  jackknife's linear extrapolation to infinitely many annotators.

ImageNet-v2's selection frequencies were never published, so the registered
figures draw a simulated study (preset ``engstrom2020``) and say so on the
figure; the histogram figure adds the real ImageNet-ReaL votes.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd

from replication.deconvolution import Deconvolution
from replication.estimators import METHODS
from replication.estimators.jackknife import _mean_inverse_n, thin
from replication.estimators.naive import plug_in
from replication.estimators.results import BiasResults, SelectionBiasEstimator
from replication.figures._base import PALETTE, mark_simulated, new_figure, register_figure
from replication.figures._data import CORRECT_TOP1, REAL_VOTES, correctness, real_votes
from replication.fits.lines import LineFit
from replication.priors import BetaMixturePrior, NPMLEPrior
from replication.simulate import SimulatedStudy, SimulationConfig, accuracy_curve, simulate
from replication.study import StudyData

PRESET = "engstrom2020"
#: the methods compared, in this order, where registered
METHOD_ORDER = ("naive", "jackknife", "betabinomial", "npmle")
#: upper limit of the prior-density axes (a narrow beta component would flatten everything else)
DENSITY_CAP = 8.0
SIM_NOTE = ("ImageNet-v2 selection frequencies were never published; this study is simulated "
            f"(preset {PRESET}: ~11.7-point raw drop, ~3.6 points true shift)")


# --------------------------------------------------------------------------- simulated study
@functools.lru_cache(maxsize=2)
def simulated_study(seed: int = 0) -> SimulatedStudy:
    """The ``engstrom2020`` preset drawn with ``default_rng(seed)`` (cached)."""
    return simulate(SimulationConfig.preset(PRESET), np.random.default_rng(seed))


def available_methods() -> tuple[str, ...]:
    """The methods of :data:`METHOD_ORDER` that are registered."""
    return tuple(m for m in METHOD_ORDER if m in METHODS)


@functools.lru_cache(maxsize=2)
def simulated_results(seed: int = 0, n_bootstrap: int = 100) -> BiasResults:
    """Every method fitted to :func:`simulated_study` (seeded bootstrap; cached)."""
    study = simulated_study(seed)
    return SelectionBiasEstimator(available_methods(), n_bootstrap=n_bootstrap, random_state=seed).fit(
        study.annotations, study.correctness)


def true_curves(study: SimulatedStudy, s: np.ndarray) -> pd.DataFrame:
    """The simulator's true replication curves P(correct | s), one column per model."""
    cfg = study.config
    return pd.DataFrame(accuracy_curve(np.asarray(s), study.truth[["intercept", "slope"]], cfg.pivot, cfg.shift),
                        columns=study.truth.index)


# --------------------------------------------------------------------------- histograms + priors
def fit_priors(k: np.ndarray, n: np.ndarray, *, random_state: int = 0) -> dict:
    """Beta-mixture (K by BIC) and NPMLE priors fitted to one dataset's counts."""
    return {"beta mixture": BetaMixturePrior(random_state=random_state).fit(k, n),
            "NPMLE": NPMLEPrior(grid_size=501, max_iter=50_000).fit(k, n)}


def expected_histogram(prior, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(k/n values, expected share of images) under ``prior`` for the images'
    annotator counts ``n``: each distinct n contributes its share times the
    fitted marginal of k."""
    values, share = np.unique(n, return_counts=True)
    frac = np.concatenate([np.arange(v + 1) / v for v in values])
    mass = np.concatenate([c / len(n) * prior.marginal_k(v) for v, c in zip(values, share)])
    order = np.argsort(frac, kind="stable")
    frac, mass = frac[order], mass[order]
    uniq, inv = np.unique(frac, return_inverse=True)
    return uniq, np.bincount(inv, weights=mass)


def draw_histograms(datasets: list[tuple[str, np.ndarray, np.ndarray]], *, random_state: int = 0):
    """One column per ``(label, k, n)``: observed share of images at each k/n
    (bars) with the priors' fitted marginals (markers), and the fitted prior
    densities g(s) below. Returns (Figure, numbers)."""
    fig, axes = new_figure(2, len(datasets), width=4.3 * len(datasets), height=6.4, sharex=True)
    numbers = {}
    edges = np.linspace(0, 1, 21)
    s_grid = np.linspace(0.0025, 0.9975, 200)
    for col, (label, k, n) in enumerate(datasets):
        k, n = np.asarray(k), np.asarray(n)
        frac_obs, count = np.unique(k / n, return_counts=True)
        share = count / len(k)
        ax, axg = axes[0, col], axes[1, col]
        width = 0.8 / max(int(n.max()), 1)
        ax.bar(frac_obs, share, width=width, color="#BBBBBB", label="observed")
        priors = fit_priors(k, n, random_state=random_state)
        entry = {"n_images": len(k), "k_over_n": frac_obs, "observed_share": share, "priors": {}}
        for (name, prior), colour, marker in zip(priors.items(), (PALETTE[0], PALETTE[1]), ("o", "x")):
            frac_fit, mass = expected_histogram(prior, n)
            gof = prior.goodness_of_fit(k, n)
            ax.plot(frac_fit, mass, marker, color=colour, ms=5, label=f"{name} fit (χ² p = {gof.pvalue:.2f})")
            cells = prior.cell_mass(edges)
            if name == "beta mixture":
                dens = prior.pdf(s_grid)
                axg.plot(s_grid, dens, color=colour, label=f"{name} ({prior.n_components_} comp.)")
            else:
                dens = cells / np.diff(edges)
                axg.stairs(dens, edges, color=colour, label=f"{name} (mass per 0.05 bin)")
            entry["priors"][name] = {"expected_k_over_n": frac_fit, "expected_share": mass,
                                     "loglik": prior.loglik(k, n), "gof_pvalue": gof.pvalue,
                                     "gof_statistic": gof.statistic, "cell_edges": edges, "cell_mass": cells,
                                     "mean_s": float(cells @ ((edges[1:] + edges[:-1]) / 2))}
        ax.set_title(label)
        ax.set_ylabel("share of images")
        ax.legend(loc="upper left", frameon=True, framealpha=0.9, edgecolor="none")
        axg.set_xlabel("selection frequency (observed k/n above, true s below)")
        axg.set_ylabel("fitted density g(s)")
        axg.set_xlim(-0.03, 1.03)
        peak = max(float(line.get_ydata().max()) for line in axg.lines) if axg.lines else 0.0
        if peak > DENSITY_CAP:
            axg.set_ylim(0, DENSITY_CAP)
            axg.annotate(f"density axis clipped at {DENSITY_CAP:g}\n(peak {peak:.0f})", (0.02, 0.72),
                         xycoords="axes fraction", ha="left", va="top", fontsize=7.5)
        axg.legend(loc="upper left")
        numbers[label] = entry
    return fig, numbers


@register_figure("engstrom2020_histograms", title="Selection frequencies: observed k/n with fitted priors",
                 paper="Engstrom et al. 2020, Identifying Statistical Bias in Dataset Replication",
                 inputs=(REAL_VOTES,))
def draw_engstrom_histograms(reference_dir: Path, *, seed: int = 0):
    study = simulated_study(seed)
    ann = study.annotations
    datasets = []
    for ds, tag in ((study.config.reference, "simulated reference"), (study.config.replication, "simulated v2 MF")):
        part = ann[ann["dataset"] == ds]
        datasets.append((f"{tag} (n = {int(part['n_annotators'].iloc[0])})", part["n_selected"].to_numpy(),
                         part["n_annotators"].to_numpy()))
    votes = real_votes(reference_dir)
    datasets.append(("REAL: ImageNet val, ReaL raters (n = 5)", votes["n_selected"].to_numpy(),
                     votes["n_annotators"].to_numpy()))
    fig, numbers = draw_histograms(datasets, random_state=seed)
    mark_simulated(fig, "left two columns simulated (v2 selection frequencies were never published); "
                        "right column: real ImageNet-ReaL votes")
    return fig, {"inputs": [reference_dir / REAL_VOTES], "numbers": {"seed": seed, "datasets": numbers},
                 "simulated": True,
                 "headline": {f"mean fitted s (NPMLE), {k}": f"{v['priors']['NPMLE']['mean_s']:.3f}"
                              for k, v in numbers.items()},
                 "caption": f"{SIM_NOTE}. Bars: share of images at each observed k/n; markers: the fitted "
                            "marginal of k under each prior (χ² goodness-of-fit p-value in the legend); below: "
                            "the fitted priors g(s). The ReaL column is real data (5 raters per val image)."}


# --------------------------------------------------------------------------- f(s) curves
def fs_curves(study: StudyData, models: list[str], *, prior: str = "npmle") -> dict:
    """Monotone f(s) of ``models`` on the replication set (deconvolution with
    ``prior``), and their observed accuracy at each observed k/n level."""
    table = study.levels()
    res = Deconvolution(prior).fit(table)
    frac = table.k / table.n
    out = {"prior": prior, "s": res.midpoints, "g_ref": res.g_ref, "g_rep": res.g_rep, "models": {}}
    for m in models:
        j = list(table.models).index(m)
        with np.errstate(invalid="ignore", divide="ignore"):
            obs = table.rep_correct[:, j] / table.rep_count
        keep = table.rep_count > 0
        out["models"][m] = {"f": res.curve(m)[1], "adjusted_accuracy": float(res.adjusted_accuracy[j]),
                            "replication_accuracy": float(res.replication_accuracy[j]),
                            "reference_accuracy": float(res.reference_accuracy[j]),
                            "observed_k_over_n": frac[keep], "observed_accuracy": obs[keep],
                            "observed_images": table.rep_count[keep]}
    return out


def chosen_models(reference_accuracy: pd.Series, count: int = 3) -> list[str]:
    """The least, median and most accurate models (by reference accuracy)."""
    order = reference_accuracy.sort_values().index
    idx = np.unique(np.linspace(0, len(order) - 1, count).round().astype(int))
    return [order[i] for i in idx]


def fs_figure(data: StudyData, models: list[str], *, prior: str = "npmle", truth: SimulatedStudy | None = None):
    """f(s) of ``models`` (fitted, and true when the simulated ``truth`` is
    given) with the observed accuracy at each k/n, and the fitted priors.
    Returns (Figure, data dict with ``numbers`` and ``table``)."""
    res = fs_curves(data, models, prior=prior)
    true_f = true_curves(truth, res["s"]) if truth is not None else None
    fig, axes = new_figure(1, 2, width=12.0, height=5.6, gridspec_kw={"width_ratios": [2.2, 1]})
    ax, axg = axes[0]
    for colour, m in zip(PALETTE, models):
        r = res["models"][m]
        ax.step(res["s"], 100 * r["f"], where="mid", color=colour, lw=1.6,
                label=f"{m}: fitted f(s) (adjusted {100 * r['adjusted_accuracy']:.1f}%)")
        if true_f is not None:
            ax.plot(res["s"], 100 * true_f[m], color=colour, ls="--", lw=1.0, label=f"{m}: true f(s)")
        size = 8 + 40 * r["observed_images"] / r["observed_images"].max()
        ax.scatter(r["observed_k_over_n"], 100 * r["observed_accuracy"], s=size, color=colour, alpha=0.6,
                   edgecolors="none")
    ax.set_xlabel("selection frequency s (dots: observed k/n, size ∝ images)")
    ax.set_ylabel("top-1 accuracy on replication images (%)")
    ax.set_title(f"Monotone f(s) by deconvolution ({prior} prior)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 100)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=3, fontsize=7.5)
    axg.plot(res["s"], res["g_ref"] * len(res["s"]), color=PALETTE[0], label="reference g(s)")
    axg.plot(res["s"], res["g_rep"] * len(res["s"]), color=PALETTE[1], label="replication g(s)")
    axg.set_xlabel("selection frequency s")
    axg.set_ylabel("fitted density")
    axg.set_title("Fitted priors g(s) of the two datasets")
    axg.legend(loc="upper left")
    numbers = dict(res)
    if true_f is not None:
        numbers["true_f"] = {m: true_f[m].to_numpy() for m in models}
    table = []
    for m, r in res["models"].items():
        row = {"model": m, "reference (%)": round(100 * r["reference_accuracy"], 2),
               "raw replication (%)": round(100 * r["replication_accuracy"], 2),
               "adjusted (%)": round(100 * r["adjusted_accuracy"], 2)}
        if truth is not None:
            row["true adjusted (%)"] = round(100 * float(truth.truth.loc[m, "adjusted_replication_accuracy"]), 2)
        table.append(row)
    caption = ("Solid: the non-decreasing f(s) fitted by deconvolution; dots: observed accuracy among replication "
               "images at each k/n. The adjusted accuracy is the integral of f against the reference prior."
               + (" Dashed: the simulator's true curve." if truth is not None else ""))
    return fig, {"numbers": numbers, "table": table, "caption": caption}


@register_figure("engstrom2020_fs_curves", title="Accuracy against selection frequency, f(s), for three models",
                 paper="Engstrom et al. 2020", inputs=())
def draw_fs_curves(reference_dir: Path, *, seed: int = 0, prior: str = "npmle"):
    study = simulated_study(seed)
    data = StudyData.from_tables(study.annotations, study.correctness)
    fig, out = fs_figure(data, chosen_models(study.truth["reference_accuracy"]), prior=prior, truth=study)
    mark_simulated(fig, SIM_NOTE)
    out["numbers"]["seed"] = seed
    return fig, {**out, "inputs": [], "simulated": True, "caption": f"{SIM_NOTE}. {out['caption']}"}


# --------------------------------------------------------------------------- adjusted vs raw
def accuracy_lines(results: BiasResults, method: str) -> dict:
    """Least-squares lines (linear scale, OLS intervals) of the raw and of the
    ``method``-adjusted replication accuracy on the reference accuracy."""
    x = 100 * results.reference_accuracy
    raw = LineFit("linear", n_bootstrap=0).fit(x, 100 * results.replication_accuracy, names=x.index)
    adj = LineFit("linear", n_bootstrap=0).fit(x, 100 * results.adjusted_accuracy[method], names=x.index)
    return {"raw": raw, "adjusted": adj}


def preferred_method(results: BiasResults) -> str:
    """The adjusted accuracy to draw: jackknife (Engstrom et al.'s) when
    fitted, else the first fitted method other than naive, else naive."""
    if "jackknife" in results.methods:
        return "jackknife"
    return next((m for m in results.methods if m != "naive"), results.methods[0])


def draw_adjusted_vs_raw(results: BiasResults, *, method: str | None = None, truth: pd.DataFrame | None = None):
    """Left: raw and ``method``-adjusted (default :func:`preferred_method`)
    replication accuracy per model against reference accuracy, both lines,
    y = x (and the true adjusted line when known). Right: mean gap over
    models per method with 95% intervals."""
    method = preferred_method(results) if method is None else method
    fig, axes = new_figure(1, 2, width=12.0, height=5.2, gridspec_kw={"width_ratios": [1.6, 1]})
    ax, axm = axes[0]
    x = 100 * results.reference_accuracy
    lines = accuracy_lines(results, method)
    ci = results.conf_int().xs(f"adjusted_accuracy[{method}]", level="quantity").reindex(x.index)
    y_adj = 100 * results.adjusted_accuracy[method]
    ax.scatter(x, 100 * results.replication_accuracy, s=12, color="#999999", label="raw replication accuracy")
    ax.errorbar(x, y_adj, yerr=[y_adj - 100 * ci["lower"], 100 * ci["upper"] - y_adj], fmt="o", ms=3.5,
                color=PALETTE[0], elinewidth=0.7, label=f"{method}-adjusted (95% CI)")
    grid = np.linspace(x.min() - 1, x.max() + 1, 50)
    numbers = {"method": method, "models": list(x.index), "reference_accuracy": x.to_numpy(),
               "replication_accuracy": 100 * results.replication_accuracy.to_numpy(),
               "adjusted_accuracy": y_adj.to_numpy(), "adjusted_ci": np.vstack([100 * ci["lower"], 100 * ci["upper"]]),
               "lines": {}}
    for key, colour, ls in (("raw", "#666666", "-"), ("adjusted", PALETTE[0], "-")):
        fit = lines[key]
        band = fit.predict(grid, band=True)
        d = fit.to_dict(residuals=False)
        ax.plot(grid, band["fit"], color=colour, ls=ls, label=f"{key} line: slope {d['slope']:.2f}, "
                                                            f"intercept {d['intercept']:.1f}")
        ax.fill_between(grid, band["lower"], band["upper"], color=colour, alpha=0.15, lw=0)
        numbers["lines"][key] = d
    if truth is not None:
        t = 100 * truth["adjusted_replication_accuracy"].reindex(x.index)
        order = np.argsort(x.to_numpy())
        ax.plot(x.to_numpy()[order], t.to_numpy()[order], color="black", ls=":", label="true adjusted accuracy")
        numbers["true_adjusted_accuracy"] = t.to_numpy()
    lo, hi = float(min(x.min(), (100 * results.replication_accuracy).min())) - 2, float(x.max()) + 2
    ax.plot([lo, hi], [lo, hi], ls="--", color="black", lw=0.8, label="y = x")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel(f"reference ({results.reference}) top-1 (%)")
    ax.set_ylabel(f"replication ({results.replication}) top-1 (%)")
    ax.set_title("Raw and adjusted replication accuracy")
    ax.legend(loc="upper left", fontsize=7.5)
    means = results.mean_gap_conf_int()
    ypos = np.arange(len(means))[::-1]
    labels = ["raw (no correction)" if i == "raw" else i for i in means.index]
    axm.errorbar(100 * means["value"], ypos, xerr=[100 * (means["value"] - means["lower"]),
                                                  100 * (means["upper"] - means["value"])],
                 fmt="o", color=PALETTE[0], capsize=3)
    axm.set_yticks(ypos, labels)
    axm.set_ylim(-0.6, len(means) - 0.4)
    if truth is not None:
        axm.axvline(100 * truth["gap"].mean(), color="black", ls=":", label="true mean gap")
        axm.legend(loc="best")
        numbers["true_mean_gap"] = float(truth["gap"].mean())
    axm.axvline(0, color="#999999", lw=0.8)
    axm.set_xlabel("mean gap over models (percentage points, 95% CI)")
    axm.set_title("How much of the drop is real?")
    numbers["mean_gap"] = {k: {"value": float(r["value"]), "ci": [float(r["lower"]), float(r["upper"])]}
                           for k, r in means.iterrows()}
    return fig, numbers


@register_figure("engstrom2020_adjusted", title="Adjusted and raw replication accuracy with both lines",
                 paper="Engstrom et al. 2020", inputs=())
def draw_engstrom_adjusted(reference_dir: Path, *, seed: int = 0, n_bootstrap: int = 100, method: str | None = None):
    study = simulated_study(seed)
    results = simulated_results(seed, n_bootstrap)
    fig, numbers = draw_adjusted_vs_raw(results, method=method, truth=study.truth)
    method = numbers["method"]
    mark_simulated(fig, SIM_NOTE)
    mg = numbers["mean_gap"]
    table = [{"estimate": k, "mean gap (points)": round(100 * v["value"], 2),
              "95% CI": f"[{100 * v['ci'][0]:.2f}, {100 * v['ci'][1]:.2f}]"} for k, v in mg.items()]
    table.append({"estimate": "truth", "mean gap (points)": round(100 * numbers["true_mean_gap"], 2), "95% CI": ""})
    return fig, {"inputs": [], "numbers": {"seed": seed, "n_bootstrap": n_bootstrap, **numbers}, "simulated": True,
                 "table": table,
                 "headline": {"simulated raw mean gap": f"{100 * mg['raw']['value']:.2f} points",
                              f"simulated {method}-adjusted mean gap": f"{100 * mg[method]['value']:.2f} points "
                              f"(truth {100 * numbers['true_mean_gap']:.2f})"},
                 "caption": f"{SIM_NOTE}. Each model's raw replication accuracy (grey) and its {method}-adjusted "
                            f"accuracy (blue, 95% bootstrap CI over images, {n_bootstrap} replicates) against its "
                            "reference accuracy, with the least-squares line through each (bands: 95% OLS)."}


# --------------------------------------------------------------------------- jackknife vs 1/n
def plug_in_by_annotators(study: StudyData, max_drop: int | None = None) -> dict:
    """The plug-in (naive) estimate after dropping d = 0, 1, ... annotators
    per image (exact hypergeometric thinning), against the mean 1/(n - d)
    over images; per model and averaged over models."""
    table = study.levels()
    n_min = int(table.n.min())
    drops = range(0, (n_min - 1) if max_drop is None else min(max_drop, n_min - 1) + 1)
    x, acc = [], []
    for d in drops:
        thinned = table if d == 0 else thin(table, d)[0]
        x.append(float(_mean_inverse_n(table, shift=d)))
        acc.append(plug_in(thinned).accuracy)
    return {"drop": np.array(list(drops)), "mean_inverse_n": np.array(x), "plug_in": np.array(acc),
            "models": list(table.models)}


def jackknife_figure(data: StudyData, *, true_mean_adjusted: float | None = None):
    """The plug-in estimate (mean over models, %) against mean 1/(n - d) as
    d annotators are dropped, the delete-1 jackknife line to 1/n = 0, the
    raw replication accuracy and (when known) the truth."""
    res = plug_in_by_annotators(data)
    table = data.levels()
    jack = METHODS["jackknife"](table)
    mean_plug = 100 * res["plug_in"].mean(axis=1)
    x = res["mean_inverse_n"]
    jack_mean = 100 * float(np.mean(jack.accuracy))
    raw = 100 * float(table.replication_accuracy().mean())
    fig, axes = new_figure(1, 1, width=8.0, height=5.0)
    ax = axes[0, 0]
    ax.plot(x, mean_plug, "o", color=PALETTE[0], label="plug-in estimate after dropping annotators")
    last = -1.0
    for xi, yi, n in zip(x, mean_plug, np.round(1 / x).astype(int)):
        if xi - last >= 0.04:            # label points far enough apart to stay readable
            ax.annotate(f"n={n}", (xi, yi), xytext=(0, 7), textcoords="offset points", ha="center", fontsize=7)
            last = xi
    if len(x) > 1:
        xs = np.array([0.0, x[1]])
        slope = (mean_plug[1] - mean_plug[0]) / (x[1] - x[0])
        ax.plot(xs, mean_plug[0] + slope * (xs - x[0]), color=PALETTE[1], ls="--",
                label="jackknife line through n and n - 1")
    ax.plot([0], [jack_mean], "D", color=PALETTE[1], ms=7, label=f"jackknife estimate {jack_mean:.2f}%")
    if true_mean_adjusted is not None:
        ax.plot([0], [true_mean_adjusted], "*", color="black", ms=11,
                label=f"true adjusted accuracy {true_mean_adjusted:.2f}%")
    ax.axhline(raw, color="#999999", ls=":", label=f"raw replication accuracy {raw:.2f}%")
    ax.set_xlim(-0.02, x.max() * 1.08)
    ax.set_xlabel("mean 1 / (annotators per image)   (0 = infinitely many annotators)")
    ax.set_ylabel("mean adjusted replication top-1 over models (%)")
    ax.set_title("The plug-in estimate against 1/n and the jackknife's extrapolation")
    ax.legend(loc="center right", fontsize=7.5)
    numbers = {**res, "mean_plug_in": mean_plug, "jackknife_accuracy": jack.accuracy, "jackknife_mean": jack_mean,
               "raw_mean": raw, "true_mean_adjusted": true_mean_adjusted}
    caption = ("The plug-in (naive) estimate averaged over models after dropping d annotators from every image "
               "(exact hypergeometric thinning), plotted at the mean 1/(n - d); the delete-1 jackknife "
               "extrapolates the line through the first two points to 1/n = 0.")
    return fig, {"numbers": numbers, "caption": caption}


@register_figure("engstrom2020_jackknife", title="Jackknife: the plug-in estimate against 1/n, extrapolated to n = ∞",
                 paper="Engstrom et al. 2020", inputs=())
def draw_jackknife(reference_dir: Path, *, seed: int = 0):
    study = simulated_study(seed)
    data = StudyData.from_tables(study.annotations, study.correctness)
    truth = 100 * float(study.truth["adjusted_replication_accuracy"].mean())
    fig, out = jackknife_figure(data, true_mean_adjusted=truth)
    mark_simulated(fig, SIM_NOTE)
    out["numbers"]["seed"] = seed
    jack = out["numbers"]["jackknife_mean"]
    return fig, {**out, "inputs": [], "simulated": True, "caption": f"{SIM_NOTE}. {out['caption']}",
                 "headline": {"simulated mean adjusted accuracy: jackknife vs truth": f"{jack:.2f}% vs {truth:.2f}%"}}


# --------------------------------------------------------------------------- placebo on real votes
PLACEBO_VOTES = (2, 3, 4)


def placebo_gaps(annotations: pd.DataFrame, correct: pd.DataFrame, *, seed: int = 0, n_bootstrap: int = 200,
                 matching_votes: tuple[int, ...] = PLACEBO_VOTES) -> dict:
    """The placebo study (:func:`replication.placebo.run_placebo`) at each
    number of matching votes: mean gap over models per method with its 95%
    interval (fractions), and the staging counts. The true gap is 0."""
    from replication.placebo import run_placebo

    out = {}
    for m in matching_votes:
        placebo, res = run_placebo(annotations, correct, seed=seed, matching_votes=m,
                                   methods=available_methods(), n_bootstrap=n_bootstrap)
        means = res.mean_gap_conf_int()
        out[m] = {"mean_gap": {k: {"value": float(r["value"]), "ci": [float(r["lower"]), float(r["upper"])]}
                               for k, r in means.iterrows()}, "info": placebo.info}
    return out


@register_figure("engstrom2020_placebo", title="Placebo study on real ImageNet-ReaL votes (true gap 0)",
                 paper="Engstrom et al. 2020 correction, checked on real votes (issue 3 placebo)",
                 inputs=(REAL_VOTES, CORRECT_TOP1))
def draw_placebo(reference_dir: Path, *, seed: int = 0, n_bootstrap: int = 200):
    """Mean gap per method (95% CI) in a replication staged inside ImageNet
    val with the real ReaL votes, for 2, 3 and 4 matching votes."""
    res = placebo_gaps(real_votes(reference_dir), correctness(reference_dir), seed=seed, n_bootstrap=n_bootstrap)
    fig, axes = new_figure(1, 1, width=9.0, height=5.4)
    ax = axes[0, 0]
    first = next(iter(res.values()))["mean_gap"]
    names = list(first)
    ypos = np.arange(len(names))[::-1].astype(float)
    offsets = np.linspace(0.22, -0.22, len(res))
    for (m, r), dy, colour in zip(res.items(), offsets, PALETTE):
        v = np.array([100 * r["mean_gap"][k]["value"] for k in names])
        lo = np.array([100 * r["mean_gap"][k]["ci"][0] for k in names])
        hi = np.array([100 * r["mean_gap"][k]["ci"][1] for k in names])
        ax.errorbar(v, ypos + dy, xerr=[v - lo, hi - v], fmt="o", ms=4, capsize=2, color=colour,
                    label=f"{m} matching votes ({r['info']['replication_images']:,} replication images)")
    ax.axvline(0, color="black", ls=":", label="truth: no shift (gap 0)")
    ax.set_yticks(ypos, ["raw (no correction)" if k == "raw" else k for k in names])
    ax.set_ylim(-0.6, len(names) - 0.4)
    ax.set_xlabel("mean gap over the 67 models (percentage points, 95% bootstrap CI)")
    ax.set_title("Placebo inside ImageNet val with real ReaL votes: a good correction lands on 0")
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=2, fontsize=7.5)
    table = [{"matching votes": m, "estimate": k, "mean gap (points)": round(100 * v["value"], 2),
              "95% CI": f"[{100 * v['ci'][0]:.2f}, {100 * v['ci'][1]:.2f}]",
              "covers 0": bool(v["ci"][0] <= 0 <= v["ci"][1])}
             for m, r in res.items() for k, v in r["mean_gap"].items()]
    mid = res[3] if 3 in res else first
    headline = {f"placebo (real votes, 3 matching votes): {k} mean gap": f"{100 * v['value']:.2f} points "
                f"[{100 * v['ci'][0]:.2f}, {100 * v['ci'][1]:.2f}] (truth 0)" for k, v in mid["mean_gap"].items()}
    return fig, {"inputs": [reference_dir / REAL_VOTES, reference_dir / CORRECT_TOP1],
                 "numbers": {"seed": seed, "n_bootstrap": n_bootstrap, "matching_votes": res},
                 "table": table, "headline": headline,
                 "caption": "Real data, no simulation: ImageNet val images with 5 ReaL votes are split into a reference "
                            "half and a candidate pool thinned toward lower held-out vote share; a MatchedFrequency set "
                            "is drawn from the pool on m matching votes. Both halves come from one dataset, so the true "
                            f"gap is 0; the raw gap is selection bias alone. {n_bootstrap} bootstrap replicates."}
