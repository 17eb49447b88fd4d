"""`replication design` against the standard path, for agreement and for speed.

Agreement. The design simulates studies as batched level tables, collapses
the models into their mean, fits every study and replicate of a design in one
batched call, and judges intervals by a normal approximation from a few
bootstrap replicates. The standard path is what benchmarks/calibration.py
does: ``simulate()`` one study at a time, ``SelectionBiasEstimator`` on it with
percentile intervals from ``--standard-bootstrap`` replicates, and the mean
gap's interval from ``mean_gap_conf_int()``. Both run calibration's setting
(5,000 reference / 2,500 replication images, 250 classes, a pool of 12x, 10
models, shift 0.11) with the same model curves (slope spread 0, so every
study has the same curves on both sides); the table gives, per number of
annotators and method, the bias, RMSE, 95%-interval width and coverage of the
mean adjusted gap from both, with Monte-Carlo SEs and the z-score of each
difference. The README's calibration biases (200 studies, curves redrawn per
study) are printed beside them.

Speed. The default grid of ``replication design --preset engstrom2020``
(timed in this process), against the standard path's time per study on the
grid's largest design, scaled to the grid's studies.

Usage: python3 benchmarks/design_check.py [--studies 40] [--design-studies 40] [--standard-bootstrap 200]
       [--workers N] [--annotators 5,10] [--no-speed]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

METHODS = ("naive", "jackknife", "betabinomial", "npmle")
#: README calibration table, shift 0.11: bias of the gap in points
README_BIAS = {5: {"naive": 11.51, "jackknife": 10.63}, 10: {"naive": 7.34, "jackknife": 6.05,
                                                                "betabinomial": 0.00, "npmle": 0.27}}
SETTING = dict(n_classes=250, reference_per_class=20, replication_per_class=10, candidates_per_class=120,
               n_models=10, slope_spread=0.0)


def config(n: int):
    from replication.simulate import SimulationConfig

    return SimulationConfig.preset("engstrom2020", n_annotators=n, **SETTING)


def standard_study(task: tuple) -> dict:
    """One study through simulate() + SelectionBiasEstimator: mean gap, its percentile interval, truth."""
    n, seed, n_bootstrap = task
    from replication.errors import FitError
    from replication.estimators.results import SelectionBiasEstimator
    from replication.simulate import simulate
    from replication.study import StudyData

    rng = np.random.default_rng([seed, n, 11])
    sim = simulate(config(n), rng)
    study = StudyData.from_tables(sim.annotations, sim.correctness)
    out = {"truth": float(sim.truth["gap"].mean()), "methods": {}}
    for m in METHODS:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = SelectionBiasEstimator((m,), n_bootstrap=n_bootstrap, random_state=rng).fit(study)
            row = res.mean_gap_conf_int().loc[m]
            out["methods"][m] = (float(row["value"]), float(row["lower"]), float(row["upper"]))
        except FitError as exc:
            out["methods"][m] = str(exc)
    return out


def standard_summary(records: list[dict], method: str) -> dict | str:
    fits = [(r["methods"][method], r["truth"]) for r in records]
    if isinstance(fits[0][0], str):
        return fits[0][0]
    est = np.array([f[0][0] for f in fits])
    lo, hi, truth = np.array([f[0][1] for f in fits]), np.array([f[0][2] for f in fits]), np.array([t for _, t in fits])
    err, width, cover = est - truth, hi - lo, ((lo <= truth) & (truth <= hi)).astype(float)
    s = len(err)
    rmse = np.sqrt(np.mean(err ** 2))
    return {"bias": err.mean(), "bias_se": err.std(ddof=1) / np.sqrt(s), "rmse": rmse,
            "rmse_se": (err ** 2).std(ddof=1) / np.sqrt(s) / (2 * rmse), "ci_width": width.mean(),
            "ci_width_se": width.std(ddof=1) / np.sqrt(s), "coverage": cover.mean(),
            "coverage_se": np.sqrt(cover.mean() * (1 - cover.mean()) / s)}


def design_part(task: tuple):
    """The design's simulation of the same setting with the same model curves, one seed."""
    n, studies, bootstrap, seed = task
    from replication.design import Design, Scenario, evaluate_design
    from replication.design.scenario import BetaPrior, ProbitCurves
    from replication.sampling import EDGES
    from replication.simulate import model_curves

    cfg = config(n)
    curves = model_curves(cfg, np.random.default_rng(0))        # slope spread 0: the same in every study
    scenario = Scenario(BetaPrior(*cfg.reference_prior), BetaPrior(*cfg.candidate_prior),
                        ProbitCurves(curves, cfg.pivot), cfg.shift, tuple(curves.index))
    return evaluate_design(Design(n, 5000, 2500, 30000, classes=250), scenario, METHODS, n_studies=studies,
                           n_bootstrap=bootstrap, seed=seed,
                           method_options={m: {"selection_edges": EDGES} for m in ("betabinomial", "npmle")})


