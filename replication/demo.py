"""The embedded default study behind ``replication demo`` and the demo report.

:func:`run_demo` holds the steps (simulate, estimate, tabulate, plot, write);
the figures are drawn by :mod:`replication.figures.engstrom2020` through
:func:`replication.report.study_figures`, the same code as the report's.
Heavy imports happen inside the functions, so the command line can read the
defaults below without loading the numeric stack.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

DEFAULT_OUT = "replication-demo"
DEMO_BOOTSTRAP = 500


def comparison_table(results: Any, truth: Any) -> Any:
    """Mean gap over models per method (percentage points) with its interval,
    the true mean gap, and how many models' intervals cover their true gap."""
    import pandas as pd

    means = results.mean_gap_conf_int()
    ci = results.conf_int()
    true_gap = truth["gap"].reindex(results.gap.index)
    rows = []
    for name, row in means.iterrows():
        quantity = "gap" if name == "raw" else f"adjusted_gap[{name}]"
        bounds = ci.xs(quantity, level="quantity").reindex(true_gap.index)
        covered = int(((bounds["lower"] <= true_gap) & (true_gap <= bounds["upper"])).sum())
        rows.append({"estimate": "raw (no correction)" if name == "raw" else name,
                     "mean gap": 100 * row["value"], "ci low": 100 * row["lower"], "ci high": 100 * row["upper"],
                     "true gap": 100 * true_gap.mean(), "error": 100 * (row["value"] - true_gap.mean()),
                     "models covered": f"{covered}/{len(true_gap)}"})
    return pd.DataFrame(rows).set_index("estimate")


def run_demo(out_dir: str | Path = DEFAULT_OUT, seed: int = 0, *, n_bootstrap: int = DEMO_BOOTSTRAP,
             methods: tuple[str, ...] | None = None) -> dict:
    """Simulate the ``engstrom2020`` preset, estimate, tabulate, plot and write.

    Writes ``study/`` (the simulated tables), ``bias.json``, ``figures/``
    (PNG, PDF and JSON of each figure), ``gaps.png`` (the per-model gap
    figure, a copy of ``figures/demo_gaps.png``) and ``report.html``, all
    together at the end: a run that fails writes none of them.

    Returns a dict with ``study`` (SimulatedStudy), ``results`` (BiasResults),
    ``table`` (see :func:`comparison_table`), ``text`` (what is printed),
    ``paths`` (name -> Path of the main files written; ``figures`` is the
    folder) and ``seconds``.
    """
    import numpy as np

    from replication.estimators import METHODS
    from replication.estimators.results import SelectionBiasEstimator
    from replication.io import write_outputs
    from replication.report import REPORT_NAME
    from replication.simulate import SimulationConfig, simulate, study_files

    start = time.perf_counter()
    out = Path(out_dir)
    rng = np.random.default_rng(seed)
    study = simulate(SimulationConfig.preset("engstrom2020"), rng)
    files = {f"study_{key}": pair for key, pair in study_files(study, out / "study").items()}
    chosen = tuple(methods) if methods else tuple(METHODS)  # registration order: naive, jackknife, ...
    results = SelectionBiasEstimator(chosen, n_bootstrap=n_bootstrap, random_state=rng).fit(
        study.annotations, study.correctness)
    table = comparison_table(results, study.truth)
    files["bias_json"] = (out / "bias.json", results.to_dict())
    report = demo_report(out, study, results, table)
    figures = {f.name: f for f in report.figures}
    files["gaps_png"] = (out / "gaps.png", figures["demo_gaps"].png)
    files["report_html"] = (out / REPORT_NAME, report.to_html())
    write_outputs({**report.files, **dict(files.values())})
    paths = {key: path for key, (path, _) in files.items()}
    paths["figures"] = out / "figures"
    text = "\n".join([
        "Simulated replication study (preset engstrom2020: raw drop ~11.7 points, ~3.6 of it a true shift)",
        f"{len(study.truth)} models, {len(results.study.reference)} reference and "
        f"{len(results.study.replication)} replication images, {n_bootstrap} bootstrap replicates, seed {seed}",
        "",
        "Mean gap over models (percentage points, 95% percentile bootstrap intervals):",
        table.to_string(float_format=lambda x: f"{x:7.2f}"),
        "",
        "'models covered': models whose 95% interval contains their true gap.",
        "",
        *[f"wrote {p}" for key, p in paths.items() if key != "figures"],
        f"wrote {paths['figures']}/: {len(figures)} figures (PNG, PDF and JSON each): {', '.join(figures)}",
    ])
    return {"study": study, "results": results, "table": table, "text": text, "paths": paths,
            "seconds": time.perf_counter() - start}


