"""Placebo on the REAL ImageNet-ReaL votes (5 raters per val image) with the
67 models of Recht et al. on ImageNet val, for m = 2, 3, 4 matching votes.

For each m, the placebo is staged with several seeds (staging randomness:
vote split, halves, thinning, matching); each run bootstraps its intervals.
The true gap is 0. Prints (and with --out writes) a markdown table: the mean
over runs of the mean-over-models gap per method, how many runs' mean-gap
interval covers 0, the share of per-model intervals covering 0, and the mean
interval width. The raw gap is the naive method's target of correction.

Usage: python3 benchmarks/placebo_real.py [--reference ../shared/reference] [--seeds 10] [--bootstrap 500] [--out FILE]
"""
from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from replication.estimators import METHODS
from replication.io import load_annotations, load_correctness, write_text
from replication.placebo import placebo_dict, run_placebo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "reference"))
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--bootstrap", type=int, default=500)
    parser.add_argument("--out", help="write the markdown table here")
    args = parser.parse_args()
    ref = Path(args.reference)
    ann = load_annotations(ref / "real-reassessed-imagenet" / "real_votes_annotations.csv")
    cor = load_correctness(ref / "imagenetv2" / "recht2019_correct_top1.parquet")
    cor = cor[cor["dataset"] == "imagenet-val"]
    rows = []
    start = time.perf_counter()
    for m in (2, 3, 4):
        for seed in range(args.seeds):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                placebo, res = run_placebo(ann, cor, seed=seed, matching_votes=m, methods=tuple(METHODS),
                                           n_bootstrap=args.bootstrap)
            d = placebo_dict(placebo, res)
            models = d["models"].values()
            rows.append({"m": m, "seed": seed, "method": "raw", "gap": d["summary"]["mean_gap"],
                         "covers": np.nan, "model_cover": np.nan, "width": np.nan,
                         "replication_images": placebo.info["replication_images"]})
            for method in METHODS:
                s = d["summary"]["adjusted_mean_gap"][method]
                cis = np.array([v["adjusted"][method]["ci"] for v in models])
                rows.append({"m": m, "seed": seed, "method": method, "gap": s["value"],
                             "covers": s["ci"][0] <= 0 <= s["ci"][1],
                             "model_cover": np.mean((cis[:, 0] <= 0) & (0 <= cis[:, 1])),
                             "width": np.mean(cis[:, 1] - cis[:, 0]),
                             "replication_images": placebo.info["replication_images"]})
        print(f"m = {m} done ({time.perf_counter() - start:.0f} s)", flush=True)
    df = pd.DataFrame(rows)
    lines = [f"Placebo on ImageNet-ReaL votes (true gap 0), 67 models, {args.seeds} stagings per m, "
             f"{args.bootstrap} bootstrap replicates each; gaps in points (mean over stagings of the mean over "
             "models, with the sd over stagings).", "",
             "| m | method | mean gap | sd over stagings | mean-gap CI covers 0 | model CIs covering 0 | mean model CI width |",
             "|---|---|---|---|---|---|---|"]
    for (m, method), g in df.groupby(["m", "method"], sort=False):
        cover = "" if method == "raw" else f"{int(g['covers'].sum())}/{len(g)}"
        model_cover = "" if method == "raw" else f"{100 * g['model_cover'].mean():.0f}%"
        width = "" if method == "raw" else f"{100 * g['width'].mean():.2f}"
        lines.append(f"| {m} | {method} | {100 * g['gap'].mean():+.2f} | {100 * g['gap'].std():.2f} | {cover} | "
                     f"{model_cover} | {width} |")
    sizes = df.groupby("m")["replication_images"].mean()
    lines += ["", "Replication images per staging: " + ", ".join(f"m = {m}: {v:.0f}" for m, v in sizes.items())]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        write_text(args.out, text)


if __name__ == "__main__":
    main()
