"""``replication bias``: selection-frequency bias analysis (contract JSON)."""
from __future__ import annotations

import argparse

from replication.cli.args import add_bootstrap, add_seed, positive_int
from replication.cli.paths import PathRoles


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``bias`` subcommand on ``sub`` (``func=run``)."""
    p = sub.add_parser(
        "bias", help="adjusted replication accuracy and gap per model, with bootstrap intervals",
        description="Estimate each model's replication accuracy on images whose TRUE selection "
                    "frequencies are distributed like the reference images' (Engstrom et al. 2020), "
                    "and the gap to it. Writes the contract JSON.")
    p.add_argument("--annotations", required=True, help="annotation table (CSV or Parquet)")
    p.add_argument("--correct", required=True, help="correctness matrix (CSV or Parquet)")
    # defaults resolved in run() (replication.study imports pandas; --help stays fast)
    p.add_argument("--reference", help="reference dataset id (default imagenet-val)")
    p.add_argument("--replication", help="replication dataset id (default imagenetv2-matched-frequency)")
    p.add_argument("--methods",
                   help="comma-separated adjustment methods: naive, jackknife and one per prior family "
                        "(betabinomial, npmle) (default: all; a default method that cannot be fitted on the data "
                        "is left out with a warning)")
    add_bootstrap(p, 1000)
    add_seed(p, "random seed of the bootstrap (default 0)")
    p.add_argument("--jackknife-d", type=positive_int, default=1, metavar="D",
                   help="annotators dropped per image by the jackknife (default 1)")
    p.add_argument("--selection-edges", metavar="EDGES",
                   help="k/n bin edges within which the replication images were drawn uniformly from their "
                        "candidate pool, for the deconvolution methods: comma-separated, or 'none' for a random sample "
                        "of the pool (default: by --replication: Recht's 0.2,0.4,0.6,0.8 for "
                        "matched-frequency, 0.7 for threshold0.7, none for top-images)")
    p.add_argument("--no-stratify", action="store_true", help="resample images without stratifying by class")
    p.add_argument("--weights-out", metavar="FILE",
                   help="write per-image weights of the replication images (CSV or Parquet)")
    p.add_argument("--json", required=True, metavar="OUT", help="output JSON")
    p.set_defaults(func=run, path_roles=PathRoles(inputs=("--annotations", "--correct"), outputs=("--json", "--weights-out")))


def run(args: argparse.Namespace) -> int:
    """Run ``replication bias`` with the parsed ``args``; exit status 0 (bad input raises InputError)."""
    from replication.errors import InputError
    from replication.estimators import METHODS
    from replication.estimators.results import SelectionBiasEstimator, check_methods
    from replication.io import check_writable, load_annotations, load_correctness, write_outputs
    from replication.io.tables import DATASET_IDS, check_dataset_ids
    from replication.priors import PRIORS
    from replication.study import DEFAULT_REFERENCE, DEFAULT_REPLICATION, StudyData

    reference = args.reference or DEFAULT_REFERENCE
    replication = args.replication or DEFAULT_REPLICATION
    methods = check_methods(",".join(METHODS) if args.methods is None else args.methods)
    for flag, value in (("--reference", reference), ("--replication", replication)):
        if value not in DATASET_IDS:
            raise InputError(f"{flag}: unknown dataset {value!r}; known: {', '.join(DATASET_IDS)}")
    options = {"jackknife": {"d": args.jackknife_d}} if "jackknife" in methods else {}
    if args.selection_edges is not None:
        edges = _selection_edges(args.selection_edges)
        options.update({m: {"selection_edges": edges} for m in PRIORS if m in methods})
    for path in (args.json, args.weights_out):
        if path:
            check_writable(path)
    annotations = load_annotations(args.annotations)
    check_dataset_ids(annotations, args.annotations)
    correctness = load_correctness(args.correct)
    check_dataset_ids(correctness, args.correct)
    study = StudyData.from_tables(annotations, correctness, reference=reference, replication=replication,
                                  annotations_path=str(args.annotations), correctness_path=str(args.correct))
    estimator = SelectionBiasEstimator(methods, n_bootstrap=args.bootstrap, stratify=not args.no_stratify,
                                       random_state=args.seed, method_options=options or None,
                                       on_fit_error="raise" if args.methods else "skip")
    results = estimator.fit(study)   # the tables are validated once, by the loaders
    outputs = {args.json: results.to_dict()}
    if args.weights_out:
        outputs[args.weights_out] = results.weights_frame()
    write_outputs(outputs)  # both or neither
    summary = results.summary()
    print("\n".join([*summary.notes, *(f"wrote {path}" for path in outputs)]))
    return 0


def _selection_edges(text: str) -> tuple[float, ...] | None:
    """Parse ``--selection-edges``: comma-separated edges, or 'none'."""
    from replication.errors import InputError

    if text.strip().lower() == "none":
        return None
    try:
        edges = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"--selection-edges: expected comma-separated numbers or 'none', got {text!r}") from None
    if any(not 0 < e < 1 for e in edges) or list(edges) != sorted(set(edges)):
        raise InputError(f"--selection-edges: edges must increase strictly inside (0, 1), got {text!r}")
    return edges
