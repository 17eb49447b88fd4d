"""Every paper figure regenerated from ../shared/reference: files written, and
the JSON numbers equal what the fits return."""
from __future__ import annotations

import json
import time

import matplotlib.pyplot as plt
import numpy as np
import pytest

from replication.errors import InputError
from replication.fits.accuracy import accuracy_from_correctness
from replication.figures import FIGURES, generate_all
from replication.figures._data import THOMPSON, correctness
from replication.figures._provenance import sha256_file
from replication.figures.recht2019 import accuracy_from_table, v2_lines, v2_vs_v1_figure
from replication.figures.taori2020 import taori_line
from replication.figures.thompson2020 import compute_fit, landmark_models
from replication.figures.timm_scaling import timm_fits
from replication.fits.importers import import_testbed, import_timm
from replication.fits.scaling import ErrorTrendFit

REFERENCE_FIGURES = ["recht2019_v2_vs_v1", "real_votes", "taori2020_effective_robustness",
                     "thompson2020_compute", "thompson2020_year", "timm_scaling"]


@pytest.fixture(scope="module")
def figures(reference_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("figures")
    start = time.perf_counter()
    saved = generate_all(reference_dir, out, REFERENCE_FIGURES)
    elapsed = time.perf_counter() - start
    return {s.name: json.loads(s.json.read_text()) | {"_saved": s} for s in saved}, elapsed


def test_all_reference_figures_written(figures, reference_dir):
    data, elapsed = figures
    assert set(REFERENCE_FIGURES) <= set(FIGURES)
    assert elapsed < 60
    for name, d in data.items():
        s = d["_saved"]
        assert s.png.stat().st_size > 20_000, name
        assert s.pdf.read_bytes()[:5] == b"%PDF-", name
        assert d["figure"] == name and d["numbers"] and d["headline"] and d["caption"], name
        assert d["inputs"], name
        for rec in d["inputs"]:
            assert rec["sha256"] == sha256_file(reference_dir / rec["path"]), (name, rec["path"])


def test_recht_numbers_equal_the_fit(figures, reference_dir):
    nums = figures[0]["recht2019_v2_vs_v1"]["numbers"]
    fits = v2_lines(accuracy_from_correctness(correctness(reference_dir)), scale=nums["scale"],
                    n_bootstrap=nums["n_bootstrap"], random_state=nums["seed"])
    for ds, r in fits.items():
        got = nums["sets"][ds]
        want = r["fit"].to_dict(residuals=False)
        assert got["line"]["slope"] == pytest.approx(want["slope"], rel=1e-12)
        assert got["line"]["slope_ci"] == pytest.approx(want["slope_ci"], rel=1e-12)
        band = r["fit"].predict(got["band"]["x"], band=True)
        np.testing.assert_allclose(got["band"]["lower"], band["lower"], rtol=1e-12)
    mf = nums["sets"]["imagenetv2-matched-frequency"]
    j = mf["models"].index("resnet50")
    # Recht et al.: ResNet-50 76.13% on val, 63.33% on MatchedFrequency
    assert mf["x"][j] == pytest.approx(76.13, abs=0.005) and mf["y"][j] == pytest.approx(63.33, abs=0.005)
    lo, hi = mf["y_ci"][0][j], mf["y_ci"][1][j]
    assert lo < 63.33 < hi and hi - lo == pytest.approx(2 * 1.96 * np.sqrt(0.6333 * 0.3667 / 10_000) * 100, rel=0.05)
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


def test_taori_numbers_equal_the_fit(figures, reference_dir):
    nums = figures[0]["taori2020_effective_robustness"]["numbers"]
    table = import_testbed(reference_dir / "imagenet-testbed/robustness_top1s.csv",
                           reference_dir / "imagenet-testbed/model_types.csv").table
    fit, std, er = taori_line(table)
    want = fit.to_dict(residuals=False)
    assert nums["line"]["slope"] == pytest.approx(want["slope"], rel=1e-12)
    assert nums["line"]["intercept_ci"] == pytest.approx(want["intercept_ci"], rel=1e-12)
    assert nums["line_models"] == std["model"].tolist()
    np.testing.assert_allclose(nums["models"]["effective_robustness"], er["effective_robustness"], rtol=1e-12)


def test_thompson_numbers_equal_the_fit(figures, reference_dir):
    d = figures[0]["thompson2020_compute"]["numbers"]["fit"]
    models = landmark_models(reference_dir / THOMPSON)
    _, res = compute_fit(models)
    want = res.to_dict([5.0, 3.0, 2.0])
    assert d["exponent"] == pytest.approx(want["exponent"], rel=1e-12)
    for t in ("5", "3", "2"):
        assert d["targets"][t]["log10_compute"] == pytest.approx(want["targets"][t]["log10_compute"], rel=1e-12)
        assert d["targets"][t]["interval"] == pytest.approx(want["targets"][t]["interval"], rel=1e-12)
    assert 5 < d["exponent"] < 20          # Thompson et al. observed about 9
    trend = figures[0]["thompson2020_year"]["numbers"]["trend"]
    res_y = ErrorTrendFit().fit(models["year"], models["top1_err_pct"], models["model"])
    assert trend["slope_per_year"] == pytest.approx(res_y.to_dict()["slope_per_year"], rel=1e-12)


def test_timm_numbers_equal_the_fit(figures, reference_dir):
    nums = figures[0]["timm_scaling"]["numbers"]
    imported = import_timm(reference_dir / "timm")
    both, line, comp, scaling = timm_fits(imported.table)
    assert len(both) == 1556 and len(nums["points"]["x"]) == 1556
    assert nums["line"]["slope"] == pytest.approx(line.to_dict(residuals=False)["slope"], rel=1e-12)
    assert nums["frontier_fit"]["exponent"] == pytest.approx(scaling.exponent, rel=1e-12)
    assert sum(nums["compute"]["frontier"]) == int(scaling.frontier_mask.sum())
    # timm's known data quirks are kept in the JSON (the console shows them only with --debug)
    notes = figures[0]["timm_scaling"]["notes"]
    assert notes == [f"WARNING replication.fits.importers: {m}" for m in imported.messages] + notes[len(imported.messages):]
    assert any("results-imagenet-a.csv: no row for 1 configuration" in n for n in notes)
