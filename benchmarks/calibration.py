"""Calibration of the adjustment methods over simulated replication studies.

For every configuration (5, 10 and 40 annotators per image; no true shift, or
the engstrom2020 shift of 0.11 probit units), simulate ``--studies`` studies
with the package's simulator (reference s ~ Beta(8, 2), candidate pool
Beta(2, 2), a MatchedFrequency replication set drawn on the noisy k/n, models
with probit accuracy curves), run naive, jackknife, betabinomial and npmle
with a bootstrap of ``--bootstrap`` replicates, and compare each model's
estimated gap with the true gap (population values from the simulator).

Reported per configuration and method: bias (mean estimate - truth, over
studies and models, in points), its Monte-Carlo standard error (over
studies), RMSE, the coverage of the 95% percentile intervals (share of
(study, model) pairs whose interval contains the truth), and the mean
interval width. A method that cannot be fitted (e.g. deconvolution with 5
annotators, where MatchedFrequency leaves no within-bin information) is
reported with its error message.

Results are appended per study to ``<cache>/<config>.jsonl`` so an
interrupted run resumes. Progress goes to stderr.

Usage: python3 benchmarks/calibration.py [--studies 200] [--bootstrap 200] [--workers 2] [--out calibration.md]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from replication.estimators import METHODS as REGISTERED

METHODS = tuple(REGISTERED)
ANNOTATORS = (5, 10, 40)
SHIFTS = {"no shift": 0.0, "shift 0.11": 0.11}


def config_name(n: int, shift: float) -> str:
    return f"n{n}_shift{shift:g}"


def one_study(task: tuple) -> dict:
    """Simulate one study and fit every method (one process, one study)."""
    n, shift, seed, args = task
    from replication.errors import FitError
    from replication.estimators.results import SelectionBiasEstimator
    from replication.simulate import SimulationConfig, simulate
    from replication.study import StudyData

    config = SimulationConfig(n_classes=args["classes"], reference_per_class=args["ref_per_class"],
                              candidates_per_class=12 * args["rep_per_class"],
                              replication_per_class=args["rep_per_class"], n_annotators=n,
                              n_models=args["models"], shift=shift)
    rng = np.random.default_rng([seed, n, int(round(shift * 1000))])
    sim = simulate(config, rng)
    study = StudyData.from_tables(sim.annotations, sim.correctness)
    truth = sim.truth["gap"].reindex(list(study.models)).to_numpy()
    out = {"seed": seed, "truth": truth.tolist(), "methods": {}}
    for method in METHODS:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = SelectionBiasEstimator((method,), n_bootstrap=args["bootstrap"], random_state=rng).fit(study)
            d = res.to_dict()
            gaps = [d["models"][m]["adjusted"][method]["gap"] for m in study.models]
            cis = [d["models"][m]["adjusted"][method]["ci"] for m in study.models]
            out["methods"][method] = {"gap": gaps, "ci": cis}
        except FitError as exc:
            out["methods"][method] = {"error": str(exc)}
    return out


def summarize(records: list[dict]) -> dict:
    rows = {}
    for method in METHODS:
        fits = [r["methods"][method] for r in records]
        errors = [f["error"] for f in fits if "error" in f]
        ok = [(np.array(f["gap"]), np.array(f["ci"]), np.array(r["truth"])) for f, r in zip(fits, records)
              if "error" not in f]
        if not ok:
            rows[method] = {"error": errors[0] if errors else "no result", "studies": 0}
            continue
        err = np.stack([g - t for g, _, t in ok])                     # (S, M)
        cover = np.stack([(ci[:, 0] <= t) & (t <= ci[:, 1]) for _, ci, t in ok])
        width = np.stack([ci[:, 1] - ci[:, 0] for _, ci, _ in ok])
        per_study = err.mean(axis=1)
        rows[method] = {"studies": len(ok), "failed": len(errors), "bias": err.mean(),
                        "bias_se": per_study.std(ddof=1) / np.sqrt(len(ok)) if len(ok) > 1 else np.nan,
                        "rmse": np.sqrt(np.mean(err ** 2)), "coverage": cover.mean(), "width": width.mean()}
    return rows


def markdown(summary: dict, args) -> str:
    lines = [f"Calibration over simulated studies ({args.studies} per configuration, {args.models} models, "
             f"{args.classes * args.ref_per_class} reference / {args.classes * args.rep_per_class} replication "
             f"images, {args.bootstrap} bootstrap replicates). Gaps in points; bias = mean(estimate - true gap) "
             "± its Monte-Carlo standard error; coverage of the 95% percentile intervals over (study, model) pairs.",
             "", "| annotators | true shift | method | bias | RMSE | coverage | mean CI width |",
             "|---|---|---|---|---|---|---|"]
    for (n, shift_label), rows in summary.items():
        for method, r in rows.items():
            if "error" in r:
                reason = r["error"].split(": the selected images")[0]
                lines.append(f"| {n} | {shift_label} | {method} | not fitted ({reason}) | | | |")
                continue
            fail = f" ({r['failed']} studies failed)" if r["failed"] else ""
            lines.append(f"| {n} | {shift_label} | {method} | {100 * r['bias']:+.2f} ± {100 * r['bias_se']:.2f}{fail} | "
                         f"{100 * r['rmse']:.2f} | {100 * r['coverage']:.1f}% | {100 * r['width']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=200, help="studies per configuration")
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--classes", type=int, default=250)
    parser.add_argument("--ref-per-class", type=int, default=20)
    parser.add_argument("--rep-per-class", type=int, default=10)
    parser.add_argument("--annotators", default="5,10,40")
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2)))
    parser.add_argument("--cache", default="calibration_cache", help="folder of per-study results (resume)")
    parser.add_argument("--out", help="write the markdown table here")
    args = parser.parse_args()
    params = {"classes": args.classes, "ref_per_class": args.ref_per_class, "rep_per_class": args.rep_per_class,
              "models": args.models, "bootstrap": args.bootstrap}
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    summary = {}
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for n in (int(v) for v in args.annotators.split(",")):
            for label, shift in SHIFTS.items():
                path = cache / f"{config_name(n, shift)}.jsonl"
                done = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
                seeds = [s for s in range(args.studies) if s not in {r["seed"] for r in done}]
                tasks = [(n, shift, s, params) for s in seeds]
                with path.open("a") as fh:
                    for rec in tqdm(pool.map(one_study, tasks), total=len(tasks), desc=f"n={n}, {label}",
                                    file=sys.stderr, disable=None):
                        fh.write(json.dumps(rec) + "\n")
                        fh.flush()
                        done.append(rec)
                summary[(n, label)] = summarize([r for r in done if r["seed"] < args.studies])
    text = markdown(summary, args)
    print(text)
    print(f"({time.perf_counter() - start:.0f} s with {args.workers} workers)", file=sys.stderr)
    if args.out:
        from replication.io import write_text
        write_text(args.out, text)


if __name__ == "__main__":
    main()
