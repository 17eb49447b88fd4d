"""`v2-public` on the real public record: the numbers the README quotes, against
independent computations where there is one (the raw gap from the correctness
table with pandas, the adjusted accuracy from the fitted curves class by class),
and the figure drawn from the same fit.

One fit at the best reference shape (16) with 20 bootstrap replicates: its point
estimates equal those of the README's command (which profiles 4..64 and keeps 16
and 32, with 1,000 replicates); the intervals are the command's, not pinned here.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import special

from replication.figures import render
from replication.figures.v2public import public_results
from replication.v2public import (ConstructionConfig, PoolLayout, PublicDataEstimator, load_public_data,
                                  simulate_construction)
from replication.v2public.curves import midpoints
from replication.v2public.data import CORRECT_FILE, POOL_FILE, SET_IDS
from replication.v2public.estimator import default_start
from replication.v2public.expected import SUMMARIES, ClassLayout, ConfigurationSampler, observed_summaries
from replication.v2public.gmm import MomentEstimator

OPTIONS = dict(ref_shapes=(16.0,), n_bootstrap=20)
#: README, "Result on the real record" (points, mean over the 67 models, 708 classes)
README = {"raw_gap": 10.27, "adjusted_gap": 8.60, "shape_free": (7.03, 12.29), "J": 21.8}

#: the validation benchmark's "poorer pool, higher reference" construction model (with shift 0.11)
POORER_POOL = {"pool_location": -1.8, "pool_tail": 0.8, "ref_location": 1.1, "ref_shape": 16.0}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def results(reference_dir):
    return public_results(reference_dir, 0, **OPTIONS)


def test_raw_gap_and_classes_against_pandas(results, reference_dir):
    """The 708 classes none of whose 30 set images is missing from the pool
    listing, and the raw gap on them, computed here from the two tables."""
    pool = pd.read_parquet(reference_dir / POOL_FILE, columns=["cid", "in_matched_frequency", "in_threshold0.7",
                                                                "in_top_images"])
    listed = pool[["in_matched_frequency", "in_threshold0.7", "in_top_images"]].groupby(pool["cid"]).sum()
    complete = listed.index[(listed == 10).all(axis=1)]
    assert results.n_classes == len(complete) == 708
    correct = pd.read_parquet(reference_dir / CORRECT_FILE)
    correct = correct[correct["label"].isin(complete)]
    models = [c for c in correct.columns if c not in ("dataset", "image_id", "label")]
    assert sorted(results.models) == sorted(models) and len(models) == 67
    acc = correct.groupby("dataset")[models].mean()
    raw = (acc.loc["imagenet-val"] - acc.loc[SET_IDS[0]])
    np.testing.assert_allclose(results.gap.reindex(models), raw, atol=1e-12)
    assert 100 * raw.mean() == pytest.approx(README["raw_gap"], abs=0.005)


def test_adjusted_gap_pinned_and_recomputed_class_by_class(results):
    """The README's adjusted gap; the adjusted accuracy recomputed as the mean
    over classes of sum_j g_c(s_j) f_mc(s_j) with each class's own curve."""
    fit = results.fits[results.ref_shape]
    assert results.ref_shape == 16.0
    s = midpoints(fit.reference.shape[1])
    per_class = np.stack([special.ndtr(fit.curves.a[:, None] + d + fit.curves.b[:, None] * s[None]) @ g
                          for d, g in zip(fit.curves.delta, fit.reference)])          # (C, M)
    np.testing.assert_allclose(results.adjusted_accuracy.to_numpy(), per_class.mean(axis=0), atol=1e-10)
    # the Monte-Carlo refits (4, on independent configurations) follow the point estimate's row
    assert fit.mc_adjusted.shape == (5, 67) and np.ptp(fit.mc_adjusted.mean(axis=1)) > 0
    np.testing.assert_array_equal(fit.mc_adjusted[0], fit.adjusted)
    gap = results.reference_accuracy - results.adjusted_accuracy
    assert 100 * gap.mean() == pytest.approx(README["adjusted_gap"], abs=0.005)
    assert 100 * results.mean_gap()["value"] == pytest.approx(README["adjusted_gap"], abs=0.005)
    # sanity: the selection effect shrinks the mean raw gap (not every model's: AlexNet's grows), every
    # model still drops, and f rises with s
    assert gap.mean() < results.gap.mean() - 0.01 and (gap > 0).all() and (fit.curves.b > 0).all()
    bounds = results.bounds
    assert 100 * bounds["mean_gap_low"] == pytest.approx(README["shape_free"][0], abs=0.005)
    assert 100 * bounds["mean_gap_high"] == pytest.approx(README["shape_free"][1], abs=0.005)
    assert bounds["mean_gap_low"] <= gap.mean() <= bounds["mean_gap_high"]
    assert results.moment_fit.objective == pytest.approx(README["J"], abs=0.05)


def test_figure_draws_the_fit(results, reference_dir):
    fig, data = render("v2public_adjusted", reference_dir, **OPTIONS)
    assert len(data["table"]) == 67
    adj = {r["model"]: r["adjusted gap"] for r in data["table"]}
    np.testing.assert_allclose([adj[m] for m in results.models], 100 * results.adjusted_gap.to_numpy())
    assert data["headline"]["mean adjusted gap (public data)"].startswith(f"{README['adjusted_gap']:.2f} points")
    # Engstrom et al.'s estimate marked, the inputs listed with the pool first
    assert "Engstrom et al. 2020 (own annotations)" in data["headline"]
    assert data["numbers"]["summary"]["engstrom2020"]["remaining_gap"] == 0.036
    assert [r["path"] for r in data["inputs"]][0] == POOL_FILE


