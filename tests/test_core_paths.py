"""No output lands on an input or on another output: every command compares
resolved paths (``..``, symbolic and hard links) before it does any work."""
from __future__ import annotations

import os

import pytest

from replication.cli.paths import check_distinct_paths
from replication.errors import InputError


@pytest.fixture
def study(tmp_path, run):
    code, _, err = run("simulate", "--out", tmp_path / "sim", "--seed", "1", "--classes", "20", "--models", "3")
    assert code == 0, err
    return tmp_path / "sim"


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


@pytest.mark.parametrize("json_path, weights_path", [
    ("{s}/bias.json", "{s}/bias.json"),                  # two outputs, one file
    ("{s}/bias.json", "{s}/../sim/./bias.json"),         # the same after resolving ..
    ("{s}/annotations.csv", None),                       # an output on an input
    ("{s}/out.json", "{s}/x/../correct.parquet"),        # ... via ..
    ("{s}/link.csv", None),                              # ... via a symbolic link
    ("{s}/hard.csv", None),                              # ... via a hard link
])
def test_bias_refuses_colliding_paths(study, run, json_path, weights_path):
    os.symlink(study / "annotations.csv", study / "link.csv")
    os.link(study / "annotations.csv", study / "hard.csv")
    before = _snapshot(study)
    argv = ["bias", "--annotations", study / "annotations.csv", "--correct", study / "correct.parquet",
            "--methods", "naive", "--bootstrap", "0", "--json", json_path.format(s=study)]
    if weights_path:
        argv += ["--weights-out", weights_path.format(s=study)]
    code, out, err = run(*argv)
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1 and ("same path" in err or "is the input" in err), err
    assert _snapshot(study) == before  # nothing written, nothing overwritten


def test_accuracy_out_equal_to_correct_is_refused(study, run):
    before = (study / "correct.parquet").read_bytes()
    code, _, err = run("accuracy", "--correct", study / "correct.parquet", "--out", study / "." / "correct.parquet")
    assert code == 1 and "--out" in err and "--correct" in err
    assert (study / "correct.parquet").read_bytes() == before


def test_output_folders_hold_no_input_and_stay_out_of_input_folders(tmp_path, run):
    ref = tmp_path / "reference"
    (ref / "thompson").mkdir(parents=True)
    code, _, err = run("figures", "all", "--reference", ref, "--out", ref)
    assert code == 1 and "is the input --reference" in err
    code, _, err = run("figures", "all", "--reference", ref, "--out", ref / "figures")
    assert code == 1 and "inside the input folder" in err
    assert not (ref / "figures").exists()


def test_check_distinct_paths_unit(tmp_path):
    (tmp_path / "a.csv").write_text("x")
    check_distinct_paths({"--in": tmp_path / "a.csv"}, {"--json": tmp_path / "b.json"})
    check_distinct_paths({"dir": tmp_path}, {"--out": tmp_path / "matrix.parquet"})  # a file in an input folder is fine
    with pytest.raises(InputError, match="--json and --out are the same path"):
        check_distinct_paths({}, {"--json": tmp_path / "o", "--out": [tmp_path / "p", tmp_path / "q" / ".." / "o"]})
    with pytest.raises(InputError, match="lies inside the output folder"):
        check_distinct_paths({"--images": tmp_path / "plan" / "images.csv"}, output_dirs={"--out": tmp_path / "plan"})
    with pytest.raises(InputError, match="--json .* lies inside the output folder --out"):
        check_distinct_paths({}, {"--json": tmp_path / "d" / "x.json"}, {"--out": tmp_path / "d"})


def test_evaluate_writes_no_results_into_the_dataset(tmp_path, run):
    root = tmp_path / "v2"
    (root / "0").mkdir(parents=True)
    code, _, err = run("evaluate", "--model", "resnet18", "--weights", "random", "--dataset",
                       "imagenetv2-matched-frequency", "--root", root, "--out", root / "results")
    assert code == 1 and "inside the input folder --root" in err, err
    assert not (root / "results").exists()
