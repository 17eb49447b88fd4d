"""What the votes database holds besides assignments: the plan (images,
tasks), the annotators and their tokens, the votes read back as the contract
votes table, and the progress the admin page shows."""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd

from replication.annotate.db import Database
from replication.annotate.plan import Plan
from replication.errors import InputError

_NAME = re.compile(r"^[A-Za-z0-9_.:@-]{1,64}$")


def token_hash(token: str) -> str:
    """sha256 hex of a token: the database keeps hashes, never tokens."""
    return hashlib.sha256(token.encode()).hexdigest()


def tokens_equal(given: str, expected: str) -> bool:
    """Constant-time comparison of two secrets (by their hashes, so lengths do not leak)."""
    return hmac.compare_digest(token_hash(given), token_hash(expected))


def image_key(secret: str, image_no: int) -> str:
    """The opaque name of an image in URLs: an HMAC of its number, so URLs say
    nothing about the dataset (reference or candidate) and cannot be guessed."""
    return hmac.new(secret.encode(), str(int(image_no)).encode(), hashlib.sha256).hexdigest()[:32]


def load_plan(db: Database, plan: Plan) -> str:
    """Put ``plan`` into ``db`` (once; a database holds one plan) and return
    the database's image secret. Refuses a database that holds another plan."""
    db.create_schema()
    for _ in range(3):
        try:
            with db.transaction() as tx:
                row = tx.one("SELECT value FROM meta WHERE key = 'plan_id'")
                if row is not None:
                    if row[0] != plan.plan_id:
                        raise InputError(f"--db {db.url}: holds the votes of another plan ({row[0]}, this plan is "
                                         f"{plan.plan_id}); use a new database for a new plan")
                    return tx.one("SELECT value FROM meta WHERE key = 'image_secret'")[0]
                secret = secrets.token_hex(16)
                tx.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", [
                    ("plan_id", plan.plan_id), ("image_secret", secret),
                    ("annotators", str(plan.settings.annotators)), ("timeout_s", str(plan.settings.timeout_s))])
                tx.executemany("INSERT INTO images (image_no, dataset, image_id, class_id, role) VALUES (?, ?, ?, ?, ?)",
                               plan.images[["image_no", "dataset", "image_id", "class_id", "role"]]
                               .astype(object).itertuples(index=False))
                tasks = plan.tasks()
                tx.executemany("INSERT INTO tasks (task_id, class_id, n_items, replicas) VALUES (?, ?, ?, ?)",
                               [(t, int(c), int(n), plan.settings.annotators)
                                for t, c, n in tasks[["task_id", "class_id", "n_items"]].itertuples(index=False)])
                items = plan.items.assign(is_control=(plan.items["kind"] != "label").astype(int))
                tx.executemany("INSERT INTO task_items (task_id, position, image_no, is_control) VALUES (?, ?, ?, ?)",
                               items[["task_id", "position", "image_no", "is_control"]]
                               .astype(object).itertuples(index=False))
                return secret
        except db.IntegrityError:  # another process loaded it at the same moment: check again
            continue
    raise InputError(f"--db {db.url}: could not load the plan")


def plan_id(db: Database) -> str | None:
    """The id of the plan a database holds (None for an empty database)."""
    return db.meta("plan_id") if db.has_schema() else None


def add_annotators(db: Database, names: Sequence[str] = (), count: int = 0,
                   source: str = "web") -> list[tuple[str, str]]:
    """Create annotators (the given ``names`` and/or ``count`` generated ones)
    with fresh tokens; returns ``(annotator_id, token)`` pairs. Tokens are
    shown once: the database keeps only their hashes."""
    bad = [n for n in names if not _NAME.match(n)]
    if bad:
        raise InputError(f"annotator names may hold letters, digits and _.:@- (1-64 characters): {bad[0]!r}")
    if len(set(names)) != len(names):
        raise InputError("an annotator name is given twice")
    wanted = list(names) + [f"{source}-{secrets.token_hex(4)}" for _ in range(count)]
    now = time.time()
    out = [(name, secrets.token_urlsafe(24)) for name in wanted]
    try:
        with db.transaction() as tx:
            tx.executemany("INSERT INTO annotators (annotator_id, token_hash, source, created_at) VALUES (?, ?, ?, ?)",
                           [(name, token_hash(token), source, now) for name, token in out])
    except db.IntegrityError:
        with db.transaction(write=False) as tx:
            taken = [n for n in wanted if tx.one("SELECT 1 FROM annotators WHERE annotator_id = ?", (n,))]
        raise InputError(f"annotator(s) {', '.join(taken[:5]) or '?'} exist already") from None
    return out


