"""SelectionBiasEstimator / BiasResults and the simulator."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from replication.errors import InputError
from replication.estimators.results import SelectionBiasEstimator
from replication.io import load_annotations, load_correctness
from replication.simulate import SimulationConfig, simulate, write_study
from replication.study import StudyData


@pytest.fixture(scope="module")
def small_study():
    config = SimulationConfig.preset("engstrom2020", n_classes=100, n_models=5)
    return simulate(config, np.random.default_rng(0))


@pytest.fixture(scope="module")
def small_results(small_study):
    est = SelectionBiasEstimator(n_bootstrap=200, random_state=1)
    return est.fit(small_study.annotations, small_study.correctness)


def test_to_dict_is_the_contract_json(small_results, small_study):
    d = json.loads(json.dumps(small_results.to_dict()))
    assert d["reference"] == "imagenet-val" and d["replication"] == "imagenetv2-matched-frequency"
    assert set(d["models"]) == set(small_study.truth.index)
    for entry in d["models"].values():
        assert {"reference_accuracy", "replication_accuracy", "gap", "adjusted"} <= set(entry)
        assert entry["gap"] == pytest.approx(entry["reference_accuracy"] - entry["replication_accuracy"])
        assert set(entry["adjusted"]) == {"naive", "jackknife"}
        for adj in entry["adjusted"].values():
            lo, hi = adj["ci"]
            assert lo < adj["gap"] < hi
            assert adj["gap"] == pytest.approx(entry["reference_accuracy"] - adj["replication_accuracy"])
            assert 0 <= adj["replication_accuracy"] <= 1
    s = d["summary"]
    assert s["mean_gap"] == pytest.approx(np.mean([e["gap"] for e in d["models"].values()]))
    for m, v in s["adjusted_mean_gap"].items():
        assert v["value"] == pytest.approx(np.mean([e["adjusted"][m]["gap"] for e in d["models"].values()]))
        assert v["ci"][0] < v["value"] < v["ci"][1]


def test_raw_accuracies_and_weights(small_results, small_study):
    ann, cor = small_study.annotations, small_study.correctness
    models = list(small_study.truth.index)
    acc = cor.groupby("dataset")[models].mean()
    assert np.allclose(small_results.reference_accuracy[models], acc.loc["imagenet-val"])
    assert np.allclose(small_results.replication_accuracy[models], acc.loc["imagenetv2-matched-frequency"])
    for m in ("naive", "jackknife"):
        w = small_results.weights(m)
        assert list(w.columns) == ["dataset", "image_id", "weight"]
        assert len(w) == (ann["dataset"] == "imagenetv2-matched-frequency").sum()
        assert w["weight"].mean() == pytest.approx(1.0)
        merged = w.merge(cor, on=["dataset", "image_id"])
        weighted = (merged["weight"].to_numpy()[:, None] * merged[models].to_numpy()).mean(axis=0)
        assert np.allclose(weighted, small_results.adjusted_accuracy[m][models])
    frame = small_results.weights_frame()
    assert list(frame.columns) == ["dataset", "image_id", "naive", "jackknife"]
    with pytest.raises(KeyError):
        small_results.weights("npmle-not-fitted")


def test_conf_int_and_summary(small_results):
    ci = small_results.conf_int(0.05)
    assert list(ci.columns) == ["lower", "upper"]
    assert (ci["lower"] <= ci["upper"]).all()
    wide, narrow = small_results.conf_int(0.01), small_results.conf_int(0.5)
    assert ((wide["upper"] - wide["lower"]) >= (narrow["upper"] - narrow["lower"])).all()
    text = small_results.summary().as_text()
    assert "naive gap" in text and "jackknife gap" in text and "mean raw gap" in text
    assert "<table" in small_results.summary().as_html()
    bd = small_results.bootstrap_distribution
    assert bd.reference_accuracy.shape == (200, 5) and bd.adjusted_accuracy["jackknife"].shape == (200, 5)


def test_same_seed_same_result_and_studydata_input(small_study):
    a = SelectionBiasEstimator(n_bootstrap=50, random_state=3).fit(small_study.annotations, small_study.correctness)
    b = SelectionBiasEstimator(n_bootstrap=50, random_state=3).fit(
        StudyData.from_tables(small_study.annotations, small_study.correctness))
    assert a.to_dict() == b.to_dict()
    c = SelectionBiasEstimator(n_bootstrap=50, random_state=4).fit(small_study.annotations, small_study.correctness)
    assert a.to_dict() != c.to_dict()


def test_bad_estimator_arguments(small_study):
    with pytest.raises(InputError, match="valid: .*naive"):
        SelectionBiasEstimator(("naive", "bogus")).fit(small_study.annotations, small_study.correctness)
    with pytest.raises(InputError, match="n_bootstrap"):
        SelectionBiasEstimator(n_bootstrap=-1).fit(small_study.annotations, small_study.correctness)
    with pytest.raises(InputError, match="method_options"):
        SelectionBiasEstimator(("naive",), method_options={"jackknife": {"d": 2}}).fit(
            small_study.annotations, small_study.correctness)


def test_bootstrap_intervals_cover_the_truth_at_the_nominal_rate():
    """Without matching bias (replication drawn like the reference) the naive
    estimate is unbiased; its per-model 95% intervals should cover the true
    gap (here 0) for about 95% of 67 models: at least 55 (binomial 1% tail)."""
    config = SimulationConfig.preset("engstrom2020", candidate_prior=(8.0, 2.0), shift=0.0, n_classes=300)
    study = simulate(config, np.random.default_rng(5))
    res = SelectionBiasEstimator(("naive",), n_bootstrap=300, random_state=6).fit(study.annotations,
                                                                                   study.correctness)
    ci = res.conf_int().xs("adjusted_gap[naive]", level="quantity")
    covered = ((ci["lower"] <= 0) & (0 <= ci["upper"])).sum()
    assert covered >= 55


def test_engstrom2020_preset_reproduces_the_published_picture():
    study = simulate(SimulationConfig.preset("engstrom2020"), np.random.default_rng(11))
    t = study.truth
    cor = study.correctness
    acc = cor.groupby("dataset")[list(t.index)].mean()
    raw = (acc.loc["imagenet-val"] - acc.loc["imagenetv2-matched-frequency"]).mean()
    # sampling sd of a mean gap over 67 models x 20,000/10,000 images is ~0.1 points; the
    # preset's calibration itself is good to ~0.2 points
    assert raw == pytest.approx(0.117, abs=0.006)
    assert t["gap"].mean() == pytest.approx(0.036, abs=0.002)
    assert t["expected_raw_gap"].mean() == pytest.approx(raw, abs=0.004)
    assert 0.5 < t["reference_accuracy"].min() and t["reference_accuracy"].max() < 0.9
    counts = study.annotations["dataset"].value_counts()
    assert counts["imagenet-val"] == 20_000 and counts["imagenetv2-matched-frequency"] == 10_000
    s = study.images.groupby("dataset")["true_s"].mean()
    assert s["imagenetv2-matched-frequency"] < s["imagenet-val"] - 0.05


def test_simulated_truth_is_the_estimand():
    """With many images, accuracy on replication images reweighted by the TRUE s
    density ratio equals the truth's adjusted replication accuracy."""
    config = SimulationConfig.preset("engstrom2020", n_models=3, n_classes=1000, replication_per_class=40,
                                     candidates_per_class=400)
    study = simulate(config, np.random.default_rng(2))
    rep = study.images["dataset"] == "imagenetv2-matched-frequency"
    from scipy import stats
    s = study.images.loc[rep, "true_s"].to_numpy()
    # density of the matched set's true s, estimated on a histogram; the ratio reweights it to Beta(8, 2)
    hist, edges = np.histogram(s, bins=40, range=(0, 1), density=True)
    b = np.clip(np.digitize(s, edges) - 1, 0, 39)
    w = stats.beta.pdf(s, 8, 2) / np.maximum(hist[b], 1e-9)
    w /= w.mean()
    correct = study.correctness.loc[rep.to_numpy(), list(study.truth.index)].to_numpy()
    est = (w[:, None] * correct).mean(axis=0)
    se = np.sqrt(((w[:, None] * correct - est) ** 2).mean(axis=0) / len(s))
    assert np.all(np.abs(est - study.truth["adjusted_replication_accuracy"].to_numpy()) < 4 * se + 0.005)


