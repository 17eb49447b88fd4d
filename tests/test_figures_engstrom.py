"""Engstrom-style figures on simulated studies (and the real ReaL votes): the
JSON numbers against independent computations (counts by numpy, the
jackknife's formula written out, lines by polyfit, chi-squares by scipy) and
the simulated truth."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from by_hand import delete_d_by_hand, plug_in_by_hand
from scipy import stats

from replication.figures import generate_all
from replication.figures import engstrom2020 as eng
from replication.sampling import EDGES
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


def test_placebo_numbers_are_the_readmes(saved):
    """The placebo at m = 2 with seed 0 is the README's staging (12,463
    reference / 1,800 replication images): its mean gaps are pinned."""
    nums = saved["engstrom2020_placebo"][1]["numbers"]
    assert nums["seed"] == 0
    m2 = nums["matching_votes"]["2"]
    assert (m2["info"]["reference_images"], m2["info"]["replication_images"]) == (12_463, 1_800)
    got = {k: round(100 * v["value"], 2) for k, v in m2["mean_gap"].items()}
    assert got == {"raw": 3.93, "naive": 3.93, "jackknife": 3.93, "betabinomial": 0.65, "npmle": 1.00}
    # real votes, no true shift: matching on few votes leaves a raw gap (selection bias alone)
    for m in ("2", "3", "4"):
        assert nums["matching_votes"][m]["mean_gap"]["raw"]["ci"][0] > 0


def test_histogram_numbers_against_the_data_and_the_simulated_truth(saved, reference_dir):
    data = saved["engstrom2020_histograms"][1]["numbers"]["datasets"]
    study = eng.simulated_study(0)
    ann = study.annotations
    ref, rep = data["simulated reference (n = 10)"], data["simulated v2 MF (n = 10)"]
    for panel, ds in ((ref, "imagenet-val"), (rep, study.config.replication)):
        counts = np.bincount(ann.loc[ann["dataset"] == ds, "n_selected"], minlength=11)
        np.testing.assert_allclose(panel["k_over_n"], np.flatnonzero(counts) / 10, rtol=1e-12)
        np.testing.assert_allclose(panel["observed_share"], counts[counts > 0] / counts.sum(), rtol=1e-12)
        assert panel["true_mean_s"] == pytest.approx(
            study.images.loc[study.images["dataset"] == ds, "true_s"].mean(), rel=1e-12)
        obs = np.asarray(panel["observed_share"])
        for name, fit in panel["priors"].items():
            # the markers sit on the bars within sampling error, and the chi-square agrees
            exp = np.asarray(fit["expected_share"])[np.isin(fit["expected_k_over_n"], panel["k_over_n"])]
            assert np.all(np.abs(obs - exp) < 4 * np.sqrt(exp * (1 - exp) / panel["n_images"]) + 1e-3), name
            assert fit["gof_pvalue"] > 1e-3, name
            # the fitted mean true s of the panel's images is the simulated one (plain priors fitted to the
            # selected replication images give 0.80 against a true 0.706)
            assert fit["mean_s"] == pytest.approx(panel["true_mean_s"], abs=0.015), name
            assert sum(fit["cell_mass"]) == pytest.approx(1.0)
    assert rep["n_images"] == 10_000
    real = data["REAL: ImageNet val, ReaL raters (n = 5)"]
    votes = pd.read_csv(reference_dir / "real-reassessed-imagenet" / "real_votes_annotations.csv")
    np.testing.assert_allclose(real["observed_share"], votes["n_selected"].value_counts(normalize=True).sort_index(),
                               rtol=1e-12)
    assert real["n_images"] == 24_889
    headline = saved["engstrom2020_histograms"][1]["headline"]
    assert headline["mean fitted true s (NPMLE), simulated v2 MF (n = 10)"].endswith("(truth 0.706)")


def test_selection_model_keeps_bin_counts_and_its_chi_square():
    rng = np.random.default_rng(5)
    n = rng.choice([8, 10], size=30_000)
    k = rng.binomial(n, rng.beta(3, 2, size=30_000))
    panel = eng.sample_panel("x", k, n)
    fit = panel.fits["NPMLE"]
    e = fit.marginal.expected_counts(panel.k, panel.n, panel.counts, EDGES)
    for g in np.unique(e["group"]):                     # each (n, bin) keeps its observed number of images
        at = e["group"] == g
        assert e["expected"][at].sum() == pytest.approx(e["observed"][at].sum(), rel=1e-9)
    assert len(np.unique(e["group"])) == 2 * (len(EDGES) + 1)
    # every cell expects more than 5 images here, so nothing is pooled: the statistic is scipy's chi-square
    # summed over the groups (scipy.stats.chisquare needs equal totals, which each group has)
    assert e["expected"].min() > 5
    want = sum(stats.chisquare(e["observed"][e["group"] == g], e["expected"][e["group"] == g]).statistic
               for g in np.unique(e["group"]))
    gof = fit.marginal.goodness_of_fit(panel.k, panel.n, panel.counts, selection_edges=EDGES)
    assert gof.statistic == pytest.approx(want, rel=1e-9)
    assert gof.n_cells == len(e["observed"]) and gof.dof == len(e["observed"]) - 10 - fit.marginal.n_parameters_
    frac, share = eng.expected_histogram(fit.marginal, panel.k, panel.n, panel.counts, EDGES)
    assert share.sum() == pytest.approx(1.0) and np.all(np.diff(frac) > 0)


def test_adjusted_numbers_against_independent_computations(saved):
    """The drawn adjusted accuracy is the jackknife's, checked with the
    delete-1 formula written out (tests/by_hand.py); the reference accuracy
    with pandas; both lines with np.polyfit; the truth from the simulator."""
    nums = saved["engstrom2020_adjusted"][1]["numbers"]
    assert nums["method"] == "jackknife"
    study = eng.simulated_study(nums["seed"])
    ann, cor = study.annotations, study.correctness
    ref_acc = 100 * cor[cor["dataset"] == "imagenet-val"][nums["models"]].mean()
    np.testing.assert_allclose(nums["reference_accuracy"], ref_acc, rtol=1e-12)
    for i in (0, 33, 66):
        model = nums["models"][i]
        assert nums["adjusted_accuracy"][i] == pytest.approx(100 * delete_d_by_hand(ann, cor, model, 1), abs=1e-9)
    for key, y in (("raw", nums["replication_accuracy"]), ("adjusted", nums["adjusted_accuracy"])):
        slope, intercept = np.polyfit(nums["reference_accuracy"], y, 1)
        assert nums["lines"][key]["slope"] == pytest.approx(slope, rel=1e-9)
        assert nums["lines"][key]["intercept"] == pytest.approx(intercept, rel=1e-9)
    assert nums["true_mean_gap"] == pytest.approx(study.truth["gap"].mean(), rel=1e-12)
    raw = nums["mean_gap"]["raw"]["value"]
    assert raw == pytest.approx(np.mean(np.asarray(nums["reference_accuracy"]) - nums["replication_accuracy"]) / 100,
                                rel=1e-9)


def test_jackknife_numbers_against_the_formula(saved):
    nums = saved["engstrom2020_jackknife"][1]["numbers"]
    study = eng.simulated_study(nums["seed"])
    ann, cor = study.annotations, study.correctness
    assert nums["drop"] == list(range(10 - 1))
    for i in (0, 40):
        model = nums["models"][i]
        for d in (0, 1, 4):
            assert nums["plug_in"][d][i] == pytest.approx(plug_in_by_hand(ann, cor, model, d), abs=1e-12)
        assert nums["jackknife_accuracy"][i] == pytest.approx(delete_d_by_hand(ann, cor, model, 1), abs=1e-12)
    np.testing.assert_allclose(nums["mean_inverse_n"], 1 / (10 - np.arange(9)), rtol=1e-12)
    # the drawn line through d = 0 and d = 1 reaches the jackknife estimate at 1/n = 0
    x, y = np.asarray(nums["mean_inverse_n"]), np.asarray(nums["mean_plug_in"])
    at_zero = y[0] - x[0] * (y[1] - y[0]) / (x[1] - x[0])
    assert at_zero == pytest.approx(nums["jackknife_mean"], rel=1e-9)


def test_fs_curves_numbers(saved):
    nums = saved["engstrom2020_fs_curves"][1]["numbers"]
    for m, r in nums["models"].items():
        f = np.asarray(r["f"])
        assert np.all(np.diff(f) >= -1e-9), m                     # monotone
        # the curve integrates against the reference prior to the adjusted accuracy
        assert float(np.dot(f, nums["g_ref"])) == pytest.approx(r["adjusted_accuracy"], abs=1e-6)


@pytest.mark.filterwarnings("ignore::replication.sampling.ShortSampleWarning")   # a small pool leaves a class short
@pytest.mark.filterwarnings("ignore:NPMLEPrior. EM did not converge")             # 400 selected images
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
    table = data.levels()
    panels = eng.study_panels(table, ("ref", "rep"))
    fig3, numbers = eng.draw_histograms(panels)
    assert (numbers["ref"]["n_images"], numbers["rep"]["n_images"]) == (table.ref_count.sum(), table.rep_count.sum())
    assert set(numbers["rep"]["priors"]["NPMLE"]) >= {"pool_cell_mass", "gof_pvalue"}
