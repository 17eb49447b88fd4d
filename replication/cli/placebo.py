"""``replication placebo``: a replication study staged inside one real dataset
(no true shift), with every method's adjusted gap (contract JSON of ``bias``
plus a ``placebo`` section)."""
from __future__ import annotations

import argparse

from replication.cli.args import add_bootstrap, add_seed, nonnegative_float, positive_int
from replication.cli.paths import PathRoles

def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``placebo`` subcommand on ``sub`` (``func=run``)."""
    p = sub.add_parser(
        "placebo", help="placebo replication inside one real dataset: how much gap do the methods leave?",
        description="Split each image's votes into m matching votes and the rest, split the images into a "
                    "reference half and a candidate pool, thin the pool toward low held-out vote shares, "
                    "draw a MatchedFrequency set from it on the matching votes, and estimate every method's "
                    "adjusted gap from the matching votes only. The true gap is zero.")
    p.add_argument("--annotations", required=True, help="annotation table with several votes per image")
    p.add_argument("--correct", required=True, help="correctness matrix of the same dataset")
    p.add_argument("--dataset", default="imagenet-val", help="dataset id to stage it in (default imagenet-val)")
    p.add_argument("--matching-votes", type=positive_int, metavar="M",
                   help="votes per image used for matching and estimation (default 2)")
    p.add_argument("--methods", help="comma-separated methods (default: all, as for bias)")
    add_bootstrap(p, 1000)
    p.add_argument("--thinning-power", type=nonnegative_float, default=2.0, metavar="P",
                   help="keep a pool image with probability (1 - held-out share)^P (default 2)")
    p.add_argument("--size-per-class", type=positive_int, metavar="N",
                   help="match per class with N images each (default: match over all classes together)")
    add_seed(p, "seed of the staging and the bootstrap", required=True, default=None)
    p.add_argument("--json", required=True, metavar="OUT", help="output JSON")
    p.set_defaults(func=run, path_roles=PathRoles(inputs=("--annotations", "--correct"), outputs=("--json",)))


def run(args: argparse.Namespace) -> int:
    """Run ``replication placebo`` with the parsed ``args``; exit status 0 (bad input raises InputError)."""
    from replication.estimators.results import check_methods
    from replication.io import check_writable, load_annotations, load_correctness, write_json
    from replication.placebo import DEFAULT_MATCHING_VOTES, placebo_dict, run_placebo

    methods = None if args.methods is None else check_methods(args.methods)
    m = DEFAULT_MATCHING_VOTES if args.matching_votes is None else args.matching_votes
    check_writable(args.json)
    annotations = load_annotations(args.annotations)
    correctness = load_correctness(args.correct)
    placebo, results = run_placebo(annotations, correctness, seed=args.seed, dataset=args.dataset,
                                   matching_votes=m, methods=methods, n_bootstrap=args.bootstrap,
                                   thinning_power=args.thinning_power, size_per_class=args.size_per_class,
                                   annotations_path=str(args.annotations), correctness_path=str(args.correct))
    payload = placebo_dict(placebo, results)
    write_json(args.json, payload)
    info = payload["placebo"]
    print(f"placebo in {info['dataset']} with m = {info['matching_votes']} matching votes: "
          f"{info['reference_images']} reference, {info['pool_images']} pool, "
          f"{info['replication_images']} replication images; the true gap is 0")
    print("\n".join(results.summary().notes))
    for method, cov in info["coverage"].items():
        print(f"{method}: {cov['models_covering_zero']}/{info['n_models']} model intervals cover 0; "
              f"mean-gap interval {'covers' if cov['mean_gap_covers_zero'] else 'misses'} 0")
    print(f"wrote {args.json}")
    return 0