def test_variable_annotators_and_writer(tmp_path):
    config = SimulationConfig.preset("engstrom2020", n_classes=50, n_models=4, n_annotators=(8, 10, 12))
    study = simulate(config, np.random.default_rng(0))
    assert set(study.annotations["n_annotators"]) == {8, 10, 12}
    paths = write_study(study, tmp_path, annotations_format="parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["annotations.parquet", "correct.parquet", "truth.json"]
    ann = load_annotations(paths["annotations"])
    cor = load_correctness(paths["correct"])
    pd.testing.assert_frame_equal(ann, study.annotations, check_dtype=False)
    assert list(cor.columns[:3]) == ["dataset", "image_id", "label"]
    truth = json.loads(paths["truth"].read_text())
    assert set(truth["models"]) == set(study.truth.index)
    assert truth["models"]["sim_model_00"]["gap"] == pytest.approx(study.truth.loc["sim_model_00", "gap"])
    res = SelectionBiasEstimator(n_bootstrap=20, random_state=0).fit(ann, cor)
    assert np.isfinite(res.adjusted_accuracy["jackknife"]).all()


def test_simulation_config_validation():
    with pytest.raises(ValueError, match="unknown preset"):
        SimulationConfig.preset("nope")
    with pytest.raises(ValueError, match="n_annotators"):
        simulate(SimulationConfig(n_annotators=0), np.random.default_rng(0))
    with pytest.raises(ValueError, match="candidate_prior"):
        simulate(SimulationConfig(candidate_prior=(0.0, 1.0)), np.random.default_rng(0))


def test_params_line_up_with_conf_int_and_alpha_is_the_estimators(small_results, small_study):
    """statsmodels' split, as LineFit: ``params`` and ``conf_int()`` share their
    (model, quantity) rows, and ``alpha`` sets the default level."""
    params, ci = small_results.params, small_results.conf_int()
    assert params.index.equals(ci.index) and params.index.names == ["model", "quantity"]
    assert len(params) == 5 * (3 + 2 * 2)
    np.testing.assert_allclose(params.xs("gap", level="quantity"), small_results.gap)
    np.testing.assert_allclose(params.xs("adjusted_accuracy[jackknife]", level="quantity"),
                               small_results.adjusted_accuracy["jackknife"])
    draws = small_results.bootstrap_distribution.gap("naive")[:, 2]
    model = small_results.gap.index[2]
    assert ci.loc[(model, "adjusted_gap[naive]")].tolist() == pytest.approx(np.quantile(draws, [0.025, 0.975]))
    again = SelectionBiasEstimator(n_bootstrap=200, random_state=1, alpha=0.2).fit(small_study.annotations,
                                                                                   small_study.correctness)
    pd.testing.assert_frame_equal(again.conf_int(), small_results.conf_int(0.2))
    assert again.to_dict()["confidence_level"] == pytest.approx(0.8)
    assert again.to_dict(alpha=0.05) == small_results.to_dict()
    with pytest.raises(InputError, match="alpha must lie in"):
        SelectionBiasEstimator(alpha=1.5).fit(small_study.annotations, small_study.correctness)
