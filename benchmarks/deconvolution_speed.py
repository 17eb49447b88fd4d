"""Speed of ``replication bias`` with all four methods (naive, jackknife,
betabinomial, npmle) and 1000 bootstrap replicates on a simulated study of
67 models x 20,000 images per dataset; target: under 60 s on a 2-core machine.

Runs, in one process:
1. the command line end to end (subprocess: start-up, reading and validating
   the files, point estimates, 1000 replicates that refit both priors and the
   weights, JSON and per-image weights written) with all four methods, and
   the same command with the baseline methods naive + jackknife only, so the
   ratio isolates what the deconvolution methods add;
2. a per-method breakdown in process on the same bootstrap replicates.

Usage: python3 benchmarks/deconvolution_speed.py [--images 20000] [--bootstrap 1000] [--models 67]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from replication.bootstrap import bootstrap_levels
from replication.estimators import METHODS
from replication.simulate import SimulationConfig, simulate, write_study
from replication.study import StudyData

ALL = tuple(METHODS)


def run_cli(paths: dict, methods: tuple[str, ...], bootstrap: int, out: Path) -> float:
    cmd = [sys.executable, "-m", "replication", "bias", "--annotations", str(paths["annotations"]),
           "--correct", str(paths["correct"]), "--methods", ",".join(methods),
           "--bootstrap", str(bootstrap), "--seed", "0", "--weights-out", str(out / "weights.parquet"),
           "--json", str(out / "bias.json")]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20_000, help="images per dataset (multiple of 1000)")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--models", type=int, default=67)
    args = parser.parse_args()
    per_class = args.images // 1000
    config = SimulationConfig.preset("engstrom2020", n_models=args.models, reference_per_class=per_class,
                                     replication_per_class=per_class, candidates_per_class=12 * per_class)
    study_sim = simulate(config, np.random.default_rng(0))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        paths = write_study(study_sim, out / "study", annotations_format="parquet")
        t_all = run_cli(paths, ALL, args.bootstrap, out)
        t_base = run_cli(paths, ("naive", "jackknife"), args.bootstrap, out)
    print(f"study: {args.models} models, {args.images} reference + {args.images} replication images, "
          f"B = {args.bootstrap}")
    print(f"replication bias, all four methods (end to end): {t_all:6.1f} s   target < 60 s: "
          f"{'OK' if t_all < 60 else 'MISSED'}")
    print(f"replication bias, naive + jackknife (baseline):  {t_base:6.1f} s   ratio {t_all / t_base:.1f}x")

    study = StudyData.from_tables(study_sim.annotations, study_sim.correctness)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    chunks = list(bootstrap_levels(study, args.bootstrap, rng))
    t_levels = time.perf_counter() - start
    print(f"in process: bootstrap level tables {t_levels:.1f} s")
    for name in ALL:
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for chunk in chunks:
                METHODS[name](chunk)
        print(f"in process: {name:<12} {args.bootstrap} replicates {time.perf_counter() - start:6.1f} s")
    print("(2-core machine shared with other jobs: timings are noisy)")


if __name__ == "__main__":
    main()
