"""Decoders: speed, and how much each changes the crop and the top-1 prediction.

On the same realistic JPEGs (:mod:`images`), every decode path makes the
model's uint8 crop; each is compared with Pillow (``decoder="pil"``, the
reference of timm's ``validate.py``):

* ``torch``: the fast CPU decoder, ``--decoder torch`` (torchvision's
  libjpeg-turbo, torch's uint8 resize kernels);
* ``float, one pass``: libjpeg-turbo + one float resize, rounded once (what
  a plain GPU resize computes), run here on the CPU;
* ``float, rounded passes``: libjpeg-turbo + :func:`evaluators.decode.resize_rounded`
  (the GPU path's resize), run here on the CPU;
* on CUDA also ``nvJPEG + GPU resize`` (:func:`evaluators.gpu.gpu_crops`),
  the full GPU path, whose gap to the previous row is the decoder's alone.

Printed per path: milliseconds per image on one CPU thread (decode, resize,
crop), the share of crop values that differ from Pillow's and the largest
difference, and the share of images whose fp32 top-1 prediction changes (all
images, and those that Pillow's crop gives a top-1 probability > 0.5). Then
the producer rate that bounds an end-to-end run: images/s of the crop
datasets through a ``DataLoader`` with ``--workers`` processes, Pillow
against torch. Example::

    python benchmarks/decode.py --n 480 --workers 2
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
sys.path.insert(0, str(Path(__file__).resolve().parent))

from evaluators.datasets import ImageNetV2Folder  # noqa: E402
from evaluators.decode import decode_jpegs, load_crop, resize_rounded, resized_hw  # noqa: E402
from evaluators.runner import CropDataset, collate_crops  # noqa: E402
from evaluators.registry import create_model  # noqa: E402
from images import make_images  # noqa: E402
from replication.io.atomic import write_json  # noqa: E402


def cpu_paths(cfg) -> dict:
    """name -> function(JPEG bytes) -> uint8 (3, crop, crop), all on the CPU."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as F

    pil, fast = cfg.replace(decoder="pil"), cfg.replace(decoder="torch")

    def libjpeg(data: bytes) -> torch.Tensor:
        return decode_jpegs(torch.frombuffer(bytearray(data), dtype=torch.uint8))

    def crop(x: torch.Tensor) -> torch.Tensor:
        return F.center_crop(x, [cfg.crop_size, cfg.crop_size])

    def one_pass(data: bytes) -> torch.Tensor:
        x = libjpeg(data)
        size = list(resized_hw(*x.shape[-2:], cfg.resize_size))
        y = F.resize(x.float(), size, interpolation=InterpolationMode(cfg.interpolation),
                     antialias=cfg.antialias).round().clamp(0, 255)
        return crop(y.to(torch.uint8))

    def rounded(data: bytes) -> torch.Tensor:
        x = libjpeg(data)
        return crop(resize_rounded(x, resized_hw(*x.shape[-2:], cfg.resize_size), cfg.interpolation, cfg.antialias))

    return {"pil": lambda d: load_crop(d, pil), "torch": lambda d: load_crop(d, fast),
            "float, one pass": one_pass, "float, rounded passes": rounded}


def ms_per_image(fn, files: list[bytes], reps: int = 2) -> float:
    """Best of ``reps`` mean milliseconds per image of ``fn`` over ``files``."""
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        for f in files:
            fn(f)
        best = min(best, (time.perf_counter() - t0) / len(files))
    return 1e3 * best


