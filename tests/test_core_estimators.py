"""naive and jackknife adjustment methods: closed forms, weights, batching."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from replication.errors import FitError
from replication.estimators import METHODS
from replication.estimators.jackknife import delete_d, thinning_matrix
from replication.estimators.naive import fraction_groups, plug_in
from replication.estimators.results import SelectionBiasEstimator
from replication.study import LevelTable


def plug_in_closed_form(n: int) -> float:
    """E[plug-in] for reference Beta(8,2), replication Beta(2,2), P(correct|s)=s."""
    return (2 + 0.8 * n) / (4 + n)


def expected_table(n: int, scale: float = 1e6) -> LevelTable:
    """The exact expected level table of the closed-form study (one model)."""
    k = np.arange(n + 1)
    ref = stats.betabinom.pmf(k, n, 8, 2) * scale
    rep = stats.betabinom.pmf(k, n, 2, 2) * scale
    correct = rep * (2 + k) / (4 + n)  # E[s | k] under Beta(2,2)
    return LevelTable(levels=np.stack([np.full(n + 1, n), k], axis=1), ref_count=ref, rep_count=rep,
                      rep_correct=correct[:, None], ref_correct=np.array([0.8 * scale]), models=("m",))


def closed_form_tables(rng: np.random.Generator, n_images: int, n: int = 10) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Contract tables of the closed-form study: ref s ~ Beta(8,2), rep s ~ Beta(2,2)
    (no matching), n annotators, one model with P(correct | s) = s."""
    frames = []
    for ds, (a, b) in (("imagenet-val", (8, 2)), ("imagenetv2-matched-frequency", (2, 2))):
        s = rng.beta(a, b, n_images)
        frames.append(pd.DataFrame({"dataset": ds, "image_id": [f"{ds[:3]}{i}" for i in range(n_images)],
                                    "n_annotators": n, "n_selected": rng.binomial(n, s),
                                    "m": (rng.random(n_images) < s).astype(np.int8)}))
    df = pd.concat(frames, ignore_index=True)
    return df[["dataset", "image_id", "n_annotators", "n_selected"]], df[["dataset", "image_id", "m"]]


def test_methods_are_registered():
    assert {"naive", "jackknife"} <= set(METHODS)


@pytest.mark.parametrize("n", [5, 10, 40])
def test_exact_closed_forms(n):
    table = expected_table(n)
    assert METHODS["naive"](table).accuracy[0] == pytest.approx(plug_in_closed_form(n), abs=1e-9)
    full, thin = plug_in_closed_form(n), plug_in_closed_form(n - 1)
    want = full + (full - thin) * (1 / n) / (1 / (n - 1) - 1 / n)
    assert METHODS["jackknife"](table).accuracy[0] == pytest.approx(want, abs=1e-9)


def test_closed_form_values_at_ten_annotators():
    table = expected_table(10)
    assert METHODS["naive"](table).accuracy[0] == pytest.approx(0.7143, abs=5e-5)
    assert METHODS["jackknife"](table).accuracy[0] == pytest.approx(0.7736, abs=5e-5)
    # delete-2: plug-in at 8 annotators is 0.7; extrapolating from 1/10 and 1/8 to 0 gives 0.771429
    assert delete_d(table, 2).accuracy[0] == pytest.approx(0.7714286, abs=1e-6)


def test_closed_forms_on_large_simulated_samples():
    rng = np.random.default_rng(7)
    ann, cor = closed_form_tables(rng, 100_000)
    res = SelectionBiasEstimator(n_bootstrap=60, random_state=rng).fit(ann, cor)
    for method, want in (("naive", 0.7143), ("jackknife", 0.7736)):
        se = res.bootstrap_distribution.adjusted_accuracy[method][:, 0].std(ddof=1)
        assert se < 0.004  # small against the 0.059 between the two closed forms
        assert abs(res.adjusted_accuracy[method]["m"] - want) < 4 * se, (method, se)
    assert abs(res.reference_accuracy["m"] - 0.8) < 4 * np.sqrt(0.8 * 0.2 / 100_000)