def study_figures(study: Any, results: Any, out_dir: str | Path) -> tuple[list[Any], dict]:
    """The figures of a simulated study and its bias results (per-model gaps,
    selection bins, Engstrom-style histograms, f(s), adjusted accuracy,
    jackknife), in report order: the
    :class:`~replication.figures.SavedFigure` of each (in ``out_dir``) and
    ``{path: content}`` of their files, not yet written."""
    import numpy as np

    from replication.figures import describe, figure_files, mark_simulated, style
    from replication.figures import engstrom2020 as eng

    note = "the demo's simulated replication study (truth known)"
    paper = "Engstrom et al. 2020 style, on the demo's simulated study"
    table = results.study.levels()
    drawn = []
    with style():
        fig, numbers = eng.draw_gaps(results, study.truth)
        drawn.append(("demo_gaps", "Per-model gaps: raw, adjusted by each method, and the truth", fig,
                      {"numbers": numbers, "caption": "Each model's gap (reference minus replication accuracy) "
                                                      "against its reference accuracy: raw (grey), adjusted by each "
                                                      "method with its 95% bootstrap interval, and the simulated true "
                                                      "gap (black line)."}))
        fig, numbers = eng.draw_selection(study)
        drawn.append(("demo_selection", "Matched on observed k/n, not on true selection frequency", fig,
                      {"numbers": numbers, "caption": "Left: share of images in each of Recht et al.'s "
                                                      "MatchedFrequency bins of k/n, which the replication set "
                                                      "matches by construction. Right: the true selection frequencies "
                                                      "differ, because a candidate pool of lower s lands in a bin "
                                                      "through annotation noise."}))
        true_s = tuple(study.images.loc[study.images["dataset"] == ds, "true_s"].to_numpy()
                       for ds in (results.reference, results.replication))
        n = "/".join(str(int(v)) for v in np.unique(table.n))
        panels = eng.study_panels(table, (f"simulated {results.reference} (n = {n})",
                                          f"simulated {results.replication} (n = {n})"),
                                  selection_edges=eng.selection_edges_for(results.replication), true_s=true_s)
        fig, numbers = eng.draw_histograms(panels)
        drawn.append(("demo_histograms", "Selection frequencies: observed k/n with fitted priors", fig,
                      {"numbers": numbers, "caption": eng.HISTOGRAM_CAPTION, "table": eng.histogram_table(numbers),
                       "headline": eng.histogram_headline(numbers)}))
        fig, out = eng.fs_figure(results.study, eng.chosen_models(results.reference_accuracy), truth=study)
        drawn.append(("demo_fs_curves", "Accuracy against selection frequency, f(s)", fig, out))
        fig, numbers = eng.draw_adjusted_vs_raw(results, truth=study.truth)
        drawn.append(("demo_adjusted", "Adjusted and raw replication accuracy with both lines", fig,
                      {"numbers": numbers, "caption": f"Raw (grey) and {numbers['method']}-adjusted (blue, 95% "
                                                      "bootstrap CI) replication accuracy per model with both "
                                                      "least-squares lines; right: mean gap per method against the truth."}))
        if table.n.min() >= 2:      # the jackknife drops an annotator per image
            fig, out = eng.jackknife_figure(results.study, true_mean_adjusted=100 * float(
                study.truth["adjusted_replication_accuracy"].mean()))
            drawn.append(("demo_jackknife", "Jackknife: the plug-in estimate against 1/n", fig, out))
    saved, files = [], {}
    for name, title, fig, out in drawn:
        mark_simulated(fig, note)
        one, more = figure_files(fig, describe(name, title, paper, {**out, "simulated": True, "inputs": []}),
                                 out_dir, name)
        saved.append(one)
        files.update(more)
    return saved, files


def demo_report(out_dir: str | Path, study: Any, results: Any, table: Any,
                command: str = "replication demo") -> Any:
    """A :class:`~replication.report.Report` of the demo's simulated study: the
    comparison with the truth (``table``, see :func:`comparison_table`),
    per-model gaps, and the figures of :func:`study_figures`, whose files
    (``out_dir/figures/``) :meth:`~replication.report.Report.write` writes with the page."""
    from replication.report import POINTS, Report, ReportFigure

    saved, files = study_figures(study, results, Path(out_dir) / "figures")
    figs = [ReportFigure(s.name, files[s.png], s.data) for s in saved]
    per_model = results.summary().table.reset_index()
    per_model.insert(1, "true gap", 100 * study.truth["gap"].reindex(per_model["model"]).to_numpy())
    means = results.mean_gap_conf_int()
    true_gap = 100 * float(study.truth["gap"].mean())
    headline = {
        **{("raw mean gap" if k == "raw" else f"{k}-adjusted mean gap"):
           f"{100 * r['value']:.2f} points [{100 * r['lower']:.2f}, {100 * r['upper']:.2f}]" for k, r in means.iterrows()},
        "true mean gap (the simulated shift)": f"{true_gap:.2f} points"}
    cfg = study.config
    intro = (f"Simulated replication study (preset engstrom2020: a raw drop near 11.7 points of which about 3.6 is a "
             f"true shift). {len(results.study.reference):,} reference and {len(results.study.replication):,} "
             f"replication images, {len(results.reference_accuracy)} models, {cfg.n_annotators} annotators per image, "
             f"{results.n_bootstrap} bootstrap replicates. Nothing here is real data; the truth is known, so every "
             "estimate can be checked. Gaps and accuracies are in percentage points, to 2 decimals.")
    return Report(title="Replication bias demo: how much of the accuracy drop is real?", intro=intro,
                  figures=figs, files=files, command=command, headline_numbers=headline,
                  tables=[("Mean gap over models, by method, against the truth (percentage points)",
                           table.reset_index(), POINTS),
                          ("Per-model gaps (percentage points, 95% bootstrap intervals)", per_model, POINTS)])
