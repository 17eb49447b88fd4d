"""Thompson-style compute scaling: simulated power laws, the Pareto frontier,
intervals, conversions, error trend, backtest, the published models and
timm's GMACs, and bad input through the command line."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from replication.errors import FitError, InputError
from replication.fits.scaling import (Conversions, ErrorTrendFit, ScalingFit, backtest, best_of_year,
                                 pareto_frontier)



def _power_law(rng, n=40, slope=-0.11, intercept=1.2, noise=0.03):
    """log10 error fraction = intercept + slope * log10 compute + noise."""
    logc = rng.uniform(17, 23, n)
    err = 100 * 10 ** (intercept + slope * logc + noise * rng.standard_normal(n))
    return 10 ** logc, err


def test_recovers_exponent_and_bootstrap_covers_truth():
    rng = np.random.default_rng(0)
    hits = []
    for _ in range(30):
        c, e = _power_law(rng)
        res = ScalingFit(n_bootstrap=300, random_state=rng).fit(c, e)
        ci = res.conf_int()
        hits.append(ci.loc["exponent", "lower"] <= 1 / 0.11 <= ci.loc["exponent", "upper"])
    # 30 trials at 95%: fewer than 24 hits has probability < 0.5% if calibrated
    assert np.mean(hits) >= 24 / 30
    c, e = _power_law(np.random.default_rng(1), n=400, noise=0.01)
    res = ScalingFit(n_bootstrap=0).fit(c, e)
    assert res.exponent == pytest.approx(1 / 0.11, rel=0.02)
    assert res.params["slope"] == pytest.approx(-0.11, abs=0.003)


def test_target_compute_and_its_intervals():
    rng = np.random.default_rng(2)
    c, e = _power_law(rng, n=60)
    res = ScalingFit(n_bootstrap=1000, random_state=0).fit(c, e)
    tab = res.predict_log10_compute([5.0, 2.0])
    truth = (np.log10([0.05, 0.02]) - 1.2) / -0.11
    assert ((tab["pi_lower"] < truth) & (truth < tab["pi_upper"])).all()
    assert ((tab["boot_lower"] < tab["log10_compute"]) & (tab["log10_compute"] < tab["boot_upper"])).all()
    # a new model's prediction interval is wider than the line's bootstrap interval
    assert ((tab["pi_upper"] - tab["pi_lower"]) > (tab["boot_upper"] - tab["boot_lower"])).all()
    # round trip: the fitted line at the projected compute gives the target
    back = res.predict(tab["log10_compute"])["error_pct"]
    np.testing.assert_allclose(back, [5.0, 2.0], rtol=1e-10)
    band = res.predict(tab["log10_compute"], band=True)
    assert (band["lower"] < band["error_pct"]).all() and (band["error_pct"] < band["upper"]).all()


def test_conversions_are_thompsons_constants_and_overridable():
    conv = Conversions()
    assert conv.usd(np.log10(6.874e16)) == pytest.approx(1.0)
    assert conv.co2_lbs(np.log10(3.498e17)) == pytest.approx(1.0)
    assert dict(conv.references)["New York City, one month"] == 1.038e10
    gm = Conversions(flop_per_unit=2e9)
    assert gm.usd(np.log10(6.874e16 / 2e9)) == pytest.approx(1.0)
    rng = np.random.default_rng(3)
    c, e = _power_law(rng)
    row = ScalingFit(n_bootstrap=0).fit(c, e).predict_log10_compute(5.0).iloc[0]
    assert row["usd"] == pytest.approx(10 ** row["log10_compute"] / 6.874e16)
    assert row["co2 / New York City, one month"] == pytest.approx(row["co2_lbs"] / 1.038e10)


def test_pareto_frontier_is_lowest_error_so_far():
    compute = np.array([1, 2, 3, 4, 5, 6, 6], dtype=float)
    error = np.array([30, 35, 25, 25, 20, 22, 19], dtype=float)
    assert pareto_frontier(compute, error).tolist() == [True, False, True, False, True, False, True]
    rng = np.random.default_rng(4)
    c, e = _power_law(rng, n=50, noise=0.08)
    res = ScalingFit(frontier=True, n_bootstrap=200, random_state=0).fit(c, e)
    mask = res.frontier_mask
    assert res.nobs == mask.sum() < 50
    order = np.argsort(c[mask])
    assert np.all(np.diff(e[mask][order]) < 0)   # frontier errors fall with compute
    assert np.isfinite(res.conf_int().loc["slope"]).all()


def test_theory_bound_equals_fit_when_exponent_is_four():
    logc = np.linspace(18, 22, 10)
    e = 100 * 10 ** (4.0 - 0.25 * logc)   # 32% down to 3%
    res = ScalingFit(n_bootstrap=0).fit(10 ** logc, e)
    tab = res.predict_log10_compute([3.0, 1.0])
    np.testing.assert_allclose(tab["theory_log10_compute"], tab["log10_compute"], rtol=1e-9)
    assert res.exponent == pytest.approx(4.0)


def test_error_trend_and_best_of_year():
    years = np.repeat(np.arange(2012, 2022), 3)
    rng = np.random.default_rng(5)
    e = 100 * 10 ** (-0.5 - 0.05 * (years - 2012) + 0.02 * rng.standard_normal(len(years))) + np.tile([0, 3, 6], 10)
    best = best_of_year(years, e)
    assert len(best) == 10 and (best["error_pct"].to_numpy() == e.reshape(10, 3).min(axis=1)).all()
    trend = ErrorTrendFit().fit(years, e)
    assert trend.params["slope"] == pytest.approx(-0.05, abs=0.01)
    cross = trend.crossing_years([10.0]).iloc[0]
    assert cross["lower"] < 2012 + (np.log10(0.1) + 0.5) / -0.05 < cross["upper"]
    assert set(trend.to_dict()["crossing_years"]) == {"5", "3", "2"}


def test_backtest_on_an_exact_law_projects_later_models():
    rng = np.random.default_rng(6)
    years = np.arange(2010, 2022)
    logc = 17 + 0.5 * (years - 2010) + rng.uniform(-0.2, 0.2, len(years))
    e = 100 * 10 ** (1.2 - 0.11 * logc + 0.005 * rng.standard_normal(len(years)))
    bt = backtest(10 ** logc, e, years, 2015)
    assert bt.fit.nobs == 6 and len(bt.table) == 6
    assert np.abs(bt.table["log10_ratio"]).max() < 0.6
    assert bt.to_dict()["coverage"] >= 5 / 6
    assert "Backtest" in bt.summary().as_text()


@pytest.mark.parametrize("compute, error, msg", [
    ([1e18, 0.0, 1e20], [30, 20, 10], "compute must be positive"),
    ([1e18, -5, 1e20], [30, 20, 10], "compute must be positive"),
    ([1e18, 1e19, 1e20], [30, 120, 10], "outside 0..100"),
    ([1e18, 1e19], [30, 20], "at least 3"),
    ([1e18, np.nan, 1e20], [30, 20, 10], "NaN"),
    ([1e18, 1e19, 1e20], [30, 0, 10], "no logarithm"),
])
def test_api_bad_input(compute, error, msg):
    with pytest.raises(InputError, match=msg):
        ScalingFit().fit(compute, error)


def test_frontier_with_too_few_points_is_a_fit_error():
    with pytest.raises(FitError, match="frontier"):
        ScalingFit(frontier=True).fit([1, 2, 3, 4], [10, 20, 30, 5])


@pytest.mark.parametrize("rows, extra, msg", [
    ({"model": list("abcd"), "c": [1e18, 0, 1e20, 1e21], "err": [30, 20, 10, 8]}, [], "compute"),
    ({"model": list("abcd"), "c": [1e18, -1e19, 1e20, 1e21], "err": [30, 20, 10, 8]}, [], "compute"),
    ({"model": list("abcd"), "c": [1e18, 1e19, 1e20, 1e21], "err": [30, 20, 101, 8]}, [], "outside 0..100"),
    ({"model": list("abcd"), "c": [1e18, 1e19, 1e20, 1e21], "acc": [70, -2, 90, 92]}, ["acc"], "outside 0..100"),
    ({"model": list("ab"), "c": [1e18, 1e19], "err": [30, 20]}, [], "at least 3"),
    ({"model": list("abcd"), "c": [1e18, 1e19, np.nan, 1e21], "err": [30, 20, 10, 8]}, [], "missing or NaN"),
    ({"model": list("abcd"), "c": [1e18, 1e19, 1e20, 1e21], "err": [30, np.nan, 10, 8]}, [], "missing or NaN"),
    ({"model": list("abcd"), "c": [1e18, 1e19, 1e20, 1e21], "err": [30, 20, 10, 8]}, ["--targets", "5,x"], "--targets"),
])
def test_scaling_cli_bad_input(tmp_path, run, rows, extra, msg):
    src, out = tmp_path / "t.csv", tmp_path / "s.json"
    pd.DataFrame(rows).to_csv(src, index=False)
    perf = ["--accuracy-col", "acc"] if extra[:1] == ["acc"] else ["--error-col", "err"]
    code, stdout, err = run("scaling", "--table", src, "--compute-col", "c", *perf, *extra[1 if extra[:1] == ["acc"] else 0:],
                            "--json", out)
    assert code == 1, err
    assert msg in err and err.strip().count("\n") == 0 and err.startswith("replication scaling: error:")
    assert not out.exists() and list(tmp_path.iterdir()) == [src]


@pytest.fixture(scope="module")
def thompson_rows(reference_dir):
    d = pd.read_csv(reference_dir / "thompson" / "models_manual.csv")
    return d[d["train_compute_flop"].notna() & d["eval_protocol"].isin(["supervised", "fine-tuned"])]


def test_thompson_models_exponent_and_five_percent(reference_dir, thompson_rows, tmp_path, run):
    out = tmp_path / "thompson.json"
    code, stdout, err = run("scaling", "--table", reference_dir / "thompson" / "models_manual.csv",
                            "--compute-col", "train_compute_flop", "--error-col", "top1_err_pct",
                            "--where", "eval_protocol=supervised,fine-tuned", "--dropna", "--targets", "5,3,2",
                            "--bootstrap", 2000, "--year-col", "year", "--backtest-year", 2017, "--json", out)
    assert code == 0, err
    d = json.loads(out.read_text())
    assert d["n"] == len(thompson_rows) == 24
    x, y = np.log10(thompson_rows["train_compute_flop"]), np.log10(thompson_rows["top1_err_pct"] / 100)
    slope, intercept = np.polyfit(x, y, 1)
    assert d["slope"] == pytest.approx(slope, rel=1e-9) and d["intercept"] == pytest.approx(intercept, rel=1e-9)
    assert d["exponent"] == pytest.approx(-1 / slope, rel=1e-9)
    # Thompson et al. observed compute growing with about the 9th power of the improvement; the README's
    # numbers (this command, --bootstrap 2000, seed 0) pinned
    assert round(d["exponent"], 2) == 9.76 and [round(v, 2) for v in d["exponent_ci"]] == [8.74, 12.22]
    assert round(d["targets"]["5"]["log10_compute"], 2) == 25.54
    assert [round(v, 2) for v in d["targets"]["5"]["interval"]] == [23.43, 28.37]
    assert round(d["backtest"]["coverage"] * d["backtest"]["n_later"]) == 13 and d["backtest"]["n_later"] == 16
    five = d["targets"]["5"]
    assert five["interval"][0] < five["log10_compute"] < five["interval"][1]
    assert five["bootstrap_interval"][0] < five["log10_compute"] < five["bootstrap_interval"][1]
    assert five["usd"] == pytest.approx(10 ** five["log10_compute"] / 6.874e16)
    assert five["co2_lbs"] == pytest.approx(10 ** five["log10_compute"] / 3.498e17)
    assert five["theory_log10_compute"] < five["log10_compute"]    # the 4th-power bound needs less
    assert set(d["targets"]) == {"5", "3", "2"}
    assert d["error_trend"]["crossing_years"]["5"]["year"] > 2022
    assert d["backtest"]["n_fit"] + d["backtest"]["n_later"] == 24


def test_thompson_frontier_fit(thompson_rows):
    res = ScalingFit(frontier=True, n_bootstrap=500, random_state=0).fit(
        thompson_rows["train_compute_flop"], thompson_rows["top1_err_pct"], names=thompson_rows["model"])
    assert 3 <= res.nobs < len(thompson_rows)
    assert "AlexNet (SuperVision)" in set(res.names[res.frontier_mask])
    assert "Pareto frontier" in res.summary().as_text()


def test_timm_gmacs_axis(reference_dir, tmp_path, run):
    table = tmp_path / "timm.csv"
    assert run("import-results", "--source", "timm", "--path", reference_dir / "timm", "--out", table)[0] == 0
    timm = pd.read_csv(table)
    for frontier in ([], ["--frontier"]):
        out = tmp_path / f"gmacs{len(frontier)}.json"
        code, _, err = run("scaling", "--table", table, "--compute-col", "infer_gmacs", "--accuracy-col",
                           "imagenet-val", "--dropna", "--flop-per-unit", 2e9, "--bootstrap", 300, *frontier,
                           "--json", out)
        assert code == 0, err
        d = json.loads(out.read_text())
        usable = timm.dropna(subset=["infer_gmacs", "imagenet-val"])
        if not frontier:
            assert d["n"] == len(usable) >= 1500
            slope = np.polyfit(np.log10(usable["infer_gmacs"]), np.log10(1 - usable["imagenet-val"] / 100), 1)[0]
            assert d["slope"] == pytest.approx(slope, rel=1e-9)
            # the README's numbers: exponent 8.59, 5% error at 10^5.66 GMACs per image
            assert (round(d["exponent"], 2), round(d["targets"]["5"]["log10_compute"], 2)) == (8.59, 5.66)
        else:
            assert d["n"] == 37 and (round(d["exponent"], 2), round(d["targets"]["5"]["log10_compute"], 2)) == (7.71, 4.55)
        assert d["exponent"] > 0 and d["exponent_ci"][0] < d["exponent"] < d["exponent_ci"][1]
        five = d["targets"]["5"]
        assert five["usd"] == pytest.approx(10 ** five["log10_compute"] * 2e9 / 6.874e16)
