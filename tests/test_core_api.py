"""The package's public names resolve, and the command line starts light."""
from __future__ import annotations

import subprocess
import sys

import replication


def test_every_public_name_resolves():
    for name in replication.__all__:
        assert getattr(replication, name) is not None, name
    assert set(replication.__all__) <= set(dir(replication))


def test_help_does_not_import_the_numeric_stack():
    code = ("import sys; from replication.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('pandas', 'scipy', 'torch', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
