"""``replication import-annotations``: a published vote set -> the contract
annotations table (and a correctness matrix where the source carries one)."""
from __future__ import annotations

import argparse
import inspect

from replication.cli.args import unit_interval
from replication.cli.paths import PathRoles
from replication.votes import SOURCES

#: importer option -> the flag that sets it
_OPTIONS = {"trust_pickle": "--trust-pickle", "labels": "--labels", "exclude_models": "--exclude-models",
            "qc": "--qc", "min_control_accuracy": "--min-control-accuracy"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``import-annotations`` subcommand on ``sub`` (``func=run``)."""
    p = sub.add_parser(
        "import-annotations", help="convert a published vote set into an annotations table",
        description="Convert a published vote set into the contract annotations table (dataset, image_id, "
                    "n_annotators, n_selected, class_id) and, for madrylab, the correctness matrix. Every "
                    "source's schema is checked; what is left out is reported with the reason.")
    p.add_argument("--source", required=True, choices=tuple(SOURCES),
                   help="madrylab: Engstrom et al. 2020's vote DataFrame (torch.save file, or Parquet/CSV); "
                        "real: ImageNet-ReaL's raters.npz (or its folder), with --labels; cleanlab: "
                        "imagenet_mturk.json; imagenet-multilabel: Tsipras et al.'s "
                        "annotations_classify_task.pkl, or its per-image CSV; votes: the votes table of "
                        "'replication annotate export --votes-out' (or any table in that format)")
    p.add_argument("--path", required=True, help="the source's file (or folder, for real)")
    p.add_argument("--out", required=True, metavar="FILE", help="annotations table to write (CSV or Parquet)")
    p.add_argument("--correct-out", metavar="FILE",
                   help="correctness matrix to write (CSV or Parquet; madrylab's correct_* columns)")
    p.add_argument("--trust-pickle", action="store_true",
                   help="load pickled files (torch.save / pandas): loading a pickle runs arbitrary code from it")
    p.add_argument("--labels", metavar="FILE",
                   help="real: ImageNet val labels (the ILSVRC-2012 devkit, folder or .tar.gz, or LOC_val_solution.csv)")
    p.add_argument("--exclude-models", metavar="NAMES",
                   help="madrylab: leave out models whose name contains any of these comma-separated strings "
                        "(Engstrom et al. leave out swsl_,ssl_,ig_: models trained on more data)")
    p.add_argument("--qc", choices=("annotator", "submission", "none"),
                   help="votes: what fails the controls and is dropped, as in 'annotate export' (default annotator)")
    p.add_argument("--min-control-accuracy", type=unit_interval, metavar="X",
                   help="votes: share of control answers that must be right (default 0.7)")
    p.set_defaults(func=run, path_roles=PathRoles(inputs=("--path", "--labels"), outputs=("--out", "--correct-out")))


def run(args: argparse.Namespace) -> int:
    """Run ``replication import-annotations`` with the parsed ``args``; exit status 0."""
    from replication.errors import InputError
    from replication.io import check_writable, write_outputs
    from replication.io.tables import validate_annotations, validate_correctness
    from replication.votes import source_class

    cls = source_class(args.source)
    accepted = set(inspect.signature(cls).parameters)
    given = {"trust_pickle": args.trust_pickle, "labels": args.labels,
             "exclude_models": tuple(s.strip() for s in args.exclude_models.split(",") if s.strip())
             if args.exclude_models else None,
             "qc": args.qc, "min_control_accuracy": args.min_control_accuracy}
    for option, value in given.items():
        if value is not None and value is not False and option not in accepted:
            raise InputError(f"{_OPTIONS[option]} does not apply to --source {args.source}")
    for path in (args.out, args.correct_out):
        if path:
            check_writable(path)
    imported = cls(**{k: v for k, v in given.items() if k in accepted and v is not None and v is not False}
                   ).read(args.path)
    outputs = {args.out: validate_annotations(imported.annotations, f"{args.source} annotations")}
    if args.correct_out:
        if imported.correctness is None:
            raise InputError(f"--correct-out: {args.path} carries no model correctness (--source {args.source})")
        outputs[args.correct_out] = validate_correctness(imported.correctness, f"{args.source} correctness")
    write_outputs(outputs)
    unwritten = ["the source's correctness matrix was not written (give --correct-out FILE)"] \
        if imported.correctness is not None and not args.correct_out else []
    print("\n".join([*imported.summary_lines(), *unwritten, *(f"wrote {p}" for p in outputs)]))
    return 0
