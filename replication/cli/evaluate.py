"""``replication evaluate``: score pretrained classifiers on ImageNet, ImageNet-v2 and the other natural shifts.

Several ``--model`` and ``--dataset`` values may be given; every model is
scored on every dataset. ``--root`` pairs with ``--dataset`` either by
position (``--dataset A --root PA --dataset B --root PB``) or explicitly as
``DATASET=PATH`` in any order; ``--labels`` and ``--layout`` pair the same way.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from evaluators.preprocess import DECODERS, INTERPOLATIONS
from replication.cli.args import nonnegative_int, positive_int
from replication.errors import InputError

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``evaluate`` subcommand on ``sub`` (``func=run``)."""
    p = sub.add_parser("evaluate", help="score pretrained classifiers; per-image parquet + JSON per (model, dataset)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", required=True, help="model id (repeatable): efficientnet_lite0 "
                   "(or _lite1, _lite2), a torchvision name like resnet50[.IMAGENET1K_V1], timm/<name>, "
                   "torchscript:<path>, open_clip/<arch>:<tag> (zero-shot), hf/<repo id or folder>")
    p.add_argument("--dataset", action="append", required=True, help="dataset id (repeatable)")
    p.add_argument("--root", action="append", required=True, help="dataset path per --dataset (by position, or DATASET=PATH)")
    p.add_argument("--out", required=True, help="output folder: OUT/<dataset>/<model>.parquet and .json")
    p.add_argument("--labels", action="append", default=[],
                   help="flat ImageNet val: devkit or LOC_val_solution.csv; class-folder layout: class map (per dataset)")
    p.add_argument("--layout", action="append", default=[], help="force a layout (per dataset); default auto")
    p.add_argument("--real-labels", default=None, help="imagenet-real: ReaL's real.json (default: beside the val copy)")
    p.add_argument("--split", default=None, help="split of a Hugging Face dataset")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    p.add_argument("--batch-size", type=positive_int, default=None, help="images per forward pass (default 64 on a GPU, "
                   "8 on the CPU, where smaller batches stay in the caches)")
    p.add_argument("--workers", type=nonnegative_int, default=None,
                   help="DataLoader workers (default: on a GPU CPUs - 1, at most 8; beside a model on the CPU a "
                        "quarter of the CPUs, at least 1)")
    p.add_argument("--chunk-size", type=positive_int, default=2048, help="images per resumable chunk (default 2048)")
    p.add_argument("--no-channels-last", dest="channels_last", action="store_false")
    p.add_argument("--allow-partial", action="store_true", help="score a copy that differs from its manifest")
    p.add_argument("--max-errors", type=nonnegative_int, default=0, help="unreadable images tolerated (default 0)")
    p.add_argument("--force", action="store_true", help="redo finished (model, dataset) pairs")
    p.add_argument("--save-logits", action="store_true", help="add float16 logits to the per-image parquet")
    p.add_argument("--weights", default=None, help="weights file for a single --model (or 'random')")
    p.add_argument("--download", action="store_true", help="download missing published weights")
    s = p.add_argument_group("speed and scale")
    s.add_argument("--cache", default="none", choices=("none", "memory", "disk"),
                   help="decode each image once per crop size/resize/interpolation and share it between models "
                        "(memory, or disk under --cache-dir; default none)")
    s.add_argument("--cache-dir", default=None, help="folder of the disk decode cache (resumable, reusable)")
    s.add_argument("--compile", action="store_true", help="torch.compile the model (compile time reported apart)")
    s.add_argument("--gpu-decode", action="store_true", help="decode JPEGs on the GPU (nvJPEG); needs CUDA")
    s.add_argument("--backend", default="local", choices=("local", "ray"),
                   help="run the model x dataset grid here (local) or as Ray tasks, one GPU each where GPUs exist")
    s.add_argument("--address", default=None, help="Ray cluster address (default: start a local one)")
    g = p.add_argument_group("preprocessing overrides (argument > model > default)")
    g.add_argument("--crop-size", type=int)
    g.add_argument("--resize-size", type=int)
    g.add_argument("--interpolation", choices=INTERPOLATIONS)
    g.add_argument("--decoder", choices=DECODERS,
                   help="pil: Pillow throughout, as timm's validate.py (default); torch: torchvision's libjpeg-turbo "
                        "decoder and torch's uint8 resize, 2-3x faster, crops within 1-2 levels of Pillow's")
    p.set_defaults(func=run)


def pair_with_datasets(values: list[str], datasets: list[str], flag: str) -> dict[str, str]:
    """Map each dataset to its value: all ``DATASET=VALUE`` or one plain value per dataset, by position."""
    if not values:
        return {}
    keyed = [v.split("=", 1) for v in values if "=" in v and v.split("=", 1)[0] in datasets]
    if len(keyed) == len(values):
        return dict(keyed)
    if keyed:
        raise InputError(f"{flag}: mix of DATASET=VALUE and plain values; use one form")
    if len(values) != len(datasets):
        raise InputError(f"{flag}: {len(values)} value(s) for {len(datasets)} dataset(s); give one per --dataset "
                         f"(in order) or DATASET=VALUE")
    return dict(zip(datasets, values))


