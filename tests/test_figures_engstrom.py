"""Engstrom-style figures on simulated studies (and the real ReaL votes): the
JSON numbers equal what the priors, deconvolution and estimators return."""
from __future__ import annotations

import json

import numpy as np
import pytest

from replication.estimators import METHODS
from replication.estimators.naive import plug_in
from replication.figures import generate_all
from replication.figures import engstrom2020 as eng
from replication.simulate import SimulationConfig, simulate
from replication.study import StudyData

NAMES = ["engstrom2020_histograms", "engstrom2020_fs_curves", "engstrom2020_adjusted", "engstrom2020_jackknife",
         "engstrom2020_placebo"]
SIMULATED = NAMES[:4]


@pytest.fixture(scope="module")
def saved(reference_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("engstrom")
    return {s.name: (s, json.loads(s.json.read_text())) for s in generate_all(reference_dir, out, NAMES)}


def test_figures_written_and_marked_simulated(saved):
    for name, (s, data) in saved.items():
        assert s.png.stat().st_size > 20_000 and s.pdf.stat().st_size > 5_000, name
        simulated = name in SIMULATED
        assert data["simulated"] is simulated and ("simulated" in data["caption"].lower()) is simulated, name


def test_placebo_numbers_equal_run_placebo(saved, reference_dir):
    from replication.figures._data import correctness, real_votes
    from replication.placebo import run_placebo

    nums = saved["engstrom2020_placebo"][1]["numbers"]
    _, res = run_placebo(real_votes(reference_dir), correctness(reference_dir), seed=nums["seed"], matching_votes=3,
                         methods=eng.available_methods(), n_bootstrap=nums["n_bootstrap"])
    got = nums["matching_votes"]["3"]["mean_gap"]
    for key, row in res.mean_gap_conf_int().iterrows():
        assert got[key]["value"] == pytest.approx(row["value"], rel=1e-12)
        assert got[key]["ci"] == pytest.approx([row["lower"], row["upper"]], rel=1e-12)
    # real votes, no true shift: matching on few votes leaves a raw gap (selection bias alone)
    assert got["raw"]["ci"][0] > 0


def test_histogram_numbers_equal_the_priors(saved):
    data = saved["engstrom2020_histograms"][1]["numbers"]["datasets"]
    study = eng.simulated_study(0)
    ref = study.annotations[study.annotations["dataset"] == study.config.reference]
    k, n = ref["n_selected"].to_numpy(), ref["n_annotators"].to_numpy()
    priors = eng.fit_priors(k, n)
    got = data["simulated reference (n = 10)"]["priors"]
    for name, prior in priors.items():
        frac, mass = eng.expected_histogram(prior, n)
        np.testing.assert_allclose(got[name]["expected_share"], mass, rtol=1e-9)
        assert got[name]["loglik"] == pytest.approx(prior.loglik(k, n), rel=1e-9)
    # observed shares and the fitted marginals agree within sampling error on data drawn from a Beta prior
    obs = np.asarray(data["simulated reference (n = 10)"]["observed_share"])
    fit = np.asarray(got["NPMLE"]["expected_share"])
    assert np.all(np.abs(obs - fit) < 4 * np.sqrt(fit * (1 - fit) / len(k)) + 1e-3)
    real = data["REAL: ImageNet val, ReaL raters (n = 5)"]
    assert real["n_images"] == 24_889 and len(real["observed_share"]) == 6


def test_adjusted_numbers_equal_the_estimator(saved):
    nums = saved["engstrom2020_adjusted"][1]["numbers"]
    res = eng.simulated_results(nums["seed"], nums["n_bootstrap"])
    m = nums["method"]
    np.testing.assert_allclose(nums["adjusted_accuracy"], 100 * res.adjusted_accuracy[m].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(nums["replication_accuracy"], 100 * res.replication_accuracy.to_numpy(), rtol=1e-12)
    means = res.mean_gap_conf_int()
    for key, row in means.iterrows():
        assert nums["mean_gap"][key]["value"] == pytest.approx(row["value"], rel=1e-12)
    lines = eng.accuracy_lines(res, m)
    assert nums["lines"]["raw"]["slope"] == pytest.approx(lines["raw"].to_dict(residuals=False)["slope"], rel=1e-12)
    truth = eng.simulated_study(nums["seed"]).truth
    assert nums["true_mean_gap"] == pytest.approx(truth["gap"].mean(), rel=1e-12)


def test_jackknife_numbers_equal_the_method(saved):
    nums = saved["engstrom2020_jackknife"][1]["numbers"]
    study = eng.simulated_study(nums["seed"])
    table = StudyData.from_tables(study.annotations, study.correctness).levels()
    jack = METHODS["jackknife"](table).accuracy
    np.testing.assert_allclose(nums["jackknife_accuracy"], jack, rtol=1e-12)
    np.testing.assert_allclose(nums["plug_in"][0], plug_in(table).accuracy, rtol=1e-12)
    # the drawn line through d = 0 and d = 1 reaches the jackknife estimate at 1/n = 0
    x, y = np.asarray(nums["mean_inverse_n"]), np.asarray(nums["mean_plug_in"])
    at_zero = y[0] - x[0] * (y[1] - y[0]) / (x[1] - x[0])
    assert at_zero == pytest.approx(nums["jackknife_mean"], rel=1e-9)
    assert nums["drop"] == list(range(10 - 1))


def test_fs_curves_numbers(saved):
    nums = saved["engstrom2020_fs_curves"][1]["numbers"]
    for m, r in nums["models"].items():
        f = np.asarray(r["f"])
        assert np.all(np.diff(f) >= -1e-9), m                     # monotone
        # the curve integrates against the reference prior to the adjusted accuracy
        assert float(np.dot(f, nums["g_ref"])) == pytest.approx(r["adjusted_accuracy"], abs=1e-6)


@pytest.mark.filterwarnings("ignore::replication.sampling.ShortSampleWarning")   # a small pool leaves a class short
def test_figures_from_any_study(tmp_path):
    """The study-level functions work on a small simulated study with varying annotator counts."""
    cfg = SimulationConfig(n_classes=40, reference_per_class=20, candidates_per_class=60, replication_per_class=10,
                           n_models=4, n_annotators=(8, 10, 12))
    study = simulate(cfg, np.random.default_rng(3))
    data = StudyData.from_tables(study.annotations, study.correctness)
    fig, out = eng.jackknife_figure(data)
    assert out["numbers"]["true_mean_adjusted"] is None and len(out["numbers"]["drop"]) == 7
    fig2, out2 = eng.fs_figure(data, list(study.truth.index[:2]), prior="betabinomial")
    assert set(out2["numbers"]["models"]) == set(study.truth.index[:2])
    ann = study.annotations
    frac, share = eng.expected_histogram(eng.fit_priors(ann["n_selected"].to_numpy(), ann["n_annotators"].to_numpy())["NPMLE"],
                                         ann["n_annotators"].to_numpy())
    assert share.sum() == pytest.approx(1.0) and np.all(np.diff(frac) > 0)
