"""Command-line failures end in one line, exit 1, and leave nothing written."""
from __future__ import annotations

import json

import pytest

from replication.cli import _one_line, main


@pytest.fixture(scope="module")
def sim5(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim5")
    assert main(["simulate", "--out", str(out), "--seed", "2", "--n-annotators", "5", "--models", "4"]) == 0
    return out


def _bias(sim, *extra):
    return ["bias", "--annotations", str(sim / "annotations.csv"), "--correct", str(sim / "correct.parquet"),
            "--bootstrap", "20", *extra]


def test_unwritable_output_is_one_line_and_writes_nothing(sim5, tmp_path, capsys):
    weights = tmp_path / "w.csv"
    code = main(_bias(sim5, "--weights-out", str(weights), "--json", str(sim5 / "annotations.csv" / "out.json")))
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1
    assert "is a file, not a folder" in err
    assert not weights.exists()
    assert main(_bias(sim5, "--json", str(tmp_path))) == 1  # a folder is no output file
    assert "it is a folder" in capsys.readouterr().err


def test_default_methods_leave_out_what_cannot_be_fitted(sim5, tmp_path, capsys):
    out = tmp_path / "b.json"
    assert main(_bias(sim5, "--json", str(out))) == 0
    payload = json.loads(out.read_text())
    assert set(payload["summary"]["adjusted_mean_gap"]) == {"naive", "jackknife"}
    assert set(payload["skipped_methods"]) == {"betabinomial", "npmle"}
    assert "5 annotators" in payload["skipped_methods"]["npmle"]
    # asked for by name, the same method is an error
    capsys.readouterr()
    assert main(_bias(sim5, "--methods", "naive,npmle", "--json", str(tmp_path / "c.json"))) == 1
    assert "n = 5 annotators" in capsys.readouterr().err
    assert not (tmp_path / "c.json").exists()


def test_missing_optional_package_names_the_extra():
    assert _one_line(ModuleNotFoundError("No module named 'torch'", name="torch")) == \
        'this needs the optional package \'torch\': pip install -e ".[eval]"'
    with pytest.raises(ModuleNotFoundError):  # a module of our own missing is a bug, not bad input
        _one_line(ModuleNotFoundError("No module named 'replication.nope'", name="replication.nope"))


def test_placebo_without_bootstrap(reference_dir, tmp_path):
    out = tmp_path / "p.json"
    code = main(["placebo", "--annotations", str(reference_dir / "real-reassessed-imagenet" / "real_votes_annotations.csv"),
                 "--correct", str(reference_dir / "imagenetv2" / "recht2019_correct_top1.parquet"),
                 "--methods", "naive", "--bootstrap", "0", "--seed", "1", "--json", str(out)])
    assert code == 0
    payload = json.loads(out.read_text())
    assert payload["placebo"]["coverage"] == {}
    assert payload["reference"] == payload["replication"] == "imagenet-val"  # contract: dataset ids
    assert payload["placebo"]["reference_half"] == "imagenet-val:placebo-reference"
    assert all(v["adjusted"]["naive"]["ci"] == [None, None] for v in payload["models"].values())
