"""The largest realistic statistics job: every timm configuration (1,556
models) scored on ImageNet val with votes (50,000 images) and ImageNet-v2
MatchedFrequency (10,000), all four methods, 1,000 bootstrap replicates --
``replication bias`` run as a whole process, as a user runs it.

The study is simulated (the ``engstrom2020`` preset at that size: 10
annotators per image, a MatchedFrequency replication set); correctness for
1,556 models is simulated too. Prints the wall time and peak memory (maximum
resident set size) of the process and every line it wrote to stderr (a
library warning there is a bug), for this checkout and for a baseline: the
same command from another checkout (``--baseline-src``, e.g. a worktree of
the main branch) or, without one, the figures measured from outside when the
job was first timed (21 s and 1.6 GB on the 2-core machine, printing pandas'
"DataFrame is highly fragmented" warning four times).

    python3 benchmarks/bias_large.py [--baseline-src ../main] [--bootstrap 1000] [--keep DIR]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from replication.simulate import SimulationConfig, simulate, write_study  # noqa: E402

#: what the job took when it was first measured (issue 14), for runs without --baseline-src
STATED_BASELINE = {"seconds": 21.0, "peak_mb": 1600.0, "stderr": "4 x pandas PerformanceWarning "
                                                               "(DataFrame is highly fragmented)"}
N_MODELS = 1556


def build_study(folder: Path, seed: int = 0) -> dict[str, Path]:
    """Annotations (Parquet) and correctness of 60,000 images x 1,556 models."""
    config = SimulationConfig.preset("engstrom2020", n_classes=1000, reference_per_class=50,
                                     replication_per_class=10, n_models=N_MODELS)
    study = simulate(config, np.random.default_rng(seed))
    return write_study(study, folder, annotations_format="parquet")


def run_bias(src: Path, paths: dict[str, Path], out: Path, bootstrap: int) -> dict:
    """Run ``python -m replication bias`` from checkout ``src``; wall time,
    peak memory (of that process alone, from wait4) and its stderr."""
    cmd = [sys.executable, "-m", "replication", "bias", "--annotations", str(paths["annotations"]),
           "--correct", str(paths["correct"]), "--bootstrap", str(bootstrap), "--json", str(out)]
    env = {**os.environ, "PYTHONPATH": str(src), "PYTHONDONTWRITEBYTECODE": "1"}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=src, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    stdout, stderr = proc.stdout.read(), proc.stderr.read()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{src}: bias failed ({proc.returncode}):\n{stderr}")
    return {"seconds": seconds, "peak_mb": usage.ru_maxrss / 1024, "stderr": stderr.strip(), "stdout": stdout}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline-src", type=Path, help="another checkout to run the same command from")
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--keep", type=Path, help="keep the study and outputs in this folder")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        t0 = time.perf_counter()
        paths = build_study(work / "study")
        print(f"study: {N_MODELS} models x 50,000 + 10,000 images, built in {time.perf_counter() - t0:.1f} s")
        ours = run_bias(REPO, paths, work / "ours.json", args.bootstrap)
        if args.baseline_src is not None:
            base, label = run_bias(args.baseline_src.resolve(), paths, work / "base.json", args.bootstrap), \
                f"baseline ({args.baseline_src})"
        else:
            base, label = STATED_BASELINE, "baseline (stated: first measurement, issue 14)"
    print(f"{'':44s} {'seconds':>8s} {'peak MB':>8s}")
    for name, r in ((label, base), ("this checkout", ours)):
        print(f"{name:44s} {r['seconds']:8.1f} {r['peak_mb']:8.0f}")
    print(f"speed-up {base['seconds'] / ours['seconds']:.2f}x, memory {ours['peak_mb'] / base['peak_mb']:.2f}x; "
          f"target: under 10 s")
    for name, r in ((label, base), ("this checkout", ours)):
        print(f"stderr of {name}: {r['stderr'] or '(nothing)'}")
    return 0 if not ours["stderr"] else 1


if __name__ == "__main__":
    sys.exit(main())
