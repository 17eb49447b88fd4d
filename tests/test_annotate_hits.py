"""The crowd-platform route: HIT files for MTurk (layout + batch input CSV,
one self-contained form per task) and the batch results CSV back into the
votes database, exported with the same quality control."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
from annotate_fixtures import make_plan

from replication.annotate.db import Database
from replication.annotate.hits import parse_submit_time
from replication.annotate.plan import PlanSettings
from replication.annotate.store import votes_frame

#: the columns of MTurk's batch results CSV (requester UI, "Download CSV"), before Input.* and Answer.*
MTURK_COLUMNS = ["HITId", "HITTypeId", "Title", "Description", "Keywords", "Reward", "CreationTime", "MaxAssignments",
                 "RequesterAnnotation", "AssignmentDurationInSeconds", "AutoApprovalDelayInSeconds", "Expiration",
                 "NumberOfSimilarHITs", "LifetimeInSeconds", "AssignmentId", "WorkerId", "AssignmentStatus",
                 "AcceptTime", "SubmitTime", "AutoApprovalTime", "ApprovalTime", "RejectionTime", "RequesterFeedback",
                 "WorkTimeInSeconds", "LifetimeApprovalRate", "Last30DaysApprovalRate", "Last7DaysApprovalRate"]


def _results(batch: pd.DataFrame, plan, rng, workers=12, per_hit=3) -> pd.DataFrame:
    """A batch results CSV as MTurk writes it: one row per assignment, Input.* echoing the batch row."""
    rows = []
    for h, row in enumerate(batch.itertuples(index=False)):
        n = int(row.n_images)
        for w in rng.choice(workers, size=per_hit, replace=False):
            picked = np.flatnonzero(rng.random(n) < 0.4)
            rec = {c: "" for c in MTURK_COLUMNS}
            rec.update(HITId=f"3HIT{h:05d}", AssignmentId=f"3ASG{h:05d}W{w:02d}", WorkerId=f"A2WORKER{w:02d}",
                       AssignmentStatus="Submitted", SubmitTime=f"Tue Jul 09 1{w % 10}:{h % 60:02d}:07 PDT 2024",
                       MaxAssignments=str(per_hit), Title="Label new images for machine learning dataset")
            rec.update({f"Input.{k}": str(v) for k, v in row._asdict().items()})
            rec["Answer.selected"] = ",".join(str(int(p)) for p in picked)
            rec["Answer.task_id"] = row.task_id
            rows.append(rec)
    return pd.DataFrame(rows)


def test_hits_and_results_round_trip(tmp_path, run):
    plan, plan_dir = make_plan(tmp_path, PlanSettings(annotators=3), n_ref=6, n_cand=20)
    out = tmp_path / "hits"
    code, stdout, err = run("annotate", "hits", "--plan", plan_dir, "--out", out,
                            "--image-base-url", "https://example.org/imgs", "--link-images")
    assert code == 0, err
    batch = pd.read_csv(out / "batch_input.csv", dtype=str, keep_default_na=False)
    layout = (out / "layout.html").read_text()
    assert set(re.findall(r"\$\{(\w+)\}", layout)) == set(batch.columns) - {"n_images"}
    assert len(batch) == plan.items["task_id"].nunique() and "crowd-form" in layout
    page = (out / "tasks" / f"{batch['task_id'].iat[0]}.html").read_text()
    assert 'action="https://www.mturk.com/mturk/externalSubmit"' in page and 'name="assignmentId"' in page
    assert 'name="selected"' in page and 'name="task_id"' in page and "turkSubmitTo" in page
    external = set(re.findall(r'(?:src|href)="(https?://[^"]+)"', page))
    assert external and all(u.startswith("https://example.org/imgs/") for u in external)  # nothing else loaded
    assert not re.search(r"imagenet-val|candidates|ima\d|can\d", " ".join(external))  # names reveal no dataset
    manifest = pd.read_csv(out / "images.csv")
    assert all((out / "images" / f).resolve() == __import__("pathlib").Path(p).resolve()
               for f, p in zip(manifest["file"], manifest["path"]))
    rng = np.random.default_rng(0)
    results = _results(batch, plan, rng)
    results.loc[1, "AssignmentStatus"] = "Rejected"
    csv = tmp_path / "Batch_1_batch_results.csv"
    results.to_csv(csv, index=False)
    db_url = f"sqlite:///{tmp_path / 'votes.db'}"
    code, stdout, err = run("annotate", "import-results", "--plan", plan_dir, "--db", db_url, "--results", csv)
    assert code == 0, err
    assert f"imported {len(results) - 1} assignment(s)" in stdout and "skipped 1 rejected" in stdout
    code, stdout, _ = run("annotate", "import-results", "--plan", plan_dir, "--db", db_url, "--results", csv)
    assert code == 0 and "imported 0 assignment(s)" in stdout and f"skipped {len(results) - 1} assignment(s) imported before" in stdout
    votes = votes_frame(Database(db_url))
    assert len(votes) == sum(int(results.loc[i, "Input.n_images"]) for i in range(len(results)) if i != 1)
    assert set(votes["annotator_id"]) == {f"mturk:{w}" for w in results.loc[results.index != 1, "WorkerId"]}
    # independent: the selected images by the CSV's positions and the plan's task table
    row = results.iloc[0]
    items = plan.items[plan.items["task_id"] == row["Input.task_id"]].sort_values("position")
    ids = plan.images.set_index("image_no").loc[items["image_no"], "image_id"].to_numpy()
    picked = {ids[int(p)] for p in row["Answer.selected"].split(",") if p}
    mine = votes[(votes["annotator_id"] == f"mturk:{row['WorkerId']}") & (votes["task_id"] == row["Input.task_id"])]
    assert set(mine.loc[mine["selected"] == 1, "image_id"]) == picked
    local = pd.Timestamp(pd.to_datetime(row["SubmitTime"].replace(" PDT", ""), format="%a %b %d %H:%M:%S %Y"),
                         tz="America/Los_Angeles")
    assert mine["submitted_at"].iat[0] == local.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    code, stdout, err = run("annotate", "export", "--db", db_url, "--out", tmp_path / "ann.csv", "--qc", "none")
    assert code == 0, err
    ann = pd.read_csv(tmp_path / "ann.csv")
    assert ann["n_annotators"].max() == 3 and ann["n_annotators"].sum() == int((votes["is_control"] == 0).sum())


def test_bad_results_store_nothing(tmp_path, run):
    plan, plan_dir = make_plan(tmp_path, PlanSettings(annotators=3), n_ref=4, n_cand=6)
    run("annotate", "hits", "--plan", plan_dir, "--out", tmp_path / "hits", "--image-base-url", "https://x.org/")
    batch = pd.read_csv(tmp_path / "hits" / "batch_input.csv", dtype=str, keep_default_na=False)
    good = _results(batch, plan, np.random.default_rng(1))
    db_url = f"sqlite:///{tmp_path / 'votes.db'}"
    cases = [
        (good.drop(columns="Answer.task_id").assign(
            **{"Input.task_id": good["Input.task_id"].where(good.index != 2, "c9999-t01")}),
         r"row 3: task_id is not a task of this plan"),
        (good.assign(**{"Answer.task_id": good["Answer.task_id"].where(good.index != 2, "c0001-t01")}),
         r"row 3: Answer.task_id differs from Input.task_id"),
        (good.assign(**{"Answer.selected": good["Answer.selected"].where(good.index != 4, "1,x")}),
         r"row 5: Answer.selected '1,x' is not comma-separated positions"),
        (good.assign(**{"Answer.selected": good["Answer.selected"].where(good.index != 4, "999")}), "row 5: Answer.selected"),
        (good.assign(SubmitTime=good["SubmitTime"].where(good.index != 0, "yesterday")), "row 1: SubmitTime"),
        (good.assign(AssignmentStatus="Pending"), "AssignmentStatus must be"),
        (pd.concat([good, good.iloc[[0]]], ignore_index=True), "AssignmentId appears twice"),
        (good.drop(columns="WorkerId"), "missing column"),
        (pd.concat([good, good.iloc[[0]].assign(AssignmentId="other")], ignore_index=True),
         "the same worker answered this task twice"),
    ]
    for i, (frame, match) in enumerate(cases):
        csv = tmp_path / f"r{i}.csv"
        frame.to_csv(csv, index=False)
        code, _, err = run("annotate", "import-results", "--plan", plan_dir, "--db", db_url, "--results", csv)
        assert code == 1 and re.search(match, err), (match, err)
        assert len(err.strip().splitlines()) == 1
    more = pd.concat([good, good.iloc[[0, 1, 2]].assign(AssignmentId=["x1", "x2", "x3"],
                                                        WorkerId=["B1", "B2", "B3"])], ignore_index=True)
    more.to_csv(tmp_path / "more.csv", index=False)
    code, _, err = run("annotate", "import-results", "--plan", plan_dir, "--db", db_url, "--results", tmp_path / "more.csv")
    assert code == 1 and "would get 6 assignments, the plan asks for 3" in err
    with Database(db_url).transaction(write=False) as tx:
        assert tx.one("SELECT COUNT(*) FROM votes")[0] == 0 and tx.one("SELECT COUNT(*) FROM assignments")[0] == 0


def test_mturk_submit_times():
    assert parse_submit_time("Tue Jul 09 10:00:07 PDT 2024") == parse_submit_time("2024-07-09T17:00:07Z")
    assert parse_submit_time("Wed Jan 10 12:34:56 PST 2024") == parse_submit_time("2024-01-10T20:34:56+00:00")
    assert parse_submit_time("2024-01-10T20:34:56") is None and parse_submit_time("soon") is None
