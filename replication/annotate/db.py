"""The votes database: schema and transactions over plain DB-API, the same SQL
on SQLite (the embedded default) and PostgreSQL.

The database enforces the invariants, not the application:

* ``tasks.taken <= tasks.replicas``: a task is never handed out more than N times;
* one open (active or submitted) assignment per (task, annotator): N distinct
  annotators per task, hence per labelled image;
* ``UNIQUE (annotator_id, image_no) WHERE is_control = 0`` on votes: nobody
  ever votes twice on an image to label;
* one transaction per submission: a task's votes are stored all together or
  not at all, and a submission is acknowledged only after its commit.

SQLite runs in WAL mode with ``synchronous=FULL`` and a busy timeout; write
transactions start with ``BEGIN IMMEDIATE`` so concurrent writers wait for
each other instead of failing, and the writers of one process queue on a lock
first. Connections are per thread.

URLs: ``sqlite:///PATH`` (a plain path means SQLite too) or
``postgresql://user@host:port/db`` (any libpq URL, e.g.
``postgresql://me@/votes?host=/run/postgresql``), which needs the
``annotate`` extra (psycopg).
"""
from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from replication.errors import InputError

SCHEMA_VERSION = "1"

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS images (
        image_no INTEGER PRIMARY KEY,
        dataset TEXT NOT NULL,
        image_id TEXT NOT NULL,
        class_id INTEGER NOT NULL,
        role TEXT NOT NULL,
        UNIQUE (dataset, image_id))""",
    """CREATE TABLE IF NOT EXISTS tasks (
        task_id TEXT PRIMARY KEY,
        class_id INTEGER NOT NULL,
        n_items INTEGER NOT NULL,
        replicas INTEGER NOT NULL,
        taken INTEGER NOT NULL DEFAULT 0,
        done INTEGER NOT NULL DEFAULT 0,
        CHECK (taken >= 0 AND taken <= replicas),
        CHECK (done >= 0 AND done <= taken))""",
    """CREATE TABLE IF NOT EXISTS task_items (
        task_id TEXT NOT NULL REFERENCES tasks (task_id),
        position INTEGER NOT NULL,
        image_no INTEGER NOT NULL REFERENCES images (image_no),
        is_control INTEGER NOT NULL CHECK (is_control IN (0, 1)),
        PRIMARY KEY (task_id, position),
        UNIQUE (task_id, image_no))""",
    "CREATE INDEX IF NOT EXISTS task_items_image ON task_items (image_no)",
    """CREATE TABLE IF NOT EXISTS annotators (
        annotator_id TEXT PRIMARY KEY,
        token_hash TEXT UNIQUE,
        source TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS assignments (
        assignment_id TEXT PRIMARY KEY,
        task_id TEXT NOT NULL REFERENCES tasks (task_id),
        annotator_id TEXT NOT NULL REFERENCES annotators (annotator_id),
        nonce TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('active', 'submitted', 'expired')),
        issued_at DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION,
        submitted_at DOUBLE PRECISION)""",
    """CREATE UNIQUE INDEX IF NOT EXISTS assignments_once
        ON assignments (task_id, annotator_id) WHERE status <> 'expired'""",
    "CREATE INDEX IF NOT EXISTS assignments_annotator ON assignments (annotator_id, status)",
    "CREATE INDEX IF NOT EXISTS assignments_expiry ON assignments (status, expires_at)",
    """CREATE TABLE IF NOT EXISTS votes (
        annotator_id TEXT NOT NULL REFERENCES annotators (annotator_id),
        task_id TEXT NOT NULL REFERENCES tasks (task_id),
        image_no INTEGER NOT NULL REFERENCES images (image_no),
        assignment_id TEXT NOT NULL REFERENCES assignments (assignment_id),
        position INTEGER NOT NULL,
        selected INTEGER NOT NULL CHECK (selected IN (0, 1)),
        is_control INTEGER NOT NULL CHECK (is_control IN (0, 1)),
        submitted_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (annotator_id, task_id, image_no))""",
    """CREATE UNIQUE INDEX IF NOT EXISTS votes_label_once
        ON votes (annotator_id, image_no) WHERE is_control = 0""",
    "CREATE INDEX IF NOT EXISTS votes_assignment ON votes (assignment_id)",
)


class DatabaseURL:
    """A database URL: ``sqlite:///PATH`` or ``postgresql://...``.

    ``os.fspath`` gives the SQLite file (and ``""`` for PostgreSQL), so the
    command line's path checks see the database file like any other path.
    """

    def __init__(self, text: str):
        self.text = text

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"DatabaseURL({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DatabaseURL) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return "postgresql" if self.text.startswith(("postgresql://", "postgres://")) else "sqlite"

    @property
    def sqlite_path(self) -> str:
        """The SQLite database file (``sqlite:///x.db`` -> ``x.db``, ``sqlite:////abs/x.db`` -> ``/abs/x.db``)."""
        return self.text[len("sqlite:///"):]

    def __fspath__(self) -> str:
        return self.sqlite_path if self.backend == "sqlite" else ""


def database_url(text: str) -> DatabaseURL:
    """Parse ``--db``: a plain path means SQLite (argparse ``type``)."""
    text = str(text).strip()
    if not text:
        raise InputError("--db: empty database URL")
    if text.startswith(("postgresql://", "postgres://", "sqlite:///")):
        url = DatabaseURL(text)
    elif "://" in text:
        raise InputError(f"--db: unsupported database URL {text.split('://')[0]}://; use sqlite:///PATH or postgresql://...")
    else:
        url = DatabaseURL("sqlite:///" + text)
    if url.backend == "sqlite" and not url.sqlite_path:
        raise InputError("--db: sqlite:/// needs a file path (sqlite:///votes.db)")
    return url


class Transaction:
    """A cursor-like handle inside :meth:`Database.transaction`; SQL uses ``?``
    placeholders on both backends (never string formatting)."""

    def __init__(self, conn: Any, backend: str):
        self._conn = conn
        self._pg = backend == "postgresql"

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self._pg else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement; returns the cursor (``rowcount``, ``fetchall``)."""
        return self._conn.execute(self._sql(sql), tuple(params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement for each row of parameters."""
        cur = self._conn.cursor()
        try:
            cur.executemany(self._sql(sql), [tuple(r) for r in rows])
        finally:
            cur.close()

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Every row of a query."""
        return list(self.execute(sql, params).fetchall())

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple | None:
        """The first row of a query, or None."""
        return self.execute(sql, params).fetchone()


class Database:
    """Connections and transactions for one database URL.

    Parameters
    ----------
    url : str or DatabaseURL
    busy_timeout_s : float, default=30
        How long a SQLite writer waits for another to finish.
    """

    def __init__(self, url: str | DatabaseURL, *, busy_timeout_s: float = 30.0):
        self.url = url if isinstance(url, DatabaseURL) else database_url(url)
        self.busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()
        #: SQLite writers of this process queue here rather than in SQLite's busy handler, which polls (up to
        #: every 100 ms) and can starve a writer for longer than the busy timeout when many threads write
        self._writer = threading.Lock()
        if self.url.backend == "postgresql":
            import psycopg

            self.IntegrityError: type[Exception] = psycopg.IntegrityError
            self._psycopg = psycopg
        else:
            self.IntegrityError = sqlite3.IntegrityError

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.url.backend

    def _connect(self) -> Any:
        if self.backend == "postgresql":
            try:
                conn = self._psycopg.connect(str(self.url), autocommit=True)
            except self._psycopg.OperationalError as exc:
                raise InputError(f"--db: cannot connect to PostgreSQL: {' '.join(str(exc).split())}") from None
            if conn.info.parameter_status("server_encoding") == b"SQL_ASCII":
                conn.close()
                raise InputError("--db: the PostgreSQL database has encoding SQL_ASCII; create it with ENCODING 'UTF8'")
            return conn
        path = self.url.sqlite_path
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise InputError(f"--db: folder {parent} of the SQLite database does not exist")
        try:
            conn = sqlite3.connect(path, timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_s * 1000)}")
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as exc:
            raise InputError(f"--db {path}: not a usable SQLite database ({exc})") from None
        return conn

    def connection(self) -> Any:
        """This thread's connection (opened on first use)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
            with self._lock:
                self._all.append(conn)
        return conn

    @contextlib.contextmanager
    def transaction(self, write: bool = True) -> Iterator[Transaction]:
        """One transaction: committed when the block ends, rolled back on any
        exception. SQLite write transactions take the write lock at once."""
        conn = self.connection()
        if self.backend == "postgresql":
            with conn.transaction():
                yield Transaction(conn, self.backend)
            return
        if write and not self._writer.acquire(timeout=self.busy_timeout_s):
            raise sqlite3.OperationalError("database is locked (too many writers waiting)")
        try:
            if conn.in_transaction:  # left open by a failed COMMIT: never build on it
                conn.execute("ROLLBACK")
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield Transaction(conn, self.backend)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        finally:
            if write:
                self._writer.release()

    def create_schema(self) -> None:
        """Create the tables and indexes (idempotent)."""
        with self.transaction() as tx:
            for statement in SCHEMA:
                tx.execute(statement)
            tx.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?) ON CONFLICT (key) DO NOTHING",
                       (SCHEMA_VERSION,))
        version = self.meta("schema_version")
        if version != SCHEMA_VERSION:
            raise InputError(f"--db {self.url}: schema version {version}, this program writes {SCHEMA_VERSION}")

    def meta(self, key: str) -> str | None:
        """A value of the meta table, or None."""
        with self.transaction(write=False) as tx:
            row = tx.one("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else row[0]

    def has_schema(self) -> bool:
        """Whether the database already holds the votes tables."""
        table = ("SELECT 1 FROM information_schema.tables WHERE table_name = 'meta' "
                 "AND table_schema = current_schema()" if self.backend == "postgresql"
                 else "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'")
        with self.transaction(write=False) as tx:
            return tx.one(table) is not None

    def close(self) -> None:
        """Close every connection this object opened."""
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.close()
        self._local = threading.local()
