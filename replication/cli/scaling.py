"""``replication scaling --table FILE --compute-col COL (--error-col COL |
--accuracy-col COL) [--frontier] [--targets 5,3,2] [--bootstrap B] --json OUT``:
Thompson et al.'s power law, least squares of log10(error fraction) on
log10(compute), with the compute, dollars and CO2 needed for target errors."""
from __future__ import annotations

import argparse
from pathlib import Path

from replication.cli.lines import add_filter_arguments, read_filtered
from replication.errors import InputError
from replication.cli.args import add_bootstrap, add_seed, finite_float, positive_float, probability
from replication.cli.paths import PathRoles


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``scaling`` subcommand on ``sub`` (``func=run``)."""
    p = sub.add_parser("scaling", help="Thompson-style compute scaling fit with extrapolation, cost and CO2",
                       description=__doc__.split("\n\n")[0].replace("``", ""))
    p.add_argument("--table", type=Path, required=True, help="table with one row per model (CSV or Parquet)")
    p.add_argument("--compute-col", required=True, help="compute per model (> 0), e.g. train_compute_flop")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--error-col", help="top-1 error in percent")
    what.add_argument("--accuracy-col", help="top-1 accuracy in percent (error = 100 - accuracy)")
    p.add_argument("--frontier", action="store_true", help="fit the Pareto frontier only (lowest error so far)")
    p.add_argument("--targets", default="5,3,2", help="target errors in percent (default 5,3,2)")
    add_bootstrap(p, 1000, "resamples of models")
    add_seed(p, "seed of the bootstrap Generator (default 0)")
    p.add_argument("--alpha", type=probability, default=0.05, help="1 - confidence level (default 0.05)")
    add_filter_arguments(p)
    p.add_argument("--year-col", default=None,
                   help="year column: adds the best-of-year error trend and the years targets are crossed")
    p.add_argument("--backtest-year", type=finite_float, default=None,
                   help="also fit on models up to this year and compare with later ones (needs --year-col)")
    p.add_argument("--flop-per-unit", type=positive_float, default=1.0,
                   help="FLOP per unit of the compute column (1 for FLOP, 2e9 for GMACs)")
    p.add_argument("--flop-per-usd", type=positive_float, default=6.874e16, help="FLOP per US dollar (Thompson: 6.874e16)")
    p.add_argument("--flop-per-lb-co2e", type=positive_float, default=3.498e17,
                   help="FLOP per lb CO2e (Thompson: 3.498e17)")
    p.add_argument("--json", type=Path, required=True, help="output JSON")
    p.set_defaults(func=run, path_roles=PathRoles(inputs=("--table",), outputs=("--json",)))


def _targets(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"--targets {text!r}: expected comma-separated error percentages, e.g. 5,3,2") from None
    if not values or any(not 0 < v < 100 for v in values):
        raise InputError(f"--targets {text!r}: each target error must be in (0, 100) percent")
    return values


def run(args: argparse.Namespace) -> int:
    """Run ``replication scaling`` with the parsed ``args``; exit status 0 (bad input raises InputError)."""
    import numpy as np

    from replication.io.atomic import write_json
    from replication.fits.lines import clean_columns
    from replication.fits.scaling import Conversions, ErrorTrendFit, ScalingFit, backtest

    targets = _targets(args.targets)
    if args.backtest_year is not None and args.year_col is None:
        raise InputError("--backtest-year needs --year-col")
    src = str(args.table)
    rows = read_filtered(args)
    perf_col = args.error_col or args.accuracy_col

    def usable(cols: list[str]):
        """Rows with a number in every column of ``cols``; compute > 0, error/accuracy in 0..100."""
        df = clean_columns(rows, cols, dropna=args.dropna, model_col=args.model_col, source=src,
                           bounds=(-np.inf, np.inf), what="numbers")
        if args.compute_col in cols:
            df = clean_columns(df, [args.compute_col], positive=True, bounds=(0, np.inf), what="compute",
                               model_col=args.model_col, source=src)
        df = clean_columns(df, [perf_col], model_col=args.model_col, source=src)
        err = df[perf_col].to_numpy() if args.error_col else 100.0 - df[perf_col].to_numpy()
        names = df[args.model_col].astype(str).to_numpy() if args.model_col in df.columns else None
        return df, err, names

    df, error, names = usable([args.compute_col, perf_col] + ([args.year_col] if args.year_col else []))
    conv = Conversions(flop_per_usd=args.flop_per_usd, flop_per_lb_co2e=args.flop_per_lb_co2e,
                       flop_per_unit=args.flop_per_unit)
    res = ScalingFit(args.frontier, n_bootstrap=args.bootstrap, alpha=args.alpha, random_state=args.seed,
                     conversions=conv).fit(df[args.compute_col], error, names=names)
    out = res.to_dict(targets)
    out.update({"table": src, "compute_col": args.compute_col, "error_col": args.error_col,
                "accuracy_col": args.accuracy_col, "seed": args.seed})
    if args.year_col:
        # the trend uses every model with a year and an error, with or without a compute estimate
        trend_rows, trend_error, trend_names = usable([perf_col, args.year_col])
        out["error_trend"] = ErrorTrendFit(alpha=args.alpha).fit(
            trend_rows[args.year_col].to_numpy(), trend_error, trend_names).to_dict(targets)
        if args.backtest_year is not None:
            years = df[args.year_col].to_numpy()
            out["backtest"] = backtest(df[args.compute_col], error, years, args.backtest_year, names=names,
                                       frontier=args.frontier, alpha=args.alpha).to_dict()
    write_json(args.json, out)
    first = out["targets"][f"{targets[0]:g}"]
    print(f"scaling: {res.nobs} models{' (frontier)' if args.frontier else ''}: exponent {res.exponent:.2f}, "
          f"r2 {res.rsquared:.3f}; {targets[0]:g}% error needs 10^{first['log10_compute']:.2f} "
          f"(interval 10^{first['interval'][0]:.2f} to 10^{first['interval'][1]:.2f}), "
          f"${first['usd']:.3g}, {first['co2_lbs']:.3g} lb CO2e -> {args.json}")
    return 0