def _overlaps(pool: pd.DataFrame) -> pd.Series:
    """Mean over classes of |T & TI|, |MF & T|, |MF & TI|, |MF & T & TI| and the
    numbers of set images shown in more than one HIT, from a pool listing (pandas)."""
    mf, t, ti = (pool[c] == 1 for c in ("in_matched_frequency", "in_threshold0.7", "in_top_images"))
    multi = pool["n_hits_to_label"] > 1
    parts = {"T&TI": t & ti, "MF&T": mf & t, "MF&TI": mf & ti, "MF&T&TI": mf & t & ti,
             "TI(n>10)": ti & multi, "T(n>10)": t & multi, "MF(n>10)": mf & multi}
    return pd.DataFrame(parts).groupby(pool["cid"].to_numpy()).sum().mean()


def test_simulator_reproduces_the_real_overlaps(reference_dir):
    """The ``imagenetv2`` preset simulated on the real layout (708 classes, their
    pool sizes and HIT counts) gives the real record's mean overlaps within a
    tenth of each (|T & TI| within 0.6 of 4.93), counted by pandas on both
    listings; a pool half a logit better does not."""
    data = load_public_data(reference_dir)
    layout = PoolLayout.from_public(data)
    real = pd.read_parquet(reference_dir / POOL_FILE)
    real = _overlaps(real[real["cid"].isin(data.classes)])
    assert set(real.index) <= set(SUMMARIES)
    tolerance = pd.Series({"T&TI": 0.6, "MF&T": 0.35, "MF&TI": 0.3, "MF&T&TI": 0.25, "TI(n>10)": 0.3,
                           "T(n>10)": 0.3, "MF(n>10)": 0.35})
    config = ConstructionConfig.preset("imagenetv2", n_models=2)
    sim = simulate_construction(config, layout, np.random.default_rng(0))
    assert len(sim.short_classes) == 0 and sim.pool["cid"].nunique() == 708
    close = (_overlaps(sim.pool) - real).abs()
    assert (close <= tolerance).all(), close
    better = ConstructionConfig.preset("imagenetv2", n_models=2,
                                       model={"pool_location": config.model.pool_location + 0.5})
    far = (_overlaps(simulate_construction(better, layout, np.random.default_rng(0)).pool) - real).abs()
    assert (far > tolerance).any(), far


def test_estimator_recovers_a_simulated_truth_on_the_real_layout(reference_dir):
    """One construction of the validation benchmark's "poorer pool" setting (seed
    0) on the real layout: a selection effect of about 4 points on top of a true
    gap of 3. At the true reference shape the mean-gap interval covers the truth,
    the estimate removes at least three quarters of the selection effect, and the
    per-model intervals cover most models' truths. (A regression check on one
    construction; how often the method fails is the benchmark's table.)"""
    data = load_public_data(reference_dir)
    config = ConstructionConfig.preset("imagenetv2", n_models=8, shift=0.11, model=POORER_POOL)
    sim = simulate_construction(config, PoolLayout.from_public(data), np.random.default_rng([0, 13]))
    public = sim.public_data()
    truth = sim.truth(public.classes)["gap"].reindex(list(public.models))
    res = PublicDataEstimator(ref_shapes=(16.0,), n_bootstrap=200, random_state=0).fit(public)
    est = res.mean_gap()
    raw_bias = res.gap.mean() - truth.mean()
    assert raw_bias > 0.03
    assert est["ci"][0] <= truth.mean() <= est["ci"][1]
    assert abs(est["value"] - truth.mean()) < 0.25 * raw_bias
    ci = res.conf_int()
    assert ((ci["gap_lower"] <= truth) & (truth <= ci["gap_upper"])).mean() >= 0.75


def test_multistart_moment_fit_escapes_a_poor_optimum(reference_dir):
    """A "poorer pool" construction (validation seed 19) on which the moment fit
    from the default start alone ends in a poor local optimum (J over 300 on 5
    dof, pool shape collapsed towards 0); started also from the screened points,
    it reaches a J below 100 with the reference location near the truth (1.1)."""
    data = load_public_data(reference_dir)
    config = ConstructionConfig.preset("imagenetv2", shift=0.11, model=POORER_POOL)
    public = simulate_construction(config, PoolLayout.from_public(data), np.random.default_rng([19, 13])).public_data()
    layout = ClassLayout.from_public(public, max_hits=3)
    sampler = ConfigurationSampler(layout, n_reps=8, seed=int(np.random.default_rng(19).integers(2**32)))
    observed = observed_summaries(public, layout.classes)
    start = default_start("mixture", 16.0)
    single = MomentEstimator(sampler, observed, fixed=("ref_shape",)).fit(start)
    multi = MomentEstimator(sampler, observed, fixed=("ref_shape",), n_starts=5).fit(start)
    assert single.objective > 300 and single.model.pool_shape < 0.01
    assert len(multi.start_objectives) == 5
    assert multi.start_objectives[0] == pytest.approx(single.start_objectives[0])   # the default start is one of them
    assert min(multi.start_objectives) < 0.2 * single.start_objectives[0]
    assert multi.objective < 100
    assert abs(multi.model.ref_location - 1.1) < 0.15
