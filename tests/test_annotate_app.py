"""The annotation web application and its database, on SQLite and on a real
PostgreSQL server: a task round trip, refusals that store nothing, the image
allow-list, the admin page, N distinct annotators and reassignment after a
timeout."""
from __future__ import annotations

import re

import numpy as np
import pytest
from annotate_fixtures import db_url, make_plan, postgres_server  # noqa: F401 (fixtures)
from conftest import require_module

from replication.annotate import assign, store
from replication.annotate.db import Database
from replication.annotate.plan import PlanSettings
from replication.errors import InputError

require_module("fastapi")
require_module("httpx")
from fastapi.testclient import TestClient  # noqa: E402

from replication.annotate.app import Settings, create_app  # noqa: E402


def _client(tmp_path, db_url, settings=PlanSettings(annotators=3)):
    plan, plan_dir = make_plan(tmp_path, settings)
    app = create_app(Settings(plan_dir, db_url, "admin-secret"))
    return plan, app, TestClient(app)


def _counts(db: Database) -> tuple[int, int, int]:
    with db.transaction(write=False) as tx:
        return (tx.one("SELECT COUNT(*) FROM votes")[0],
                tx.one("SELECT COUNT(*) FROM assignments WHERE status = 'submitted'")[0],
                tx.one("SELECT COALESCE(SUM(done), 0) FROM tasks")[0])


def test_task_round_trip_stores_exactly_the_selection(tmp_path, db_url):
    plan, app, client = _client(tmp_path, db_url)
    db = app.state.service.db
    (alice, token), = store.add_annotators(db, ["alice"])
    page = client.get(f"/a/{token}")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer" and page.headers["cache-control"] == "no-store"
    task = client.get(f"/api/a/{token}/next").json()["task"]
    assert task["assignment_id"] in page.text  # the page embeds the same (open) assignment
    images = task["images"]
    assert all(re.fullmatch(r"/img/[0-9a-f]{32}", u) for u in images)  # nothing about datasets or files
    shot = client.get(images[0])
    assert shot.status_code == 200 and shot.headers["content-type"] == "image/jpeg"
    assert "immutable" in shot.headers["cache-control"] and shot.content[:3] == b"\xff\xd8\xff"
    with db.transaction(write=False) as tx:
        task_id = tx.one("SELECT task_id FROM assignments WHERE assignment_id = ?", (task["assignment_id"],))[0]
    items = plan.items[plan.items["task_id"] == task_id].sort_values("position")
    assert task["class_names"] == list(plan.classes[int(items["class_id"].iat[0])].names)
    picked = [1, 4, len(images) - 1]
    res = client.post(f"/api/a/{token}/submit",
                      json={"assignment_id": task["assignment_id"], "nonce": task["nonce"], "selected": picked})
    assert res.status_code == 200 and res.json()["submitted"] == 1
    assert res.json()["task"]["assignment_id"] != task["assignment_id"]  # the next task comes with the answer
    votes = store.votes_frame(db)
    assert len(votes) == len(items) and set(votes["annotator_id"]) == {"alice"} and set(votes["task_id"]) == {task_id}
    # independent: the plan's image at each picked position, looked up in the plan's own tables
    expected = plan.images.set_index("image_no").loc[items["image_no"].iloc[picked], "image_id"]
    assert sorted(votes.loc[votes["selected"] == 1, "image_id"]) == sorted(expected)
    kinds = items.set_index(plan.images.set_index("image_no").loc[items["image_no"], "image_id"].to_numpy())["kind"]
    assert (votes["is_control"].to_numpy() == (kinds.loc[votes["image_id"]] != "label").to_numpy()).all()
    assert votes["submitted_at"].str.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$").all()


