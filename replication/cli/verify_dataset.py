"""``replication verify-dataset --dataset ID --root PATH``: compare a dataset
copy with its manifest and list every difference (exit 1 if any)."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``verify-dataset`` subcommand on ``sub`` (``func=run``)."""
    p = sub.add_parser("verify-dataset", help="check a dataset copy against its manifest; list every difference")
    p.add_argument("--dataset", required=True, help="dataset id")
    p.add_argument("--root", required=True, help="the copy: folder, or .tar.gz for ImageNet-v2")
    p.add_argument("--labels", default=None, help="flat ImageNet val: devkit or LOC_val_solution.csv; class-folder: class map")
    p.add_argument("--layout", default="auto")
    p.add_argument("--split", default=None, help="split of a Hugging Face dataset")
    p.add_argument("--real-labels", default=None, help="imagenet-real: ReaL's real.json (default: beside the val copy)")
    p.add_argument("--checksum", action="store_true", help="also hash an archive given as --root (and ReaL's "
                   "real.json) against the published checksum")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``replication verify-dataset`` with the parsed ``args``; exit status 0 when
    the copy matches its manifest, else 1."""
    from evaluators.datasets import open_dataset
    from evaluators.manifests import check_archive, check_dataset
    from replication.errors import InputError

    src = open_dataset(args.dataset, args.root, layout=args.layout, labels=args.labels, split=args.split,
                       real_labels=args.real_labels)
    if args.split is not None and src.layout != "hf":
        raise InputError(f"--split {args.split}: only a Hugging Face copy has splits, not the {src.layout} layout")
    check = check_dataset(args.dataset, src)
    if args.checksum:
        files = [p for p in (args.root, getattr(src, "labels_file", None)) if p is not None and Path(p).is_file()]
        if not files:
            raise InputError(f"--checksum: {args.root} is a folder; checksums are published for the archives")
        for path in files:
            check.differences += check_archive(args.dataset, path)
    for line in check.differences:
        print(line)
    print(check.summary())
    return 0 if check.ok else 1
