"""``replication accuracy --correct FILE --out FILE``: top-1 accuracy of every
model on every dataset of a correctness matrix, in percent, with
Clopper-Pearson intervals (columns ``<dataset>``, ``<dataset>_ci_low``,
``<dataset>_ci_high``, ``<dataset>_n``)."""
from __future__ import annotations

import argparse
from pathlib import Path

from replication.cli.args import probability
from replication.cli.paths import PathRoles


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``accuracy`` subcommand on ``sub`` (``func=run``)."""
    p = sub.add_parser("accuracy", help="accuracy table (percent, exact intervals) from a correctness matrix",
                       description=__doc__.split("\n\n")[0].replace("``", ""))
    p.add_argument("--correct", type=Path, required=True, help="correctness matrix (CSV or Parquet)")
    p.add_argument("--alpha", type=probability, default=0.05, help="1 - confidence level (default 0.05)")
    p.add_argument("--out", type=Path, required=True, help="accuracy table to write (CSV or Parquet)")
    p.set_defaults(func=run, path_roles=PathRoles(inputs=("--correct",), outputs=("--out",)))


def run(args: argparse.Namespace) -> int:
    """Run ``replication accuracy`` with the parsed ``args``; exit status 0 (bad input raises InputError)."""
    from replication.fits.accuracy import accuracy_from_correctness
    from replication.io.atomic import write_table
    from replication.io.tables import load_correctness

    res = accuracy_from_correctness(load_correctness(args.correct), alpha=args.alpha)
    write_table(args.out, res.table)
    print(f"accuracy: {res.correct.shape[1]} models x {res.correct.shape[0]} datasets "
          f"({', '.join(f'{d}: {n}' for d, n in res.n_images.items())} images) -> {args.out}")
    return 0
