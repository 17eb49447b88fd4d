"""Handing tasks to annotators and storing their answers.

* A task is handed out at most N times at once (``tasks.taken < replicas``,
  a conditional UPDATE that the database serializes), never twice to one
  annotator while their earlier copy is open or submitted (a unique index),
  so every labelled image gets N votes from N distinct people.
* Among the open tasks an annotator gets the one that shares the fewest
  images with the tasks they already had (so control images repeat as
  little as the plan allows), then the one closest to complete (so images
  finish), then by task id.
* An assignment not submitted within the plan's timeout is reclaimed when
  someone next asks for work: its slot goes back to the pool. A submission
  after that is refused.
* A submission names the assignment it answers and carries the assignment's
  nonce; it is refused unless that assignment was handed to this annotator
  and is still open. All its votes go in one transaction, and the caller
  acknowledges only after the commit, so an acknowledged vote survives a crash.
"""
from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass

from replication.annotate.db import Database, Transaction

#: tries of a transaction that lost a race (PostgreSQL) before giving up
_RETRIES = 8


class AssignmentError(Exception):
    """A request that cannot be honoured; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Assignment:
    """A task handed to one annotator: what to show and how to answer."""

    assignment_id: str
    task_id: str
    class_id: int
    nonce: str
    expires_at: float
    image_nos: tuple[int, ...]   # by position


def _timeout(tx: Transaction) -> float:
    return float(tx.one("SELECT value FROM meta WHERE key = 'timeout_s'")[0])


def reclaim_expired(tx: Transaction, now: float) -> int:
    """Expire active assignments past their deadline and free their slots; returns how many."""
    n = 0
    for assignment_id, task_id in tx.all("SELECT assignment_id, task_id FROM assignments "
                                         "WHERE status = 'active' AND expires_at < ?", (now,)):
        if tx.execute("UPDATE assignments SET status = 'expired' WHERE assignment_id = ? AND status = 'active'",
                      (assignment_id,)).rowcount == 1:
            tx.execute("UPDATE tasks SET taken = taken - 1 WHERE task_id = ?", (task_id,))
            n += 1
    return n


def _load(tx: Transaction, assignment_id: str) -> Assignment:
    task_id, nonce, expires_at, class_id = tx.one(
        "SELECT a.task_id, a.nonce, a.expires_at, t.class_id FROM assignments a "
        "JOIN tasks t ON t.task_id = a.task_id WHERE a.assignment_id = ?", (assignment_id,))
    nos = tuple(int(r[0]) for r in tx.all("SELECT image_no FROM task_items WHERE task_id = ? ORDER BY position",
                                          (task_id,)))
    return Assignment(assignment_id, task_id, int(class_id), nonce, float(expires_at), nos)


def _choose(tx: Transaction, annotator_id: str) -> list[str]:
    """Open tasks this annotator may take, best first (see module doc)."""
    open_tasks = tx.all(
        "SELECT task_id, taken FROM tasks WHERE taken < replicas AND task_id NOT IN "
        "(SELECT task_id FROM assignments WHERE annotator_id = ? AND status <> 'expired')", (annotator_id,))
    if not open_tasks:
        return []
    overlap = dict(tx.all(
        "SELECT ti.task_id, COUNT(*) FROM task_items ti WHERE ti.image_no IN "
        "(SELECT s.image_no FROM assignments a JOIN task_items s ON s.task_id = a.task_id "
        " WHERE a.annotator_id = ? AND a.status <> 'expired') GROUP BY ti.task_id", (annotator_id,)))
    return [t for t, _ in sorted(open_tasks, key=lambda r: (overlap.get(r[0], 0), -r[1], r[0]))]


def next_assignment(db: Database, annotator_id: str, now: float | None = None) -> Assignment | None:
    """The annotator's open assignment (its deadline renewed), or a new one;
    None when no task is left for them."""
    for _ in range(_RETRIES):
        try:
            with db.transaction() as tx:
                t = time.time() if now is None else now
                timeout = _timeout(tx)
                reclaim_expired(tx, t)
                row = tx.one("SELECT assignment_id FROM assignments WHERE annotator_id = ? AND status = 'active' "
                             "ORDER BY issued_at, assignment_id LIMIT 1", (annotator_id,))
                if row is not None:
                    tx.execute("UPDATE assignments SET expires_at = ? WHERE assignment_id = ?", (t + timeout, row[0]))
                    return _load(tx, row[0])
                for task_id in _choose(tx, annotator_id):
                    if tx.execute("UPDATE tasks SET taken = taken + 1 WHERE task_id = ? AND taken < replicas",
                                  (task_id,)).rowcount != 1:
                        continue  # the last slot went to someone else a moment ago
                    assignment_id = secrets.token_urlsafe(12)
                    tx.execute("INSERT INTO assignments (assignment_id, task_id, annotator_id, nonce, status, "
                               "issued_at, expires_at) VALUES (?, ?, ?, ?, 'active', ?, ?)",
                               (assignment_id, task_id, annotator_id, secrets.token_urlsafe(24), t, t + timeout))
                    return _load(tx, assignment_id)
                return None
        except db.IntegrityError:  # a concurrent request of the same annotator took this task: choose again
            continue
    raise AssignmentError(503, "the server is busy; try again in a moment")


def submit(db: Database, annotator_id: str, assignment_id: str, nonce: str, selected: list[int],
           now: float | None = None) -> int:
    """Store the answers to one assignment: ``selected`` holds the positions
    (0-based) of the images the annotator selected. Returns the number of
    votes stored; raises :class:`AssignmentError` and stores nothing when the
    submission is not for an open assignment of this annotator."""
    if len(set(selected)) != len(selected):
        raise AssignmentError(422, "a position is selected twice")
    try:
        return _store(db, annotator_id, assignment_id, nonce, selected, time.time() if now is None else now)
    except db.IntegrityError:
        raise AssignmentError(409, "these answers conflict with votes stored already") from None


def _store(db: Database, annotator_id: str, assignment_id: str, nonce: str, selected: list[int], t: float) -> int:
    with db.transaction() as tx:
        row = tx.one("SELECT annotator_id, task_id, nonce, status FROM assignments WHERE assignment_id = ?",
                     (assignment_id,))
        if row is None or not hmac.compare_digest(row[0].encode(), annotator_id.encode()):
            raise AssignmentError(403, "this task was not handed to you")
        owner, task_id, expected_nonce, status = row
        if not hmac.compare_digest(expected_nonce.encode(), str(nonce).encode()):
            raise AssignmentError(403, "the form does not match the task it claims to answer")
        if status == "submitted":
            raise AssignmentError(409, "this task was submitted already")
        if status == "expired":
            raise AssignmentError(409, "this task expired and went to someone else; here is a new one")
        items = tx.all("SELECT position, image_no, is_control FROM task_items WHERE task_id = ? ORDER BY position",
                       (task_id,))
        bad = [p for p in selected if not 0 <= p < len(items)]
        if bad:
            raise AssignmentError(422, f"position {bad[0]} is not in this task (0..{len(items) - 1})")
        if tx.execute("UPDATE assignments SET status = 'submitted', submitted_at = ? "
                      "WHERE assignment_id = ? AND status = 'active'", (t, assignment_id)).rowcount != 1:
            raise AssignmentError(409, "this task was submitted already")
        tx.execute("UPDATE tasks SET done = done + 1 WHERE task_id = ?", (task_id,))
        chosen = set(selected)
        tx.executemany("INSERT INTO votes (annotator_id, task_id, image_no, assignment_id, position, selected, "
                       "is_control, submitted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       [(owner, task_id, int(no), assignment_id, int(pos), int(pos in chosen), int(ctrl), t)
                        for pos, no, ctrl in items])
    return len(items)
