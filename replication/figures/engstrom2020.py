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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from replication.deconvolution import Deconvolution, cell_edges, fit_priors
from replication.estimators import METHODS
from replication.estimators.jackknife import _mean_inverse_n, thin
from replication.estimators.naive import plug_in
from replication.estimators.results import BiasResults, SelectionBiasEstimator
from replication.figures._axes import interval_bars
from replication.figures._base import PALETTE, format_pvalue, mark_simulated, new_figure, register_figure
from replication.figures._data import CORRECT_TOP1, REAL_VOTES, correctness, real_votes
from replication.fits.lines import LineFit
from replication.io.tables import model_columns
from replication.placebo import DEFAULT_MATCHING_VOTES, run_placebo
from replication.priors import PRIORS, SelectionFrequencyPrior
from replication.sampling import EDGES, SELECTION_EDGES, frequency_bin
from replication.simulate import SimulatedStudy, SimulationConfig, accuracy_curve, simulate
from replication.study import LevelTable, StudyData

PRESET = "engstrom2020"
#: upper limit of the prior-density axes (a narrow beta component would flatten everything else)
DENSITY_CAP = 8.0
SIM_NOTE = ("ImageNet-v2 selection frequencies were never published; this study is simulated "
            f"(preset {PRESET}: ~11.7-point raw drop, ~3.6 points true shift)")


# --------------------------------------------------------------------------- simulated study
@functools.lru_cache(maxsize=2)
def simulated_study(seed: int = 0) -> SimulatedStudy:
    """The ``engstrom2020`` preset drawn with ``default_rng(seed)`` (cached)."""
    return simulate(SimulationConfig.preset(PRESET), np.random.default_rng(seed))


@functools.lru_cache(maxsize=2)
def simulated_results(seed: int = 0, n_bootstrap: int = 100) -> BiasResults:
    """Every method fitted to :func:`simulated_study` (seeded bootstrap; cached)."""
    study = simulated_study(seed)
    return SelectionBiasEstimator(tuple(METHODS), n_bootstrap=n_bootstrap, random_state=seed).fit(
        study.annotations, study.correctness)


def mean_gap_dict(means: pd.DataFrame) -> dict[str, dict]:
    """``BiasResults.mean_gap_conf_int()`` (rows raw and each method; columns
    value, lower, upper) as ``{row: {"value": x, "ci": [lower, upper]}}``."""
    return {k: {"value": float(r["value"]), "ci": [float(r["lower"]), float(r["upper"])]}
            for k, r in means.iterrows()}


def true_curves(study: SimulatedStudy, s: np.ndarray) -> pd.DataFrame:
    """The simulator's true replication curves P(correct | s), one column per model."""
    cfg = study.config
    return pd.DataFrame(accuracy_curve(np.asarray(s), study.truth[["intercept", "slope"]], cfg.pivot, cfg.shift),
                        columns=study.truth.index)


# --------------------------------------------------------------------------- histograms + priors
#: cells of [0, 1] on which the fitted distributions are discretized (Deconvolution's default)
N_CELLS = 100
#: width of the bins in which the NPMLE's (spiky) distributions and the simulated truth are drawn
COARSE_BIN = 0.05


def selection_edges_for(replication: str) -> tuple[float, ...] | None:
    """Bins of k/n within which the replication set ``replication`` was drawn
    from its pool (:data:`replication.sampling.SELECTION_EDGES`; Recht et
    al.'s MatchedFrequency bins for an unknown id)."""
    return SELECTION_EDGES.get(replication, EDGES)