def test_thinning_matrix_is_hypergeometric():
    levels = np.array([[10, 0], [10, 4], [10, 10], [12, 7]])
    thinned, h = thinning_matrix(levels, 2)
    assert np.allclose(h.sum(axis=1), 1)
    row = dict(zip(map(tuple, thinned), h[1]))
    for kk in range(5):
        assert row.get((8, kk), 0.0) == pytest.approx(stats.hypergeom.pmf(kk, 10, 4, 8))
    assert dict(zip(map(tuple, thinned), h[3]))[(10, 5)] == pytest.approx(stats.hypergeom.pmf(5, 12, 7, 10))
    with pytest.raises(FitError, match="more than 10"):
        thinning_matrix(np.array([[10, 3], [11, 2]]), 10)


def test_fraction_groups_merge_equal_fractions():
    fractions, group = fraction_groups(np.array([[10, 5], [12, 6], [10, 0], [5, 0], [3, 3]]))
    assert group[0] == group[1] and group[2] == group[3] and len(fractions) == 3


def _random_table(rng, batch=(), n_levels_n=(8, 10, 12), n_models=3):
    levels = np.array([(n, k) for n in n_levels_n for k in range(n + 1)])
    shape = batch + (len(levels),)
    ref = rng.integers(0, 30, shape).astype(float)
    rep = rng.integers(1, 30, shape).astype(float)
    correct = np.floor(rep[..., None] * rng.random(shape + (n_models,)))
    return LevelTable(levels=levels, ref_count=ref, rep_count=rep, rep_correct=correct,
                      ref_correct=rng.integers(0, 100, batch + (n_models,)).astype(float),
                      models=tuple(f"m{i}" for i in range(n_models)))


@pytest.mark.parametrize("name", ["naive", "jackknife"])
def test_weights_reproduce_the_estimate_with_varying_n(name):
    table = _random_table(np.random.default_rng(1))
    adj = METHODS[name](table)
    n_rep = table.rep_count.sum()
    assert (adj.level_weights * table.rep_count).sum() / n_rep == pytest.approx(1.0)
    weighted = (adj.level_weights[:, None] * table.rep_correct).sum(axis=0) / n_rep
    assert np.allclose(weighted, adj.accuracy)


@pytest.mark.parametrize("name", ["naive", "jackknife"])
def test_batched_equals_one_by_one(name):
    batched = _random_table(np.random.default_rng(2), batch=(4, 3))
    out = METHODS[name](batched)
    assert out.accuracy.shape == (4, 3, 3) and out.level_weights.shape == (4, 3, len(batched.levels))
    for i in range(4):
        for j in range(3):
            one = LevelTable(levels=batched.levels, ref_count=batched.ref_count[i, j],
                             rep_count=batched.rep_count[i, j], rep_correct=batched.rep_correct[i, j],
                             ref_correct=batched.ref_correct[i, j], models=batched.models)
            single = METHODS[name](one)
            assert np.allclose(out.accuracy[i, j], single.accuracy)
            assert np.allclose(out.level_weights[i, j], single.level_weights)


def test_naive_renormalizes_over_fractions_present_in_the_replication_set():
    levels = np.array([[10, 2], [10, 8], [10, 10]])
    table = LevelTable(levels=levels, ref_count=np.array([1.0, 1.0, 2.0]), rep_count=np.array([4.0, 2.0, 0.0]),
                       rep_correct=np.array([[1.0], [2.0], [0.0]]), ref_correct=np.array([3.0]), models=("m",))
    adj = plug_in(table)
    # level 10/10 has no replication image: the shares 1/4, 1/4 become 1/2, 1/2
    assert adj.accuracy[0] == pytest.approx(0.5 * 1 / 4 + 0.5 * 2 / 2)
    assert adj.level_weights.tolist() == pytest.approx([0.5 * 6 / 4, 0.5 * 6 / 2, 0.0])


def test_naive_is_nan_without_shared_fractions():
    table = LevelTable(levels=np.array([[10, 2], [10, 8]]), ref_count=np.array([3.0, 0.0]),
                       rep_count=np.array([0.0, 3.0]), rep_correct=np.array([[0.0], [1.0]]),
                       ref_correct=np.array([1.0]), models=("m",))
    assert np.isnan(plug_in(table).accuracy).all()


def test_jackknife_d_option_and_bad_d():
    table = expected_table(10)
    assert METHODS["jackknife"](table, d=2).accuracy[0] == pytest.approx(delete_d(table, 2).accuracy[0])
    with pytest.raises(FitError):
        delete_d(table, 0)
