"""``replication report [--reference DIR] --out DIR``: one self-contained HTML
page (figures embedded, tables, numbers, provenance of every input)."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from replication.cli.args import add_bootstrap, add_seed
from replication.cli.figures import add_figure_options, figure_options
from replication.cli.paths import PathRoles


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``report`` subcommand on ``sub`` (``func=run``)."""
    p = sub.add_parser("report", help="write a self-contained HTML report",
                       description=__doc__.split("\n\n")[0].replace("``", ""))
    p.add_argument("--reference", type=Path, default=None,
                   help="folder laid out like ../shared/reference (default: the demo's simulated study)")
    p.add_argument("--out", type=Path, default=Path("report"), help="output folder (default: ./report)")
    add_seed(p, "seed of the simulated study (without --reference; default 0)")
    add_bootstrap(p, None, "bootstrap replicates of the simulated study (default: the demo's)")
    p.add_argument("--design", type=Path, default=None, metavar="FILE",
                   help="add the study-design section of this `replication design` JSON")
    add_figure_options(p)
    p.set_defaults(func=run, path_roles=PathRoles(inputs=("--reference", "--design", "--evaluations"),
                                                  output_dirs=("--out",)))


def run(args: argparse.Namespace) -> int:
    """Run ``replication report`` with the parsed ``args``; exit status 0 (bad input raises InputError)."""
    from replication.demo import DEMO_BOOTSTRAP, demo_report, run_demo
    from replication.errors import InputError
    from replication.report import REPORT_NAME, add_design_section, reference_report

    start = time.perf_counter()
    if args.design is not None:
        from replication.design.results import read_design

        read_design(args.design)  # a bad design file fails before any work
    if args.reference is None and (args.evaluations is not None or args.y is not None):
        raise InputError("--evaluations and --y apply to the reference figures: give --reference DIR too")
    if args.reference is not None:
        report = reference_report(args.reference, args.out, options=figure_options(args))
        if args.design is not None:
            add_design_section(report, args.design, args.out)
        path = report.write(args.out / REPORT_NAME)
    else:  # the demo's study, written as `replication demo` writes it
        bootstrap = DEMO_BOOTSTRAP if args.bootstrap is None else args.bootstrap
        demo = run_demo(args.out, args.seed, n_bootstrap=bootstrap)
        path = demo["paths"]["report_html"]
        if args.design is not None:  # the demo's page again, with the design section
            report = demo_report(args.out, demo["study"], demo["results"], demo["table"])
            path = add_design_section(report, args.design, args.out).write(path)
    print(f"report: {path} ({path.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - start:.1f} s")
    return 0
