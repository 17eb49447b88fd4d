"""Shared fixtures. Real published data is read from ../shared/reference
(never copied into the project): tests that need it skip with a visible reason
when it is absent, and fail instead when CI=true."""
from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
REFERENCE = Path(os.environ.get("REPLICATION_REFERENCE", REPO.parent / "shared" / "reference"))
IN_CI = os.environ.get("CI", "").lower() == "true"


def missing(reason: str) -> None:
    """Skip the test for a missing component with ``reason`` -- or fail it under
    ``CI=true``, where .ci/run installs every component the tests use."""
    if IN_CI:
        pytest.fail(f"{reason} -- required under CI=true (.ci/run installs it)", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def require_module(name: str) -> ModuleType:
    """``pytest.importorskip(name)`` that fails instead of skipping under ``CI=true``."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        missing(f"optional module {name!r} not installed ({exc})")


def require_program(name: str) -> str:
    """The path of the program ``name`` on PATH; skips (fails under CI) when absent."""
    path = shutil.which(name)
    if path is None:
        missing(f"program {name!r} not found on PATH")
    return path


def one_error(stderr: str) -> str:
    """The one ``error:`` line a failed command printed (warnings aside)."""
    lines = [ln for ln in stderr.splitlines() if ": error: " in ln]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The folder of real reference data, ../shared/reference."""
    if not REFERENCE.is_dir():
        missing(f"reference data not found at {REFERENCE} (set REPLICATION_REFERENCE)")
    return REFERENCE


@pytest.fixture
def run(capsys):
    """Call the ``replication`` entry point in-process: ``run(*argv)`` returns
    (exit code, stdout, stderr)."""
    from replication.cli import main

    def _run(*argv):
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err
    return _run
