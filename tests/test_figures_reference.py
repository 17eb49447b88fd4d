"""Every paper figure regenerated from ../shared/reference: files written, and
the JSON numbers equal what the fits return."""
from __future__ import annotations

import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from replication.errors import InputError
from replication.fits.accuracy import accuracy_from_correctness
from replication.figures import FIGURES, generate_all
from replication.figures._data import CORRECT_TOP1, THOMPSON, correctness
from replication.figures._provenance import sha256_file
from replication.figures.recht2019 import accuracy_from_table, v2_vs_v1_figure

REFERENCE_FIGURES = ["recht2019_v2_vs_v1", "real_votes", "taori2020_effective_robustness",
                     "thompson2020_compute", "thompson2020_year", "timm_scaling"]


@pytest.fixture(scope="module")
def figures(reference_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("figures")
    saved = generate_all(reference_dir, out, REFERENCE_FIGURES)
    return {s.name: json.loads(s.json.read_text()) | {"_saved": s} for s in saved}


def test_all_reference_figures_written(figures, reference_dir):
    data = figures
    assert set(REFERENCE_FIGURES) <= set(FIGURES)
    for name, d in data.items():
        s = d["_saved"]
        assert s.png.stat().st_size > 20_000, name
        assert s.pdf.read_bytes()[:5] == b"%PDF-", name
        assert d["figure"] == name and d["numbers"] and d["headline"] and d["caption"], name
        assert d["inputs"], name
        for rec in d["inputs"]:
            assert rec["sha256"] == sha256_file(reference_dir / rec["path"]), (name, rec["path"])


def test_recht_numbers_match_an_independent_computation(figures, reference_dir):
    """Accuracies by pandas from the per-image matrix, the line by scipy's
    linregress, the intervals by scipy's exact binomial test."""
    nums = figures["recht2019_v2_vs_v1"]["numbers"]
    assert nums["scale"] == "linear"
    raw = pd.read_parquet(reference_dir / CORRECT_TOP1)
    acc = 100 * raw.groupby("dataset")[[c for c in raw.columns if c not in ("dataset", "image_id", "label")]].mean()
    for ds, got in nums["sets"].items():
        np.testing.assert_allclose(got["x"], acc.loc["imagenet-val", got["models"]], rtol=1e-12)
        np.testing.assert_allclose(got["y"], acc.loc[ds, got["models"]], rtol=1e-12)
        lr = stats.linregress(got["x"], got["y"])
        assert got["line"]["slope"] == pytest.approx(lr.slope, rel=1e-9)
        assert got["line"]["intercept"] == pytest.approx(lr.intercept, rel=1e-9)
        assert got["line"]["r2"] == pytest.approx(lr.rvalue ** 2, rel=1e-9)
        lo, hi = got["line"]["slope_ci"]   # (bootstrap with binomial redraws of every accuracy: wider than OLS's)
        assert lo < lr.slope < hi and hi - lo > 2 * 1.96 * lr.stderr
        np.testing.assert_allclose(got["band"]["fit"], lr.intercept + lr.slope * np.asarray(got["band"]["x"]),
                                   rtol=1e-9)
        assert got["gap_mean"] == pytest.approx(np.mean(np.asarray(got["x"]) - np.asarray(got["y"])), rel=1e-12)
    mf = nums["sets"]["imagenetv2-matched-frequency"]
    j = mf["models"].index("resnet50")
    # Recht et al.: ResNet-50 76.13% on val, 63.33% on MatchedFrequency
    assert mf["x"][j] == pytest.approx(76.13, abs=0.005) and mf["y"][j] == pytest.approx(63.33, abs=0.005)
    ci = stats.binomtest(6333, 10_000).proportion_ci(method="exact")
    assert [mf["y_ci"][0][j], mf["y_ci"][1][j]] == pytest.approx([100 * ci.low, 100 * ci.high], rel=1e-9)
    assert 11 < mf["gap_mean"] < 14


def test_recht_from_an_accuracy_table_matches_the_correctness_path(reference_dir):
    """The figure drawn from a contract accuracy table (percent) has the same
    points and intervals as from the per-image matrix."""
    acc = accuracy_from_correctness(correctness(reference_dir))
    table = acc.table[["model", "imagenet-val", "imagenetv2-matched-frequency", "imagenetv2-threshold0.7",
                       "imagenetv2-top-images"]]
    again = accuracy_from_table(table)
    assert again.correct.equals(acc.correct.loc[again.correct.index])
    fig, data = v2_vs_v1_figure(again, n_bootstrap=50)
    plt.close(fig)
    mf = data["numbers"]["sets"]["imagenetv2-matched-frequency"]
    lo, hi = acc.conf_int()
    np.testing.assert_allclose(mf["y_ci"][0], lo.loc["imagenetv2-matched-frequency"], rtol=1e-12)
    with pytest.raises(InputError, match="imagenetv2-top-images"):
        accuracy_from_table(table.drop(columns="imagenetv2-top-images"))


def test_taori_numbers_match_an_independent_computation(figures, reference_dir):
    """Taori et al.'s selection (STANDARD models, val >= 55%, no aws/batch64/
    subsample variants) redone with pandas, the logit line with linregress."""
    nums = figures["taori2020_effective_robustness"]["numbers"]
    raw = pd.read_csv(reference_dir / "imagenet-testbed" / "robustness_top1s.csv").merge(
        pd.read_csv(reference_dir / "imagenet-testbed" / "model_types.csv"), on="model")
    ycol = "imagenetv2-matched-frequency-format-val"
    raw = raw.dropna(subset=["val", ycol])
    name = raw["model"].str.lower()
    sel = raw[(raw["nat_model_type"] == "STANDARD") & (raw["val"] >= 55) & ~name.str.contains("subsample")
              & ~name.str.contains("aws") & ~name.str.contains("batch64")]
    logit = lambda a: np.log(a / (100 - a))  # noqa: E731
    lr = stats.linregress(logit(sel["val"]), logit(sel[ycol]))
    assert sorted(nums["line_models"]) == sorted(sel["model"]) and len(sel) == 85
    assert nums["line"]["slope"] == pytest.approx(lr.slope, rel=1e-9)
    assert nums["line"]["intercept"] == pytest.approx(lr.intercept, rel=1e-9)
    er = dict(zip(nums["models"]["model"], nums["models"]["effective_robustness"]))
    expected = 100 / (1 + np.exp(-(lr.intercept + lr.slope * logit(sel["val"].to_numpy()))))
    np.testing.assert_allclose([er[m] for m in sel["model"]], sel[ycol].to_numpy() - expected, atol=1e-9)


def test_thompson_numbers_match_an_independent_computation(figures, reference_dir):
    """np.polyfit of log10(error fraction) on log10(FLOP) over the supervised
    and fine-tuned models with a compute estimate; the best-of-year trend by
    pandas and polyfit."""
    d = figures["thompson2020_compute"]["numbers"]["fit"]
    manual = pd.read_csv(reference_dir / THOMPSON)
    manual = manual[manual["eval_protocol"].isin(["supervised", "fine-tuned"])]
    has = manual.dropna(subset=["train_compute_flop", "top1_err_pct"])
    slope, intercept = np.polyfit(np.log10(has["train_compute_flop"]), np.log10(has["top1_err_pct"] / 100), 1)
    assert d["n"] == len(has) == 24
    assert d["exponent"] == pytest.approx(-1 / slope, rel=1e-9) == pytest.approx(9.76, abs=0.005)
    for t in ("5", "3", "2"):
        want = (np.log10(float(t) / 100) - intercept) / slope
        assert d["targets"][t]["log10_compute"] == pytest.approx(want, rel=1e-9)
    assert d["targets"]["5"]["log10_compute"] == pytest.approx(25.54, abs=0.005)
    best = manual.dropna(subset=["top1_err_pct", "year"]).groupby("year")["top1_err_pct"].min()
    trend = figures["thompson2020_year"]["numbers"]["trend"]
    assert trend["slope_per_year"] == pytest.approx(np.polyfit(best.index, np.log10(best / 100), 1)[0], rel=1e-9)


def test_timm_numbers_match_an_independent_computation(figures, reference_dir):
    """The probit line of v2 on val over timm's 1,556 configurations by
    linregress on the raw files; the GMACs frontier (lowest error so far in
    compute order) by a plain loop and its power law by polyfit."""
    nums = figures["timm_scaling"]["numbers"]
    v1 = pd.read_csv(reference_dir / "timm" / "results-imagenet.csv")
    v2 = pd.read_csv(reference_dir / "timm" / "results-imagenetv2-matched-frequency.csv")
    both = v1.merge(v2, on=["model", "img_size"], suffixes=("_v1", "_v2"))
    lr = stats.linregress(stats.norm.ppf(both["top1_v1"] / 100), stats.norm.ppf(both["top1_v2"] / 100))
    assert len(both) == 1556 and len(nums["points"]["x"]) == 1556
    assert nums["line"]["slope"] == pytest.approx(lr.slope, rel=1e-9)
    comp = nums["compute"]
    order = np.lexsort((comp["error_pct"], comp["gmacs"]))
    frontier, best = np.zeros(len(order), bool), np.inf
    for i in order:
        if comp["error_pct"][i] < best:
            frontier[i], best = True, comp["error_pct"][i]
    assert comp["frontier"] == frontier.tolist() and frontier.sum() == 37
    g, e = np.asarray(comp["gmacs"])[frontier], np.asarray(comp["error_pct"])[frontier]
    slope = np.polyfit(np.log10(g), np.log10(e / 100), 1)[0]
    assert nums["frontier_fit"]["exponent"] == pytest.approx(-1 / slope, rel=1e-9) == pytest.approx(7.71, abs=0.005)
    # timm's known data quirks are kept in the JSON (the console shows them only with --debug)
    notes = figures["timm_scaling"]["notes"]
    assert any("results-imagenet-a.csv: no row for 1 configuration" in n for n in notes)
