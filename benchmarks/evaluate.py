"""Evaluator speed: a plain baseline against our engine on the same model and images.

In one run:

1. ``baseline``: torchvision ``ImageFolder`` + ``DataLoader`` + the model in
   fp32 (NCHW) with the standard PIL transforms (Resize, CenterCrop,
   ToTensor, Normalize), as timm's ``validate.py`` and torchvision's reference
   script evaluate;
2. ``engine``: :func:`evaluators.engine.evaluate_source` with the fast
   options (``--precision``, channels_last, ``--compile``), from the JPEG
   files (``engine_files``) and from a warm decoded-crop cache
   (``engine_cache``); top-1 agreement with the fp32 baseline per image;
3. ``K`` models sharing one preprocessing (``--k-models``): separate runs
   that each decode every image, against one cache fill plus K runs;
4. on CUDA also the pure-model ceiling (random tensors already on the
   device), and GPU JPEG decoding (``--gpu-decode``) with its top-1 change
   against the CPU decoder.

Images: ``--images DIR`` (an ImageNet-v2-style tree of class folders; made
there when missing), else in a temporary folder: ``--n`` realistic JPEGs (500x375 or 375x500, quality 90) generated from
scikit-image's photos with random crops, flips and colour jitter.

Prints images/s and ratios; ``--json`` writes every number. Example::

    python benchmarks/evaluate.py --model efficientnet_lite0 --n 256 --batch-size 32 --compile
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from evaluators.cache import CropCache  # noqa: E402
from evaluators.datasets import ImageNetV2Folder  # noqa: E402
from evaluators.engine import evaluate_source  # noqa: E402
from evaluators.registry import RANDOM, create_model  # noqa: E402
from images import make_images  # noqa: E402
from replication.io.atomic import write_json  # noqa: E402

DATASET = "imagenetv2-matched-frequency"
def baseline(module: torch.nn.Module, cfg, root: Path, *, device: str, batch_size: int, workers: int) -> dict:
    """timm/torchvision-style evaluation: ImageFolder + DataLoader + fp32 NCHW model."""
    from torchvision import datasets
    from torchvision import transforms as T

    tf = T.Compose([T.Resize(cfg.resize_size, T.InterpolationMode(cfg.interpolation), antialias=cfg.antialias),
                    T.CenterCrop(cfg.crop_size), T.ToTensor(), T.Normalize(cfg.mean, cfg.std)])
    ds = datasets.ImageFolder(str(root), transform=tf)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, num_workers=workers,
                                         pin_memory=device == "cuda", shuffle=False)
    model = module.float().to(device, memory_format=torch.contiguous_format).eval()
    preds, conf = [], []
    t0 = time.perf_counter()
    with torch.inference_mode():
        for x, _ in loader:
            p = model(x.to(device, non_blocking=True)).softmax(1).max(1)
            preds.append(p.indices.cpu())
            conf.append(p.values.float().cpu())
    if device == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    ids = [Path(p).stem for p, _ in ds.samples]
    return {"images_per_s": len(ds) / dt, "seconds": dt, "pred1": dict(zip(ids, torch.cat(preds).tolist())),
            "confident": {i for i, c in zip(ids, torch.cat(conf).tolist()) if c > 0.5}}


def _engine(lm, source, out: Path, **kw) -> dict:
    import pandas as pd

    res = evaluate_source(lm, source, DATASET, out, force=True, progress=False, max_errors=0, **kw)
    table = pd.read_parquet(out / DATASET / f"{lm.name}.parquet")
    return {"images_per_s": res["images_per_s"], "eval_s": res["eval_time_s"], "warmup_s": res["warmup_s"],
            "compile_s": res["compile_s"], "wall_s": res["wall_time_s"],
            "pred1": dict(zip(table["image_id"], table["pred1"].tolist()))}


def agreement(a: dict, b: dict, subset=None) -> float:
    """Fraction of images (of ``subset``, default all) with equal top-1."""
    keys = a if subset is None else [k for k in a if k in subset]
    return float(np.mean([a[k] == b[k] for k in keys]))


def pure_model_ceiling(module, cfg, *, device: str, batch_size: int, precision: str, compile: bool,
                       iters: int = 30) -> dict:
    """images/s of the model alone on random normalized tensors already on the device."""
    from evaluators.gpu import PipelinedRunner

    runner = PipelinedRunner(module, cfg, torch.device(device), precision, True, compile=compile,
                             batch_size=batch_size)
    warm = runner.warmup(batch_size)
    x = torch.randint(0, 256, (batch_size, 3, cfg.crop_size, cfg.crop_size), dtype=torch.uint8, device=device)
    with torch.inference_mode():
        for _ in range(3):
            runner._forward(x)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(iters):
            runner._forward(x)
        torch.cuda.synchronize()
    return {"images_per_s": iters * batch_size / (time.perf_counter() - t0), "warmup_s": warm,
            "compile_s": runner.compile_s_}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--weights", default=None, help="default: the model's published weights; 'random' for speed only")
    p.add_argument("--images", type=Path, default=None)
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", default="bf16")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--decoder", default=None, choices=("pil", "torch"),
                   help="the engine's decoder (default: the model's, Pillow); the baseline always uses Pillow")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    p.add_argument("--k-models", default="", help="comma-separated model ids sharing one preprocessing (random init)")
    p.add_argument("--k-precision", default="bf16")
    p.add_argument("--gpu-decode", action="store_true", help="also GPU JPEG decoding (CUDA)")
    p.add_argument("--cpu-share", type=float, default=0.0,
                   help="with --gpu-decode, also a run where this share of the JPEGs is decoded by the CPU workers")
    p.add_argument("--also-precisions", default="", help="comma-separated extra precisions for the cached run")
    p.add_argument("--skip-baseline", action="store_true")
    p.add_argument("--skip-files", action="store_true", help="skip the engine run from JPEG files")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)

    report: dict = {"device": args.device, "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "cpu_count": os.cpu_count(), "model": args.model, "weights": args.weights or "published",
                    "batch_size": args.batch_size, "workers": args.workers, "precision": args.precision,
                    "compile": args.compile, "decoder": args.decoder or "pil"}
    if args.device == "cuda":
        report["gpu"] = torch.cuda.get_device_name()
    tmp = Path(tempfile.mkdtemp(prefix="bench-eval-"))
    root = args.images or tmp / "images"
    if not root.exists():
        t0 = time.perf_counter()
        make_images(root, args.n)
        report["generate_s"] = time.perf_counter() - t0
    source = ImageNetV2Folder(root)
    report["n_images"] = len(source)
    lm = create_model(args.model, weights=args.weights)
    lm.preprocess = lm.preprocess.replace(decoder=args.decoder)
    cfg = lm.preprocess
    eng = dict(device=args.device, precision=args.precision, batch_size=args.batch_size, workers=args.workers,
               compile=args.compile)

    def show(name, r, ref=None):
        extra = f"  ({r['images_per_s'] / ref:.2f}x baseline)" if ref else ""
        print(f"{name:<28} {r['images_per_s']:10.1f} img/s{extra}", flush=True)

    if not args.skip_baseline:
        import copy

        report["baseline"] = baseline(copy.deepcopy(lm.module), cfg, root, device=args.device,
                                      batch_size=args.batch_size, workers=args.workers)
        show("baseline (fp32, ImageFolder)", report["baseline"])
    ref = report.get("baseline", {}).get("images_per_s")
    if not args.skip_files:
        report["engine_files"] = _engine(lm, source, tmp / "files", **eng)
        show("engine from JPEG files", report["engine_files"], ref)
    t0 = time.perf_counter()
    cache = CropCache(source, cfg, dataset=DATASET).fill(workers=args.workers, progress=False)
    report["cache_fill_s"] = time.perf_counter() - t0
    report["engine_cache"] = _engine(lm, source, tmp / "cache", crops=cache.crops(pin=args.device == "cuda"), **eng)
    show("engine from decoded cache", report["engine_cache"], ref)
    for prec in filter(None, args.also_precisions.split(",")):
        report[f"engine_cache_{prec}"] = _engine(lm, source, tmp / f"cache_{prec}", crops=cache.crops(pin=args.device == "cuda"),
                                                 **{**eng, "precision": prec})
        show(f"engine from cache, {prec}", report[f"engine_cache_{prec}"], ref)
    confident = report.get("baseline", {}).get("confident")
    if args.gpu_decode and not args.skip_files:
        from evaluators.gpu import EncodedFiles

        report["engine_gpu_decode"] = _engine(lm, source, tmp / "gpudec", gpu_decode=True, **eng)
        show("engine, GPU JPEG decode", report["engine_gpu_decode"], ref)
        if args.cpu_share:
            report["engine_gpu_cpu_decode"] = _engine(lm, source, tmp / "mixdec",
                                                      crops=EncodedFiles(source, cfg, args.cpu_share), **eng)
            show(f"engine, GPU+CPU decode ({args.cpu_share:.0%} CPU)", report["engine_gpu_cpu_decode"], ref)
        a, b = report["engine_files"]["pred1"], report["engine_gpu_decode"]["pred1"]
        report["gpu_decode_top1_changed"] = 1 - agreement(a, b)
        report["gpu_decode_top1_changed_confident"] = 1 - agreement(a, b, confident) if confident else None
        print(f"GPU decode vs CPU decode: top-1 changed on {100 * report['gpu_decode_top1_changed']:.3f}% of images"
              + (f", {100 * report['gpu_decode_top1_changed_confident']:.3f}% of the {len(confident)} with fp32 "
                 "top-1 probability > 0.5" if confident else ""))
    if "baseline" in report:
        base = report["baseline"]["pred1"]
        report["n_confident"] = len(confident)
        for k in [k for k in report if k.startswith("engine_")]:
            report[k]["top1_agreement_vs_fp32_baseline"] = agreement(base, report[k]["pred1"])
            report[k]["top1_agreement_confident"] = agreement(base, report[k]["pred1"], confident)
            print(f"top-1 agreement with the fp32 baseline, {k}: {report[k]['top1_agreement_vs_fp32_baseline']:.4f}"
                  f" (all), {report[k]['top1_agreement_confident']:.4f} (fp32 top-1 probability > 0.5: "
                  f"{len(confident)} images)")
    for k in [k for k in ("engine_files", "engine_cache") if k in report]:
        print(f"  {k}: warm-up {report[k]['warmup_s']:.1f}s (compile {report[k]['compile_s'] or 0:.1f}s) "
              f"apart from eval {report[k]['eval_s']:.1f}s")
    if args.device == "cuda":
        for comp in ([False, True] if args.compile else [False]):
            key = f"ceiling_{args.precision}{'_compiled' if comp else ''}"
            report[key] = pure_model_ceiling(lm.module, cfg, device=args.device, batch_size=args.batch_size,
                                             precision=args.precision, compile=comp)
            show(f"pure model ({key})", report[key])
    print(f"cache fill (decode once): {report['cache_fill_s']:.1f}s for {len(source)} images")

    if args.k_models:
        ids = args.k_models.split(",")
        models = [create_model(m, weights=RANDOM) for m in ids]
        keys = {m.preprocess.crop_key() for m in models}
        if len(keys) != 1:
            raise SystemExit(f"--k-models must share one crop key; got {len(keys)}")
        kw = dict(device=args.device, precision=args.k_precision, batch_size=args.batch_size, workers=args.workers)
        t0 = time.perf_counter()
        for m in models:
            evaluate_source(m, source, DATASET, tmp / "k_sep", force=True, progress=False, **kw)
        sep = time.perf_counter() - t0
        t0 = time.perf_counter()
        shared = CropCache(source, models[0].preprocess, dataset=DATASET).fill(workers=args.workers, progress=False)
        for m in models:
            evaluate_source(m, source, DATASET, tmp / "k_cache", force=True, progress=False, crops=shared.crops(pin=args.device == "cuda"), **kw)
        cached = time.perf_counter() - t0
        report["k_models"] = {"models": ids, "separate_s": sep, "cached_s": cached, "decode_s": shared.decode_s_,
                              "speedup": sep / cached}
        print(f"K={len(ids)} models sharing a preprocessing: {sep:.1f}s in separate runs, {cached:.1f}s with one "
              f"decode ({shared.decode_s_:.1f}s of it decoding): {sep / cached:.2f}x")
    if args.json:
        for k in list(report):
            if isinstance(report[k], dict):
                report[k].pop("pred1", None)
                report[k].pop("confident", None)
        write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