@dataclass(frozen=True)
class PanelFit:
    """One prior fitted for a histogram panel.

    marginal : the fitted prior whose marginal of k is compared with the bars
        (for selected images: the prior of their candidate POOL)
    selection_edges : bins of k/n within which the images were drawn from that
        pool, uniformly inside a bin (None: a random sample of it)
    mass : ndarray of shape (N_CELLS,), the panel images' own true-s
        distribution (cell masses; for selected images the deconvolution's g_rep)
    pool_mass : ndarray of shape (N_CELLS,) or None, the pool's (selected images only)
    """

    marginal: SelectionFrequencyPrior
    selection_edges: tuple[float, ...] | None
    mass: np.ndarray
    pool_mass: np.ndarray | None = None


@dataclass(frozen=True)
class HistogramPanel:
    """A column of the histogram figure: image counts at levels (k, n), shape
    (L,) each, the priors fitted to them by family label, and (simulations)
    the true s."""

    label: str
    k: np.ndarray
    n: np.ndarray
    counts: np.ndarray
    fits: dict[str, PanelFit]
    true_s: np.ndarray | None = None


def _nonzero(k: np.ndarray, n: np.ndarray, counts: np.ndarray) -> dict[str, np.ndarray]:
    keep = np.asarray(counts) > 0
    return {"k": np.asarray(k)[keep], "n": np.asarray(n)[keep], "counts": np.asarray(counts, float)[keep]}


def study_panels(table: LevelTable, labels: tuple[str, str], *, selection_edges: tuple[float, ...] | None = EDGES,
                 true_s: tuple[np.ndarray, np.ndarray] | None = None, random_state: int = 0) -> list[HistogramPanel]:
    """The reference and replication panels of a study from one
    :class:`~replication.deconvolution.Deconvolution` fit per prior: the
    reference images are a random sample (g_ref); the replication images were
    selected on their noisy k/n within ``selection_edges`` (their k histogram
    is compared with the pool prior's marginal under that selection, their
    true-s distribution is g_rep). ``true_s``: (reference, replication) true
    frequencies of a simulation."""
    results = {family.label: Deconvolution(name, n_cells=N_CELLS, selection_edges=selection_edges,
                                           random_state=random_state).fit(table) for name, family in PRIORS.items()}
    ref = HistogramPanel(labels[0], **_nonzero(table.k, table.n, table.ref_count),
                         fits={label: PanelFit(r.ref_prior, None, r.g_ref) for label, r in results.items()},
                         true_s=None if true_s is None else np.asarray(true_s[0]))
    rep = HistogramPanel(labels[1], **_nonzero(table.k, table.n, table.rep_count),
                         fits={label: PanelFit(r.pool_prior, selection_edges, r.g_rep, r.g_pool)
                               for label, r in results.items()},
                         true_s=None if true_s is None else np.asarray(true_s[1]))
    return [ref, rep]


def sample_panel(label: str, k: np.ndarray, n: np.ndarray, *, random_state: int = 0) -> HistogramPanel:
    """A panel of images that are a random sample of their pool (per-image
    ``k`` of ``n``), with priors from :func:`replication.deconvolution.fit_priors`."""
    pairs, counts = np.unique(np.stack([np.asarray(k), np.asarray(n)], axis=1), axis=0, return_counts=True)
    k_l, n_l = pairs[:, 0], pairs[:, 1]
    edges = cell_edges(N_CELLS)
    fits = {}
    for name, family in PRIORS.items():
        fit = fit_priors(k_l, n_l, counts[None].astype(float), name, random_state=random_state)
        fits[family.label] = PanelFit(fit.pooled, None, fit.cell_mass(edges)[0])
    return HistogramPanel(label, k=k_l, n=n_l, counts=counts.astype(float), fits=fits)


