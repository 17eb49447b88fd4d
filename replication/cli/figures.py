"""``replication figures NAME|all|list --reference DIR --out DIR``: regenerate
paper figures (PNG, PDF and a JSON of inputs and numbers) from a folder laid
out like ../shared/reference."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from replication.cli.paths import PathRoles


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``figures`` subcommand on ``sub`` (``func=run``)."""
    p = sub.add_parser("figures", help="regenerate the paper figures from a reference folder",
                       description=__doc__.split("\n\n")[0].replace("``", ""))
    p.add_argument("name", help="a figure name, 'all', or 'list' to print the names")
    p.add_argument("--reference", type=Path, help="folder laid out like ../shared/reference (required unless 'list')")
    p.add_argument("--out", type=Path, default=Path("figures"), help="output folder (default: ./figures)")
    add_figure_options(p)
    p.set_defaults(func=run, path_roles=PathRoles(inputs=("--reference", "--evaluations"), output_dirs=("--out",)))


def add_figure_options(p: argparse.ArgumentParser) -> None:
    """Options of single figures, shared by ``figures`` and ``report``."""
    p.add_argument("--evaluations", type=Path, default=None,
                   help="evaluate's --out folder: your models on the shift_lines figure")
    p.add_argument("--y", default=None, metavar="DATASET",
                   help="shift on the y axis of taori2020_effective_robustness (default imagenetv2-matched-frequency; "
                        "imagenet-a, imagenet-r, imagenet-sketch, objectnet)")


def figure_options(args: argparse.Namespace) -> dict[str, dict]:
    """Per-figure keyword options from ``--evaluations`` and ``--y``."""
    options = {"shift_lines": {"evaluations": args.evaluations}, "taori2020_effective_robustness": {"y": args.y}}
    return {name: {k: v for k, v in opts.items() if v is not None} for name, opts in options.items()}


def run(args: argparse.Namespace) -> int:
    """Run ``replication figures`` with the parsed ``args``; exit status 0 (bad input raises InputError)."""
    from replication.errors import InputError
    from replication.figures import FIGURES, generate_all

    if args.name == "list":
        for spec in FIGURES.values():
            print(f"{spec.name:24s} {spec.title}  [{spec.paper}]")
        return 0
    if args.reference is None:
        raise InputError("--reference DIR is required (a folder laid out like ../shared/reference)")
    names = None if args.name == "all" else [args.name]
    start = time.perf_counter()
    saved = generate_all(args.reference, args.out, names, figure_options(args))
    for s in saved:
        print(f"{s.name}: {s.png} {s.pdf} {s.json}")
    print(f"{len(saved)} figure(s) in {time.perf_counter() - start:.1f} s -> {args.out}")
    return 0
