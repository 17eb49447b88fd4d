"""Priors of the true selection frequency: fit, goodness of fit, NPMLE >= beta
mixture, selection-aware fits, and clear errors on data that cannot be fitted."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import special
from sklearn.base import clone

from replication.errors import FitError
from replication.priors import BetaMixturePrior, NPMLEPrior
from replication.priors._base import Levels
from replication.priors.beta_mixture import fit_beta_mixture_levels
from replication.sampling import EDGES


def draw_mixture(rng, size, n, weights=(0.6, 0.4), params=((8.0, 2.0), (2.0, 5.0))):
    comp = rng.choice(len(weights), size=size, p=weights)
    a = np.array([p[0] for p in params])[comp]
    b = np.array([p[1] for p in params])[comp]
    s = rng.beta(a, b)
    n = np.broadcast_to(n, (size,)) if np.ndim(n) == 0 else np.asarray(n)
    return rng.binomial(n, s), n


@pytest.mark.parametrize("n", [10, 20])
def test_priors_pass_goodness_of_fit_on_data_from_the_model(n):
    rng = np.random.default_rng(n)
    k, nn = draw_mixture(rng, 8000, n)
    for prior in (BetaMixturePrior(random_state=0), NPMLEPrior(grid_size=401)):
        prior.fit(k, nn)
        gof = prior.goodness_of_fit(k, nn)
        assert gof.pvalue > 0.001, (type(prior).__name__, gof)
        assert np.isclose(prior.marginal_k(n).sum(), 1.0)


def test_goodness_of_fit_rejects_a_wrong_prior():
    rng = np.random.default_rng(1)
    k, n = draw_mixture(rng, 8000, 10)
    wrong = BetaMixturePrior(n_components=1, random_state=0).fit(*draw_mixture(rng, 8000, 10, (1.0,), ((2.0, 2.0),)))
    assert wrong.goodness_of_fit(k, n).pvalue < 1e-6


def test_beta_mixture_recovers_a_single_beta_and_its_posterior_mean():
    rng = np.random.default_rng(2)
    k, n = draw_mixture(rng, 40000, 10, (1.0,), ((8.0, 2.0),))
    prior = BetaMixturePrior(random_state=0).fit(k, n)
    assert prior.n_components_ == 1
    # sampling sd of the fitted mean is about 0.001
    assert abs(prior.alpha_[0] / (prior.alpha_[0] + prior.beta_[0]) - 0.8) < 0.005
    expect = (prior.alpha_[0] + np.arange(11)) / (prior.alpha_[0] + prior.beta_[0] + 10)
    assert np.allclose(prior.posterior_mean(np.arange(11), np.full(11, 10)), expect)
    mid, post = prior.posterior(np.arange(11), np.full(11, 10), edges=np.linspace(0, 1, 2001))
    assert np.allclose(post @ mid, expect, atol=1e-4)


@pytest.mark.parametrize("seed,n", [(3, 5), (4, 10), (5, (6, 9, 12)), (6, 40)])
def test_npmle_loglik_never_below_beta_mixture(seed, n):
    rng = np.random.default_rng(seed)
    size = 5000
    nn = rng.choice(n, size) if isinstance(n, tuple) else n
    k, nn = draw_mixture(rng, size, nn)
    bm = BetaMixturePrior(random_state=0).fit(k, nn)
    npm = NPMLEPrior().fit(k, nn)
    assert npm.loglik_ >= bm.loglik_ - 1e-9
    assert np.isclose(npm.loglik(k, nn), npm.loglik_)


def test_counts_act_as_sample_weights():
    rng = np.random.default_rng(7)
    k, n = draw_mixture(rng, 3000, 10)
    levels = np.arange(11)
    counts = np.bincount(k, minlength=11)
    a = BetaMixturePrior(n_components=2, random_state=0).fit(k, n)
    b = BetaMixturePrior(n_components=2, random_state=0).fit(levels, np.full(11, 10), counts)
    assert np.isclose(a.loglik_, b.loglik_, rtol=1e-9)
    assert np.allclose(np.sort(a.alpha_), np.sort(b.alpha_), rtol=1e-4)


def test_batched_fit_matches_single_fits():
    rng = np.random.default_rng(8)
    rows = [np.bincount(draw_mixture(rng, 4000, 10)[0], minlength=11) for _ in range(3)]
    lv = Levels(n=np.full(11, 10), k=np.arange(11), counts=np.array(rows, float))
    batch = fit_beta_mixture_levels(lv, [1.0], [3.0], [2.0], tol=1e-10)
    for i, row in enumerate(rows):
        single = BetaMixturePrior(n_components=1, tol=1e-10, random_state=0).fit(np.arange(11), np.full(11, 10), row)
        assert np.isclose(batch.loglik[i], single.loglik_, atol=1e-4)
        assert np.isclose(batch.alpha[i, 0], single.alpha_[0], rtol=1e-3)


def test_selection_aware_fit_recovers_the_pool():
    """Images drawn from a Beta(2, 2) pool, kept with a probability that depends
    only on the bin of k/10 (as MatchedFrequency does): the within-bin fit
    recovers the pool, the plain fit does not."""
    rng = np.random.default_rng(9)
    s = rng.beta(2.0, 2.0, 400_000)
    k = rng.binomial(10, s)
    keep_by_bin = np.array([0.01, 0.03, 0.1, 0.3, 1.0])
    bins = np.searchsorted(EDGES, k / 10, side="right")
    kept = rng.random(len(k)) < keep_by_bin[bins]
    n = np.full(kept.sum(), 10)
    for prior in (BetaMixturePrior(n_components=1, random_state=0), NPMLEPrior(grid_size=201)):
        pool = prior.fit(k[kept], n, selection_edges=EDGES)
        mean = pool.cell_mass(np.linspace(0, 1, 1001)) @ np.linspace(0.0005, 0.9995, 1000)
        assert abs(mean - 0.5) < 0.03, (type(prior).__name__, mean)
        plain = clone(prior).fit(k[kept], n)
        plain_mean = plain.cell_mass(np.linspace(0, 1, 1001)) @ np.linspace(0.0005, 0.9995, 1000)
        assert plain_mean > 0.6


def test_selection_with_too_few_annotators_is_a_clear_error():
    k = np.array([0, 1, 2, 1, 2, 0, 2, 2, 1, 1, 2, 0])
    with pytest.raises(FitError, match="no information on the distribution of the pool"):
        BetaMixturePrior().fit(k, np.full(len(k), 2), selection_edges=EDGES)


@pytest.mark.parametrize("prior", [BetaMixturePrior(), NPMLEPrior()])
def test_degenerate_and_tiny_data_are_clear_errors(prior):
    with pytest.raises(FitError, match="every image has n_selected = 0"):
        prior.fit(np.zeros(50, int), np.full(50, 10))
    with pytest.raises(FitError, match="n_selected = n_annotators"):
        prior.fit(np.full(50, 5), np.full(50, 5))
    with pytest.raises(FitError, match="too few images"):
        prior.fit(np.array([1, 2, 3]), np.array([5, 5, 5]))
    with pytest.raises(FitError, match="0 <= n_selected <= n_annotators"):
        prior.fit(np.array([6] + [1] * 20), np.full(21, 5))


def test_sampling_follows_the_prior():
    prior = BetaMixturePrior(n_components=1, random_state=0).fit(*draw_mixture(np.random.default_rng(10), 5000, 10, (1.0,), ((8.0, 2.0),)))
    draws = prior.sample(200_000, np.random.default_rng(0))
    mean = prior.alpha_[0] / (prior.alpha_[0] + prior.beta_[0])
    assert abs(draws.mean() - mean) < 0.002
    grid = np.linspace(0.001, 0.999, 999)
    assert np.isclose(np.sum(prior.pdf(grid)) * 0.001, 1.0, atol=0.01)
    edges = np.linspace(0, 1, 11)
    assert np.allclose(prior.cell_mass(edges), np.diff(special.betainc(prior.alpha_[0], prior.beta_[0], edges)))