def predict(module, cfg, crops: torch.Tensor, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """fp32 (top-1 class, its probability) for uint8 crops (N, 3, crop, crop)."""
    mean = torch.tensor(cfg.mean).view(1, 3, 1, 1)
    std = torch.tensor(cfg.std).view(1, 3, 1, 1)
    out = []
    with torch.inference_mode():
        for s in range(0, len(crops), batch_size):
            x = (crops[s:s + batch_size].float() / 255 - mean) / std
            out.append(module(x).softmax(1).max(1))
    return torch.cat([o.indices for o in out]).numpy(), torch.cat([o.values for o in out]).numpy()


def loader_rate(source, cfg, workers: int, batch_size: int = 32) -> float:
    """Images/s of :class:`CropDataset` through a DataLoader (the producer side of a run)."""
    loader = torch.utils.data.DataLoader(CropDataset(source, cfg), batch_size=batch_size, num_workers=workers,
                                         collate_fn=collate_crops)
    t0 = time.perf_counter()
    n = sum(len(b.indices) for b in loader)
    return n / (time.perf_counter() - t0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--weights", default=None, help="default: the model's published weights")
    p.add_argument("--images", type=Path, default=None, help="an ImageNet-v2-style tree (made there when missing)")
    p.add_argument("--n", type=int, default=480)
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers for the producer rate")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)

    root = args.images or Path(tempfile.mkdtemp(prefix="bench-decode-")) / "images"
    if not root.exists():
        make_images(root, args.n)
    source = ImageNetV2Folder(root)
    files = [source.read_bytes(i) for i in range(len(source))]
    lm = create_model(args.model, weights=args.weights)
    module, cfg = lm.module.float().eval(), lm.preprocess
    paths = cpu_paths(cfg)
    crops = {name: torch.stack([fn(f) for f in files]) for name, fn in paths.items()}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    speed = {name: ms_per_image(fn, files[:96]) for name, fn in paths.items()}
    torch.set_num_threads(threads)
    if torch.cuda.is_available():
        from evaluators.gpu import gpu_crops

        dev = torch.device("cuda")
        jpegs = [torch.frombuffer(bytearray(f), dtype=torch.uint8) for f in files]
        crops["nvJPEG + GPU resize"] = torch.cat([torch.stack(gpu_crops(jpegs[s:s + 64], cfg, dev)).cpu()
                                                 for s in range(0, len(jpegs), 64)])
    ref_pred, ref_conf = predict(module, cfg, crops["pil"])
    confident = ref_conf > 0.5
    report = {"model": lm.name, "preprocess": cfg.to_dict(), "n_images": len(files),
              "n_confident": int(confident.sum()), "paths": {}}
    print(f"{len(files)} JPEGs, {lm.name} ({cfg.interpolation}, resize {cfg.resize_size}, crop {cfg.crop_size}); "
          f"{int(confident.sum())} with Pillow top-1 probability > 0.5")
    print(f"{'path':<24} {'ms/img':>7} {'values differ':>14} {'max':>4} {'top-1 changed':>14} {'(confident)':>12}")
    for name, c in crops.items():
        d = (c.int() - crops["pil"].int()).abs()
        pred, _ = predict(module, cfg, c)
        row = {"ms_per_image_1_thread": speed.get(name), "values_differ": float((d > 0).float().mean()),
               "max_difference": int(d.max()), "top1_changed": float(np.mean(pred != ref_pred)),
               "top1_changed_confident": float(np.mean(pred[confident] != ref_pred[confident]))}
        report["paths"][name] = row
        ms = f"{row['ms_per_image_1_thread']:7.2f}" if name in speed else f"{'-':>7}"
        print(f"{name:<24} {ms} {100 * row['values_differ']:13.3f}% {row['max_difference']:4d} "
              f"{100 * row['top1_changed']:13.2f}% {100 * row['top1_changed_confident']:11.2f}%")
    print(f"per image on one thread: torch {speed['pil'] / speed['torch']:.2f}x faster than Pillow")
    rates = {d: loader_rate(source, cfg.replace(decoder=d), args.workers) for d in ("pil", "torch")}
    report["loader_images_per_s"] = {**rates, "workers": args.workers}
    print(f"DataLoader, {args.workers} workers: Pillow {rates['pil']:.0f} img/s, torch {rates['torch']:.0f} img/s "
          f"({rates['torch'] / rates['pil']:.2f}x)")
    if args.json:
        write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
