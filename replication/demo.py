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
    figure, a copy of ``figures/demo_gaps.png``) and ``report.html``.

    Returns a dict with ``study`` (SimulatedStudy), ``results`` (BiasResults),
    ``table`` (see :func:`comparison_table`), ``text`` (what is printed),
    ``paths`` (name -> Path of the main files written; ``figures`` is the
    folder, ``figure_names`` what it holds) and ``seconds``.
    """
    import numpy as np

    from replication.estimators import METHODS
    from replication.estimators.results import SelectionBiasEstimator
    from replication.io import write_bytes, write_json
    from replication.report import study_figures, write_demo_report
    from replication.simulate import SimulationConfig, simulate, write_study

    start = time.perf_counter()
    out = Path(out_dir)
    rng = np.random.default_rng(seed)
    study = simulate(SimulationConfig.preset("engstrom2020"), rng)
    paths = {f"study_{k}": v for k, v in write_study(study, out / "study").items()}
    chosen = tuple(methods) if methods else tuple(METHODS)  # registration order: naive, jackknife, ...
    results = SelectionBiasEstimator(chosen, n_bootstrap=n_bootstrap, random_state=rng).fit(
        study.annotations, study.correctness)
    table = comparison_table(results, study.truth)
    paths["bias_json"] = write_json(out / "bias.json", results.to_dict())
    figures = {f.name: f for f in study_figures(study, results, out / "figures")}
    paths["gaps_png"] = write_bytes(out / "gaps.png", figures["demo_gaps"].png.read_bytes())
    paths["selection_png"] = figures["demo_selection"].png
    paths["figures"] = out / "figures"
    paths["report_html"] = write_demo_report(out, study, results, table, list(figures.values()))
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
        *[f"wrote {p}" for key, p in paths.items() if key not in ("figures", "selection_png")],
        f"wrote {paths['figures']}/: {len(figures)} figures (PNG, PDF and JSON each): {', '.join(figures)}",
    ])
    return {"study": study, "results": results, "table": table, "text": text, "paths": paths,
            "seconds": time.perf_counter() - start}
