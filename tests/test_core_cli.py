"""The bias, simulate and demo commands, and bad input through the CLI."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from by_hand import delete_d_by_hand

from replication.cli import main
from replication.simulate import SimulationConfig, simulate

REP = "imagenetv2-matched-frequency"


@pytest.fixture(scope="module")
def tables():
    study = simulate(SimulationConfig.preset("engstrom2020", n_classes=30, n_models=3), np.random.default_rng(0))
    return study.annotations, study.correctness


def _write(tmp_path, ann: pd.DataFrame, cor: pd.DataFrame, ann_name="ann.csv", cor_name="cor.csv"):
    a, c = tmp_path / ann_name, tmp_path / cor_name
    (ann.to_parquet if ann_name.endswith(".parquet") else ann.to_csv)(a, index=False)
    (cor.to_parquet if cor_name.endswith(".parquet") else cor.to_csv)(c, index=False)
    return a, c


def _bias(tmp_path, a, c, *extra):
    out, weights = tmp_path / "out.json", tmp_path / "w.csv"
    rc = main(["bias", "--annotations", str(a), "--correct", str(c), "--bootstrap", "30",
               "--weights-out", str(weights), "--json", str(out), *extra])
    return rc, out, weights


def test_bias_cli_writes_contract_json_and_weights(tmp_path, tables, capsys):
    a, c = _write(tmp_path, *tables, ann_name="ann.parquet")
    rc, out, weights = _bias(tmp_path, a, c, "--methods", "naive,jackknife", "--seed", "5")
    assert rc == 0
    d = json.loads(out.read_text())
    assert set(d) >= {"reference", "replication", "models", "summary"}
    assert set(d["summary"]["adjusted_mean_gap"]) == {"naive", "jackknife"}
    w = pd.read_csv(weights)
    assert list(w.columns) == ["dataset", "image_id", "naive", "jackknife"]
    assert (w["dataset"] == REP).all() and len(w) == (tables[0]["dataset"] == REP).sum()
    cor = tables[1].merge(w[["image_id"]], on="image_id")
    merged = w.merge(cor, on=["dataset", "image_id"])
    for m in ("naive", "jackknife"):
        for model in ("sim_model_00", "sim_model_02"):
            weighted = (merged[m] * merged[model]).mean()
            assert weighted == pytest.approx(d["models"][model]["adjusted"][m]["replication_accuracy"])
    assert "mean raw gap" in capsys.readouterr().out
    # same seed, same answer; no temporary files left behind
    rc, out2, _ = _bias(tmp_path, a, c, "--methods", "naive,jackknife", "--seed", "5")
    assert json.loads(out2.read_text()) == d
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ann.parquet", "cor.csv", "out.json", "w.csv"]


@pytest.mark.parametrize("d", [1, 3])
def test_bias_cli_jackknife_d_equals_the_formula(tmp_path, tables, d):
    a, c = _write(tmp_path, *tables)
    rc, out, _ = _bias(tmp_path, a, c, "--methods", "jackknife", "--jackknife-d", str(d), "--bootstrap", "0")
    assert rc == 0
    got = json.loads(out.read_text())["models"]
    for model in ("sim_model_00", "sim_model_02"):   # Engstrom et al.'s formula, written out in tests/by_hand.py
        want = delete_d_by_hand(*tables, model, d)
        assert got[model]["adjusted"]["jackknife"]["replication_accuracy"] == pytest.approx(want, abs=1e-12)


def _corrupt_ann(col, row, value):
    def f(ann, cor):
        ann = ann.copy()
        ann[col] = ann[col].astype(object)
        ann.loc[row, col] = value
        return ann, cor
    return f


def _dup_ann(ann, cor):
    return pd.concat([ann, ann.iloc[[4]]], ignore_index=True), cor


def _dup_cor(ann, cor):
    return ann, pd.concat([cor, cor.iloc[[2]]], ignore_index=True)


def _ann_without_correctness(ann, cor):
    return ann, cor.drop(index=[7]).reset_index(drop=True)


def _correctness_without_ann(ann, cor):
    return ann.drop(index=[9]).reset_index(drop=True), cor


def _bad_correct_value(ann, cor):
    cor = cor.copy()
    cor.loc[3, "sim_model_01"] = 2
    return ann, cor


def _unknown_dataset(ann, cor):
    ann = ann.copy()
    ann.loc[3, "dataset"] = "imagenet-vall"
    return ann, cor


BAD = {
    "unknown dataset": (_unknown_dataset, "ann.csv", "row 4", "unknown dataset 'imagenet-vall'"),
    "k > n": (_corrupt_ann("n_selected", 5, 11), "ann.csv", "row 6", "n_selected > n_annotators"),
    "n < 1": (_corrupt_ann("n_annotators", 2, 0), "ann.csv", "row 3", "n_annotators < 1"),
    "non-integer": (_corrupt_ann("n_selected", 8, 2.5), "ann.csv", "row 9", "not an integer"),
    "NaN": (_corrupt_ann("n_annotators", 1, np.nan), "ann.csv", "row 2", "missing or not a number"),
    "text": (_corrupt_ann("n_selected", 0, "lots"), "ann.csv", "row 1", "missing or not a number"),
    "duplicate annotation": (_dup_ann, "ann.csv", "row", "duplicate image_id"),
    "duplicate correctness": (_dup_cor, "cor.csv", "row", "duplicate image_id"),
    "annotated, not scored": (_ann_without_correctness, "cor.csv", "sim-ref-0000007", "no correctness row"),
    "scored, not annotated": (_correctness_without_ann, "ann.csv", "sim-ref-0000009", "no annotation row"),
    "correctness not 0/1": (_bad_correct_value, "cor.csv", "row 4", "not 0/1"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bias_cli_bad_input(tmp_path, tables, capsys, case):
    corrupt, file_named, where, what = BAD[case]
    a, c = _write(tmp_path, *corrupt(*tables))
    rc, out, weights = _bias(tmp_path, a, c)
    err = capsys.readouterr().err.strip()
    assert rc == 1
    assert len(err.splitlines()) == 1, err
    assert err.startswith("replication bias: error: ")
    assert file_named in err and where in err and what in err, err
    assert not out.exists() and not weights.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ann.csv", "cor.csv"]


@pytest.mark.parametrize("args,what", [
    (["--reference", "imagenet-vall"], "--reference: unknown dataset 'imagenet-vall'; known: imagenet-val,"),
    (["--replication", "imagenetv2-top-images"], "no annotation rows for dataset 'imagenetv2-top-images'"),
    (["--methods", "naive,magic"], "unknown method(s) magic; valid: "),
    (["--methods", "jackknife", "--jackknife-d", "10"], "needs more than 10 annotators"),
])
def test_bias_cli_bad_arguments(tmp_path, tables, capsys, args, what):
    a, c = _write(tmp_path, *tables)
    rc, out, weights = _bias(tmp_path, a, c, *args)
    err = capsys.readouterr().err.strip()
    assert rc == 1 and len(err.splitlines()) == 1 and what in err, err
    assert not out.exists() and not weights.exists()


def test_bias_cli_missing_file(tmp_path, tables, capsys):
    a, _ = _write(tmp_path, *tables)
    rc, out, _ = _bias(tmp_path, a, tmp_path / "nope.csv")
    err = capsys.readouterr().err
    assert rc == 1 and "nope.csv: no such file" in err and not out.exists()


def test_simulate_cli(tmp_path, capsys):
    out = tmp_path / "sim"
    assert main(["simulate", "--out", str(out), "--seed", "3", "--classes", "40", "--models", "4",
                 "--n-annotators", "9,11"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["annotations.csv", "correct.parquet", "truth.json"]
    ann = pd.read_csv(out / "annotations.csv")
    assert set(ann["n_annotators"]) == {9, 11} and ann["dataset"].nunique() == 2
    truth = json.loads((out / "truth.json").read_text())
    assert len(truth["models"]) == 4 and truth["config"]["shift"] == pytest.approx(0.11)
    assert "mean true gap" in capsys.readouterr().out
    again = tmp_path / "again"
    main(["simulate", "--out", str(again), "--seed", "3", "--classes", "40", "--models", "4", "--n-annotators", "9,11"])
    assert (again / "annotations.csv").read_bytes() == (out / "annotations.csv").read_bytes()
    assert main(["simulate", "--out", str(tmp_path / "x"), "--preset", "nope"]) == 1
    assert main(["simulate", "--out", str(tmp_path / "x"), "--n-annotators", "ten"]) == 1
    assert not (tmp_path / "x").exists()


def test_demo_recovers_the_truth_with_the_deconvolution_methods(tmp_path, capsys):
    """The demo's own study (seed 0): the deconvolution methods land within
    half a point of the simulated true mean gap (3.6 points); naive and
    jackknife stay more than 5 points off it."""
    from replication.demo import run_demo

    demo = run_demo(tmp_path / "demo", seed=0, n_bootstrap=20)
    for key in ("bias_json", "gaps_png", "report_html", "study_truth"):
        assert demo["paths"][key].stat().st_size > 1000
    assert demo["paths"]["gaps_png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    d = json.loads(demo["paths"]["bias_json"].read_text())
    assert list(d["summary"]["adjusted_mean_gap"]) == ["naive", "jackknife", "betabinomial", "npmle"]
    table = demo["table"]
    truth = json.loads(demo["paths"]["study_truth"].read_text())["summary"]["mean_true_gap"]
    assert table.loc["naive", "true gap"] == pytest.approx(100 * truth, abs=1e-9) == pytest.approx(3.6, abs=0.2)
    assert table.loc["raw (no correction)", "mean gap"] == pytest.approx(11.7, abs=0.8)
    for method in ("betabinomial", "npmle"):
        assert abs(table.loc[method, "error"]) < 0.5, (method, table.loc[method, "error"])
    for method in ("naive", "jackknife"):
        assert table.loc[method, "error"] > 5, (method, table.loc[method, "error"])
    assert table.loc["jackknife", "mean gap"] < table.loc["naive", "mean gap"] < table.loc["raw (no correction)", "mean gap"]
    assert "true gap" in demo["text"]
    assert main(["demo", "--out", str(tmp_path / "cli"), "--bootstrap", "20", "--methods", "naive"]) == 0
    printed = capsys.readouterr().out
    assert "raw (no correction)" in printed and (tmp_path / "cli" / "gaps.png").exists()