def find_annotator(db: Database, token: str) -> str | None:
    """The annotator whose token this is, or None."""
    if not token or len(token) > 128:
        return None
    with db.transaction(write=False) as tx:
        row = tx.one("SELECT annotator_id, token_hash FROM annotators WHERE token_hash = ?", (token_hash(token),))
    return row[0] if row is not None and hmac.compare_digest(row[1], token_hash(token)) else None


def iso_utc(epoch: np.ndarray | pd.Series) -> pd.Series:
    """Seconds since 1970 -> ``2024-05-01T12:00:00.123456Z``."""
    return pd.Series(pd.to_datetime(np.asarray(epoch, float), unit="s", utc=True).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


def votes_frame(db: Database) -> pd.DataFrame:
    """Every stored vote as the contract votes table, plus ``target_class_id``
    (the task's class), ``assignment_id`` and ``source`` (web, mturk, ...)."""
    with db.transaction(write=False) as tx:
        rows = tx.all(
            "SELECT i.dataset, i.image_id, i.class_id, v.annotator_id, v.task_id, v.selected, v.submitted_at, "
            "v.is_control, t.class_id, v.assignment_id, a.source FROM votes v "
            "JOIN images i ON i.image_no = v.image_no JOIN tasks t ON t.task_id = v.task_id "
            "JOIN annotators a ON a.annotator_id = v.annotator_id "
            "ORDER BY v.submitted_at, v.assignment_id, v.position")
    cols = ["dataset", "image_id", "class_id", "annotator_id", "task_id", "selected", "submitted_at", "is_control",
            "target_class_id", "assignment_id", "source"]
    df = pd.DataFrame(rows, columns=cols)
    for col in ("class_id", "selected", "is_control", "target_class_id"):
        df[col] = df[col].astype(np.int64)
    df["submitted_at"] = iso_utc(df["submitted_at"]) if len(df) else pd.Series([], dtype=object)
    return df


#: SQL: 1 for a control vote answered correctly (positive = image of the task's class)
_CONTROL_CORRECT = ("CASE WHEN v.is_control = 1 AND ((i.class_id = t.class_id AND v.selected = 1) OR "
                    "(i.class_id <> t.class_id AND v.selected = 0)) THEN 1 ELSE 0 END")


def progress(db: Database) -> dict:
    """Counts for the admin page: tasks (done, in progress, open), votes per
    labelled image (a histogram), and each annotator's work and control accuracy."""
    with db.transaction(write=False) as tx:
        n_tasks, replicas_total, taken, done = tx.one(
            "SELECT COUNT(*), COALESCE(SUM(replicas), 0), COALESCE(SUM(taken), 0), COALESCE(SUM(done), 0) FROM tasks")
        complete = tx.one("SELECT COUNT(*) FROM tasks WHERE done = replicas")[0]
        n_label = tx.one("SELECT COUNT(DISTINCT image_no) FROM task_items WHERE is_control = 0")[0]
        histogram = tx.all("SELECT n, COUNT(*) FROM (SELECT image_no, COUNT(*) AS n FROM votes WHERE is_control = 0 "
                           "GROUP BY image_no) AS per_image GROUP BY n ORDER BY n")
        annotators = tx.all(
            "SELECT a.annotator_id, a.source, "
            "(SELECT COUNT(*) FROM assignments s WHERE s.annotator_id = a.annotator_id AND s.status = 'submitted'), "
            "(SELECT COUNT(*) FROM assignments s WHERE s.annotator_id = a.annotator_id AND s.status = 'active'), "
            f"COALESCE(SUM(v.is_control), 0), COALESCE(SUM({_CONTROL_CORRECT}), 0), MAX(v.submitted_at) "
            "FROM annotators a LEFT JOIN votes v ON v.annotator_id = a.annotator_id "
            "LEFT JOIN images i ON i.image_no = v.image_no LEFT JOIN tasks t ON t.task_id = v.task_id "
            "GROUP BY a.annotator_id, a.source ORDER BY a.annotator_id")
        n_votes = tx.one("SELECT COUNT(*) FROM votes")[0]
    votes_per_image = {int(n): int(c) for n, c in histogram}
    votes_per_image = {0: int(n_label - sum(votes_per_image.values())), **votes_per_image}
    return {
        "tasks": {"total": int(n_tasks), "complete": int(complete), "assignments_total": int(replicas_total),
                  "assignments_submitted": int(done), "assignments_active": int(taken - done),
                  "assignments_open": int(replicas_total - taken)},
        "images_to_label": int(n_label),
        "votes": int(n_votes),
        "votes_per_image": votes_per_image,
        "annotators": [{"annotator_id": a, "source": s, "submitted": int(sub), "active": int(act),
                        "controls": int(nc), "controls_correct": int(ok),
                        "control_accuracy": (ok / nc) if nc else None,
                        "last_submission": None if last is None else iso_utc([last]).iat[0]}
                       for a, s, sub, act, nc, ok, last in annotators],
    }
