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
    p.set_defaults(func=run, path_roles=PathRoles(inputs=("--reference",), output_dirs=("--out",)))


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
    saved = generate_all(args.reference, args.out, names)
    for s in saved:
        print(f"{s.name}: {s.png} {s.pdf} {s.json}")
    print(f"{len(saved)} figure(s) in {time.perf_counter() - start:.1f} s -> {args.out}")
    return 0