def test_refusals_store_nothing(tmp_path, db_url):
    plan, app, client = _client(tmp_path, db_url)
    db = app.state.service.db
    (_, alice), (_, bob) = store.add_annotators(db, ["alice", "bob"])
    task = client.get(f"/api/a/{alice}/next").json()["task"]
    url = f"/api/a/{alice}/submit"
    good = {"assignment_id": task["assignment_id"], "nonce": task["nonce"], "selected": [0, 2]}
    before = _counts(db)
    cases = [
        (url, {**good, "nonce": "forged"}, 403),
        (url, {**good, "nonce": task["nonce"][:-1] + ("A" if task["nonce"][-1] != "A" else "B")}, 403),
        (url, {**good, "assignment_id": "not-an-assignment"}, 403),
        (f"/api/a/{bob}/submit", good, 403),               # bob answering alice's task
        (url, {**good, "selected": [0, 0]}, 422),          # a position twice
        (url, {**good, "selected": [len(task["images"])]}, 422),  # outside the task
        (url, {**good, "selected": [-1]}, 422),
        (url, {**good, "selected": ["x"]}, 422),
        (url, {k: v for k, v in good.items() if k != "nonce"}, 422),
        (url, {**good, "extra": 1}, 422),
        ("/api/a/not-a-token/submit", good, 404),
        ("/api/a//submit", good, 404),
    ]
    for path, body, status in cases:
        res = client.post(path, json=body)
        assert res.status_code == status, (path, body, res.text)
        assert _counts(db) == before
    assert client.post(url, content=b"selected=1", headers={"content-type": "text/plain"}).status_code == 422
    assert client.post(url, content=b"{not json", headers={"content-type": "application/json"}).status_code == 422
    assert _counts(db) == before
    assert client.post(url, json=good).status_code == 200
    after = _counts(db)
    assert after[1] == before[1] + 1
    replay = client.post(url, json=good)
    assert replay.status_code == 409 and "submitted already" in replay.json()["detail"]
    assert _counts(db) == after
    assert client.get("/a/not-a-token").status_code == 404
    assert "not valid" in client.get("/a/not-a-token").text


def test_images_only_from_the_plan(tmp_path):
    plan, app, client = _client(tmp_path, f"sqlite:///{tmp_path / 'v.db'}")
    secret = store.load_plan(app.state.service.db, plan)
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(b"\xff\xd8\xff" + b"0" * 20)
    for path in ("/img/" + "0" * 32, "/img/../../etc/passwd", "/img/..%2F..%2Fetc%2Fpasswd", f"/img/{outside}",
                 "/img/" + store.image_key(secret, len(plan.images)), "/static/../plan.py", "/static/%2e%2e/db.py"):
        assert client.get(path).status_code == 404, path
    assert client.get("/img/" + store.image_key(secret, 0)).status_code == 200


def test_admin_page_and_links(tmp_path, db_url):
    plan, app, client = _client(tmp_path, db_url)
    assert client.get("/admin/wrong").status_code == 404
    assert client.get("/api/admin/wrong/progress").status_code == 404
    assert client.post("/api/admin/wrong/annotators", json={"count": 1}).status_code == 404
    made = client.post("/api/admin/admin-secret/annotators", json={"names": ["ann"], "count": 2}).json()["annotators"]
    assert len(made) == 3 and made[0]["annotator_id"] == "ann"
    token = made[0]["link"].rsplit("/", 1)[1]
    task = client.get(f"/api/a/{token}/next").json()["task"]
    n = len(task["images"])
    client.post(f"/api/a/{token}/submit", json={"assignment_id": task["assignment_id"], "nonce": task["nonce"],
                                                "selected": list(range(n))})
    prog = client.get("/api/admin/admin-secret/progress").json()
    assert prog["tasks"]["assignments_submitted"] == 1 and prog["votes"] == n
    ann = {a["annotator_id"]: a for a in prog["annotators"]}
    # selecting everything: positives right, negatives wrong (independently from the plan's kinds)
    db = app.state.service.db
    with db.transaction(write=False) as tx:
        task_id = tx.one("SELECT task_id FROM assignments WHERE assignment_id = ?", (task["assignment_id"],))[0]
    kinds = plan.items.loc[plan.items["task_id"] == task_id, "kind"]
    assert ann["ann"]["controls"] == int((kinds != "label").sum())
    assert ann["ann"]["controls_correct"] == int((kinds == "positive").sum())
    page = client.get("/admin/admin-secret")
    assert page.status_code == 200 and "ann" in page.text and "Votes per image" in page.text
    assert client.post("/api/admin/admin-secret/annotators", json={"names": ["ann"]}).status_code == 409


