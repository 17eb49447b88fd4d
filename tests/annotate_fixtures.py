"""Fixtures of the annotation tests: small plans over real JPEG files, a
throwaway PostgreSQL server, the database URLs to parametrize over, and a
server process on a free port."""
from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO, missing
from eval_fixtures import jpeg_bytes, photo

from replication.annotate.plan import Plan, PlanSettings, build_plan, validate_images

_spec = importlib.util.spec_from_file_location("annotate_e2e", REPO / "benchmarks" / "annotate_e2e.py")
annotate_e2e = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(annotate_e2e)
#: the server process and port helpers the benchmarks use too
ServerProcess, free_port = annotate_e2e.ServerProcess, annotate_e2e.free_port


def image_table(root: Path, classes=(0, 1, 2, 3), n_ref: int = 10, n_cand: int = 30, n_control: int = 0,
                reference: str = "imagenet-val", candidates: str = "candidates") -> pd.DataFrame:
    """Real JPEG files under ``root`` and their table ``dataset, image_id, class_id, path``.
    With ``n_control`` > 0 it adds that many control-only images per class
    (dataset ``controls``) and a ``role`` column (reference images ``both``)."""
    rows = []
    for cls in classes:
        for ds, n, role in ((reference, n_ref, "both"), (candidates, n_cand, "label"), ("controls", n_control, "control")):
            for i in range(n):
                path = root / ds / str(cls) / f"{ds[:3]}{cls}_{i}.jpg"
                if not path.exists():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(jpeg_bytes(photo(zlib.crc32(f"{ds}/{cls}/{i}".encode()), size=(16, 12))))
                rows.append((ds, f"{ds[:3]}{cls}_{i}", cls, str(path), role))
    table = pd.DataFrame(rows, columns=["dataset", "image_id", "class_id", "path", "role"])
    return table if n_control else table.drop(columns="role")


def make_plan(root: Path, settings: PlanSettings = PlanSettings(annotators=3), **table_kw) -> tuple[Plan, Path]:
    """A plan over :func:`image_table`'s images, written to ``root/plan``."""
    plan = build_plan(validate_images(image_table(root / "images", **table_kw)), settings)
    plan.write(root / "plan")
    return plan, root / "plan"


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL server (unix socket in a temporary folder, no
    TCP), run as the ``postgres`` user when the tests run as root; yields a
    function ``new_url()`` that creates a fresh database and returns its URL."""
    initdb, pg_ctl, createdb = _pg_bin("initdb"), _pg_bin("pg_ctl"), _pg_bin("createdb")
    if not (initdb and pg_ctl and createdb):
        missing("PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql")
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        missing(f"psycopg not installed ({exc}): pip install -e '.[annotate]'")
    root = Path(tempfile.mkdtemp(prefix="replication-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        import pwd

        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            missing("running as root and there is no 'postgres' user to run PostgreSQL as")
        os.chown(root, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, sock = root / "data", root
    env = {**os.environ, "LC_ALL": "C"}
    subprocess.run([*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"],
                   check=True, capture_output=True, env=env)
    port = free_port()
    opts = f"-c listen_addresses='' -k {sock} -p {port} -c fsync=off -c max_connections=200"
    subprocess.run([*as_user, pg_ctl, "-D", str(data), "-o", opts, "-l", str(root / "log"), "-w", "start"],
                   check=True, capture_output=True, env=env)
    counter = iter(range(10_000))

    def new_url() -> str:
        name = f"votes{next(counter)}"
        subprocess.run([*as_user, createdb, "-h", str(sock), "-p", str(port), "-U", "postgres", name],
                       check=True, capture_output=True, env=env)
        return f"postgresql://postgres@/{name}?host={sock}&port={port}"

    try:
        yield new_url
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True, env=env)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A fresh, empty database of each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'votes.db'}"
    return request.getfixturevalue("postgres_server")()
