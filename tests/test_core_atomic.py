"""Atomic writing: temporaries that never look like results, a rerun that
removes those a killed writer left, and failures that leave nothing behind --
no file, no part of a set of outputs, no folder made for them."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from replication.cli import main
from replication.errors import InputError
from replication.io import atomic_path, is_temporary, write_outputs, write_table

REPO = Path(__file__).resolve().parents[1]


def _killed_writer(target: Path) -> Path:
    """Start a process that opens a temporary for ``target`` and writes a valid
    Parquet file into it, kill -9 it before its rename, return the temporary."""
    code = ("import sys, time, pandas as pd\n"
            "from replication.io import atomic_path\n"
            "with atomic_path(sys.argv[1]) as tmp:\n"
            "    pd.DataFrame({'x': [1, 2]}).to_parquet(tmp)\n"
            "    print(tmp, flush=True)\n"
            "    time.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(target)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    tmp = Path(proc.stdout.readline().strip())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    return tmp


def test_a_killed_writer_leaves_no_result_and_a_rerun_removes_its_temporary(tmp_path):
    target = tmp_path / "results" / "model.parquet"
    tmp = _killed_writer(target)
    assert tmp.is_file() and tmp.parent == target.parent and is_temporary(tmp)
    assert not target.exists()
    # the temporary holds a valid Parquet file but matches no result pattern
    assert pd.read_parquet(tmp)["x"].tolist() == [1, 2]
    assert list(target.parent.glob("*.parquet")) == [] and list(target.parent.rglob("*.parquet")) == []
    assert tmp.name.startswith(".model.parquet.") and tmp.suffix == ".tmp"
    # a rerun for the same target removes it; temporaries of other targets and other files stay
    other = _killed_writer(tmp_path / "results" / "other.parquet")
    keep = target.parent / ".model.parquet.notes"
    keep.write_text("mine")
    write_table(target, pd.DataFrame({"x": [3]}))
    assert pd.read_parquet(target)["x"].tolist() == [3]
    assert not tmp.exists() and other.exists() and keep.exists()


def test_a_live_writers_temporary_is_kept(tmp_path):
    target = tmp_path / "t.json"
    with atomic_path(target) as mine:   # this process's own, still open
        write_outputs({tmp_path / "u.json": {"a": 1}})
        write_outputs({target.with_name("t2.json"): {"a": 1}})
        assert mine.exists()
        mine.write_text("{}")
    assert target.read_text() == "{}" and not mine.exists()


def test_numpy_arrays_go_through_a_file_object(tmp_path):
    target = tmp_path / "chunk-00000.npy"
    with atomic_path(target) as tmp, open(tmp, "wb") as f:
        np.save(f, np.arange(5))
    assert np.load(target).tolist() == list(range(5))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chunk-00000.npy"]


def test_a_failed_write_leaves_no_folder_it_made(tmp_path):
    deep = tmp_path / "a" / "b" / "out.csv"
    (tmp_path / "keep").mkdir()
    with pytest.raises(RuntimeError):
        with atomic_path(deep):
            raise RuntimeError("boom")
    with pytest.raises(TypeError):   # an object that cannot be written, among good ones
        write_outputs({tmp_path / "keep" / "x" / "ok.json": {"a": 1}, tmp_path / "c" / "bad.json": {"a": object()}})
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["keep"]
    with pytest.raises(InputError, match="lies inside the other"):  # targets that cannot all be written
        write_outputs({tmp_path / "d" / "ok.json": {}, tmp_path / "keep" / "f": "x",
                       tmp_path / "keep" / "f" / "g.json": {}})
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["keep"]


def _fail(*_args, **_kwargs):
    raise InputError("injected failure after the work")


@pytest.mark.parametrize("argv,patch", [
    (["simulate", "--out", "{out}", "--classes", "20", "--models", "2"], "replication.io.atomic._json_text"),
    (["demo", "--out", "{out}", "--bootstrap", "2", "--methods", "naive"], "replication.demo.demo_report"),
    (["demo", "--out", "{out}", "--bootstrap", "2", "--methods", "naive"], "replication.io.atomic._json_text"),
    (["report", "--out", "{out}", "--bootstrap", "2"], "replication.io.atomic._json_text"),
    (["figures", "real_votes", "--reference", "{ref}", "--out", "{out}"], "replication.io.atomic._json_text"),
])
def test_a_failed_command_leaves_no_folder_and_no_part_of_its_outputs(tmp_path, monkeypatch, capsys, argv, patch,
                                                                     request):
    """Commands that write several files write them together at the end: a
    failure before, or while writing the last of them (here: the first JSON
    file, after tables and images), leaves nothing, not even the output folder."""
    ref = request.getfixturevalue("reference_dir") if "{ref}" in argv else tmp_path
    out = tmp_path / "out" / "nested"
    monkeypatch.setattr(patch, _fail)
    assert main([a.format(out=out, ref=ref) for a in argv]) == 1
    assert "injected failure" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    # and the same command, not failing, writes its folder in one go
    monkeypatch.undo()
    if argv[0] == "simulate":
        assert main([a.format(out=out, ref=ref) for a in argv]) == 0
        assert sorted(p.name for p in out.iterdir()) == ["annotations.csv", "correct.parquet", "truth.json"]

