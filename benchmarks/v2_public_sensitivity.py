"""Sensitivity of ``replication v2-public`` on the real public record to the
assumptions that matter most.

Each variant refits the whole estimator on ../shared/reference (or
$REPLICATION_REFERENCE) and reports the mean raw gap, the mean adjusted gap
with its 95% class-bootstrap interval at the best reference shape, the
identified range (union of intervals over the shapes the data keep), the
shape-free range, and the construction model's J statistic:

* pool family: mixture (main), Beta, logit-normal;
* annotations per candidate: 10 per HIT (main), or 10 for every candidate
  (``max_hits=1``: HIT counts ignored);
* the missing HIT file: the 708 fully listed classes (main), all 1,000 classes
  with the unlisted set images added, and also with the file's other candidates
  imputed;
* accuracy curves without class effects;
* annotated reference images all with one HIT (10 annotations).

Results are cached per variant in ``<cache>/<variant>.json`` (resume); variants
run in parallel on ``--workers`` processes.

Usage: python3 benchmarks/v2_public_sensitivity.py [--workers 2] [--out v2_public_sensitivity.md]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REFERENCE = Path(os.environ.get("REPLICATION_REFERENCE", REPO.parent / "shared" / "reference"))

#: name -> (load_public_data classes, estimator keyword arguments)
VARIANTS: dict[str, tuple[str, dict]] = {
    "main (mixture pool, 708 classes)": ("complete", {}),
    "Beta pool": ("complete", {"pool_family": "beta"}),
    "logit-normal pool": ("complete", {"pool_family": "logitnormal"}),
    "10 annotations per candidate (HIT counts ignored)": ("complete", {"max_hits": 1}),
    "all 1,000 classes, unlisted set images added": ("all", {}),
    "all classes, missing HIT file's candidates imputed": ("all", {"impute_unlisted": True}),
    "no class effects in f(s)": ("complete", {"class_effects": False}),
    "reference images annotated once (n = 10)": ("complete", {"ref_hits": 1}),
}


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")[:60]


def one_variant(name: str) -> dict:
    from replication.v2public import PublicDataEstimator, load_public_data

    classes, kwargs = VARIANTS[name]
    start = time.perf_counter()
    res = PublicDataEstimator(**kwargs).fit(load_public_data(REFERENCE, classes=classes))
    d = res.to_dict()
    return {"name": name, "classes": res.n_classes, "raw": d["summary"]["mean_gap"],
            "raw_ci": d["summary"]["mean_gap_ci"], "adjusted": d["summary"]["adjusted_mean_gap"]["v2public"],
            "range_ci": d["summary"]["identified_range_ci"], "shape_free": d["summary"]["shape_free_bounds"],
            "ref_shape": d["ref_shape"], "kept": d["kept_ref_shapes"], "J": d["moment_fit"]["J"],
            "dof": d["moment_fit"]["dof"], "seconds": time.perf_counter() - start}


def markdown(rows: list[dict]) -> str:
    lines = ["| variant | classes | raw gap [95% CI] | adjusted gap [95% CI] | range, kept shapes | range, any shape "
             "| best shape (kept) | J (dof) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        a = r["adjusted"]
        lines.append(f"| {r['name']} | {r['classes']} | {100 * r['raw']:.2f} [{100 * r['raw_ci'][0]:.2f}, "
                     f"{100 * r['raw_ci'][1]:.2f}] | **{100 * a['value']:.2f}** [{100 * a['ci'][0]:.2f}, "
                     f"{100 * a['ci'][1]:.2f}] | {100 * r['range_ci'][0]:.2f} to {100 * r['range_ci'][1]:.2f} | "
                     f"{100 * r['shape_free'][0]:.2f} to {100 * r['shape_free'][1]:.2f} | {r['ref_shape']:g} "
                     f"({', '.join(f'{k:g}' for k in r['kept'])}) | {r['J']:.1f} ({r['dof']}) |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2)))
    parser.add_argument("--cache", default="v2_public_sensitivity_cache", help="folder of per-variant results")
    parser.add_argument("--out", help="write the markdown table here")
    args = parser.parse_args()
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    todo = [n for n in VARIANTS if not (cache / f"{slug(n)}.json").exists()]
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for row in pool.map(one_variant, todo):
            (cache / f"{slug(row['name'])}.json").write_text(json.dumps(row))
            print(f"{row['name']}: {row['seconds']:.0f} s", file=sys.stderr)
    rows = [json.loads((cache / f"{slug(n)}.json").read_text()) for n in VARIANTS]
    text = markdown(rows)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
