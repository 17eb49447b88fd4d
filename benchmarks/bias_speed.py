"""Speed of ``replication bias``: naive + jackknife with 1000 bootstrap
replicates on a simulated study of 67 models x 20,000 images per dataset.

Runs, in one process:
1. the real command line (``replication bias`` as a subprocess, end to end:
   start-up, reading and validating the files, 1000 replicates, JSON and
   weights written), against the 10 s target;
2. a straightforward per-replicate pandas implementation of the same
   estimators (groupby resampling, groupby plug-in, hypergeometric thinning
   per level) on a few replicates, checked to give the same point estimates,
   with its time scaled to 1000 replicates.

Usage: python3 benchmarks/bias_speed.py [--images 20000] [--bootstrap 1000] [--baseline-replicates 5]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from replication.estimators.results import SelectionBiasEstimator
from replication.simulate import SimulationConfig, simulate, write_study

REF, REP = "imagenet-val", "imagenetv2-matched-frequency"


def baseline_naive(ref: pd.DataFrame, rep: pd.DataFrame, models: list[str]) -> pd.Series:
    """Plug-in on k/n with pandas groupby (fractions as floats rounded to 12 digits)."""
    ref_share = (ref["n_selected"] / ref["n_annotators"]).round(12).value_counts(normalize=True)
    frac = (rep["n_selected"] / rep["n_annotators"]).round(12)
    acc = rep.groupby(frac)[models].mean()
    share = ref_share.reindex(acc.index).fillna(0.0)
    return (acc.mul(share, axis=0).sum() / share.sum())


def baseline_thin(df: pd.DataFrame, models: list[str], d: int) -> pd.DataFrame:
    """Expected table after dropping d annotators: one weighted row per (image, k')."""
    rows = []
    for (n, k), group in df.groupby(["n_annotators", "n_selected"]):
        for kk in range(max(0, k - d), min(k, n - d) + 1):
            p = stats.hypergeom.pmf(kk, n, k, n - d)
            part = group[models].copy()
            part["n_annotators"], part["n_selected"], part["w"] = n - d, kk, p
            rows.append(part)
    return pd.concat(rows, ignore_index=True)


def baseline_weighted_naive(ref: pd.DataFrame, rep: pd.DataFrame, models: list[str]) -> pd.Series:
    ref_frac = (ref["n_selected"] / ref["n_annotators"]).round(12)
    ref_share = ref["w"].groupby(ref_frac).sum()
    ref_share /= ref_share.sum()
    frac = (rep["n_selected"] / rep["n_annotators"]).round(12)
    num = rep[models].mul(rep["w"], axis=0).groupby(frac).sum()
    acc = num.div(rep["w"].groupby(frac).sum(), axis=0)
    share = ref_share.reindex(acc.index).fillna(0.0)
    return acc.mul(share, axis=0).sum() / share.sum()


def baseline_jackknife(ref: pd.DataFrame, rep: pd.DataFrame, models: list[str], d: int = 1) -> pd.Series:
    full = baseline_naive(ref, rep, models)
    part = baseline_weighted_naive(baseline_thin(ref, models, d), baseline_thin(rep, models, d), models)
    n_all = pd.concat([ref["n_annotators"], rep["n_annotators"]])
    x_full, x_thin = (1 / n_all).mean(), (1 / (n_all - d)).mean()
    return full + (full - part) * x_full / (x_thin - x_full)


def baseline_replicate(ref: pd.DataFrame, rep: pd.DataFrame, models: list[str], rng) -> dict:
    seed = int(rng.integers(2**31))
    ref_b = ref.groupby("class_id", group_keys=False).sample(frac=1.0, replace=True, random_state=seed)
    rep_b = rep.groupby("class_id", group_keys=False).sample(frac=1.0, replace=True, random_state=seed + 1)
    return {"naive": baseline_naive(ref_b, rep_b, models), "jackknife": baseline_jackknife(ref_b, rep_b, models)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=20_000, help="images per dataset (default 20000)")
    ap.add_argument("--models", type=int, default=67)
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--baseline-replicates", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3, help="CLI runs; the best and all times are printed")
    args = ap.parse_args()

    per_class = args.images // 1000
    config = SimulationConfig.preset("engstrom2020", n_models=args.models, reference_per_class=per_class,
                                     replication_per_class=per_class, candidates_per_class=12 * per_class)
    study = simulate(config, np.random.default_rng(0))
    counts = study.annotations["dataset"].value_counts()
    print(f"study: {counts[REF]} reference + {counts[REP]} replication images, {args.models} models; "
          f"machine: {os.cpu_count()} cores (shared, timings are noisy)")

    with tempfile.TemporaryDirectory() as tmp:
        paths = write_study(study, tmp)
        out = Path(tmp) / "bias.json"
        cmd = [sys.executable, "-m", "replication", "bias", "--annotations", str(paths["annotations"]),
               "--correct", str(paths["correct"]), "--methods", "naive,jackknife",
               "--bootstrap", str(args.bootstrap), "--seed", "0", "--weights-out", str(Path(tmp) / "w.csv"),
               "--json", str(out)]
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            times.append(time.perf_counter() - t0)
        result = json.loads(out.read_text())
    cli = min(times)
    print(f"replication bias (subprocess, end to end, B={args.bootstrap}, naive+jackknife): "
          f"best {cli:.2f} s of {', '.join(f'{t:.2f}' for t in times)}  -> target < 10 s: "
          f"{'PASS' if cli < 10 else 'FAIL'}")

    t0 = time.perf_counter()
    SelectionBiasEstimator(("naive", "jackknife"), n_bootstrap=args.bootstrap, random_state=0).fit(
        study.annotations, study.correctness)
    fit_s = time.perf_counter() - t0
    print(f"SelectionBiasEstimator.fit in process (tables already in memory): {fit_s:.2f} s")

    models = list(study.truth.index)
    frame = study.annotations.merge(study.correctness.drop(columns=["label"]), on=["dataset", "image_id"])
    ref, rep = frame[frame["dataset"] == REF], frame[frame["dataset"] == REP]
    point = {"naive": baseline_naive(ref, rep, models), "jackknife": baseline_jackknife(ref, rep, models)}
    for m, series in point.items():
        ours = np.array([result["models"][name]["adjusted"][m]["replication_accuracy"] for name in models])
        err = np.abs(series[models].to_numpy() - ours).max()
        assert err < 1e-9, (m, err)
    print("baseline point estimates equal ours (max abs difference < 1e-9)")
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for _ in range(args.baseline_replicates):
        baseline_replicate(ref, rep, models, rng)
    per = (time.perf_counter() - t0) / args.baseline_replicates
    scaled = per * args.bootstrap
    print(f"baseline (pandas, one replicate at a time): {per:.2f} s per replicate x {args.bootstrap} = "
          f"{scaled:.0f} s (scaled from {args.baseline_replicates} replicates)")
    print(f"speed-up of the vectorized fit over the baseline: {scaled / fit_s:.0f}x "
          f"(end-to-end CLI: {scaled / cli:.0f}x)")


if __name__ == "__main__":
    main()
