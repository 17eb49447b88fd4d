"""``replication import-results --source timm|testbed --path PATH --out FILE``:
turn a published results table into an accuracy table (``model`` + dataset-id
columns in percent). Rows without a partner in a join are kept and reported."""
from __future__ import annotations

import argparse
from pathlib import Path

from replication.cli.paths import PathRoles


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``import-results`` subcommand on ``sub`` (``func=run``)."""
    p = sub.add_parser("import-results", help="accuracy table from timm's or the testbed's published results",
                       description=__doc__.split("\n\n")[0].replace("``", ""))
    p.add_argument("--source", choices=("timm", "testbed"), required=True)
    p.add_argument("--path", type=Path, required=True,
                   help="timm: the results/ folder; testbed: robustness_top1s.csv")
    p.add_argument("--model-types", type=Path, default=None,
                   help="testbed: model_types.csv (default: beside robustness_top1s.csv, when present)")
    p.add_argument("--no-gmacs", action="store_true", help="timm: do not join GMACs from benchmark-infer-*.csv")
    p.add_argument("--out", type=Path, required=True, help="accuracy table to write (CSV or Parquet)")
    p.set_defaults(func=run, path_roles=PathRoles(inputs=("--path", "--model-types"), outputs=("--out",)))


def run(args: argparse.Namespace) -> int:
    """Run ``replication import-results`` with the parsed ``args``; exit status 0 (bad input raises InputError)."""
    from replication.errors import InputError
    from replication.fits.importers import import_testbed, import_timm
    from replication.io.atomic import write_table

    if args.source == "timm":
        res = import_timm(args.path, gmacs=not args.no_gmacs)
    else:
        if not args.path.exists():
            raise InputError(f"{args.path}: no such file (expected the testbed's robustness_top1s.csv)")
        res = import_testbed(args.path, args.model_types)
    write_table(args.out, res.table)
    print(f"import-results: {len(res.table)} rows from {args.source} ({', '.join(res.datasets)}); "
          f"{len(res.messages)} message(s) -> {args.out}")
    return 0
