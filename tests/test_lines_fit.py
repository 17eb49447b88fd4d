"""Accuracy lines on simulated models: transforms, parameter recovery,
interval coverage, residual intervals with binomial error, and selection."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from replication.errors import FitError, InputError
from replication.fits.lines import (LineFit, OLSLine, clean_columns, inverse_transform, select_models, transform,
                               transform_slope)


def _models(rng, n_models=60, slope=0.9, intercept=-0.3, n_x=50_000, n_y=10_000, spread=0.0):
    """Models whose true probit accuracies lie on a line (plus optional
    model-level scatter ``spread``), observed through binomial test sets."""
    tx = rng.uniform(-0.5, 1.5, n_models)
    ty = intercept + slope * tx + spread * rng.standard_normal(n_models)
    px, py = stats.norm.cdf(tx), stats.norm.cdf(ty)
    x = 100 * rng.binomial(n_x, px) / n_x
    y = 100 * rng.binomial(n_y, py) / n_y
    return x, y, 100 * py


@pytest.mark.parametrize("scale", ["linear", "probit", "logit"])
def test_transform_roundtrip_and_derivative(scale):
    acc = np.array([1.0, 20.0, 50.0, 77.7, 99.0])
    np.testing.assert_allclose(inverse_transform(transform(acc, scale), scale), acc, rtol=1e-12)
    h = 1e-5
    numeric = (transform(acc + h, scale) - transform(acc - h, scale)) / (2 * h)
    np.testing.assert_allclose(transform_slope(acc, scale), numeric, rtol=1e-6)


def test_probit_line_recovered_and_interval_covers_truth():
    rng = np.random.default_rng(1)
    covered = []
    for _ in range(40):
        x, y, _ = _models(rng, spread=0.02)
        res = LineFit("probit", n_bootstrap=300, random_state=rng).fit(x, y)
        ci = res.conf_int()
        covered.append(ci.loc["slope", "lower"] <= 0.9 <= ci.loc["slope", "upper"])
    # 40 trials at 95%: fewer than 33 covered has probability < 0.2% if calibrated
    assert np.mean(covered) >= 33 / 40


def test_ols_matches_scipy_linregress_and_t_interval():
    rng = np.random.default_rng(2)
    x, y, _ = _models(rng, spread=0.05)
    res = LineFit("logit", n_bootstrap=0).fit(x, y)
    lr = stats.linregress(transform(x, "logit"), transform(y, "logit"))
    assert res.params["slope"] == pytest.approx(lr.slope, rel=1e-10)
    assert res.params["intercept"] == pytest.approx(lr.intercept, rel=1e-10)
    assert res.bse["slope"] == pytest.approx(lr.stderr, rel=1e-8)
    assert res.rsquared == pytest.approx(lr.rvalue ** 2, rel=1e-10)
    t = stats.t.ppf(0.975, len(x) - 2)
    assert res.conf_int().loc["slope", "upper"] == pytest.approx(lr.slope + t * lr.stderr, rel=1e-10)
    assert res.ci_method == "ols-t"


def test_band_contains_line_and_narrows_near_the_data():
    rng = np.random.default_rng(3)
    x, y, _ = _models(rng, spread=0.03)
    res = LineFit("probit", n_bootstrap=500, random_state=0).fit(x, y)
    grid = np.array([20.0, 50.0, 70.0, 99.0])
    band = res.predict(grid, band=True)
    assert (band["lower"] <= band["fit"]).all() and (band["fit"] <= band["upper"]).all()
    width = band["upper_t"] - band["lower_t"]
    assert width.iloc[2] < width.iloc[3]   # 70% is inside the data, 99% far outside


def test_residual_intervals_cover_models_on_the_line_with_binomial_error():
    """Models exactly on the true line: their residual (effective robustness)
    is pure binomial + line error, so the intervals with image counts should
    cover 0 about 95% of the time, and the intervals without counts much less."""
    rng = np.random.default_rng(4)
    with_counts, without = [], []
    for _ in range(6):
        x, y, _ = _models(rng, n_models=80, n_x=50_000, n_y=2_000)
        er = LineFit("probit", n_bootstrap=400, random_state=rng).fit(x, y, n_x=50_000, n_y=2_000).effective_robustness()
        with_counts.append(((er["er_lower"] <= 0) & (er["er_upper"] >= 0)).to_numpy())
        er0 = LineFit("probit", n_bootstrap=400, random_state=rng).fit(x, y).effective_robustness()
        without.append(((er0["er_lower"] <= 0) & (er0["er_upper"] >= 0)).to_numpy())
    cov = np.concatenate(with_counts).mean()
    # 480 intervals: a calibrated 95% coverage falls in [0.92, 0.98] with high probability
    assert 0.91 <= cov <= 0.99
    assert np.concatenate(without).mean() < cov - 0.2


def test_analytic_residual_intervals_agree_with_bootstrap():
    rng = np.random.default_rng(5)
    x, y, _ = _models(rng, n_models=80, n_y=5_000, spread=0.01)
    boot = LineFit("logit", n_bootstrap=2000, random_state=0).fit(x, y, n_x=50_000, n_y=5_000).effective_robustness()
    ana = LineFit("logit", n_bootstrap=0).fit(x, y, n_x=50_000, n_y=5_000).effective_robustness()
    np.testing.assert_allclose(boot["er"], ana["er"])
    w_boot = (boot["er_upper_t"] - boot["er_lower_t"]).to_numpy()
    w_ana = (ana["er_upper_t"] - ana["er_lower_t"]).to_numpy()
    assert np.median(w_boot / w_ana) == pytest.approx(1.0, abs=0.15)


def test_effective_robustness_is_taori_definition():
    x = np.array([60.0, 65.0, 70.0, 75.0, 80.0])
    y = np.array([48.0, 52.0, 58.5, 63.0, 69.0])
    res = LineFit("logit", n_bootstrap=0).fit(x, y, names=list("abcde"))
    lr = stats.linregress(transform(x, "logit"), transform(y, "logit"))
    expected = 100 * stats.logistic.cdf(lr.intercept + lr.slope * transform(x, "logit"))
    er = res.effective_robustness()
    np.testing.assert_allclose(er["er"], y - expected, rtol=1e-10)
    assert er["model"].tolist() == list("abcde")


def test_to_dict_has_contract_keys():
    rng = np.random.default_rng(6)
    x, y, _ = _models(rng, n_models=10)
    d = LineFit("probit", n_bootstrap=50, random_state=0).fit(x, y).to_dict()
    assert {"n", "scale", "slope", "intercept", "r2", "slope_ci", "intercept_ci"} <= set(d)
    assert d["n"] == 10 and len(d["slope_ci"]) == 2 and d["slope_ci"][0] < d["slope"] < d["slope_ci"][1]
    assert "Accuracy line" in LineFit("probit", n_bootstrap=0).fit(x, y).summary().as_text()


def test_same_seed_same_intervals():
    rng = np.random.default_rng(7)
    x, y, _ = _models(rng, n_models=20)
    a = LineFit(n_bootstrap=200, random_state=3).fit(x, y, n_y=10_000).conf_int()
    b = LineFit(n_bootstrap=200, random_state=3).fit(x, y, n_y=10_000).conf_int()
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize("x, y, msg", [
    ([50, 60], [40, 50], "at least 3"),
    ([50, 60, np.nan], [40, 50, 55], "NaN"),
    ([50, 60, 101], [40, 50, 55], "outside 0..100"),
    ([50, 60, 100], [40, 50, 55], "exactly 0 or 100"),
])
def test_bad_input(x, y, msg):
    with pytest.raises(InputError, match=msg):
        LineFit("probit").fit(x, y)


def test_constant_x_is_a_fit_error():
    with pytest.raises(FitError):
        LineFit("probit", n_bootstrap=0).fit([50, 50, 50], [40, 41, 42])


def test_select_models_and_clean_columns():
    df = pd.DataFrame({"model": ["a_aws", "b", "c_Batch64", "d", "e"], "t": ["S", "S", "S", "M", "S"],
                       "v": [60.0, 54.0, 70.0, 80.0, np.nan]})
    kept = select_models(df, where={"t": ["S"]}, exclude_substrings=["aws", "batch64"])
    assert kept["model"].tolist() == ["b", "e"]
    assert select_models(df, at_least={"v": 55})["model"].tolist() == ["a_aws", "c_Batch64", "d"]
    with pytest.raises(InputError, match="model e"):
        clean_columns(df, ["v"])
    assert len(clean_columns(df, ["v"], dropna=True)) == 4
    with pytest.raises(InputError, match="not found"):
        select_models(df, where={"nope": ["x"]})


def test_inverse_interval_endpoints_touch_the_prediction_band():
    rng = np.random.default_rng(8)
    x = rng.uniform(0, 10, 30)
    y = 1.0 - 0.5 * x + rng.normal(0, 0.3, 30)
    ols = OLSLine.fit(x, y)
    y0 = -1.0
    lo, hi = ols.inverse_interval(y0)
    t = ols.tcrit(0.05)
    for x0 in (lo, hi):
        fit = ols.intercept + ols.slope * x0
        assert abs(abs(fit - y0) - t * ols.se_pred(x0)) < 1e-9
    assert lo < (y0 - ols.intercept) / ols.slope < hi
