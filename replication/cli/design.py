"""``replication design``: plan a replication study from pilot votes or a
simulator preset (contract JSON, a table on stdout, a figure)."""
from __future__ import annotations

import argparse
import os
import time

from replication.cli.args import (add_bootstrap, add_seed, finite_float, integer_in, nonnegative_float,
                                  positive_int, probability)
from replication.cli.paths import PathRoles


def _ints(text: str) -> tuple[int, ...]:
    from replication.errors import InputError

    try:
        return tuple(int(v.replace("_", "")) for v in text.split(",") if v.strip())
    except ValueError:
        raise InputError(f"expected comma-separated integers, got {text!r}") from None


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``design`` subcommand on ``sub`` (``func=run``)."""
    p = sub.add_parser(
        "design", help="plan a replication: simulate candidate designs, recommend the cheapest that is precise enough",
        description="Simulate candidate replication studies (annotators per image, reference images, replication "
                    "images, candidate pool) in a world fitted to pilot votes or taken from a simulator preset, and "
                    "report per method the bias, RMSE, 95%-interval width and coverage of the mean adjusted gap "
                    "and what each design costs; recommend the cheapest design that meets the targets. Gaps and "
                    "widths in the JSON are fractions.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--pilot", metavar="FILE", help="pilot annotations table (CSV or Parquet)")
    src.add_argument("--preset", metavar="NAME", help="simulator preset (e.g. engstrom2020)")
    p.add_argument("--pilot-correct", metavar="FILE",
                   help="correctness matrix of the pilot's reference images: fits the models' accuracy curves f(s)")
    p.add_argument("--reference", help="the pilot's reference dataset id (default imagenet-val)")
    p.add_argument("--replication",
                   help="the pilot's replication dataset id (default imagenetv2-matched-frequency); the designs "
                        "draw MatchedFrequency sets")
    p.add_argument("--selection-edges", metavar="EDGES",
                   help="how the pilot's replication images were selected: k/n bin edges, or 'none' for a random "
                        "sample of the candidate pool (default: by --replication, as in `bias`)")
    p.add_argument("--assume-preset", default="engstrom2020", metavar="NAME",
                   help="with --pilot: the preset that supplies what the pilot does not measure (default engstrom2020)")
    p.add_argument("--pool-prior", metavar="A,B", help="assume Beta(A, B) true selection frequencies in the candidate pool")
    p.add_argument("--shift", type=finite_float, help="true shift in probit units (default: the preset's)")
    p.add_argument("--models", type=positive_int,
                   help="number of simulated models (preset curves; default the preset's)")
    p.add_argument("--annotators", default="5,10,20", help="annotators per image to try (default 5,10,20)")
    p.add_argument("--reference-images", default="10000,20000", help="reference images to try (default 10000,20000)")
    p.add_argument("--replication-images", default="10000", help="replication images to try (default 10000)")
    p.add_argument("--pool-images", default="6x,12x",
                   help="candidate pool sizes: numbers, or multiples of the replication images like 12x (default 6x,12x)")
    p.add_argument("--classes", type=positive_int, default=1000, help="classes; images split equally (default 1000)")
    p.add_argument("--methods", help="comma-separated methods (default: all)")
    p.add_argument("--jackknife-d", type=positive_int, default=1, metavar="D",
                   help="annotators dropped by the jackknife (default 1)")
    p.add_argument("--studies", type=integer_in(2), default=16, help="simulated studies per design (default 16)")
    add_bootstrap(p, 10, "bootstrap replicates per simulated study, at least 2 (see the README)")
    add_seed(p)
    p.add_argument("--target-ci-width", type=probability, default=0.03, metavar="X",
                   help="largest acceptable 95%%-interval width of the mean adjusted gap, a fraction (default 0.03)")
    p.add_argument("--max-bias", type=nonnegative_float, default=0.01, metavar="X",
                   help="largest acceptable |bias| of the mean adjusted gap, a fraction (default 0.01)")
    p.add_argument("--min-coverage", type=nonnegative_float, default=0.85, metavar="X",
                   help="smallest acceptable coverage of the 95%% interval over the simulated studies, a fraction "
                        "(default 0.85: a method whose interval misses the truth is not recommended however "
                        "narrow; 0 turns this off)")
    p.add_argument("--price-per-vote", type=nonnegative_float, default=1.0, metavar="X",
                   help="money per vote; cost = votes x price (default 1: cost in votes)")
    p.add_argument("--jobs", type=positive_int, default=None, help="local processes (default: every core)")
    p.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="local processes, or one Ray task per design (default local)")
    p.add_argument("--address", help="Ray cluster address (default: start a local one)")
    p.add_argument("--figures", metavar="DIR", help="write the precision-against-cost figure here (PNG, PDF, JSON)")
    p.add_argument("--json", required=True, metavar="OUT", help="output JSON")
    p.set_defaults(func=run, path_roles=PathRoles(inputs=("--pilot", "--pilot-correct"), outputs=("--json",),
                                                  output_dirs=("--figures",)))


def _fraction(flag: str, value: float, *, one: bool = True) -> float:
    """``value`` of ``flag`` checked as a fraction: at most 1, or below 1 where
    1 (100 points) is never meant and "1" would be one point typed in percent."""
    from replication.errors import InputError

    if value > 1 or (value == 1 and not one):
        raise InputError(f"{flag} is a fraction ({'0 <= X <= 1' if one else '0 <= X < 1; 0.01 = 1 point'}), "
                         f"got {value:g}")
    return float(value)


def run(args: argparse.Namespace) -> int:
    """Run ``replication design`` with the parsed ``args``; exit status 0 (bad input raises InputError)."""
    from replication.cli.bias import _selection_edges
    from replication.design import Criteria, DesignResults, Scenario, design_grid, run_designs
    from replication.design.figure import figure_outputs
    from replication.errors import InputError
    from replication.estimators import METHODS
    from replication.estimators.results import check_methods
    from replication.io import check_writable, load_annotations, load_correctness, write_outputs
    from replication.io.tables import check_dataset_ids
    from replication.priors import PRIORS
    from replication.sampling import EDGES, SELECTION_EDGES
    from replication.study import DEFAULT_REFERENCE, DEFAULT_REPLICATION

    start = time.perf_counter()
    methods = check_methods(args.methods or ",".join(METHODS))
    criteria = Criteria(args.target_ci_width, _fraction("--max-bias", args.max_bias, one=False),
                        _fraction("--min-coverage", args.min_coverage))
    if args.bootstrap < 2:
        raise InputError(f"--bootstrap must be >= 2 (an interval needs two replicates), got {args.bootstrap}")
    if not args.pilot:
        given = [flag for flag, value in (("--pilot-correct", args.pilot_correct), ("--reference", args.reference),
                                          ("--replication", args.replication),
                                          ("--selection-edges", args.selection_edges),
                                          ("--assume-preset", args.assume_preset != "engstrom2020")) if value]
        if given:
            raise InputError(f"{', '.join(given)}: only with --pilot (a preset fixes the whole scenario)")
    pool_prior = None
    if args.pool_prior:
        try:
            pool_prior = tuple(float(v) for v in args.pool_prior.split(","))
        except ValueError:
            pool_prior = ()
        if len(pool_prior) != 2 or min(pool_prior) <= 0:
            raise InputError(f"--pool-prior: expected two positive Beta parameters A,B, got {args.pool_prior!r}")
    designs = design_grid(_ints(args.annotators), _ints(args.reference_images), _ints(args.replication_images),
                          args.pool_images.split(","), args.classes)
    check_writable(args.json)

    if args.pilot:
        reference = args.reference or DEFAULT_REFERENCE
        replication = args.replication or DEFAULT_REPLICATION
        edges = SELECTION_EDGES.get(replication, EDGES) if args.selection_edges is None else \
            _selection_edges(args.selection_edges)
        pilot = load_annotations(args.pilot)
        check_dataset_ids(pilot, args.pilot)
        correct = None
        if args.pilot_correct:
            correct = load_correctness(args.pilot_correct)
            check_dataset_ids(correct, args.pilot_correct)
        scenario = Scenario.from_pilot(pilot, correct, reference=reference, replication=replication,
                                       selection_edges=edges, assume=args.assume_preset, shift=args.shift,
                                       pool_prior=pool_prior, n_models=args.models, random_state=args.seed,
                                       path=str(args.pilot))
        source = f"pilot {args.pilot}" + (f" with correctness {args.pilot_correct}" if args.pilot_correct else "")
    else:
        scenario = Scenario.from_preset(args.preset, n_models=args.models, shift=args.shift, pool_prior=pool_prior,
                                        seed=args.seed)
        source = f"preset {args.preset}"
    options = {m: {"selection_edges": EDGES} for m in methods if m in PRIORS}
    if "jackknife" in methods:
        options["jackknife"] = {"d": args.jackknife_d}
    outcomes = run_designs(designs, scenario, methods, n_studies=args.studies, n_bootstrap=args.bootstrap,
                           seed=args.seed, method_options=options, jobs=args.jobs or os.cpu_count() or 1,
                           backend=args.backend, address=args.address)
    results = DesignResults(outcomes, criteria, float(args.price_per_vote), {"source": source, **scenario.describe()},
                            settings={"studies": args.studies, "bootstrap": args.bootstrap, "seed": args.seed,
                                      "methods": list(methods), "jackknife_d": args.jackknife_d,
                                      "selection": "MatchedFrequency, Recht et al.'s bins 0.2/0.4/0.6/0.8",
                                      "interval": "normal approximation to the bootstrap percentile interval: width "
                                                  "2 z E[SD], covered when |bootstrap mean - truth| <= t_(B-1) SD"})
    data = results.to_dict()
    outputs = {args.json: data}
    if args.figures:
        outputs.update(figure_outputs(data, args.figures))
    write_outputs(outputs)
    print(results.summary().as_text())
    print("\n".join(f"wrote {p}" for p in outputs))
    print(f"{len(designs)} designs in {time.perf_counter() - start:.1f} s")
    return 0