def expected_histogram(prior: SelectionFrequencyPrior, n_selected: np.ndarray, n_annotators: np.ndarray,
                       counts: np.ndarray, selection_edges: tuple[float, ...] | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """(k/n values, expected share of images) under ``prior`` (and the
    selection model, see :meth:`~replication.priors.SelectionFrequencyPrior.expected_counts`),
    merged over n."""
    e = prior.expected_counts(n_selected, n_annotators, counts, selection_edges)
    frac, inv = np.unique(e["n_selected"] / e["n_annotators"], return_inverse=True)
    return frac, np.bincount(inv.reshape(-1), weights=e["expected"]) / e["expected"].sum()


def _coarse(mass: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(edges, density) of cell masses summed into bins of :data:`COARSE_BIN`."""
    per = int(round(COARSE_BIN * len(mass)))
    edges = np.linspace(0, 1, len(mass) // per + 1)
    return edges, mass.reshape(-1, per).sum(axis=1) / np.diff(edges)


def draw_histograms(panels: list[HistogramPanel]) -> tuple[Figure, dict]:
    """One column per panel: observed share of images at each k/n (bars) with
    each prior's expected share (markers; under the selection model for
    selected images), and below the panel images' fitted true-s distribution
    (the pool's dotted; the simulated truth in grey). Returns (Figure, numbers)."""
    fig, axes = new_figure(2, len(panels), width=4.3 * len(panels), height=6.6, sharex=True)
    numbers = {}
    edges = cell_edges(N_CELLS)
    mid = (edges[1:] + edges[:-1]) / 2
    for col, p in enumerate(panels):
        ax, axg = axes[0, col], axes[1, col]
        frac_obs, inv = np.unique(p.k / p.n, return_inverse=True)
        share = np.bincount(inv.reshape(-1), weights=p.counts) / p.counts.sum()
        ax.bar(frac_obs, share, width=0.8 / max(int(p.n.max()), 1), color="#BBBBBB", label="observed")
        entry = {"n_images": int(p.counts.sum()), "k_over_n": frac_obs, "observed_share": share, "priors": {}}
        selected = any(f.selection_edges is not None for f in p.fits.values())
        peaks = [0.0]
        if p.true_s is not None:
            true_edges = np.linspace(0, 1, int(round(1 / COARSE_BIN)) + 1)
            dens = axg.hist(p.true_s, bins=true_edges, density=True, color="#DDDDDD",
                            label=f"true s (simulation; mean {p.true_s.mean():.3f})")[0]
            peaks.append(float(dens.max()))
            entry["true_mean_s"] = float(p.true_s.mean())
        for i, (name, fit) in enumerate(p.fits.items()):
            colour, marker = PALETTE[i % len(PALETTE)], "ox+^"[i % 4]
            frac_fit, mass = expected_histogram(fit.marginal, p.k, p.n, p.counts, fit.selection_edges)
            gof = fit.marginal.goodness_of_fit(p.k, p.n, p.counts, selection_edges=fit.selection_edges)
            ax.plot(frac_fit, mass, marker, color=colour, ms=5, label=f"{name} fit (χ² {format_pvalue(gof.pvalue)})")
            mean_s = float(fit.mass @ mid)
            what = "replication images' s, selection-aware" if selected else "g(s)"
            if fit.marginal.discrete:     # spikes on a grid: drawn summed into coarse bins
                coarse_edges, dens = _coarse(fit.mass)
                axg.stairs(dens, coarse_edges, color=colour, lw=1.4, label=f"{name}: {what} (mean {mean_s:.3f})")
            else:
                dens = fit.mass * N_CELLS
                axg.plot(mid, dens, color=colour, label=f"{name}: {what} (mean {mean_s:.3f})")
            peaks.append(float(dens.max()))
            if fit.pool_mass is not None and i == 0:     # one pool curve keeps the panel readable
                axg.plot(mid, fit.pool_mass * N_CELLS, color=colour, ls=":", lw=1.0,
                         label=f"{name}: candidate pool (mean {float(fit.pool_mass @ mid):.3f})")
            entry["priors"][name] = {
                "selection_edges": fit.selection_edges, "expected_k_over_n": frac_fit, "expected_share": mass,
                "gof_pvalue": gof.pvalue, "gof_statistic": gof.statistic, "gof_dof": gof.dof,
                "cell_edges": edges, "cell_mass": fit.mass, "mean_s": mean_s,
                **({} if fit.pool_mass is None else {"pool_cell_mass": fit.pool_mass,
                                                      "pool_mean_s": float(fit.pool_mass @ mid)})}
        ax.set_title(p.label)
        ax.set_ylabel("share of images")
        ax.legend(loc="best", frameon=True, framealpha=0.9, edgecolor="none")
        if selected:
            ax.annotate("markers: pool prior's k within each selection bin\n(bins hold their observed counts)",
                        (0.02, 0.62), xycoords="axes fraction", ha="left", va="top", fontsize=7)
        axg.set_xlabel("selection frequency (observed k/n above, true s below)")
        axg.set_ylabel("density of true s")
        axg.set_xlim(-0.03, 1.03)
        peak = max(peaks)
        if peak > DENSITY_CAP:
            axg.set_ylim(0, DENSITY_CAP)
            axg.annotate(f"density axis clipped at {DENSITY_CAP:g}\n(peak {peak:.0f})", (0.02, 0.62),
                         xycoords="axes fraction", ha="left", va="top", fontsize=7.5)
        axg.legend(loc="upper left", fontsize=7)
        numbers[p.label] = entry
    return fig, numbers


def histogram_table(numbers: dict) -> list[dict]:
    """One row per panel and prior: mean s, chi-square, dof and p-value."""
    return [{"images": label, "prior": name, "mean s": round(v["mean_s"], 3),
             **({"true mean s": round(e["true_mean_s"], 3)} if "true_mean_s" in e else {}),
             "χ²": round(v["gof_statistic"], 1), "dof": v["gof_dof"], "p-value": format_pvalue(v["gof_pvalue"], "")}
            for label, e in numbers.items() for name, v in e["priors"].items()]


def histogram_headline(numbers: dict) -> dict[str, str]:
    """Mean fitted true s per panel (NPMLE), with the truth when simulated."""
    return {f"mean fitted true s (NPMLE), {label}": f"{e['priors']['NPMLE']['mean_s']:.3f}"
            + (f" (truth {e['true_mean_s']:.3f})" if "true_mean_s" in e else "") for label, e in numbers.items()}


HISTOGRAM_CAPTION = ("Bars: share of images at each observed k/n. Reference images are a random sample, so the markers "
                     "are each prior's fitted marginal of k. Replication images were SELECTED on their noisy k/n "
                     "(uniformly within Recht et al.'s bins 0.2/0.4/0.6/0.8), so the markers keep each bin's "
                     "observed count and spread it by the candidate pool's fitted prior, as the deconvolution does; "
                     "below, their curve is the replication images' own true-s distribution (g_rep, selection-aware), "
                     "and the dotted one the pool's. χ² p-values in the legends.")


@register_figure("engstrom2020_histograms", title="Selection frequencies: observed k/n with fitted priors",
                 paper="Engstrom et al. 2020, Identifying Statistical Bias in Dataset Replication",
                 inputs=(REAL_VOTES,))
def draw_engstrom_histograms(reference_dir: Path, *, seed: int = 0) -> tuple[Figure, dict]:
    """Histograms of k/n with the fitted priors' expected counts: a simulated
    reference and MatchedFrequency replication (``seed``), and the real
    ImageNet-ReaL votes (n = 5) from ``reference_dir``."""
    study = simulated_study(seed)
    cfg = study.config
    table = StudyData.from_tables(study.annotations, study.correctness).levels()
    true_s = tuple(study.images.loc[study.images["dataset"] == ds, "true_s"].to_numpy()
                   for ds in (cfg.reference, cfg.replication))
    n = cfg.n_annotators
    panels = study_panels(table, (f"simulated reference (n = {n})", f"simulated v2 MF (n = {n})"),
                          selection_edges=selection_edges_for(cfg.replication), true_s=true_s, random_state=seed)
    votes = real_votes(reference_dir)
    panels.append(sample_panel("REAL: ImageNet val, ReaL raters (n = 5)", votes["n_selected"].to_numpy(),
                               votes["n_annotators"].to_numpy(), random_state=seed))
    fig, numbers = draw_histograms(panels)
    mark_simulated(fig, "left two columns simulated (v2 selection frequencies were never published); "
                        "right column: real ImageNet-ReaL votes")
    return fig, {"inputs": [reference_dir / REAL_VOTES], "numbers": {"seed": seed, "datasets": numbers},
                 "simulated": True, "headline": histogram_headline(numbers), "table": histogram_table(numbers),
                 "caption": f"{SIM_NOTE}. {HISTOGRAM_CAPTION} The ReaL column is real data (5 raters per val "
                            "image, a random sample: plain priors)."}


# --------------------------------------------------------------------------- f(s) curves
def fs_curves(study: StudyData, models: list[str], *, prior: str = "npmle") -> dict:
    """Monotone f(s) of ``models`` on the replication set (deconvolution with
    ``prior``), and their observed accuracy at each observed k/n level."""
    table = study.levels()
    res = Deconvolution(prior, selection_edges=selection_edges_for(study.replication.name)).fit(table)
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


def fs_figure(data: StudyData, models: list[str], *, prior: str = "npmle",
              truth: SimulatedStudy | None = None) -> tuple[Figure, dict]:
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
def draw_fs_curves(reference_dir: Path, *, seed: int = 0, prior: str = "npmle") -> tuple[Figure, dict]:
    """Estimated f(s), accuracy against true selection frequency, for three
    models of a simulated study (``seed``), with the true curves; ``prior`` is
    ``"npmle"`` or ``"betabinomial"``. Reads nothing from ``reference_dir``."""
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


def draw_adjusted_vs_raw(results: BiasResults, *, method: str | None = None,
                         truth: pd.DataFrame | None = None) -> tuple[Figure, dict]:
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
    interval_bars(ax, x, y_adj, 100 * ci["lower"], 100 * ci["upper"], color=PALETTE[0], elinewidth=0.7,
                  label=f"{method}-adjusted (95% CI)")
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
    interval_bars(axm, ypos, 100 * means["value"], 100 * means["lower"], 100 * means["upper"], horizontal=True,
                  color=PALETTE[0], ms=6, capsize=3)
    axm.set_yticks(ypos, labels)
    axm.set_ylim(-0.6, len(means) - 0.4)
    if truth is not None:
        axm.axvline(100 * truth["gap"].mean(), color="black", ls=":", label="true mean gap")
        axm.legend(loc="best")
        numbers["true_mean_gap"] = float(truth["gap"].mean())
    axm.axvline(0, color="#999999", lw=0.8)
    axm.set_xlabel("mean gap over models (percentage points, 95% CI)")
    axm.set_title("How much of the drop is real?")
    numbers["mean_gap"] = mean_gap_dict(means)
    return fig, numbers


@register_figure("engstrom2020_adjusted", title="Adjusted and raw replication accuracy with both lines",
                 paper="Engstrom et al. 2020", inputs=())
def draw_engstrom_adjusted(reference_dir: Path, *, seed: int = 0, n_bootstrap: int = 100,
                           method: str | None = None) -> tuple[Figure, dict]:
    """Raw and ``method``-adjusted replication accuracy (percent) against
    reference accuracy per model of a simulated study (``seed``), with both
    least-squares lines and bootstrap CIs (``n_bootstrap`` replicates); None
    picks :func:`preferred_method`. Reads nothing from ``reference_dir``."""
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


# --------------------------------------------------------------------------- per-model gaps, selection
def draw_gaps(results: BiasResults, truth: pd.DataFrame | None = None) -> tuple[Figure, dict]:
    """Per-model gap (reference minus replication accuracy, points) against
    reference accuracy: raw, each method's adjusted gap with its 95%
    interval, and the true gap when known. Returns (Figure, numbers)."""
    fig, axes = new_figure(1, 1, width=8.0, height=5.8)
    ax = axes[0, 0]
    ref = 100 * results.reference_accuracy
    ci = results.conf_int()
    ax.plot(ref, 100 * results.gap, "o", color="#999999", ms=4, label="raw gap (no correction)")
    numbers = {"models": list(ref.index), "reference_accuracy": ref.to_numpy(), "raw_gap": 100 * results.gap.to_numpy(),
               "adjusted_gap": {}}
    for i, (m, colour) in enumerate(zip(results.methods, PALETTE)):
        b = ci.xs(f"adjusted_gap[{m}]", level="quantity").reindex(ref.index)
        y = 100 * results.adjusted_gap[m]
        interval_bars(ax, ref + 0.08 * (i + 1), y, 100 * b["lower"], 100 * b["upper"], color=colour, ms=3,
                      elinewidth=0.7, label=f"{m} adjusted gap (95% CI)")
        numbers["adjusted_gap"][m] = {"value": y.to_numpy(), "ci": np.vstack([100 * b["lower"], 100 * b["upper"]])}
    if truth is not None:
        order = ref.sort_values().index
        true_gap = 100 * truth["gap"].reindex(order)
        ax.plot(ref[order], true_gap, "k-", lw=1.5, label="true gap")
        numbers["true_gap"] = 100 * truth["gap"].reindex(ref.index).to_numpy()
    ax.axhline(0, color="#CCCCCC", lw=0.8)
    ax.set_xlabel(f"reference accuracy ({results.reference}, %)")
    ax.set_ylabel("gap to replication accuracy (percentage points)")
    ax.set_title("How much of the drop is real? Per-model gaps by method")
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=2, fontsize=7.5)
    return fig, numbers


def draw_selection(study: SimulatedStudy) -> tuple[Figure, dict]:
    """Why matching on k/n is biased: the two datasets' shares of images in
    each selection bin (Recht et al.'s, which MatchedFrequency matches) and
    their true-s distributions. Returns (Figure, numbers)."""
    cfg = study.config
    edges = tuple(cfg.edges)
    ann = study.annotations
    bin_edges = np.array([0.0, *edges, 1.0])
    fig, axes = new_figure(1, 2, width=9.0, height=3.8)
    ax, axs = axes[0]
    numbers = {"bin_edges": bin_edges, "datasets": {}}
    width = 0.4 * np.diff(bin_edges)
    true_edges = np.linspace(0, 1, int(round(1 / COARSE_BIN)) + 1)
    for i, (ds, colour) in enumerate(zip((cfg.reference, cfg.replication), PALETTE)):
        part = ann[ann["dataset"] == ds]
        bins = frequency_bin(part["n_selected"].to_numpy() / part["n_annotators"].to_numpy(), edges)
        share = np.bincount(bins, minlength=len(edges) + 1) / len(bins)
        ax.bar(bin_edges[:-1] + width * (i + 0.5) + 0.1 * np.diff(bin_edges), share, width=width, color=colour,
               label=ds)
        s = study.images.loc[study.images["dataset"] == ds, "true_s"].to_numpy()
        axs.hist(s, bins=true_edges, density=True, histtype="step", lw=1.5, color=colour,
                 label=f"{ds} (mean {s.mean():.3f})")
        numbers["datasets"][ds] = {"bin_share": share, "true_mean_s": float(s.mean())}
    ax.set_xticks(bin_edges)
    ax.set_xlim(0, 1)
    ax.set_xlabel("observed selection frequency k/n (MatchedFrequency bins)")
    ax.set_ylabel("share of images in the bin")
    ax.set_title("matched on the observed k/n ...")
    axs.set_xlabel("true selection frequency s")
    axs.set_ylabel("density")
    axs.set_title("... but true s is lower on the replication set")
    for a in (ax, axs):
        a.legend(loc="upper left", fontsize=7)
    return fig, numbers


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


def jackknife_figure(data: StudyData, *, true_mean_adjusted: float | None = None) -> tuple[Figure, dict]:
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
def draw_jackknife(reference_dir: Path, *, seed: int = 0) -> tuple[Figure, dict]:
    """The plug-in estimate against 1/n (annotators dropped) and its jackknife
    extrapolation to n = infinity, on a simulated study (``seed``), with the
    true mean adjusted accuracy. Reads nothing from ``reference_dir``."""
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
    out = {}
    for m in matching_votes:
        placebo, res = run_placebo(annotations, correct, seed=seed, matching_votes=m,
                                   n_bootstrap=n_bootstrap)
        out[m] = {"mean_gap": mean_gap_dict(res.mean_gap_conf_int()), "info": placebo.info}
    return out


@register_figure("engstrom2020_placebo", title="Placebo study on real ImageNet-ReaL votes (true gap 0)",
                 paper="Engstrom et al. 2020 correction, checked on real votes (issue 3 placebo)",
                 inputs=(REAL_VOTES, CORRECT_TOP1))
def draw_placebo(reference_dir: Path, *, seed: int = 0, n_bootstrap: int = 200) -> tuple[Figure, dict]:
    """Mean gap per method (95% CI) in a replication staged inside ImageNet
    val with the real ReaL votes, for 2, 3 and 4 matching votes."""
    cor = correctness(reference_dir)
    res = placebo_gaps(real_votes(reference_dir), cor, seed=seed, n_bootstrap=n_bootstrap)
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
        interval_bars(ax, ypos + dy, v, lo, hi, horizontal=True, color=colour, ms=4, capsize=2,
                      label=f"{m} matching votes ({r['info']['replication_images']:,} replication images)")
    ax.axvline(0, color="black", ls=":", label="truth: no shift (gap 0)")
    ax.set_yticks(ypos, ["raw (no correction)" if k == "raw" else k for k in names])
    ax.set_ylim(-0.6, len(names) - 0.4)
    ax.set_xlabel(f"mean gap over the {len(model_columns(cor))} models (percentage points, 95% bootstrap CI)")
    ax.set_title("Placebo inside ImageNet val with real ReaL votes: a good correction lands on 0")
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=2, fontsize=7.5)
    table = [{"matching votes": m, "estimate": k, "mean gap (points)": round(100 * v["value"], 2),
              "95% CI": f"[{100 * v['ci'][0]:.2f}, {100 * v['ci'][1]:.2f}]",
              "covers 0": bool(v["ci"][0] <= 0 <= v["ci"][1])}
             for m, r in res.items() for k, v in r["mean_gap"].items()]
    m_head = DEFAULT_MATCHING_VOTES if DEFAULT_MATCHING_VOTES in res else next(iter(res))  # the CLI's default m
    headline = {f"placebo (real votes, {m_head} matching votes): {k} mean gap": f"{100 * v['value']:.2f} points "
                f"[{100 * v['ci'][0]:.2f}, {100 * v['ci'][1]:.2f}] (truth 0)"
                for k, v in res[m_head]["mean_gap"].items()}
    return fig, {"inputs": [reference_dir / REAL_VOTES, reference_dir / CORRECT_TOP1],
                 "numbers": {"seed": seed, "n_bootstrap": n_bootstrap, "matching_votes": res},
                 "table": table, "headline": headline,
                 "caption": "Real data, no simulation: ImageNet val images with 5 ReaL votes are split into a reference "
                            "half and a candidate pool thinned toward lower held-out vote share; a MatchedFrequency set "
                            "is drawn from the pool on m matching votes. Both halves come from one dataset, so the true "
                            f"gap is 0; the raw gap is selection bias alone. {n_bootstrap} bootstrap replicates."}