def passive_openmp() -> None:
    """Let torch's OpenMP threads sleep rather than spin while they wait for
    work (``OMP_WAIT_POLICY=PASSIVE`` unless the environment sets a policy);
    effective only before torch is imported. Spinning threads take the cores
    from the DataLoader workers and from other jobs, and wait on each other
    when one is preempted: EfficientNet-Lite0 on 2 loaded cores beside a
    decoding worker took 3x the time on 2 threads as on 1, and less than on 1
    once they slept (``benchmarks/evaluate_process.py``)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def run(args: argparse.Namespace) -> int:
    """Run ``replication evaluate`` with the parsed ``args``; exit status 0 (bad input raises InputError)."""
    passive_openmp()
    from evaluators.datasets import open_dataset
    from dataclasses import replace

    from evaluators.distributed import DatasetSpec, GridOptions, run_grid, torchrun_shard
    from evaluators.engine import EngineOptions
    from evaluators.manifests import check_dataset, labels_outside
    from evaluators.registry import model_factory, output_name
    from evaluators.runner import resolve_device
    from replication.cli.paths import check_distinct_paths

    if len(set(args.dataset)) != len(args.dataset):
        raise InputError("--dataset: each dataset once")
    if args.weights not in (None, "random") and len(args.model) > 1:
        raise InputError("--weights FILE applies to a single --model (only --weights random applies to several)")
    engine = EngineOptions(device=args.device, precision=args.precision, batch_size=args.batch_size,
                           workers=args.workers, max_errors=args.max_errors, save_logits=args.save_logits,
                           force=args.force, chunk_size=args.chunk_size, channels_last=args.channels_last,
                           compile=args.compile, gpu_decode=args.gpu_decode)
    names: dict[str, str] = {}
    for model_id in args.model:  # unknown models and devices fail before any data is read
        model_factory(model_id)
        name = output_name(model_id)
        if name in names:
            raise InputError(f"--model {names[name]} and --model {model_id} would both write {name}.parquet; "
                             "give each model once")
        names[name] = model_id
    resolve_device(args.device)
    roots = pair_with_datasets(args.root, args.dataset, "--root")
    labels = pair_with_datasets(args.labels, args.dataset, "--labels")
    weights = args.weights if args.weights not in (None, "random") else None
    check_distinct_paths({"--root": list(roots.values()), "--labels": list(labels.values()), "--weights": weights,
                          "--real-labels": args.real_labels}, output_dirs={"--out": args.out})
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise InputError(f"--out {args.out} is a file; give a folder (made if missing)")
    layouts = pair_with_datasets(args.layout, args.dataset, "--layout")
    sources, checks = {}, {}
    for ds in args.dataset:
        if ds not in roots:
            raise InputError(f"--root: no path for dataset {ds}")
        src = open_dataset(ds, roots[ds], layout=layouts.get(ds, "auto"), labels=labels.get(ds), split=args.split,
                           real_labels=args.real_labels)
        outside = labels_outside(ds, src)
        if outside:
            raise InputError(f"{roots[ds]}: label(s) {', '.join(map(str, outside[:5]))} are not classes of {ds} "
                             f"({len(outside)} in all); check --labels and --layout")
        check = check_dataset(ds, src)
        check.allow_partial = args.allow_partial
        if not check.ok and not args.allow_partial:
            listed = "; ".join(check.differences[:3]) + (f"; ... ({len(check.differences)} in all)" if len(check.differences) > 3 else "")
            raise InputError(f"{check.summary()}: {listed}. Run 'replication verify-dataset' for the full list, "
                             "or pass --allow-partial")
        if not check.ok:
            log.warning("%s (scoring anyway: --allow-partial)", check.summary())
        sources[ds], checks[ds] = src, check
    if args.split is not None and all(src.layout != "hf" for src in sources.values()):
        raise InputError(f"--split {args.split}: only a Hugging Face copy has splits, and no --root is one")
    overrides = {"crop_size": args.crop_size, "resize_size": args.resize_size, "interpolation": args.interpolation,
                 "decoder": args.decoder}
    shard, barrier, device = torchrun_shard(args.device)
    if shard[1] > 1 and (args.backend != "local" or args.cache == "memory"):
        raise InputError("under torchrun use the local backend, and --cache disk rather than memory (the ranks "
                         "fill one shared disk cache; each scores a shard)")
    specs = [DatasetSpec(ds, roots[ds], layouts.get(ds, "auto"), labels.get(ds), args.split, checks[ds].to_dict(),
                         sources[ds], args.real_labels) for ds in args.dataset]
    opts = GridOptions(out=args.out, weights=args.weights, download=args.download,
                       overrides={k: v for k, v in overrides.items() if v is not None}, cache=args.cache,
                       cache_dir=args.cache_dir, engine=replace(engine, device=device, shard=shard, barrier=barrier))
    for res in run_grid(specs, args.model, opts, backend=args.backend, address=args.address):
        name, ds = res["model"], res["dataset"]
        if res.get("rank"):
            continue  # rank 0 reports the assembled result
        top1, top5 = ("n/a" if res[k] is None else f"{res[k]:.4f}" for k in ("top1", "top5"))
        if res.get("skipped"):
            print(f"{name} on {ds}: already done (top1 {top1}); --force to redo")
            continue
        print(f"{name} on {ds}: top1 {top1} top5 {top5} over {res['n_scored']} of {res['n_images']} images "
              f"({res['n_errors']} errors), {res['images_per_s'] or 0:.1f} img/s, model load {res['model_load_s']:.1f}s")
    sys.stdout.flush()
    return 0
