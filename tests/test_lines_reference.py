"""Published results through the command line: timm's tables joined without
loss and their probit line, Taori et al.'s testbed line, accuracy tables from
Recht et al.'s correctness matrix, and bad input."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import replication.cli as cli
from replication.fits.importers import TIMM_RESULTS, import_timm



@pytest.fixture(scope="module")
def timm_table(reference_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("timm") / "timm.csv"
    code = cli.main(["import-results", "--source", "timm", "--path", str(reference_dir / "timm"), "--out", str(out)])
    assert code == 0
    return out


def test_timm_all_configurations_joined_none_lost(reference_dir, timm_table):
    table = pd.read_csv(timm_table)
    assert table["model"].is_unique
    # every row of every results file is in the table with its own top-1
    for dataset, name in TIMM_RESULTS.items():
        src = pd.read_csv(reference_dir / "timm" / name)
        assert len(src) == 1556
        merged = src.merge(table, left_on=["model", "img_size"], right_on=["timm_model", "img_size"], how="left")
        assert merged[dataset].notna().all(), name
        np.testing.assert_allclose(merged[dataset], merged["top1"], atol=1e-9)
    # 1,556 configurations of results-imagenet.csv, plus the one -A row that has no ImageNet row
    assert table["imagenet-val"].notna().sum() == 1556
    assert len(table) == 1557
    twice = table[table["model"].str.contains("@")]
    assert twice["timm_model"].nunique() == 290 and len(twice) == 580
    assert (twice["model"] == twice["timm_model"] + "@" + twice["img_size"].astype(str)).all()
    assert table["infer_gmacs"].notna().sum() >= 1500
    assert table.loc[table["timm_model"] == "resnet50.a1_in1k", "param_count"].iloc[0] == pytest.approx(25.56)


def test_timm_join_messages_name_the_unmatched_rows(reference_dir):
    res = import_timm(reference_dir / "timm", gmacs=False)
    text = " ".join(res.messages)
    assert "resnet50.tv_in1k@224" in text and "resmlp_24_224.fb_dino@224" in text
    assert "infer_gmacs" not in res.table.columns
    assert "timm" in res.summary().as_text() and res.to_dict()["rows"] == 1557


def test_timm_probit_line(reference_dir, timm_table, tmp_path, run):
    out = tmp_path / "line.json"
    code, stdout, err = run("lines", "--table", timm_table, "--x", "imagenet-val", "--y",
                            "imagenetv2-matched-frequency", "--scale", "probit", "--bootstrap", 500, "--json", out)
    assert code == 1 and "--dropna" in err and not out.exists()   # the -A-only row has no ImageNet value
    code, stdout, err = run("lines", "--table", timm_table, "--x", "imagenet-val", "--y",
                            "imagenetv2-matched-frequency", "--scale", "probit", "--dropna", "--json", out)
    assert code == 0, err
    d = json.loads(out.read_text())
    v1 = pd.read_csv(reference_dir / "timm" / "results-imagenet.csv")
    v2 = pd.read_csv(reference_dir / "timm" / "results-imagenetv2-matched-frequency.csv")
    both = v1.merge(v2, on=["model", "img_size"], suffixes=("_v1", "_v2"))
    lr = stats.linregress(stats.norm.ppf(both["top1_v1"] / 100), stats.norm.ppf(both["top1_v2"] / 100))
    assert d["n"] == 1556 and d["scale"] == "probit"
    assert d["slope"] == pytest.approx(lr.slope, rel=1e-9)
    assert d["intercept"] == pytest.approx(lr.intercept, rel=1e-9)
    assert d["r2"] == pytest.approx(lr.rvalue ** 2, rel=1e-9)
    # the bootstrap interval over 1,556 models (resampling models: wider than the OLS standard error says)
    lo, hi = d["slope_ci"]
    assert lo < d["slope"] < hi
    # the README's line (this command: 1,000 resamples, seed 0), pinned
    assert [round(v, 4) for v in (d["slope"], lo, hi, d["intercept"], *d["intercept_ci"])] == [
        0.9635, 0.9553, 0.9730, -0.3229, -0.3315, -0.3158]


def test_testbed_taori_line(reference_dir, tmp_path, run):
    table, out, er = tmp_path / "testbed.csv", tmp_path / "taori.json", tmp_path / "er.csv"
    src = reference_dir / "imagenet-testbed" / "robustness_top1s.csv"
    code, _, err = run("import-results", "--source", "testbed", "--path", src, "--out", table)
    assert code == 0, err
    code, _, err = run("lines", "--table", table, "--x", "imagenet-val", "--y", "imagenetv2-matched-frequency",
                       "--scale", "logit", "--where", "nat_model_type=STANDARD", "--exclude-names",
                       "aws,batch64,subsample", "--min-x", 55, "--dropna", "--bootstrap", 1000,
                       "--json", out, "--residuals-out", er)
    assert code == 0, err
    d = json.loads(out.read_text())
    # independent re-implementation of plotting/paper_nat_shift_imagenetv2.py's selection and fit
    raw = pd.read_csv(src).merge(pd.read_csv(reference_dir / "imagenet-testbed" / "model_types.csv"), on="model")
    ycol = "imagenetv2-matched-frequency-format-val"
    raw = raw.dropna(subset=["val", ycol])
    name = raw["model"].str.lower()
    use = ((raw["nat_model_type"] == "STANDARD") & (raw["val"] >= 55) & ~name.str.contains("subsample")
           & ~name.str.contains("aws") & ~name.str.contains("batch64"))
    sel = raw[use]
    logit = lambda a: np.log(a / 100 / (1 - a / 100))  # noqa: E731  (the testbed's transform_acc)
    lr = stats.linregress(logit(sel["val"]), logit(sel[ycol]))
    assert d["n"] == len(sel) == 85
    assert d["slope"] == pytest.approx(lr.slope, rel=1e-9)
    assert d["intercept"] == pytest.approx(lr.intercept, rel=1e-9)
    assert [round(v, 4) for v in (d["slope"], *d["slope_ci"], d["intercept"], *d["intercept_ci"])] == [
        0.9232, 0.8967, 0.9492, -0.4977, -0.5291, -0.4665]     # the README's numbers, pinned
    # effective robustness = y - logit^-1(line(logit x)), percentage points
    res = pd.read_csv(er).set_index("model")
    expected = 100 / (1 + np.exp(-(lr.intercept + lr.slope * logit(sel["val"].to_numpy()))))
    np.testing.assert_allclose(res.loc[sel["model"], "er"], sel[ycol].to_numpy() - expected, atol=1e-9)
    # binomial error of 10,000 v2 images (about 0.45 points) widens each interval beyond the line's own
    width = (res["er_upper"] - res["er_lower"]).median()
    assert 1.5 < width < 3.0
    assert (res["er_lower"] <= res["er"]).all() and (res["er"] <= res["er_upper"]).all()


def test_accuracy_table_matches_recht_published(reference_dir, tmp_path, run):
    out, line = tmp_path / "acc.csv", tmp_path / "line.json"
    code, _, err = run("accuracy", "--correct", reference_dir / "imagenetv2" / "recht2019_correct_top1.parquet",
                       "--out", out)
    assert code == 0, err
    acc = pd.read_csv(out).set_index("model")
    pub = pd.read_csv(reference_dir / "imagenetv2" / "model_accuracies_recht2019_67models.csv").set_index("model")
    assert len(acc) == 67
    for ours, theirs in [("imagenet-val", "imagenet-validation-original_top1"),
                         ("imagenetv2-matched-frequency", "imagenetv2-b-33_top1"),
                         ("imagenetv2-threshold0.7", "imagenetv2-a-44_top1"),
                         ("imagenetv2-top-images", "imagenetv2-c-12_top1")]:
        np.testing.assert_allclose(acc[ours], pub.loc[acc.index, theirs], atol=0.006)
    r = acc.loc["resnet50"]
    ci = stats.binomtest(int(round(r["imagenetv2-matched-frequency"] * 100)), 10_000).proportion_ci(method="exact")
    assert r["imagenetv2-matched-frequency_ci_low"] == pytest.approx(100 * ci.low, abs=1e-9)
    assert r["imagenetv2-matched-frequency_ci_high"] == pytest.approx(100 * ci.high, abs=1e-9)
    assert (acc["imagenet-val_n"] == 50_000).all()
    # the table feeds `lines`, whose residual intervals then include the binomial error
    code, _, err = run("lines", "--table", out, "--x", "imagenet-val", "--y", "imagenetv2-matched-frequency",
                       "--bootstrap", 200, "--json", line)
    assert code == 0, err
    d = json.loads(line.read_text())
    assert d["n"] == 67 and 0.85 < d["slope"] < 1.1


def test_accuracy_clopper_pearson_edges(tmp_path, run):
    df = pd.DataFrame({"dataset": ["imagenet-val"] * 4, "image_id": list("abcd"), "m1": [1, 1, 1, 1], "m0": [0, 0, 0, 0]})
    src, out = tmp_path / "c.csv", tmp_path / "a.csv"
    df.to_csv(src, index=False)
    assert run("accuracy", "--correct", src, "--out", out)[0] == 0
    acc = pd.read_csv(out).set_index("model")
    assert acc.loc["m1", "imagenet-val"] == 100 and acc.loc["m1", "imagenet-val_ci_high"] == 100
    assert acc.loc["m1", "imagenet-val_ci_low"] == pytest.approx(100 * 0.025 ** (1 / 4))
    assert acc.loc["m0", "imagenet-val_ci_low"] == 0


@pytest.mark.parametrize("rows, extra, msg", [
    ({"model": ["a", "b", "c"], "x": [50, 60, 70], "y": [40, 50, np.nan]}, [], "missing or NaN"),
    ({"model": ["a", "b", "c"], "x": [50, 60, 170], "y": [40, 50, 60]}, [], "0..100"),
    ({"model": ["a", "b", "c"], "x": [50, 60, -1], "y": [40, 50, 60]}, [], "0..100"),
    ({"model": ["a", "b"], "x": [50, 60], "y": [40, 50]}, [], "at least 3"),
    ({"model": ["a", "b", "c"], "x": [50, 60, 70], "y": [40, 50, "abc"]}, [], "not a number"),
    ({"model": ["a", "b", "c"], "x": [50, 60, 70], "y": [40, 50, 60]}, ["--where", "kind=X"], "not found"),
])
def test_lines_bad_input_one_line_error_nothing_written(tmp_path, run, rows, extra, msg):
    src, out = tmp_path / "t.csv", tmp_path / "out.json"
    pd.DataFrame(rows).to_csv(src, index=False)
    code, stdout, err = run("lines", "--table", src, "--x", "x", "--y", "y", *extra, "--json", out)
    assert code == 1
    assert msg in err and err.strip().count("\n") == 0 and err.startswith("replication lines: error:")
    assert not out.exists() and list(tmp_path.iterdir()) == [src]


def test_import_results_bad_paths(tmp_path, run):
    code, _, err = run("import-results", "--source", "timm", "--path", tmp_path, "--out", tmp_path / "o.csv")
    assert code == 1 and "results-imagenet.csv" in err and not (tmp_path / "o.csv").exists()
    bad = tmp_path / "results-imagenet.csv"
    bad.write_text("model,img_size,top1\na,224,101\n")
    code, _, err = run("import-results", "--source", "timm", "--path", tmp_path, "--out", tmp_path / "o.csv")
    assert code == 1 and "outside 0..100" in err and not (tmp_path / "o.csv").exists()
