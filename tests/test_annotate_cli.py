"""``replication annotate``: folders to the image table, plan, annotators,
export and select through the command line; one-line refusals and the path
checks; ``replication --help`` without the web stack."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
from annotate_fixtures import image_table, make_plan
from conftest import REPO
from eval_fixtures import v2_files, write_tree

from replication.annotate import assign, store
from replication.annotate.db import Database
from replication.annotate.plan import PlanSettings


def test_help_imports_no_web_stack():
    code = ("import sys, contextlib, io\nfrom replication.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try:\n        main(['annotate', '--help'])\n    except SystemExit:\n        pass\n"
            "heavy = {'fastapi', 'starlette', 'uvicorn', 'jinja2', 'psycopg', 'pandas', 'numpy', 'selenium'}\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, check=True)
    assert out.stdout.strip() == "[]"


def test_folders_to_plan(tmp_path, run, caplog):
    write_tree(tmp_path / "pool", v2_files(classes=(1, 10, 2), per_class=3))
    (tmp_path / "pool" / "README.txt").write_text("not an image")
    write_tree(tmp_path / "ref", v2_files(classes=(1, 2, 10), per_class=2, prefix=""))
    code, out, err = run("annotate", "images", "--dataset", "imagenet-val", "--root", tmp_path / "ref",
                         "--layout", "imagenetv2-folder", "--dataset", "candidates", "--root", tmp_path / "pool",
                         "--layout", "imagenetv2-folder", "--out", tmp_path / "images.csv")
    assert code == 0, err
    table = pd.read_csv(tmp_path / "images.csv", dtype={"image_id": str})
    assert len(table) == 15 and "README.txt" in caplog.text  # the stray file is reported, not listed
    # independent: the label is the class folder read as an integer (10 is not sorted before 2)
    for row in table.itertuples():
        assert os.path.isfile(row.path) and int(os.path.basename(os.path.dirname(row.path))) == row.class_id
        assert os.path.splitext(os.path.basename(row.path))[0] == row.image_id
    code, out, err = run("annotate", "plan", "--images", tmp_path / "images.csv", "--out", tmp_path / "plan",
                         "--annotators", "4", "--seed", "2")
    assert code == 0, err
    assert "3 tasks over 3 classes, 15 images to label (candidates 9, imagenet-val 6)" in out
    assert "12 assignments" in out
    code, _, err = run("annotate", "plan", "--images", tmp_path / "images.csv", "--out", tmp_path)
    assert code == 1 and "lies inside the output folder" in err
    code, _, err = run("annotate", "plan", "--images", tmp_path / "images.csv", "--out", tmp_path / "p2",
                       "--images-per-task", "6")
    assert code == 1 and "leaves no room for images to label" in err and not (tmp_path / "p2").exists()


def test_annotators_export_and_refusals(tmp_path, run):
    plan, plan_dir = make_plan(tmp_path, PlanSettings(annotators=2))
    db_file = tmp_path / "votes.db"
    code, out, err = run("annotate", "annotators", "--db", db_file, "--add", "alice", "bob",
                         "--base-url", "http://lab:9000")
    assert code == 0, err
    links = dict(line.split(": ", 1) for line in out.strip().splitlines())
    assert set(links) == {"alice", "bob"} and all(v.startswith("http://lab:9000/a/") for v in links.values())
    code, _, err = run("annotate", "annotators", "--db", db_file, "--add", "alice")
    assert code == 1 and "exist already" in err
    code, _, err = run("annotate", "export", "--db", db_file, "--out", tmp_path / "a.csv")
    assert code == 1 and "holds no plan" in err
    db = Database(f"sqlite:///{db_file}")
    store.load_plan(db, plan)
    rng = np.random.default_rng(0)
    for who in ["alice", "bob"] * 10:
        a = assign.next_assignment(db, who)
        if a is not None:
            assign.submit(db, who, a.assignment_id, a.nonce, [int(i) for i in np.flatnonzero(rng.random(len(a.image_nos)) < 0.5)])
    db.close()
    code, out, err = run("annotate", "export", "--db", db_file, "--out", tmp_path / "ann.csv", "--votes-out",
                         tmp_path / "votes.parquet", "--qc-out", tmp_path / "qc.json", "--qc", "none")
    assert code == 0, err
    ann = pd.read_csv(tmp_path / "ann.csv")
    votes = pd.read_parquet(tmp_path / "votes.parquet")
    assert list(votes.columns[:8]) == ["dataset", "image_id", "class_id", "annotator_id", "task_id", "selected",
                                       "submitted_at", "is_control"]
    assert (ann["n_annotators"] == 2).all() and len(ann) == int(plan.images["role"].isin(["label", "both"]).sum())
    for argv, match in [
        (["export", "--db", db_file, "--out", db_file], "is the input --db"),
        (["export", "--db", db_file, "--out", tmp_path / "x.csv", "--votes-out", tmp_path / "x.csv"], "same path"),
        (["export", "--db", tmp_path / "none.db", "--out", tmp_path / "x.csv"], "no such database"),
        (["export", "--db", db_file, "--out", tmp_path / "x.csv", "--min-control-accuracy", "2"], r"must lie in \[0, 1\]"),
        (["serve", "--plan", tmp_path / "nowhere", "--db", db_file], "not a plan folder"),
        (["serve", "--plan", plan_dir, "--db", db_file, "--port", "0"], "--port must be in"),
        (["serve", "--plan", plan_dir, "--db", plan_dir / "plan.json"], "is the input --plan|not a usable SQLite"),
        (["import-results", "--plan", plan_dir, "--db", db_file, "--results", tmp_path / "none.csv"], "no such file"),
    ]:
        code, _, err = run("annotate", *argv)
        assert code in (1, 2) and __import__("re").search(match, err), (argv, err)
        assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.csv").exists()
    code, _, err = run("annotate", "export", "--db", "mysql://x/y", "--out", tmp_path / "x.csv")
    assert code == 2 and "unsupported database URL mysql://" in err  # a usage error


def test_select_and_the_folder_for_evaluate(tmp_path, run):
    from evaluators.datasets import ImageNetV2Folder

    table = image_table(tmp_path / "img", classes=(3, 12), n_ref=20, n_cand=60)
    table.to_csv(tmp_path / "images.csv", index=False)
    rng = np.random.default_rng(0)
    n = np.full(len(table), 10)
    s = np.where(table["dataset"] == "imagenet-val", rng.beta(8, 2, len(table)), rng.beta(2, 2, len(table)))
    ann = table[["dataset", "image_id", "class_id"]].assign(n_annotators=n, n_selected=rng.binomial(n, s))
    ann.to_csv(tmp_path / "collected.csv", index=False)
    code, out, err = run("annotate", "select", "--annotations", tmp_path / "collected.csv", "--candidates",
                         "candidates", "--per-class", "10", "--seed", "0", "--images", tmp_path / "images.csv",
                         "--images-out", tmp_path / "v2", "--out", tmp_path / "annotations.csv")
    assert code == 0, err
    out_table = pd.read_csv(tmp_path / "annotations.csv", dtype={"image_id": str})
    assert set(out_table["dataset"]) == {"imagenet-val", "imagenetv2-matched-frequency"}
    rep = out_table[out_table["dataset"] == "imagenetv2-matched-frequency"]
    assert len(rep) <= 20 and rep["image_id"].str.startswith("can").all()
    assert (out_table["dataset"] == "imagenet-val").sum() == 40
    # the drawn candidates' k/n bins follow the reference histogram per class (Recht's rule, by hand)
    for cls in (3, 12):
        ref = ann[(ann["dataset"] == "imagenet-val") & (ann["class_id"] == cls)]
        ref_bins = np.bincount(np.searchsorted([0.2, 0.4, 0.6, 0.8], ref["n_selected"] / 10, side="right"), minlength=5)
        got = rep[rep["class_id"] == cls]
        got_bins = np.bincount(np.searchsorted([0.2, 0.4, 0.6, 0.8], got["n_selected"] / 10, side="right"), minlength=5)
        target = np.floor(ref_bins / 2)  # 20 reference images -> 10 drawn: half of each bin, before rounding
        assert (got_bins[:4] <= target[:4] + 1).all() and got_bins.sum() <= 10
    # the folder of links reads back through the evaluators' ImageNet-v2 reader with the same ids and labels
    source = ImageNetV2Folder(tmp_path / "v2")
    assert sorted((x.image_id, x.label) for x in source.samples) == sorted(zip(rep["image_id"], rep["class_id"]))
    code, _, err = run("annotate", "select", "--annotations", tmp_path / "collected.csv", "--candidates", "candidates",
                       "--replication", "imagenet-val", "--out", tmp_path / "x.csv")
    assert code == 1 and "already a dataset" in err
    code, _, err = run("annotate", "select", "--annotations", tmp_path / "collected.csv", "--candidates", "pool",
                       "--out", tmp_path / "x.csv")
    assert code == 1 and "no rows of dataset 'pool'" in err
