"""Many annotators at once against a real server process, killed with SIGKILL
in the middle and restarted: no acknowledged vote lost, none duplicated, no
image over- or under-assigned, and the run completes. On SQLite and on
PostgreSQL. (A bigger concurrent run: ``benchmarks/annotate_e2e.py --concurrent``.)"""
from __future__ import annotations

import threading
import time
import zlib

import numpy as np
import pytest
from annotate_fixtures import ServerProcess, db_url, make_plan, postgres_server  # noqa: F401 (fixtures)
from conftest import require_module

from replication.annotate import store
from replication.annotate.db import Database
from replication.annotate.plan import PlanSettings

requests = require_module("requests")
require_module("uvicorn")


class Annotator(threading.Thread):
    """Fetches and answers tasks until none is left, riding out a server that
    goes away (retrying until ``deadline``); records every acknowledged answer."""

    def __init__(self, name: str, base: str, acked: list, deadline: float):
        super().__init__(daemon=True)
        self.name_, self.base, self.acked, self.deadline = name, base, acked, deadline
        self.rng = np.random.default_rng(zlib.crc32(name.encode()))
        self.error: BaseException | None = None
        self.token = ""

    def call(self, session, method, path, **kw):
        while time.time() < self.deadline:
            try:
                res = session.request(method, self.base + path, timeout=30, **kw)
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):  # the server went away
                time.sleep(0.05 + 0.1 * self.rng.random())
                continue
            if res.status_code >= 500:
                time.sleep(0.1)
                continue
            return res
        raise TimeoutError(f"{self.name_}: server unreachable")

    def run(self):
        try:
            with requests.Session() as s:
                task = self.call(s, "GET", f"/api/a/{self.token}/next").json()["task"]
                while task is not None:
                    picked = [int(i) for i in np.flatnonzero(self.rng.random(len(task["images"])) < 0.3)]
                    res = self.call(s, "POST", f"/api/a/{self.token}/submit",
                                    json={"assignment_id": task["assignment_id"], "nonce": task["nonce"],
                                          "selected": picked})
                    if res.status_code == 200:
                        self.acked.append((self.name_, task["assignment_id"], picked))
                        task = res.json()["task"]
                    elif res.status_code == 409:  # stored by an attempt whose answer was lost in the crash
                        task = self.call(s, "GET", f"/api/a/{self.token}/next").json()["task"]
                    else:
                        raise AssertionError(f"{res.status_code} {res.text}")
        except BaseException as exc:  # reported by the test
            self.error = exc


@pytest.mark.slow
def test_concurrent_annotators_and_kill_9(tmp_path, db_url):
    n_annotators, replicas = 60, 10
    plan, plan_dir = make_plan(tmp_path, PlanSettings(annotators=replicas, seed=3),
                               classes=tuple(range(24)), n_ref=12, n_cand=30, n_control=4)
    n_votes = len(plan.items) * replicas
    assert plan.items.groupby("task_id").size().eq(48).all() and n_votes >= 10_000
    db = Database(db_url)
    store.load_plan(db, plan)
    tokens = dict(store.add_annotators(db, [f"ann{i:02d}" for i in range(n_annotators)]))
    server = ServerProcess(plan_dir, db_url).start()
    acked: list = []
    threads = [Annotator(name, server.base, acked, time.time() + 300) for name in tokens]
    for t in threads:
        t.token = tokens[t.name_]
    try:
        t0 = time.time()
        for t in threads:
            t.start()
        while len(acked) < 0.3 * plan.items["task_id"].nunique() * replicas:  # about a third of the way
            assert time.time() - t0 < 120 and any(t.is_alive() for t in threads)
            time.sleep(0.01)
        server.kill()
        acked_before_kill = len(acked)
        time.sleep(0.5)
        server.start()
        for t in threads:
            t.join(timeout=300)
        elapsed = time.time() - t0
    finally:
        server.stop()
    errors = [t.error for t in threads if t.error is not None]
    assert not errors, errors[:3]
    assert 0 < acked_before_kill < len(acked)
    votes = store.votes_frame(db)
    # every acknowledged answer is stored, exactly as sent
    by_assignment = {a: g for a, g in votes.groupby("assignment_id")}
    for name, assignment_id, picked in acked:
        stored = by_assignment[assignment_id]
        assert set(stored["annotator_id"]) == {name}
        with db.transaction(write=False) as tx:
            positions = [r[0] for r in tx.all("SELECT position FROM votes WHERE assignment_id = ? AND selected = 1 "
                                              "ORDER BY position", (assignment_id,))]
        assert positions == picked
    # the run completed: every task done N times, every vote there once
    assert len(votes) == n_votes
    assert not votes.duplicated(["annotator_id", "task_id", "dataset", "image_id"]).any()
    labels = votes[votes["is_control"] == 0]
    per_image = labels.groupby(["dataset", "image_id"])["annotator_id"].agg(["size", "nunique"])
    assert len(per_image) == int(plan.images["role"].isin(["label", "both"]).sum())
    assert (per_image["size"] == replicas).all() and (per_image["nunique"] == replicas).all()
    prog = store.progress(db)
    assert prog["tasks"]["complete"] == prog["tasks"]["total"] and prog["tasks"]["assignments_active"] == 0
    assert len({a for _, a, _ in acked}) == len(acked)
    print(f"{db.backend}: {len(votes)} votes from {n_annotators} annotators in {elapsed:.1f}s; "
          f"{len(acked)} acknowledged submissions ({acked_before_kill} before the SIGKILL)")
    db.close()
