"""``replication simulate``: write a simulated replication study with its truth."""
from __future__ import annotations

import argparse

from replication.cli.args import add_seed, finite_float, positive_int
from replication.cli.paths import PathRoles


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``simulate`` subcommand on ``sub`` (``func=run``)."""
    p = sub.add_parser(
        "simulate", help="write a simulated replication study (annotations, correctness, truth)",
        description="Simulate a reference pool and a candidate pool with different true selection "
                    "frequencies, binomial annotators, a MatchedFrequency replication set drawn on the "
                    "noisy estimate, and models whose accuracy rises with selection frequency. Writes "
                    "DIR/annotations.csv (or .parquet), DIR/correct.parquet and DIR/truth.json.")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    add_seed(p)
    p.add_argument("--preset", default="engstrom2020", help="parameter preset (default engstrom2020)")
    p.add_argument("--n-annotators", type=str, metavar="N[,N...]",
                   help="annotators per image; several values are drawn uniformly per image")
    p.add_argument("--shift", type=finite_float, help="true shift in probit units (overrides the preset)")
    p.add_argument("--classes", type=positive_int, help="number of classes (overrides the preset)")
    p.add_argument("--models", type=positive_int, help="number of models (overrides the preset)")
    p.add_argument("--format", choices=("csv", "parquet"), default="csv", help="annotation table format")
    p.set_defaults(func=run, path_roles=PathRoles(output_dirs=("--out",)))


def _overrides(args: argparse.Namespace) -> dict:
    from replication.errors import InputError

    out: dict = {}
    if args.n_annotators:
        try:
            counts = tuple(int(x) for x in args.n_annotators.split(","))
        except ValueError:
            raise InputError(f"--n-annotators must be integers separated by commas, got {args.n_annotators!r}") from None
        out["n_annotators"] = counts[0] if len(counts) == 1 else counts
    for name, field in (("shift", "shift"), ("classes", "n_classes"), ("models", "n_models")):
        if getattr(args, name) is not None:
            out[field] = getattr(args, name)
    return out


def run(args: argparse.Namespace) -> int:
    """Run ``replication simulate`` with the parsed ``args``; exit status 0 (bad input raises InputError)."""
    import numpy as np

    from replication.errors import InputError
    from replication.simulate import SimulationConfig, simulate, write_study

    try:
        config = SimulationConfig.preset(args.preset, **_overrides(args))
        config.validate()
    except ValueError as exc:
        raise InputError(str(exc)) from None
    study = simulate(config, np.random.default_rng(args.seed))
    paths = write_study(study, args.out, annotations_format=args.format)
    t = study.truth
    print(f"simulated {len(study.annotations)} images ({config.reference}: "
          f"{(study.annotations['dataset'] == config.reference).sum()}, {config.replication}: "
          f"{(study.annotations['dataset'] == config.replication).sum()}), {len(t)} models; "
          f"mean expected raw gap {100 * t['expected_raw_gap'].mean():.2f} points, "
          f"mean true gap {100 * t['gap'].mean():.2f} points")
    for p in paths.values():
        print(f"wrote {p}")
    return 0
