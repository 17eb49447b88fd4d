"""One place to add a prior: a family registered here, in the test, becomes a
deconvolution method of the estimator, of ``replication bias`` and a default
method, without a line changed anywhere else."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import optimize, special, stats

from replication.cli import main
from replication.errors import FitError
from replication.estimators import METHODS
from replication.estimators.results import SelectionBiasEstimator
from replication.priors import PRIORS, BetaMixturePrior, NPMLEPrior, SelectionFrequencyPrior, register_prior
from replication.priors._base import check_identifiable, to_levels
from replication.simulate import SimulationConfig, simulate, write_study
from replication.study import StudyData


class OneBetaPrior(SelectionFrequencyPrior):
    """A single Beta(a, b), fitted by maximum likelihood with Nelder-Mead on
    (log a, log b): the plain or the selection-aware likelihood."""

    def __init__(self, *, start: tuple[float, float] = (2.0, 2.0)):
        self.start = start

    n_parameters_ = 2

    def _fit_levels(self, lv, selection):
        def nll(theta):
            a, b = np.exp(theta)
            marginal = stats.betabinom.pmf(lv.k, lv.n, a, b)
            if selection is None:
                return -np.sum(lv.counts * np.log(np.maximum(marginal, 1e-300)))
            return -float(selection.loglik(lv.counts, marginal))
        res = optimize.minimize(nll, np.log(self.start), method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-9})
        self.alpha_, self.beta_ = np.exp(res.x)

    def cell_mass(self, edges):
        return np.diff(special.betainc(self.alpha_, self.beta_, np.asarray(edges, float)))

    def level_cell_joint(self, n_selected, n_annotators, edges):
        k, n = np.asarray(n_selected, float)[:, None], np.asarray(n_annotators, float)[:, None]
        inside = np.diff(special.betainc(self.alpha_ + k, self.beta_ + n - k, np.asarray(edges, float)), axis=-1)
        return stats.betabinom.pmf(k, n, self.alpha_, self.beta_) * inside

    def _marginal(self, n_selected, n_annotators):
        return stats.betabinom.pmf(n_selected, n_annotators, self.alpha_, self.beta_)

    def posterior_mean(self, n_selected, n_annotators):
        return (self.alpha_ + np.asarray(n_selected)) / (self.alpha_ + self.beta_ + np.asarray(n_annotators))

    def sample(self, size, rng):
        return rng.beta(self.alpha_, self.beta_, size)


@pytest.fixture
def one_beta():
    assert "onebeta" not in PRIORS
    register_prior("onebeta", label="one beta")(OneBetaPrior)
    yield "onebeta"
    del PRIORS["onebeta"]


@pytest.fixture(scope="module")
def study():
    return simulate(SimulationConfig.preset("engstrom2020", n_classes=300, n_models=4), np.random.default_rng(3))


def test_the_registry_is_where_names_come_from():
    assert list(PRIORS) == ["betabinomial", "npmle"]
    assert list(METHODS) == ["naive", "jackknife", "betabinomial", "npmle"]
    assert PRIORS["betabinomial"].prior is BetaMixturePrior and PRIORS["npmle"].prior is NPMLEPrior
    assert PRIORS["npmle"].create().grid_size == 201   # the deconvolution's grid
    assert PRIORS["betabinomial"].create(random_state=7).random_state == 7
    with pytest.warns(UserWarning, match="registered twice"):
        register_prior("npmle", label="NPMLE", grid_size=201, tol=1e-9)(NPMLEPrior)


def test_a_registered_family_is_a_method_everywhere(one_beta, study, tmp_path, capsys):
    assert list(METHODS)[-1] == one_beta
    res = SelectionBiasEstimator(("naive", one_beta), n_bootstrap=10, random_state=0).fit(
        study.annotations, study.correctness)
    # the simulator draws s from single Betas, so one Beta is the right model: it removes the selection
    # bias (true mean gap ~3.6 points, naive ~11)
    truth = study.truth["gap"].mean()
    assert res.adjusted_mean_gap[one_beta] == pytest.approx(truth, abs=0.01)
    assert res.adjusted_mean_gap["naive"] > truth + 0.05
    assert res.bootstrap_distribution.adjusted_accuracy[one_beta].shape == (10, 4)
    # the command line knows it (and lists it among the default methods, which are all of METHODS)
    paths = write_study(study, tmp_path / "sim")
    assert main(["bias", "--annotations", str(paths["annotations"]), "--correct", str(paths["correct"]),
                 "--bootstrap", "5", "--methods", f"naive,{one_beta}", "--json", str(tmp_path / "a.json")]) == 0
    d = json.loads((tmp_path / "a.json").read_text())
    assert d["summary"]["adjusted_mean_gap"][one_beta]["value"] == pytest.approx(res.adjusted_mean_gap[one_beta])
    assert f"{one_beta} adjusted gap" in capsys.readouterr().out


def test_batch_fit_and_goodness_of_fit_come_with_the_base_class(one_beta):
    rng = np.random.default_rng(1)
    k = rng.binomial(10, rng.beta(8, 2, 5000))
    lv = to_levels(k, np.full_like(k, 10))
    rows = rng.multinomial(5000, lv.counts / lv.counts.sum(), size=3).astype(float)
    batch = PRIORS[one_beta].create().fit_batch(lv.k, lv.n, rows)
    edges = np.linspace(0, 1, 11)
    assert batch.cell_mass(edges).shape == (3, 10) and batch.level_cell_joint(lv.k, lv.n, edges).shape == (3, 11, 10)
    for row, mass in zip(rows, batch.cell_mass(edges)):   # each row its own fit
        one = OneBetaPrior().fit(lv.k, lv.n, row)
        np.testing.assert_allclose(mass, one.cell_mass(edges), rtol=1e-9)
    assert batch.pooled.alpha_ / (batch.pooled.alpha_ + batch.pooled.beta_) == pytest.approx(0.8, abs=0.01)
    assert batch.pooled.goodness_of_fit(k, np.full_like(k, 10)).pvalue > 1e-3
    with pytest.raises(FitError, match="degenerate"):
        check_identifiable(to_levels(np.zeros(50, int), np.full(50, 10)))


def test_the_estimators_generator_drives_every_random_draw(monkeypatch):
    """EM restarts of the priors and the candidate pool's bootstrap draws come
    from the estimator's random_state, not from seeds of their own."""
    seen = []
    real = np.random.default_rng

    def spy(seed=None):
        seen.append(seed)
        return real(seed)

    monkeypatch.setattr(np.random, "default_rng", spy)
    small = simulate(SimulationConfig.preset("engstrom2020", n_classes=60, n_models=2), real(4))
    data = StudyData.from_tables(small.annotations, small.correctness)
    seen.clear()
    rng = real(5)
    pool = 3 * data.levels().rep_count
    est = SelectionBiasEstimator(("betabinomial", "npmle"), n_bootstrap=1, random_state=rng,
                                 method_options={"betabinomial": {"pool_counts": pool}, "npmle": {"pool_counts": pool}})
    est.fit(data)
    assert seen and all(s is rng for s in seen), seen   # (same seed, same result: the placebo CLI test)
