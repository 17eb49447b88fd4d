"""``replication demo``: a complete selection-bias study on simulated data.

:func:`run_demo` holds the steps (simulate, estimate, tabulate, plot, write)
so that other parts (e.g. an HTML report) can extend the demo.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

DEFAULT_OUT = "replication-demo"
DEMO_BOOTSTRAP = 500
#: the order in which the demo lists methods (others follow alphabetically)
METHOD_ORDER = ("naive", "jackknife", "betabinomial", "npmle")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="simulate a replication study, correct its selection bias, print and plot the result",
        description="Simulates the published ImageNet-v2 picture (a raw drop near 11.7 points of which "
                    "about 3.6 is a true shift), runs the bias estimators with bootstrap intervals, prints "
                    "the adjusted gaps against the truth and writes the JSON and figures.")
    p.add_argument("--out", default=DEFAULT_OUT, metavar="DIR", help=f"output folder (default ./{DEFAULT_OUT})")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--bootstrap", type=int, default=DEMO_BOOTSTRAP, metavar="B",
                   help=f"bootstrap replicates (default {DEMO_BOOTSTRAP})")
    p.add_argument("--methods", default=None, help="comma-separated methods (default: every registered method)")
    p.set_defaults(func=run)


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


def plot_gaps(results: Any, truth: Any, path: Path) -> Path:
    """Per-model gaps against reference accuracy: raw, each method (with
    intervals) and the truth. PNG, written atomically."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from replication.io import atomic_path

    ref = 100 * results.reference_accuracy
    ci = results.conf_int()
    fig, ax = plt.subplots(figsize=(8, 5.6), dpi=120)
    ax.plot(ref, 100 * results.gap, "o", color="0.55", ms=4, label="raw gap (no correction)")
    offsets = {m: 0.08 * (i + 1) for i, m in enumerate(results.methods)}
    for m in results.methods:
        b = ci.xs(f"adjusted_gap[{m}]", level="quantity").reindex(ref.index)
        y = 100 * results.adjusted_gap[m]
        ax.errorbar(ref + offsets[m], y, yerr=[y - 100 * b["lower"], 100 * b["upper"] - y], fmt="o", ms=3,
                    elinewidth=0.7, capsize=0, label=f"{m} adjusted gap (95% CI)")
    order = ref.sort_values().index
    ax.plot(ref[order], 100 * truth["gap"].reindex(order), "k-", lw=1.5, label="true gap")
    ax.axhline(0, color="0.8", lw=0.8)
    ax.set_xlabel("reference accuracy (imagenet-val, %)")
    ax.set_ylabel("gap to replication accuracy (percentage points)")
    ax.set_title("Simulated ImageNet-v2 replication: how much of the drop is real?")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, frameon=False)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def plot_selection(study: Any, path: Path) -> Path:
    """Observed k/n and true s per dataset: why matching on k/n is biased. PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from replication.io import atomic_path

    ann = study.annotations.merge(study.images[["dataset", "image_id", "true_s"]], on=["dataset", "image_id"])
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), dpi=120, sharey=True)
    bins = np.linspace(0, 1, 21)
    for ds in (study.config.reference, study.config.replication):
        part = ann[ann["dataset"] == ds]
        axes[0].hist(part["n_selected"] / part["n_annotators"], bins=np.linspace(-0.05, 1.05, 12),
                     density=True, histtype="step", lw=1.5, label=ds)
        axes[1].hist(part["true_s"], bins=bins, density=True, histtype="step", lw=1.5,
                     label=f"{ds} (mean {part['true_s'].mean():.3f})")
    axes[0].set_xlabel("observed selection frequency k/n")
    axes[1].set_xlabel("true selection frequency s")
    axes[0].set_ylabel("density")
    axes[0].set_title("matched on the observed k/n ...", fontsize=10)
    axes[1].set_title("... but true s is lower on the replication set", fontsize=10)
    for ax in axes:
        ax.legend(fontsize=7, loc="upper left", frameon=False)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def run_demo(out_dir: str | Path = DEFAULT_OUT, seed: int = 0, *, n_bootstrap: int = DEMO_BOOTSTRAP,
             methods: tuple[str, ...] | None = None) -> dict:
    """Simulate the ``engstrom2020`` preset, estimate, tabulate, plot and write.

    Returns a dict with ``study`` (SimulatedStudy), ``results`` (BiasResults),
    ``table`` (see :func:`comparison_table`), ``text`` (what is printed),
    ``paths`` (name -> Path of every file written) and ``seconds``.
    """
    import numpy as np

    from replication.estimators import METHODS
    from replication.estimators.results import SelectionBiasEstimator
    from replication.io import write_json
    from replication.report import write_demo_report
    from replication.simulate import SimulationConfig, simulate, write_study

    start = time.perf_counter()
    out = Path(out_dir)
    rng = np.random.default_rng(seed)
    study = simulate(SimulationConfig.preset("engstrom2020"), rng)
    paths = {f"study_{k}": v for k, v in write_study(study, out / "study").items()}
    chosen = tuple(methods) if methods else tuple(sorted(METHODS, key=lambda m: (
        METHOD_ORDER.index(m) if m in METHOD_ORDER else len(METHOD_ORDER), m)))
    results = SelectionBiasEstimator(chosen, n_bootstrap=n_bootstrap, random_state=rng).fit(
        study.annotations, study.correctness)
    table = comparison_table(results, study.truth)
    paths["bias_json"] = write_json(out / "bias.json", results.to_dict())
    paths["gaps_png"] = plot_gaps(results, study.truth, out / "gaps.png")
    paths["selection_png"] = plot_selection(study, out / "selection.png")
    paths["report_html"] = write_demo_report(out, study, results, table)
    text = "\n".join([
        "Simulated replication study (preset engstrom2020: raw drop ~11.7 points, ~3.6 of it a true shift)",
        f"{len(study.truth)} models, {len(results.study.reference)} reference and "
        f"{len(results.study.replication)} replication images, {n_bootstrap} bootstrap replicates, seed {seed}",
        "",
        "Mean gap over models (percentage points, 95% percentile bootstrap intervals):",
        table.to_string(float_format=lambda x: f"{x:7.2f}"),
        "",
        "'models covered': models whose 95% interval contains their true gap.",
        *[f"wrote {p}" for p in paths.values()],
    ])
    return {"study": study, "results": results, "table": table, "text": text, "paths": paths,
            "seconds": time.perf_counter() - start}


def run(args: argparse.Namespace) -> int:
    from replication.errors import InputError
    from replication.estimators.results import check_methods

    methods = check_methods(args.methods) if args.methods else None
    if args.bootstrap < 0:
        raise InputError(f"--bootstrap must be >= 0, got {args.bootstrap}")
    demo = run_demo(args.out, args.seed, n_bootstrap=args.bootstrap, methods=methods)
    print(demo["text"])
    print(f"done in {demo['seconds']:.1f} s")
    return 0
