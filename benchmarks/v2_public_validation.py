"""Validation of ``replication v2-public`` on simulated ImageNet-v2 constructions.

Each study simulates the whole three-set construction on the real pool layout
(the 708 fully listed classes: their pool sizes and HIT counts;
:func:`replication.v2public.simulate_construction`, short pools grown as Recht
et al. did), keeps only what is public (pool listing with HIT counts,
memberships, correctness), and runs :class:`PublicDataEstimator` with the
reference shapes (true / 2, true, 2 x true). It compares with the simulated
truth (population values over the same classes):

* at the TRUE reference shape (the estimator's identifying assumption holds):
  bias of the adjusted gap (estimate - truth, points) +- its Monte-Carlo SE,
  RMSE, coverage of the 95% intervals over (study, model) pairs and of the
  mean-over-models interval, mean interval width;
* over the three profiled shapes: how often the data keep the true shape, and
  how often the identified-range interval (union over kept shapes) covers the
  truth;
* the placebo rows (no true shift): how often the mean-gap interval covers 0.

Settings (``--studies`` per setting): the fitted model without and with a true
shift, a poorer pool with a higher reference (more selection bias), and a Beta
pool family (the estimator told so).

Results are appended per study to ``<cache>/<setting>.jsonl`` (resume after an
interruption); both cores are used through a process pool.

Usage: python3 benchmarks/v2_public_validation.py [--studies 25] [--workers 2] [--out v2_public_validation.md]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
REFERENCE = Path(os.environ.get("REPLICATION_REFERENCE", REPO.parent / "shared" / "reference"))

#: name -> (ConstructionConfig preset, config overrides, model overrides, estimator keyword arguments)
SETTINGS: dict[str, tuple[str, dict, dict, dict]] = {
    "fitted, no shift (placebo)": ("imagenetv2", {}, {}, {}),
    "fitted, shift 0.3": ("imagenetv2", {"shift": 0.3}, {}, {}),
    "poorer pool, higher reference, shift 0.11": (
        "imagenetv2", {"shift": 0.11}, {"pool_location": -1.8, "pool_tail": 0.8, "ref_location": 1.1,
                                        "ref_shape": 16.0}, {}),
    "Beta pool, shift 0.11": (
        "imagenetv2", {"shift": 0.11}, {"pool_family": "beta", "pool_location": -0.9, "pool_size_slope": -1.2,
                                        "pool_spread": 0.5, "pool_shape": 1.2, "ref_shape": 8.0},
        {"pool_family": "beta"}),
}


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


def one_study(task: tuple) -> dict:
    """Simulate one construction and fit the estimator (one process, one study)."""
    name, seed, bootstrap = task
    import pandas as pd  # noqa: F401  (workers import lazily)
    from replication.v2public import (ConstructionConfig, PoolLayout, PublicDataEstimator, load_public_data,
                                      simulate_construction)

    preset, overrides, model_overrides, est_kwargs = SETTINGS[name]
    config = ConstructionConfig.preset(preset, model=model_overrides, **overrides)
    layout = PoolLayout.from_public(_real_layout(load_public_data))
    start = time.perf_counter()
    sim = simulate_construction(config, layout, np.random.default_rng([seed, 13]))
    data = sim.public_data()
    truth = sim.truth(data.classes)["gap"].reindex(list(data.models)).to_numpy()
    true_shape = float(config.model.ref_shape)
    shapes = (true_shape / 2, true_shape, true_shape * 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = PublicDataEstimator(ref_shapes=shapes, n_bootstrap=bootstrap, random_state=seed,
                                  estimate_rejected_shapes=True, **est_kwargs).fit(data)
    at_true = res.conf_int(ref_shape=true_shape)
    rng = res.identified_range()
    return {"seed": seed, "truth": truth.tolist(), "true_mean": float(truth.mean()),
            "gap": at_true["adjusted_gap"].tolist(),
            "ci": at_true[["gap_lower", "gap_upper"]].to_numpy().tolist(),
            "mean_gap": res.mean_gap(ref_shape=true_shape), "raw_mean": float(res.gap.mean()),
            "range_ci": rng.loc[list(data.models), ["ci_low", "ci_high"]].to_numpy().tolist(),
            "range_ci_mean": rng.loc["mean", ["ci_low", "ci_high"]].tolist(),
            "kept": list(res.kept_shapes()), "true_shape": true_shape, "best_shape": res.ref_shape,
            "J": res.moment_fit.objective, "model": dataclasses.asdict(res.construction_model),
            "true_model": dataclasses.asdict(config.model), "b_median": float(np.median(res.fits[true_shape].curves.b)),
            "short": len(sim.short_classes), "seconds": time.perf_counter() - start}


_LAYOUT = None


def _real_layout(loader):
    global _LAYOUT
    if _LAYOUT is None:
        _LAYOUT = loader(REFERENCE)
    return _LAYOUT


def summarize(records: list[dict]) -> dict:
    truth = np.array([r["truth"] for r in records])                        # (S, M)
    gap = np.array([r["gap"] for r in records])
    ci = np.array([r["ci"] for r in records])                              # (S, M, 2)
    err = gap - truth
    per_study = err.mean(axis=1)
    cover = (ci[..., 0] <= truth) & (truth <= ci[..., 1])
    mean_ci = np.array([r["mean_gap"]["ci"] for r in records])
    true_mean = np.array([r["true_mean"] for r in records])
    rci = np.array([r["range_ci"] for r in records])
    range_cover = (rci[..., 0] <= truth) & (truth <= rci[..., 1])
    rci_mean = np.array([r["range_ci_mean"] for r in records])
    return {
        "studies": len(records), "true_gap": 100 * true_mean.mean(), "raw_gap": 100 * np.mean([r["raw_mean"] for r in records]),
        "bias": 100 * err.mean(), "bias_se": 100 * per_study.std(ddof=1) / np.sqrt(len(records)) if len(records) > 1 else np.nan,
        "rmse": 100 * np.sqrt(np.mean(err ** 2)), "coverage": cover.mean(),
        "mean_coverage": np.mean((mean_ci[:, 0] <= true_mean) & (true_mean <= mean_ci[:, 1])),
        "width": 100 * np.mean(ci[..., 1] - ci[..., 0]), "mean_width": 100 * np.mean(mean_ci[:, 1] - mean_ci[:, 0]),
        "kept_true": np.mean([r["true_shape"] in r["kept"] for r in records]),
        "range_coverage": range_cover.mean(),
        "range_mean_coverage": np.mean((rci_mean[:, 0] <= true_mean) & (true_mean <= rci_mean[:, 1])),
        "zero_covered": np.mean((mean_ci[:, 0] <= 0) & (0 <= mean_ci[:, 1])),
        "seconds": np.mean([r["seconds"] for r in records]),
    }


def markdown(summary: dict, args) -> str:
    lines = [f"Validation on simulated constructions ({args.studies} per setting; real layout of the 708 fully listed "
             f"classes; {args.bootstrap} bootstrap replicates). Gaps in points. At the true reference shape: bias ± "
             "Monte-Carlo SE, RMSE, coverage of the 95% intervals over (study, model) pairs and of the mean-gap "
             "interval, mean widths. Range: the union of intervals over the shapes the data keep (true/2, true, 2 x true).",
             "", "| setting | true mean gap | raw gap | bias | RMSE | coverage (models / mean) | CI width (models / mean) "
             "| true shape kept | range coverage (models / mean) | s per study |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in summary.items():
        lines.append(f"| {name} | {r['true_gap']:.2f} | {r['raw_gap']:.2f} | {r['bias']:+.2f} ± {r['bias_se']:.2f} | "
                     f"{r['rmse']:.2f} | {100 * r['coverage']:.1f}% / {100 * r['mean_coverage']:.0f}% | "
                     f"{r['width']:.2f} / {r['mean_width']:.2f} | {100 * r['kept_true']:.0f}% | "
                     f"{100 * r['range_coverage']:.1f}% / {100 * r['range_mean_coverage']:.0f}% | {r['seconds']:.0f} |")
    placebo = {k: v for k, v in summary.items() if "no shift" in k}
    for name, r in placebo.items():
        lines.append("")
        lines.append(f"Placebo ({name}): the mean-gap interval covers 0 in {100 * r['zero_covered']:.0f}% of "
                     f"{r['studies']} studies (raw gap {r['raw_gap']:.2f} points, all selection).")
    return "\n".join(lines) + "\n"


def _read_cache(path: Path) -> list[dict]:
    """The studies already done (one JSON object a line; a line cut by an interruption is dropped)."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=25, help="studies per setting")
    parser.add_argument("--bootstrap", type=int, default=500)
    parser.add_argument("--settings", help="comma-separated setting numbers (1-based; default all)")
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2)))
    parser.add_argument("--cache", default="v2_public_validation_cache", help="folder of per-study results (resume)")
    parser.add_argument("--out", help="write the markdown table here")
    args = parser.parse_args()
    names = list(SETTINGS)
    if args.settings:
        names = [names[int(i) - 1] for i in args.settings.split(",")]
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    done = {name: _read_cache(cache / f"{slug(name)}.jsonl") for name in names}
    # seed-major order: an interrupted run still has every setting's first studies
    tasks = [(name, s, args.bootstrap) for s in range(args.studies) for name in names
             if s not in {r["seed"] for r in done[name]}]
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for (name, _, _), rec in tqdm(zip(tasks, pool.map(one_study, tasks)), total=len(tasks), file=sys.stderr,
                                      disable=None, desc="studies"):
            with (cache / f"{slug(name)}.jsonl").open("a") as fh:
                fh.write(json.dumps(rec) + "\n")
            done[name].append(rec)
    summary = {}
    for name in names:
        records = [r for r in done[name] if r["seed"] < args.studies]
        if records:
            summary[name] = summarize(records)
    text = markdown(summary, args)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
