"""The replication set's own sampling rule (Threshold, TopImages) in the
simulator, and the selection model that `replication bias` picks for it."""
from __future__ import annotations

import json

import numpy as np
import pytest

from replication.cli import main
from replication.sampling import SELECTION_EDGES, THRESHOLD
from replication.simulate import SimulationConfig, simulate, write_study


def _study(replication: str, tmp_path):
    cfg = SimulationConfig.preset("engstrom2020", replication=replication, n_models=4, n_classes=500)
    study = simulate(cfg, np.random.default_rng(3))
    write_study(study, tmp_path)
    return study


def test_simulated_threshold_set_holds_only_frequent_images(tmp_path):
    study = _study("imagenetv2-threshold0.7", tmp_path)
    rep = study.annotations[study.annotations["dataset"] == "imagenetv2-threshold0.7"]
    assert len(rep) == 500 * 10
    assert (rep["n_selected"] / rep["n_annotators"] >= THRESHOLD).all()


def test_simulated_top_images_are_the_most_selected(tmp_path):
    study = _study("imagenetv2-top-images", tmp_path)
    rep = study.annotations[study.annotations["dataset"] == "imagenetv2-top-images"]
    assert len(rep) == 500 * 10
    # with 120 Beta(2,2) candidates per class and 10 annotators, the top 10 are almost all at k >= 8
    assert (rep["n_selected"] >= 8).mean() > 0.95


def test_bias_uses_the_threshold_rule_for_threshold_sets(tmp_path):
    _study("imagenetv2-threshold0.7", tmp_path)
    truth = json.loads((tmp_path / "truth.json").read_text())
    args = ["bias", "--annotations", str(tmp_path / "annotations.csv"), "--correct", str(tmp_path / "correct.parquet"),
            "--replication", "imagenetv2-threshold0.7", "--methods", "naive,betabinomial", "--bootstrap", "100"]
    assert main([*args, "--json", str(tmp_path / "default.json")]) == 0
    assert main([*args, "--selection-edges", "none", "--json", str(tmp_path / "none.json")]) == 0
    true_gap = truth["summary"]["mean_true_gap"]
    default = json.loads((tmp_path / "default.json").read_text())["summary"]["adjusted_mean_gap"]
    ignored = json.loads((tmp_path / "none.json").read_text())["summary"]["adjusted_mean_gap"]
    lo, hi = default["betabinomial"]["ci"]
    assert lo - 0.01 <= true_gap <= hi + 0.01  # the threshold selection model recovers the true gap
    assert abs(default["betabinomial"]["value"] - true_gap) < 0.015
    # treating the thresholded set as a random sample of its pool is far off
    assert abs(ignored["betabinomial"]["value"] - true_gap) > 0.03
    assert SELECTION_EDGES["imagenetv2-threshold0.7"] == (THRESHOLD,)


@pytest.mark.parametrize("text", ["0.7,0.2", "1.5", "a,b"])
def test_bad_selection_edges(tmp_path, capsys, text):
    _study("imagenetv2-threshold0.7", tmp_path)
    code = main(["bias", "--annotations", str(tmp_path / "annotations.csv"), "--correct",
                 str(tmp_path / "correct.parquet"), "--replication", "imagenetv2-threshold0.7",
                 "--selection-edges", text, "--json", str(tmp_path / "out.json")])
    assert code == 1
    assert "--selection-edges" in capsys.readouterr().err
    assert not (tmp_path / "out.json").exists()
