"""Shared fixtures. Real published data is read from ../shared/reference
(never copied into the project): tests that need it skip with a visible reason
when it is absent, and fail instead when CI=true."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REFERENCE = Path(os.environ.get("REPLICATION_REFERENCE", REPO.parent / "shared" / "reference"))


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The folder of real reference data, ../shared/reference."""
    if not REFERENCE.is_dir():
        msg = f"reference data not found at {REFERENCE} (set REPLICATION_REFERENCE)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg + " -- required under CI=true")
        pytest.skip(msg)
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
