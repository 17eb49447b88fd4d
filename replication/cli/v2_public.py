"""``replication v2-public``: ImageNet-v2's selection bias from the public record
alone (the candidate pool, the three sets' memberships and the models'
correctness), next to Recht et al.'s raw drop and Engstrom et al.'s estimate."""
from __future__ import annotations

import argparse
from pathlib import Path

from replication.cli.args import add_bootstrap, add_seed, positive_float, positive_int
from replication.cli.paths import PathRoles

POOL_FAMILIES = ("mixture", "beta", "logitnormal")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``v2-public`` subcommand on ``sub`` (``func=run``)."""
    p = sub.add_parser(
        "v2-public", help="ImageNet-v2's selection bias from the public pool, memberships and correctness alone",
        description="Fit the construction of ImageNet-v2's three sets (one candidate pool; MatchedFrequency, "
                    "Threshold0.7 and TopImages drawn from it by their rules) to the sets' overlaps, the "
                    "models' accuracy curves f(s) to their correctness by membership pattern, and report each "
                    "model's MatchedFrequency accuracy and gap at the reference images' true selection "
                    "frequencies, with class-bootstrap intervals and the range the data leave open.")
    p.add_argument("--reference", required=True, type=Path, metavar="DIR",
                   help="folder laid out like ../shared/reference (reads imagenetv2/)")
    p.add_argument("--json", required=True, type=Path, metavar="OUT", help="output JSON")
    p.add_argument("--classes", choices=("complete", "all"), default="complete",
                   help="complete: the classes all of whose set images are in the pool listing (default); all: "
                        "every class, with the unlisted set images added")
    p.add_argument("--impute-unlisted", action="store_true",
                   help="with --classes all: add the missing HIT file's other candidates, as many as its set "
                        "images suggest")
    p.add_argument("--pool-family", choices=POOL_FAMILIES, default="mixture",
                   help="within-class family of the candidates' true selection frequency (default mixture)")
    p.add_argument("--ref-shapes", type=_shapes, default=(4.0, 8.0, 16.0, 32.0, 64.0), metavar="K,K,...",
                   help="Beta concentrations of the reference distribution to profile (default 4,8,16,32,64)")
    p.add_argument("--max-hits", type=positive_int, default=3, metavar="H",
                   help="HIT counts above H count as H; 1 treats every candidate as 10 annotations (default 3)")
    p.add_argument("--no-class-effects", action="store_true", help="one accuracy curve for all classes")
    p.add_argument("--models", metavar="M,M,...", help="models to analyse (default: every model column)")
    add_bootstrap(p, 1000, help="class-bootstrap replicates, at least 2")
    add_seed(p, help="seed of the Monte Carlo and the bootstrap (default 0)")
    p.set_defaults(func=run, path_roles=PathRoles(inputs=("--reference",), outputs=("--json",)))


def _shapes(text: str) -> tuple[float, ...]:
    """An argparse type: comma-separated positive Beta concentrations."""
    return tuple(positive_float(v) for v in text.split(","))


def run(args: argparse.Namespace) -> int:
    """Run ``replication v2-public``; exit status 0 (bad input raises InputError)."""
    from replication.errors import InputError
    from replication.io import check_writable, write_json
    from replication.cli.paths import check_distinct_paths
    from replication.v2public import ENGSTROM_2020, PublicDataEstimator, load_public_data
    from replication.v2public.data import INPUT_FILES
    from replication.v2public.real_check import REAL_VOTES_FILE, real_cross_check

    if args.bootstrap < 2:
        raise InputError(f"--bootstrap must be >= 2 (a class-bootstrap interval), got {args.bootstrap}")
    if args.impute_unlisted and args.classes != "all":
        raise InputError("--impute-unlisted needs --classes all (complete classes have no unlisted images)")
    # the inputs are files inside --reference: no output may land on one of them
    check_distinct_paths({f"--reference {rel}": args.reference / rel for rel in (*INPUT_FILES, REAL_VOTES_FILE)},
                         {"--json": args.json})
    check_writable(args.json)
    models = [m.strip() for m in args.models.split(",")] if args.models else None
    data = load_public_data(args.reference, classes=args.classes, models=models)
    est = PublicDataEstimator(pool_family=args.pool_family, ref_shapes=args.ref_shapes,
                              class_effects=not args.no_class_effects,
                              max_hits=args.max_hits, impute_unlisted=args.impute_unlisted,
                              n_bootstrap=args.bootstrap, random_state=args.seed)
    results = est.fit(data)
    d = results.to_dict()
    real = args.reference / REAL_VOTES_FILE
    if real.is_file():
        d["real_cross_check"] = real_cross_check(real, results.layout.classes, results.reference_distribution())
    write_json(args.json, d)
    mean = d["summary"]
    adj = mean["adjusted_mean_gap"]["v2public"]
    print(results.summary().as_text())
    print()
    print("ImageNet val -> MatchedFrequency, mean over models, percentage points:")
    print(f"  Recht et al. raw drop (these classes):   {100 * mean['mean_gap']:6.2f} "
          f"[{100 * mean['mean_gap_ci'][0]:.2f}, {100 * mean['mean_gap_ci'][1]:.2f}]")
    print(f"  adjusted gap, public data (this fit):    {100 * adj['value']:6.2f} "
          f"[{100 * adj['ci'][0]:.2f}, {100 * adj['ci'][1]:.2f}]  at reference shape {results.ref_shape:g}")
    print(f"  identified range (kept shapes, with CI):  {100 * mean['identified_range_ci'][0]:.2f} to "
          f"{100 * mean['identified_range_ci'][1]:.2f}")
    print(f"  any reference shape (same bin shares):    {100 * mean['shape_free_bounds'][0]:.2f} to "
          f"{100 * mean['shape_free_bounds'][1]:.2f}")
    print(f"  Engstrom et al. 2020 (own annotations):   {100 * ENGSTROM_2020['remaining_gap']:6.2f} "
          f"± {100 * ENGSTROM_2020['remaining_gap_se']:.1f} of {100 * ENGSTROM_2020['raw_gap']:.1f} ± "
          f"{100 * ENGSTROM_2020['raw_gap_se']:.1f}")
    if "real_cross_check" in d:
        rc = d["real_cross_check"]
        show = lambda v: " ".join(f"{x:.2f}" for x in v)  # noqa: E731
        print(f"ImageNet-ReaL cross-check of the reference's shape ({rc['images']} val images; another protocol): "
              f"yes-of-5 shares {show(rc['observed_yes_of_5'])} vs {show(rc['predicted_yes_of_5'])} under the "
              f"fitted reference; ReaL's Beta concentration {rc['beta_concentration']:.2f} "
              f"(profiled shapes kept: {', '.join(f'{k:g}' for k in d['kept_ref_shapes'])})")
    print(f"wrote {args.json}")
    return 0
