"""Engstrom-style figures on simulated studies (and the real ReaL votes): the
JSON numbers equal what the priors, deconvolution and estimators return."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from replication.deconvolution import Deconvolution
from replication.estimators import METHODS
from replication.estimators.naive import plug_in
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


def test_placebo_numbers_equal_run_placebo(saved, reference_dir):
    from replication.figures._data import correctness, real_votes
    from replication.placebo import run_placebo

    nums = saved["engstrom2020_placebo"][1]["numbers"]
    _, res = run_placebo(real_votes(reference_dir), correctness(reference_dir), seed=nums["seed"], matching_votes=3,
                         n_bootstrap=nums["n_bootstrap"])
    got = nums["matching_votes"]["3"]["mean_gap"]
    for key, row in res.mean_gap_conf_int().iterrows():
        assert got[key]["value"] == pytest.approx(row["value"], rel=1e-12)
        assert got[key]["ci"] == pytest.approx([row["lower"], row["upper"]], rel=1e-12)
    # real votes, no true shift: matching on few votes leaves a raw gap (selection bias alone)
    assert got["raw"]["ci"][0] > 0


def test_histogram_numbers_equal_the_selection_aware_fits(saved):
    data = saved["engstrom2020_histograms"][1]["numbers"]["datasets"]
    study = eng.simulated_study(0)
    table = StudyData.from_tables(study.annotations, study.correctness).levels()
    edges = eng.selection_edges_for(study.config.replication)
    res = Deconvolution("npmle", selection_edges=edges).fit(table)
    ref, rep = data["simulated reference (n = 10)"], data["simulated v2 MF (n = 10)"]
    np.testing.assert_allclose(ref["priors"]["NPMLE"]["cell_mass"], res.g_ref, rtol=1e-9)
    np.testing.assert_allclose(rep["priors"]["NPMLE"]["cell_mass"], res.g_rep, rtol=1e-9)
    np.testing.assert_allclose(rep["priors"]["NPMLE"]["pool_cell_mass"], res.g_pool, rtol=1e-9)
    _, share = eng.expected_histogram(res.pool_prior, table.k, table.n, table.rep_count, edges)
    np.testing.assert_allclose(rep["priors"]["NPMLE"]["expected_share"], share, rtol=1e-9)
    n_rep = rep["n_images"]
    for panel in (ref, rep):
        obs = np.asarray(panel["observed_share"])
        for name, fit in panel["priors"].items():
            # the markers sit on the bars within sampling error, and the chi-square agrees
            exp = np.asarray(fit["expected_share"])[np.isin(fit["expected_k_over_n"], panel["k_over_n"])]
            assert np.all(np.abs(obs - exp) < 4 * np.sqrt(exp * (1 - exp) / panel["n_images"]) + 1e-3), name
            assert fit["gof_pvalue"] > 1e-3, name
            # the fitted mean true s of the panel's images is the simulated one (plain priors fitted to the
            # selected replication images give 0.80 against a true 0.706)
            assert fit["mean_s"] == pytest.approx(panel["true_mean_s"], abs=0.015), name
    assert rep["true_mean_s"] == pytest.approx(
        study.images.loc[study.images["dataset"] == study.config.replication, "true_s"].mean(), rel=1e-12)
    assert n_rep == 10_000
    real = data["REAL: ImageNet val, ReaL raters (n = 5)"]
    assert real["n_images"] == 24_889 and len(real["observed_share"]) == 6
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