def pooled(outs, method: str) -> dict | str:
    """Combine equal-sized parts: means of bias, width, coverage; RMSE from mean squares."""
    rs = [o.methods[method] for o in outs]
    if rs[0].error is not None:
        return rs[0].error
    k = len(rs)
    mean = lambda xs: float(np.mean(xs))  # noqa: E731
    se = lambda xs: float(np.sqrt(np.sum(np.square(xs))) / k)  # noqa: E731
    return {"bias": mean([r.bias for r in rs]), "bias_se": se([r.bias_se for r in rs]),
            "rmse": float(np.sqrt(np.mean([r.rmse ** 2 for r in rs]))), "rmse_se": se([r.rmse_se for r in rs]),
            "ci_width": mean([r.ci_width for r in rs]), "ci_width_se": se([r.ci_width_se for r in rs]),
            "coverage": mean([r.coverage for r in rs]), "coverage_se": se([r.coverage_se for r in rs])}


def agreement(args) -> str:
    lines = ["| annotators | method | quantity | standard path | design | z | README calibration |",
             "|---|---|---|---|---|---|---|"]
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for n in (int(v) for v in args.annotators.split(",")):
            tasks = [(n, s, args.standard_bootstrap) for s in range(args.studies)]
            t0 = time.perf_counter()
            records = list(tqdm(pool.map(standard_study, tasks), total=len(tasks), desc=f"standard n={n}",
                                file=sys.stderr, disable=None))
            t_std = time.perf_counter() - t0
            t0 = time.perf_counter()
            per = max(2, args.design_studies // args.workers)     # the studies split over equal parts, one per worker
            outs = list(pool.map(design_part, [(n, per, args.design_bootstrap, 1000 + i) for i in range(args.workers)]))
            truth = outs[0].true_gap
            t_des = time.perf_counter() - t0
            print(f"n={n}: standard path {t_std:.0f} s for {args.studies} studies; design {t_des:.0f} s for "
                  f"{args.design_studies} studies; truth {100 * truth:.3f} points (standard: "
                  f"{100 * np.mean([r['truth'] for r in records]):.3f})", file=sys.stderr)
            for m in METHODS:
                std, des = standard_summary(records, m), pooled(outs, m)
                readme = README_BIAS.get(n, {}).get(m)
                if isinstance(std, str) or isinstance(des, str):
                    reason = (std if isinstance(std, str) else des).split(": the selected images")[0]
                    lines.append(f"| {n} | {m} | not fitted | {'not fitted' if isinstance(std, str) else 'fitted'} | "
                                 f"{'not fitted' if isinstance(des, str) else 'fitted'} | | {reason} |")
                    continue
                for q, scale, unit in (("bias", 100, "pts"), ("rmse", 100, "pts"), ("ci_width", 100, "pts"),
                                       ("coverage", 100, "%")):
                    se = np.hypot(des[f"{q}_se"], std[f"{q}_se"])
                    z = f"{(des[q] - std[q]) / se:+.1f}" if se > 0 else ("0" if des[q] == std[q] else "inf")
                    extra = f"{readme:+.2f}" if q == "bias" and readme is not None else ""
                    lines.append(f"| {n} | {m} | {q} ({unit}) | {scale * std[q]:.2f} ± {scale * std[f'{q}_se']:.2f} | "
                                 f"{scale * des[q]:.2f} ± {scale * des[f'{q}_se']:.2f} | {z} | {extra} |")
    return "\n".join(lines)


def speed(args) -> str:
    import contextlib
    import io
    import json

    from replication.cli import main

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "d.json"
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            code = main(["design", "--preset", "engstrom2020", "--jobs", str(args.workers), "--json", str(out)])
        ours = time.perf_counter() - t0
        assert code == 0
        designs = json.loads(out.read_text())["designs"]
    largest = max(designs, key=lambda d: d["votes"])
    classes = largest["classes"]
    cfg = replace(config(largest["annotators"]), n_classes=classes, n_models=67, slope_spread=0.15,
                  reference_per_class=largest["reference_images"] // classes,
                  replication_per_class=largest["replication_images"] // classes,
                  candidates_per_class=largest["pool_images"] // classes)
    from replication.estimators.results import SelectionBiasEstimator
    from replication.simulate import simulate
    from replication.study import StudyData

    t0 = time.perf_counter()
    for seed in range(2):
        sim = simulate(cfg, np.random.default_rng(seed))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            SelectionBiasEstimator(METHODS, n_bootstrap=10, random_state=seed).fit(
                StudyData.from_tables(sim.annotations, sim.correctness))
    per_study = (time.perf_counter() - t0) / 2
    baseline = per_study * 16 * len(designs) / args.workers
    return (f"default grid ({len(designs)} designs x 16 studies x 10 replicates, {args.workers} workers): {ours:.1f} s; "
            f"the standard path takes {per_study:.1f} s per study of the largest design (n={largest['annotators']}, "
            f"{largest['reference_images']:,} / {largest['replication_images']:,} / {largest['pool_images']:,} "
            f"images), so at most {baseline:.0f} s for the grid's studies on {args.workers} workers "
            f"({baseline / ours:.1f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=40, help="studies through the standard path, per n")
    parser.add_argument("--design-studies", type=int, default=40, help="studies simulated by the design, per n")
    parser.add_argument("--standard-bootstrap", type=int, default=200)
    parser.add_argument("--design-bootstrap", type=int, default=10)
    parser.add_argument("--annotators", default="5,10")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--no-agreement", action="store_true")
    args = parser.parse_args()
    if not args.no_agreement:
        print(agreement(args))
    if not args.no_speed:
        print(speed(args))


if __name__ == "__main__":
    main()