def test_distinct_annotators_and_reassignment_after_timeout(tmp_path, db_url):
    plan, plan_dir = make_plan(tmp_path, PlanSettings(annotators=2, timeout_s=60), classes=(0, 1), n_ref=5, n_cand=10)
    db = Database(db_url)
    store.load_plan(db, plan)
    store.add_annotators(db, ["a", "b", "c", "d"])
    n_tasks = plan.items["task_id"].nunique()
    a = assign.next_assignment(db, "a", now=0.0)
    assert assign.next_assignment(db, "a", now=5.0).assignment_id == a.assignment_id  # the open one again
    b = assign.next_assignment(db, "b", now=1.0)
    assert b.task_id == a.task_id  # the task closest to complete first
    c = assign.next_assignment(db, "c", now=2.0)
    assert c.task_id != a.task_id  # a task is never handed out more than N = 2 times at once
    # a abandons: after the timeout (renewed at t=5 to 65) the slot goes to d, and a's late answer is refused
    d = assign.next_assignment(db, "d", now=70.0)
    assert d.task_id == a.task_id
    with pytest.raises(assign.AssignmentError) as late:
        assign.submit(db, "a", a.assignment_id, a.nonce, [0], now=71.0)
    assert late.value.status == 409
    rng = np.random.default_rng(0)
    for who in ("b", "c", "d", "a", "b", "c", "d", "a") * n_tasks:
        got = assign.next_assignment(db, who, now=80.0)
        if got is not None:
            assign.submit(db, who, got.assignment_id, got.nonce,
                          [int(i) for i in np.flatnonzero(rng.random(len(got.image_nos)) < 0.5)], now=81.0)
    votes = store.votes_frame(db)
    labels = votes[votes["is_control"] == 0]
    per_image = labels.groupby(["dataset", "image_id"])["annotator_id"].agg(["size", "nunique"])
    assert len(per_image) == int(plan.images["role"].isin(["label", "both"]).sum())
    assert (per_image["size"] == 2).all() and (per_image["nunique"] == 2).all()
    assert store.progress(db)["tasks"]["complete"] == n_tasks
    assert assign.next_assignment(db, "a", now=90.0) is None
    db.close()


def test_broken_plans_and_databases_are_refused(tmp_path):
    plan, plan_dir = make_plan(tmp_path)
    victim = plan.images["path"].iat[5]
    (tmp_path / "images" / "gone.jpg").write_bytes(open(victim, "rb").read())
    import os

    os.remove(victim)
    db_file = tmp_path / "v.db"
    with pytest.raises(InputError, match=r"images.csv: 1 image file\(s\) cannot be served: row 6 .* \(missing\)"):
        create_app(Settings(plan_dir, f"sqlite:///{db_file}", "x"))
    assert not db_file.exists()  # refused before the database was touched
    with open(victim, "wb") as fh:
        fh.write(b"not an image at all")
    with pytest.raises(InputError, match="not a JPEG"):
        create_app(Settings(plan_dir, f"sqlite:///{db_file}", "x"))
    os.remove(victim)
    os.rename(tmp_path / "images" / "gone.jpg", victim)
    create_app(Settings(plan_dir, f"sqlite:///{db_file}", "x"))
    other, other_dir = make_plan(tmp_path / "other", PlanSettings(annotators=4))
    with pytest.raises(InputError, match="holds the votes of another plan"):
        create_app(Settings(other_dir, f"sqlite:///{db_file}", "x"))
    (plan_dir / "tasks.csv").write_text((plan_dir / "tasks.csv").read_text().replace(",label\n", ",positive\n", 1))
    with pytest.raises(InputError, match="changed after planning"):
        create_app(Settings(plan_dir, f"sqlite:///{db_file}", "x"))
