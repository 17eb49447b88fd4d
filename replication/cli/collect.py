"""``replication collect DIR --out FILE``: correctness matrix from evaluate's outputs."""
from __future__ import annotations

import argparse
import sys

from replication.cli.paths import PathRoles


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``collect`` subcommand on ``sub`` (``func=run``)."""
    p = sub.add_parser("collect", help="build the correctness matrix (dataset,image_id,label,<model>...) from evaluate outputs")
    p.add_argument("dir", help="evaluate's --out folder")
    p.add_argument("--out", required=True, help="matrix file (.parquet or .csv)")
    p.add_argument("--drop-errors", action="store_true", help="leave out images some model could not score")
    p.set_defaults(func=run, path_roles=PathRoles(inputs=("dir",), outputs=("--out",)))


def run(args: argparse.Namespace) -> int:
    """Run ``replication collect`` with the parsed ``args``; exit status 0 (bad input raises InputError)."""
    from pathlib import Path

    from evaluators.collect import collect_matrix
    from replication.cli.paths import is_within
    from replication.errors import InputError
    from replication.io.atomic import write_table
    from replication.io.tables import DATASET_IDS, model_columns

    for folder in (Path(args.dir) / ds for ds in DATASET_IDS):
        if is_within(args.out, folder):
            raise InputError(f"--out {args.out} lies inside {folder}, where evaluate keeps its results; write the "
                             f"matrix elsewhere (e.g. {Path(args.dir) / 'correct.parquet'})")
    matrix, dropped = collect_matrix(args.dir, drop_errors=args.drop_errors)
    write_table(args.out, matrix)
    if dropped:
        print(f"left out {dropped} image(s) that some model could not score", file=sys.stderr)
    counts = matrix.groupby("dataset").size().to_dict()
    print(f"{args.out}: {len(matrix)} images ({', '.join(f'{k} {v}' for k, v in counts.items())}), "
          f"{len(model_columns(matrix))} models")
    return 0
