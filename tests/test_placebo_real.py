"""Placebo replication staged inside one dataset: staging invariants on
synthetic votes, the CLI contract, and a run on the real ImageNet-ReaL votes."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from replication.cli import main
from replication.placebo import placebo_dict, run_placebo, stage_placebo
from replication.sampling import EDGES, frequency_bin


def synthetic_votes(rng, images=6000, classes=200, votes=5, models=4):
    """Annotations and correctness of one dataset: s ~ Beta(1.2, 0.8), k ~ Binom(votes, s),
    model m correct with probability 0.3 + 0.6 s (no shift anywhere)."""
    s = rng.beta(1.2, 0.8, images)
    ids = [f"img{i:05d}" for i in range(images)]
    cls = rng.integers(0, classes, images)
    ann = pd.DataFrame({"dataset": "imagenet-val", "image_id": ids, "class_id": cls,
                        "n_annotators": votes, "n_selected": rng.binomial(votes, s)})
    cor = pd.DataFrame({"dataset": "imagenet-val", "image_id": ids, "label": cls})
    for m in range(models):
        cor[f"model{m}"] = (rng.random(images) < 0.3 + 0.6 * s ** (1 + m / 2)).astype(np.int8)
    return ann, cor


def test_staging_invariants():
    ann, cor = synthetic_votes(np.random.default_rng(0))
    pl = stage_placebo(ann, cor, np.random.default_rng(1), matching_votes=2)
    ref = pl.annotations[pl.annotations["dataset"] == pl.reference]
    rep = pl.annotations[pl.annotations["dataset"] == pl.replication]
    assert (pl.annotations["n_annotators"] == 2).all() and (pl.pool["n_annotators"] == 2).all()
    assert set(rep["image_id"]) <= set(pl.pool["image_id"])
    assert not set(ref["image_id"]) & set(pl.pool["image_id"])
    # matching: the replication histogram over Recht's bins is the reference's, scaled and rounded
    ref_share = np.bincount(frequency_bin(ref["n_selected"] / 2, EDGES), minlength=5) / len(ref)
    rep_share = np.bincount(frequency_bin(rep["n_selected"] / 2, EDGES), minlength=5) / len(rep)
    assert np.allclose(ref_share, rep_share, atol=2 / len(rep))
    # thinning lowered the pool's held-out vote share
    assert pl.info["mean_heldout_share"]["pool"] < pl.info["mean_heldout_share"]["reference"] - 0.1
    # the correctness rows are the original images' rows
    merged = pl.correctness.merge(cor, on="image_id", suffixes=("", "_orig"))
    assert len(merged) == len(pl.correctness)
    assert (merged["model0"] == merged["model0_orig"]).all()


def test_placebo_removes_most_of_the_naive_gap_on_synthetic_votes():
    ann, cor = synthetic_votes(np.random.default_rng(2), images=20000, classes=400)
    pl, res = run_placebo(ann, cor, seed=3, matching_votes=2, n_bootstrap=100)
    d = placebo_dict(pl, res)
    naive = d["summary"]["adjusted_mean_gap"]["naive"]["value"]
    bb = d["summary"]["adjusted_mean_gap"]["betabinomial"]
    assert naive > 0.02                                  # selection alone makes a gap of several points
    assert abs(bb["value"]) < 0.5 * naive
    assert bb["ci"][0] < bb["value"] < bb["ci"][1]
    assert d["placebo"]["true_gap"] == 0.0 and d["placebo"]["n_models"] == 4


def test_placebo_cli_writes_the_contract_json(tmp_path):
    ann, cor = synthetic_votes(np.random.default_rng(4))
    ann.to_csv(tmp_path / "ann.csv", index=False)
    cor.to_parquet(tmp_path / "cor.parquet", index=False)
    out = tmp_path / "placebo.json"
    argv = ["placebo", "--annotations", str(tmp_path / "ann.csv"), "--correct", str(tmp_path / "cor.parquet"),
            "--bootstrap", "20", "--seed", "5", "--json", str(out)]
    assert main(argv) == 0
    d = json.loads(out.read_text())
    assert set(d) >= {"reference", "replication", "models", "summary", "placebo"}
    entry = d["models"]["model0"]
    assert set(entry) >= {"reference_accuracy", "replication_accuracy", "gap", "adjusted"}
    assert set(entry["adjusted"]) == {"naive", "jackknife", "betabinomial", "npmle"}
    assert len(entry["adjusted"]["npmle"]["ci"]) == 2
    assert np.isclose(entry["gap"], entry["reference_accuracy"] - entry["replication_accuracy"])
    # same seed, same result
    assert main(argv[:-1] + [str(tmp_path / "again.json")]) == 0
    assert json.loads((tmp_path / "again.json").read_text())["summary"] == d["summary"]


def test_placebo_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys):
    ann, cor = synthetic_votes(np.random.default_rng(6), images=300)
    ann.to_csv(tmp_path / "ann.csv", index=False)
    cor.iloc[:-5].to_csv(tmp_path / "cor.csv", index=False)
    out = tmp_path / "out.json"
    code = main(["placebo", "--annotations", str(tmp_path / "ann.csv"), "--correct", str(tmp_path / "cor.csv"),
                 "--seed", "0", "--json", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "have no correctness row" in err[0] and not out.exists()
    cor.to_csv(tmp_path / "cor_full.csv", index=False)
    code = main(["placebo", "--annotations", str(tmp_path / "ann.csv"), "--correct", str(tmp_path / "cor_full.csv"),
                 "--matching-votes", "5", "--seed", "0", "--json", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "at least 6 votes" in err[0] and not out.exists()


def test_placebo_on_real_imagenet_real_votes(reference_dir):
    ann = pd.read_csv(reference_dir / "real-reassessed-imagenet" / "real_votes_annotations.csv")
    cor = pd.read_parquet(reference_dir / "imagenetv2" / "recht2019_correct_top1.parquet")
    cor = cor[cor["dataset"] == "imagenet-val"]
    pl, res = run_placebo(ann, cor, seed=0, matching_votes=2, n_bootstrap=200)
    d = placebo_dict(pl, res)
    assert d["placebo"]["n_models"] == 67
    # the README's staging (the same seed and m as its `replication placebo` command): its numbers, pinned
    assert (pl.info["reference_images"], pl.info["pool_images"], pl.info["replication_images"]) == (12_463, 5_636, 1_800)
    raw = d["summary"]["mean_gap"]
    assert round(100 * raw, 2) == 3.93                   # selection alone: a gap of several points
    adjusted = {m: round(100 * v["value"], 2) for m, v in d["summary"]["adjusted_mean_gap"].items()}
    assert adjusted == {"naive": 3.93, "jackknife": 3.93, "betabinomial": 0.65, "npmle": 1.00}
    for method in ("betabinomial", "npmle"):
        s = d["summary"]["adjusted_mean_gap"][method]
        assert s["ci"][0] < 0 < s["ci"][1]
