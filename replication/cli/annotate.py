"""``replication annotate``: collect selection-frequency votes under Recht et al.'s protocol.

From two image folders to ``replication bias``::

    replication annotate images --dataset imagenet-val --root VAL --dataset candidates --root POOL --out images.csv
    replication annotate plan --images images.csv --out plan/
    replication annotate serve --plan plan/ --db votes.db          # annotators open their links
    replication annotate export --db votes.db --out votes_annotations.csv --votes-out votes.csv
    replication annotate select --annotations votes_annotations.csv --reference imagenet-val \\
        --candidates candidates --images images.csv --images-out v2/ --out annotations.csv

The crowd-platform route replaces ``serve`` with ``hits`` and ``import-results``.
"""
from __future__ import annotations

import argparse
import os
import sys

from replication.cli.args import add_seed, unit_interval
from replication.cli.paths import PathRoles


def database_url(text: str):
    """``--db``: a database URL (argparse type; a bad one is a usage error naming the flag)."""
    from replication.annotate.db import database_url as parse
    from replication.errors import InputError

    try:
        return parse(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--db: ")) from None


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``annotate`` and its subcommands on ``sub``."""
    p = sub.add_parser("annotate", help="collect selection-frequency votes (plan, serve, export, crowd platforms)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    a = actions.add_parser("images", help="list image folders into the table that plan reads",
                           description="List dataset folders (any layout 'replication evaluate' reads from files) into "
                                       "a table dataset,image_id,class_id,path.")
    a.add_argument("--dataset", action="append", required=True, help="dataset id (repeatable), e.g. imagenet-val, candidates")
    a.add_argument("--root", action="append", required=True, help="folder per --dataset (by position, or DATASET=PATH)")
    a.add_argument("--layout", action="append", default=[], help="force a layout per dataset (default auto)")
    a.add_argument("--labels", action="append", default=[], help="class map or ground truth per dataset, as for evaluate")
    a.add_argument("--out", required=True, help="the image table (CSV or Parquet)")
    a.set_defaults(func=run_images, path_roles=PathRoles(inputs=("--root", "--labels"), outputs=("--out",)))

    a = actions.add_parser("plan", help="build annotation tasks (48 images, 3 + 3 controls, N annotators each)",
                           description="Build Recht-protocol annotation tasks from a table dataset,image_id,class_id,"
                                       "path[,role]. See replication/annotate/plan.py.")
    a.add_argument("--images", required=True, help="table of images to annotate (reference and candidates together)")
    a.add_argument("--out", required=True, help="plan folder (plan.json, images.csv, tasks.csv)")
    a.add_argument("--annotators", type=int, default=10, metavar="N", help="distinct annotators per image (default 10)")
    add_seed(a)
    a.add_argument("--images-per-task", type=int, default=48, help="images per task (default 48)")
    a.add_argument("--positive-controls", type=int, default=3, help="positive controls per task (default 3)")
    a.add_argument("--negative-controls", type=int, default=3, help="negative controls per task (default 3)")
    a.add_argument("--controls-from", action="append", default=None, metavar="DATASET",
                   help="without a role column: the dataset(s) whose images also serve as controls "
                        "(default imagenet-val when present)")
    a.add_argument("--classes", help="class names and glosses (JSON like class_info.json, or CSV class_id,names,gloss); "
                                     "default: the shipped ImageNet table")
    a.add_argument("--timeout", type=int, default=600, metavar="SECONDS",
                   help="seconds an annotator has for a task before it goes to someone else (default 600)")
    a.set_defaults(func=run_plan, path_roles=PathRoles(inputs=("--images", "--classes"), output_dirs=("--out",)))

    a = actions.add_parser("serve", help="the annotators' web application",
                           description="Serve a plan to annotators. Votes go to --db (SQLite file or postgresql:// URL). "
                                       "The admin token comes from --admin-token, $REPLICATION_ANNOTATE_ADMIN_TOKEN, or "
                                       "is made up and printed.")
    a.add_argument("--plan", required=True, help="plan folder")
    a.add_argument("--db", required=True, type=database_url, metavar="URL",
                   help="sqlite:///PATH (a plain path means SQLite) or postgresql://...")
    a.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    a.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    a.add_argument("--admin-token", default=None, help="secret of the admin page")
    a.add_argument("--add-annotators", type=int, default=0, metavar="N", help="create N annotators and print their links")
    a.add_argument("--links-out", metavar="FILE", help="write the new annotators' links to FILE (CSV)")
    a.set_defaults(func=run_serve, path_roles=PathRoles(inputs=("--plan",), outputs=("--db", "--links-out")))

    a = actions.add_parser("annotators", help="create annotators and their links",
                           description="Create annotators with fresh tokens in --db; each link is shown once.")
    a.add_argument("--db", required=True, type=database_url, metavar="URL")
    a.add_argument("--add", nargs="*", default=[], metavar="NAME", help="annotator names")
    a.add_argument("--count", type=int, default=0, help="this many more with generated names")
    a.add_argument("--base-url", default="http://127.0.0.1:8000", help="where serve runs (default http://127.0.0.1:8000)")
    a.add_argument("--out", metavar="FILE", help="write annotator_id,link to FILE (CSV) instead of printing")
    a.set_defaults(func=run_annotators, path_roles=PathRoles(outputs=("--db", "--out")))

    a = actions.add_parser("export", help="votes -> annotations table, with quality control on the controls",
                           description="Count accepted votes per image (controls excluded) after dropping the "
                                       "annotators (or submissions) that fail the controls.")
    a.add_argument("--db", required=True, type=database_url, metavar="URL")
    a.add_argument("--out", required=True, help="annotations table (CSV or Parquet)")
    a.add_argument("--votes-out", metavar="FILE", help="also write the votes table (one row per vote)")
    a.add_argument("--qc", choices=("annotator", "submission", "none"), default="annotator",
                   help="what fails the controls: whole annotators (default), single submissions, or nothing")
    a.add_argument("--min-control-accuracy", type=unit_interval, default=None, metavar="X",
                   help="share of control answers that must be right (default 0.7)")
    a.add_argument("--qc-out", metavar="FILE", help="write the quality-control report (JSON)")
    a.set_defaults(func=run_export, path_roles=PathRoles(inputs=("--db",), outputs=("--out", "--votes-out", "--qc-out")))

    a = actions.add_parser("hits", help="the tasks as crowd-platform HITs (MTurk layout + batch CSV, one HTML form per task)",
                           description="Write layout.html + batch_input.csv for a requester UI, tasks/<id>.html for "
                                       "HTMLQuestion/ExternalQuestion, images.csv (upload names) and hit_settings.json.")
    a.add_argument("--plan", required=True, help="plan folder")
    a.add_argument("--out", required=True, help="output folder")
    a.add_argument("--image-base-url", required=True, metavar="URL", help="where the images will be uploaded (https://...)")
    a.add_argument("--link-images", action="store_true", help="also make OUT/images/<name> links to the files, to upload")
    a.set_defaults(func=run_hits, path_roles=PathRoles(inputs=("--plan",), output_dirs=("--out",)))

    a = actions.add_parser("import-results", help="a platform's batch results CSV -> the votes database",
                           description="Read a batch results CSV (one row per assignment: HITId, AssignmentId, "
                                       "WorkerId, AssignmentStatus, SubmitTime, Input.task_id, Answer.selected).")
    a.add_argument("--plan", required=True, help="plan folder the HITs were made from")
    a.add_argument("--db", required=True, type=database_url, metavar="URL")
    a.add_argument("--results", required=True, help="batch results CSV")
    a.add_argument("--source", default="mturk", help="platform name, prefixed to worker ids (default mturk)")
    a.set_defaults(func=run_import_results, path_roles=PathRoles(inputs=("--plan", "--results"), outputs=("--db",)))

    a = actions.add_parser("select", help="draw the replication set from the candidates (MatchedFrequency, ...)",
                           description="Draw a replication set from annotated candidates on their observed k/n, by "
                                       "Recht et al.'s rules, and write the annotations table for 'replication bias'.")
    a.add_argument("--annotations", required=True, help="annotations table from export (reference and candidates)")
    a.add_argument("--reference", default="imagenet-val", help="reference dataset id (default imagenet-val)")
    a.add_argument("--candidates", required=True, help="dataset id of the candidate pool")
    a.add_argument("--replication", default=None, help="dataset id of the drawn set (default by rule)")
    a.add_argument("--rule", choices=("matched-frequency", "threshold", "top-images"), default="matched-frequency")
    a.add_argument("--per-class", type=int, default=10, help="images per class (default 10)")
    a.add_argument("--min-annotators", type=int, default=None, help="only images with this many accepted votes")
    add_seed(a)
    a.add_argument("--out", required=True, help="annotations table for replication bias")
    a.add_argument("--images", help="the image table given to plan (for --images-out)")
    a.add_argument("--images-out", help="lay the drawn images out as an ImageNet-v2 folder of links, for evaluate")
    a.set_defaults(func=run_select, path_roles=PathRoles(inputs=("--annotations", "--images"), outputs=("--out",),
                                                         output_dirs=("--images-out",)))


def run_images(args: argparse.Namespace) -> int:
    """``annotate images``."""
    import pandas as pd

    from replication.annotate.folders import list_folder
    from replication.cli.evaluate import pair_with_datasets
    from replication.errors import InputError
    from replication.io import write_table

    if len(set(args.dataset)) != len(args.dataset):
        raise InputError("--dataset: each dataset once")
    roots = pair_with_datasets(args.root, args.dataset, "--root")
    layouts = pair_with_datasets(args.layout, args.dataset, "--layout")
    labels = pair_with_datasets(args.labels, args.dataset, "--labels")
    table = pd.concat([list_folder(ds, roots[ds], layout=layouts.get(ds, "auto"), labels=labels.get(ds))
                       for ds in args.dataset], ignore_index=True)
    write_table(args.out, table)
    counts = table.groupby("dataset").size()
    print(f"{args.out}: {len(table)} images ({', '.join(f'{d} {n}' for d, n in counts.items())}), "
          f"{table['class_id'].nunique()} classes")
    return 0


def run_plan(args: argparse.Namespace) -> int:
    """``annotate plan``."""
    from replication.annotate.classes import load_class_descriptions
    from replication.annotate.plan import PlanSettings, build_plan, read_images

    settings = PlanSettings(annotators=args.annotators, images_per_task=args.images_per_task,
                            positive_controls=args.positive_controls, negative_controls=args.negative_controls,
                            seed=args.seed, timeout_s=args.timeout)
    settings.validate()
    images = read_images(args.images, controls_from=tuple(args.controls_from) if args.controls_from else None)
    plan = build_plan(images, settings, classes=load_class_descriptions(args.classes), source=str(args.images))
    plan.write(args.out)
    s = plan.summary()
    per_ds = ", ".join(f"{d} {n}" for d, n in s["label_images_per_dataset"].items())
    print(f"{args.out}: plan {plan.plan_id}: {s['n_tasks']} tasks over {s['n_classes']} classes, "
          f"{s['n_label_images']} images to label ({per_ds}), {s['n_control_only_images']} control-only and "
          f"{s['n_dual_use_images']} dual-use control images; {s['n_assignments']} assignments, {s['n_votes']} votes")
    for w in plan.warnings:
        print(f"warning: {w}", file=sys.stderr)
    return 0


def _links(db, count: int, base_url: str, names=()) -> list[tuple[str, str]]:
    from replication.annotate.store import add_annotators

    base = base_url.rstrip("/")
    return [(a, f"{base}/a/{token}") for a, token in add_annotators(db, list(names), count)]


def _write_links(links: list[tuple[str, str]], out: str | None) -> None:
    import pandas as pd

    from replication.io import write_table

    if out:
        write_table(out, pd.DataFrame(links, columns=["annotator_id", "link"]))
        print(f"wrote {len(links)} link(s) to {out}")
    else:
        for a, link in links:
            print(f"{a}: {link}")


def run_serve(args: argparse.Namespace) -> int:
    """``annotate serve``: blocks until interrupted."""
    import secrets

    import uvicorn

    from replication.annotate.app import Settings, create_app
    from replication.errors import InputError

    if not 0 < args.port < 65536:
        raise InputError(f"--port must be in 1..65535, got {args.port}")
    token = args.admin_token or os.environ.get("REPLICATION_ANNOTATE_ADMIN_TOKEN") or secrets.token_urlsafe(18)
    app = create_app(Settings(plan_dir=args.plan, db_url=args.db, admin_token=token))
    service = app.state.service
    host = f"[{args.host}]" if ":" in args.host else args.host
    base = f"http://{host}:{args.port}"
    if args.add_annotators:
        _write_links(_links(service.db, args.add_annotators, base), args.links_out)
    prog = service.plan.summary()
    print(f"serving plan {service.plan.plan_id} ({prog['n_tasks']} tasks, {prog['n_votes']} votes to collect) "
          f"from {args.db.backend} at {base}")
    print(f"admin page: {base}/admin/{token}", flush=True)
    uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, log_level="warning",
                                  timeout_graceful_shutdown=5)).run()
    return 0


def run_annotators(args: argparse.Namespace) -> int:
    """``annotate annotators``."""
    from replication.annotate.db import Database
    from replication.errors import InputError

    if args.count < 0 or (not args.add and not args.count):
        raise InputError("give --add NAME ... and/or --count N (N >= 1)")
    db = Database(args.db)
    try:
        db.create_schema()
        _write_links(_links(db, args.count, args.base_url, args.add), args.out)
    finally:
        db.close()
    return 0


def run_export(args: argparse.Namespace) -> int:
    """``annotate export``."""
    from replication.annotate.db import Database
    from replication.annotate.store import plan_id, votes_frame
    from replication.annotate.votes import MIN_CONTROL_ACCURACY, count_votes, validate_votes
    from replication.errors import InputError
    from replication.io import write_outputs

    if args.db.backend == "sqlite" and not os.path.isfile(args.db.sqlite_path):
        raise InputError(f"--db {args.db.sqlite_path}: no such database")
    db = Database(args.db)
    try:
        if plan_id(db) is None:
            raise InputError(f"--db {args.db}: holds no plan (nothing served or imported into it yet)")
        votes = votes_frame(db)
    finally:
        db.close()
    if votes.empty:
        raise InputError(f"--db {args.db}: holds no votes yet")
    votes = validate_votes(votes, str(args.db))
    threshold = MIN_CONTROL_ACCURACY if args.min_control_accuracy is None else args.min_control_accuracy
    annotations, report = count_votes(votes, min_control_accuracy=threshold, level=args.qc, path=str(args.db),
                                      validated=True)
    outputs = {args.out: annotations}
    if args.votes_out:
        outputs[args.votes_out] = votes
    if args.qc_out:
        outputs[args.qc_out] = report.to_dict()
    write_outputs(outputs)
    counts = annotations.groupby("dataset").size()
    print(f"{args.out}: {len(annotations)} images ({', '.join(f'{d} {n}' for d, n in counts.items())}), "
          f"{int(annotations['n_annotators'].sum())} accepted votes")
    print("\n".join(report.lines()))
    return 0


def run_hits(args: argparse.Namespace) -> int:
    """``annotate hits``."""
    from replication.annotate.hits import write_hits
    from replication.annotate.plan import Plan

    plan = Plan.read(args.plan)
    plan.media_types(os.path.join(args.plan, "images.csv"))
    done = write_hits(plan, args.out, args.image_base_url, link_images=args.link_images)
    print(f"{args.out}: {done['tasks']} HITs (layout.html + batch_input.csv, tasks/*.html), {done['images']} images "
          f"to upload to {args.image_base_url} (images.csv); {done['max_assignments']} assignments per HIT")
    return 0


def run_import_results(args: argparse.Namespace) -> int:
    """``annotate import-results``."""
    from replication.annotate.db import Database
    from replication.annotate.hits import import_results, read_results
    from replication.annotate.plan import Plan

    plan = Plan.read(args.plan)
    results = read_results(args.results)
    db = Database(args.db)
    try:
        report = import_results(db, plan, results, args.results, source=args.source)
    finally:
        db.close()
    print("\n".join(report.lines()))
    return 0


def run_select(args: argparse.Namespace) -> int:
    """``annotate select``."""
    import numpy as np

    from replication.annotate.plan import read_images
    from replication.annotate.select import REPLICATION_IDS, link_folder, select_replication
    from replication.errors import InputError
    from replication.io import read_table, write_table

    if args.images_out and not args.images:
        raise InputError("--images-out needs --images (the image table given to plan)")
    table, drawn = select_replication(read_table(args.annotations), reference=args.reference,
                                      candidates=args.candidates, replication=args.replication, rule=args.rule,
                                      per_class=args.per_class, rng=np.random.default_rng(args.seed),
                                      min_annotators=args.min_annotators, path=args.annotations)
    replication = args.replication or REPLICATION_IDS[args.rule]
    if args.images_out:
        link_folder(drawn, read_images(args.images), args.images_out)
    write_table(args.out, table)
    print(f"{args.out}: {int((table['dataset'] == args.reference).sum())} {args.reference} images and "
          f"{len(drawn)} {replication} images drawn by {args.rule} from {args.candidates}")
    if args.images_out:
        print(f"{args.images_out}: the drawn images as class folders; score them with "
              f"replication evaluate --dataset {replication} --root {args.images_out} --allow-partial")
    return 0
