"""``replication lines --table FILE --x COL --y COL [--scale linear|probit|logit]
[--bootstrap B] --json OUT``: least-squares line of y-accuracy on x-accuracy
across models after transforming the accuracies (percent), with bootstrap
intervals and per-model residuals (effective robustness)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from replication.errors import InputError
from replication.cli.args import add_bootstrap, add_seed, finite_float, positive_int, probability
from replication.cli.paths import PathRoles

if TYPE_CHECKING:
    import pandas as pd


def parse_where(items: list[str] | None) -> dict[str, list[str]]:
    """``["COL=V1,V2", ...]`` -> ``{"COL": ["V1", "V2"]}``."""
    out: dict[str, list[str]] = {}
    for item in items or []:
        col, sep, values = item.partition("=")
        if not sep or not col or not values:
            raise InputError(f"--where {item!r}: expected COLUMN=VALUE[,VALUE...]")
        out.setdefault(col, []).extend(v for v in values.split(",") if v)
    return out


def add_filter_arguments(p: argparse.ArgumentParser) -> None:
    """Row filters shared by ``lines`` and ``scaling``."""
    p.add_argument("--where", action="append", metavar="COL=V1,V2",
                   help="keep rows whose COL is one of the values (repeatable), e.g. nat_model_type=STANDARD")
    p.add_argument("--exclude-names", default="", metavar="S1,S2",
                   help="drop models whose id contains any of these substrings (case-insensitive)")
    p.add_argument("--model-col", default="model", help="column with the model ids (default: model)")
    p.add_argument("--dropna", action="store_true",
                   help="skip rows with a blank value in the used columns (default: a blank is an error)")


def read_filtered(args: argparse.Namespace) -> pd.DataFrame:
    """Read ``--table`` and apply ``--where`` / ``--exclude-names``; rows keep
    their 1-based position in the file (for messages)."""
    import numpy as np
    import pandas as pd

    from replication.io.tables import read_table, require_unique
    from replication.fits.lines import ROW_COL, select_models

    df = read_table(args.table)
    if len(df) == 0:
        raise InputError(f"{args.table}: the table has no rows")
    require_unique(args.table, df, args.model_col)
    df = pd.concat([df, pd.Series(np.arange(1, len(df) + 1), index=df.index, name=ROW_COL)], axis=1)
    excl = [s for s in args.exclude_names.split(",") if s]
    return select_models(df, where=parse_where(args.where), exclude_substrings=excl,
                         model_col=args.model_col, source=str(args.table))


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``lines`` subcommand on ``sub`` (``func=run``)."""
    p = sub.add_parser("lines", help="accuracy line across models (probit/logit/linear) with intervals",
                       description=__doc__.split("\n\n")[0].replace("``", ""))
    p.add_argument("--table", type=Path, required=True, help="accuracy table (CSV or Parquet; percent)")
    p.add_argument("--x", required=True, help="column on the x axis, e.g. imagenet-val")
    p.add_argument("--y", required=True, help="column on the y axis, e.g. imagenetv2-matched-frequency")
    p.add_argument("--scale", choices=("linear", "probit", "logit"), default="probit",
                   help="axis transform before the fit (default: probit)")
    add_bootstrap(p, 1000, "resamples of models for the intervals (0: OLS t intervals)")
    add_seed(p, "seed of the bootstrap Generator (default 0)")
    p.add_argument("--alpha", type=probability, default=0.05, help="1 - confidence level (default 0.05)")
    p.add_argument("--min-x", type=finite_float, default=None, metavar="PCT",
                   help="keep models with x accuracy >= PCT (Taori et al.: 55)")
    p.add_argument("--n-x", type=positive_int, default=None,
                   help="images behind x accuracies (default: column <x>_n when present; adds binomial error)")
    p.add_argument("--n-y", type=positive_int, default=None, help="images behind y accuracies (default: column <y>_n)")
    add_filter_arguments(p)
    p.add_argument("--residuals-out", type=Path, default=None,
                   help="also write per-model residuals (effective robustness) as CSV/Parquet")
    p.add_argument("--json", type=Path, required=True, help="output JSON")
    p.set_defaults(func=run, path_roles=PathRoles(inputs=("--table",), outputs=("--json", "--residuals-out")))


def _counts(df, col: str, override: int | None):
    if override is not None:
        return override
    return df[f"{col}_n"].to_numpy() if f"{col}_n" in df.columns else None


def run(args: argparse.Namespace) -> int:
    """Run ``replication lines`` with the parsed ``args``; exit status 0 (bad input raises InputError)."""
    from replication.io.atomic import check_writable, write_outputs
    from replication.fits.lines import LineFit, clean_columns, select_models

    for path in (args.json, args.residuals_out):
        if path is not None:
            check_writable(path)
    df = read_filtered(args)
    df = clean_columns(df, [args.x, args.y], dropna=args.dropna, model_col=args.model_col, source=str(args.table))
    if args.min_x is not None:
        df = select_models(df, at_least={args.x: args.min_x}, source=str(args.table))
    names = df[args.model_col] if args.model_col in df.columns else None
    n_x, n_y = _counts(df, args.x, args.n_x), _counts(df, args.y, args.n_y)
    res = LineFit(args.scale, n_bootstrap=args.bootstrap, alpha=args.alpha, random_state=args.seed).fit(
        df[args.x], df[args.y], names=names, n_x=n_x, n_y=n_y)
    out = res.to_dict()
    out.update({"x": args.x, "y": args.y, "table": str(args.table), "seed": args.seed})
    outputs = {args.json: out}
    if args.residuals_out is not None:
        outputs[args.residuals_out] = res.effective_robustness()
    write_outputs(outputs)  # both or neither
    ci = res.conf_int()
    print(f"lines: {res.nobs} models, {args.scale}: slope {out['slope']:.4f} [{ci.loc['slope', 'lower']:.4f}, "
          f"{ci.loc['slope', 'upper']:.4f}], intercept {out['intercept']:.4f} "
          f"[{ci.loc['intercept', 'lower']:.4f}, {ci.loc['intercept', 'upper']:.4f}], r2 {out['r2']:.4f} -> {args.json}")
    return 0
