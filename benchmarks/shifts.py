"""Costs the natural-shift datasets add to an evaluation, against the plain
path in the same process:

* ObjectNet's border cut (``ObjectNetFolder.read_bytes``: decode the PNG, cut
  2 pixels a side, hand on an uncompressed PPM) + the crop, against the crop
  of the PNG as it is;
* scoring on a class subset (top-5 within ImageNet-R's 200 classes) and
  against label sets (ReaL), against plain top-5 and single labels.

    python benchmarks/shifts.py [--images 64] [--size 640x480]

Prints seconds per image (or per 10,000 images for scoring) and the ratio.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from eval_fixtures import objectnet_tree, photo  # noqa: E402

from evaluators.datasets import ObjectNetFolder  # noqa: E402
from evaluators.decode import load_crop  # noqa: E402
from evaluators.manifests import load_manifest  # noqa: E402
from evaluators.registry import LITE_PREPROCESS  # noqa: E402
from evaluators.scoring import Scoring  # noqa: E402


def best_of(fn, repeats: int = 3) -> float:
    """Fastest of ``repeats`` timed calls of ``fn`` (seconds)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--size", default="640x480", help="WxH of the generated ObjectNet images")
    args = p.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        images = [photo(i, (w, h)) for i in range(args.images)]
        root = objectnet_tree(Path(tmp) / "objectnet-1.0", {"mug": ("Mug", (504,))}, {"mug": images})
        src = ObjectNetFolder(root)
        raw = [(src.root / s.location).read_bytes() for s in src.samples]
        plain = best_of(lambda: [load_crop(b, LITE_PREPROCESS) for b in raw]) / len(raw)
        cut = best_of(lambda: [load_crop(src.read_bytes(i), LITE_PREPROCESS) for i in range(len(src))]) / len(raw)
    print(f"ObjectNet {w}x{h} PNG -> Lite0 crop: plain {1e3 * plain:.1f} ms/img, with the border cut "
          f"{1e3 * cut:.1f} ms/img ({cut / plain:.2f}x)")
    n = 10_000
    logits = torch.randn(n, 1000)
    labels = np.random.default_rng(0).integers(0, 1000, n)
    sets = [tuple(sorted({int(c), int(c) + 1 if c < 999 else 0})) for c in labels]
    r = Scoring(tuple(load_manifest("imagenet-r")["classes"]))
    t_plain = best_of(lambda: Scoring().top_k(logits, 5))
    t_sub = best_of(lambda: r.top_k(logits, 5))
    preds = Scoring().top_k(logits, 5)
    t_one = best_of(lambda: Scoring.correct(preds, labels))
    t_sets = best_of(lambda: Scoring.correct(preds, labels, sets))
    print(f"top-5 of {n:,} images: all classes {1e3 * t_plain:.1f} ms, ImageNet-R subset {1e3 * t_sub:.1f} ms "
          f"({t_sub / t_plain:.2f}x)")
    print(f"correct1/5 of {n:,} images: single labels {1e3 * t_one:.1f} ms, label sets {1e3 * t_sets:.1f} ms "
          f"({t_sets / t_one:.2f}x)")


if __name__ == "__main__":
    main()
