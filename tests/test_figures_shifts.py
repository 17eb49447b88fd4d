"""Effective robustness of models outside a line, the taori2020 figure on any
shift, and the shift_lines figure on the published data alone."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from replication.errors import InputError
from replication.figures import generate
from replication.figures._data import TESTBED_TOP1, TESTBED_TYPES
from replication.figures.taori2020 import taori_line
from replication.fits.importers import import_testbed
from replication.fits.lines import LineFit
from replication.fits.robustness import effective_robustness_of


@pytest.fixture(scope="module")
def line():
    rng = np.random.default_rng(0)
    x = rng.uniform(55, 85, 60)
    y = 100 / (1 + np.exp(-(0.9 * np.log(x / (100 - x)) - 0.5))) + rng.normal(0, 0.5, 60)
    return LineFit("logit", n_bootstrap=2000, random_state=1).fit(x, y, n_x=50_000, n_y=10_000)


def test_without_counts_the_interval_is_the_lines_band(line):
    x, y = np.array([60.0, 75.0, 80.0]), np.array([50.0, 70.0, 66.0])
    er = effective_robustness_of(line, ["a", "b", "c"], x, y)
    band = line.predict(x, band=True)
    np.testing.assert_allclose(er["er"], y - band["fit"], rtol=1e-12)
    np.testing.assert_allclose(er["er_lower"], y - band["upper"], rtol=1e-9)
    np.testing.assert_allclose(er["er_upper"], y - band["lower"], rtol=1e-9)


def test_binomial_error_widens_the_interval_as_the_counts_shrink(line):
    widths = []
    for n in (100, 1_000, 100_000):
        er = effective_robustness_of(line, ["m"], [75.0], [64.0], n_x=[n], n_y=[n], random_state=3)
        widths.append(float(er["er_upper"].iloc[0] - er["er_lower"].iloc[0]))
    band = line.predict([75.0], band=True)
    assert widths[0] > widths[1] > widths[2] >= 0.99 * float(band["upper"].iloc[0] - band["lower"].iloc[0])
    # n = 100: about the binomial standard error of y alone, 1.96 * sqrt(.64 * .36 / 100) * 2 = 18.8 points
    assert 15 < widths[0] < 30


def test_edges_and_bad_input(line):
    er = effective_robustness_of(line, ["all right"], [100.0], [100.0], n_x=[4], n_y=[4])
    assert np.isfinite(er[["er", "er_lower", "er_upper"]].to_numpy()).all()
    with pytest.raises(InputError, match="percent"):
        effective_robustness_of(line, ["m"], [0.7], [120.0])
    with pytest.raises(InputError, match="bootstrap replicates"):
        effective_robustness_of(LineFit("logit", n_bootstrap=0).fit([60, 70, 80], [50, 61, 70]), ["m"], [70], [60])


def test_taori_figure_on_imagenet_r(reference_dir, tmp_path):
    saved = generate("taori2020_effective_robustness", reference_dir, tmp_path, n_bootstrap=200, y="imagenet-r")
    table = import_testbed(reference_dir / TESTBED_TOP1, reference_dir / TESTBED_TYPES).table
    fit, std, er = taori_line(table, y="imagenet-r", n_bootstrap=200)
    nums = json.loads(saved.json.read_text())["numbers"]
    assert nums["y"] == "imagenet-r" and nums["line"]["slope"] == pytest.approx(fit.params["slope"], rel=1e-12)
    assert len(nums["models"]["model"]) == 329 and nums["line_models"] == std["model"].tolist()
    with pytest.raises(InputError, match="no shift column 'imagenet-real'"):
        taori_line(table, y="imagenet-real")


def test_shift_lines_figure_without_user_models(reference_dir, tmp_path):
    saved = generate("shift_lines", reference_dir, tmp_path, n_bootstrap=100)
    d = json.loads(saved.json.read_text())
    assert set(d["numbers"]["shifts"]) == {"imagenetv2-matched-frequency", "imagenet-real", "imagenet-a",
                                           "imagenet-r", "imagenet-sketch", "objectnet"}
    v2 = d["numbers"]["shifts"]["imagenetv2-matched-frequency"]
    assert len(v2["testbed"]["model"]) == 335 and len(v2["timm"]["model"]) == 1556
    assert v2["line"]["n"] == 85 and v2["user_models"]["model"] == []          # Taori et al.'s 85 models
    real = d["numbers"]["shifts"]["imagenet-real"]
    assert real["testbed"]["model"] == [] and real["line_models"].startswith("timm ImageNet-1k configurations")
    assert "No evaluate outputs given" in d["caption"] and d["table"] == []
    assert pd.Series([r["path"] for r in d["inputs"]]).str.startswith(("imagenet-testbed/", "timm/")).all()


def test_cli_names_a_folder_without_evaluate_outputs(reference_dir, tmp_path, run):
    from conftest import one_error

    (tmp_path / "empty").mkdir()
    code, _, err = run("figures", "shift_lines", "--reference", reference_dir, "--evaluations", tmp_path / "empty",
                       "--out", tmp_path / "figs")
    assert code == 1 and "empty: no evaluate outputs" in one_error(err)
    code, _, err = run("report", "--evaluations", tmp_path / "empty", "--out", tmp_path / "rep")
    assert code == 1 and "give --reference DIR too" in one_error(err)
