"""Tables that cannot be right are errors: accuracies in the wrong unit, files
cut short, repeated model ids and column names -- caught where tables are
read, for every command that reads them."""
from __future__ import annotations

import re
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from replication.errors import InputError
from replication.io import read_table
from replication.io.tables import fraction_problem


def _one_line_error(run, *argv) -> str:
    code, _, err = run(*argv)
    assert code == 1, err
    assert err.count("\n") == 1 and err.startswith(f"replication {argv[0]}: error: "), err
    return err


# --------------------------------------------------------------------------- units
def test_fraction_rules_on_made_up_columns():
    pct = np.array([[76.1, 63.3], [80.2, 69.0], [55.0, 43.1]])
    assert fraction_problem(pct, ["x", "y"]) is None
    rows, msg = fraction_problem(pct / 100, ["x", "y"])
    assert rows is None and "x, y look like fractions" in msg and "multiply by 100" in msg
    one = pct.copy()
    one[1] /= 100
    rows, msg = fraction_problem(one, ["x", "y"])
    assert rows.tolist() == [False, True, False] and "at least 43.1" in msg
    # a zero is the same in both units; a column of zeros is no evidence
    assert fraction_problem(np.array([[0.0], [0.0]]), ["x"]) is None
    assert fraction_problem(np.array([[0.0, 40.0], [50.0, 45.0]]), ["x", "y"]) is None


def test_real_accuracies_below_one_percent_pass(reference_dir):
    """Undertrained testbed models sit near chance (0.3% on val) beside others
    of 1-2%; weak models score 0.5% on ImageNet-A beside others of a few
    percent. Neither is a fraction."""
    tb = pd.read_csv(reference_dir / "imagenet-testbed" / "robustness_top1s.csv")
    cols = ["val", "imagenetv2-matched-frequency-format-val", "imagenet-a"]
    values = tb[cols].to_numpy(float)
    assert np.nanmin(values[:, 0]) < 0.5
    assert fraction_problem(values, cols) is None
    a = pd.read_csv(reference_dir / "timm" / "results-imagenet-a.csv")["top1"].to_numpy()[:, None]
    assert a.min() < 1 and fraction_problem(a, ["top1"]) is None


@pytest.fixture()
def timm_like(tmp_path):
    rng = np.random.default_rng(0)
    val = rng.uniform(55, 88, 40)
    return pd.DataFrame({"model": [f"m{i}" for i in range(40)], "imagenet-val": val,
                         "imagenetv2-matched-frequency": val - 12 + rng.normal(0, 1, 40),
                         "gmacs": 10 ** rng.uniform(-1, 2, 40)})


@pytest.mark.parametrize("change,what", [
    (lambda d: d.assign(**{c: d[c] / 100 for c in ("imagenet-val", "imagenetv2-matched-frequency")}),
     "like fractions (every value is between 0 and 1)"),
    (lambda d: d.assign(**{"imagenet-val": np.where(d.index == 7, d["imagenet-val"] / 100, d["imagenet-val"]),
                           "imagenetv2-matched-frequency": np.where(d.index == 7, d["imagenetv2-matched-frequency"] / 100,
                                                                    d["imagenetv2-matched-frequency"])}),
     "row 8 (model m7): imagenet-val, imagenetv2-matched-frequency at most 1 where every other row has at least"),
    (lambda d: d.assign(model=np.where(d.index == 9, "m2", d["model"])), "row 10: duplicate model 'm2' (first at row 3)"),
])
def test_lines_and_scaling_refuse_fractions_and_repeated_models(tmp_path, run, timm_like, change, what):
    src = tmp_path / "t.csv"
    change(timm_like).to_csv(src, index=False)
    err = _one_line_error(run, "lines", "--table", src, "--x", "imagenet-val", "--y", "imagenetv2-matched-frequency",
                          "--json", tmp_path / "l.json")
    assert what in err, err
    err = _one_line_error(run, "scaling", "--table", src, "--compute-col", "gmacs", "--accuracy-col", "imagenet-val",
                          "--json", tmp_path / "s.json")
    assert what.replace(", imagenetv2-matched-frequency", "") in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]


def test_scaling_refuses_errors_given_as_fractions(reference_dir, tmp_path, run):
    src = tmp_path / "models_manual.csv"
    table = pd.read_csv(reference_dir / "thompson" / "models_manual.csv")
    args = ["--compute-col", "train_compute_flop", "--error-col", "top1_err_pct", "--dropna", "--json",
            tmp_path / "s.json"]
    table.assign(top1_err_pct=table["top1_err_pct"] / 100).to_csv(src, index=False)
    assert "top1_err_pct looks like fractions" in _one_line_error(run, "scaling", "--table", src, *args)
    table.loc[3, "top1_err_pct"] /= 100
    table.to_csv(src, index=False)
    assert "row 4 (model GoogLeNet" in _one_line_error(run, "scaling", "--table", src, *args)


def test_the_python_api_refuses_fractions_too():
    from replication.fits.lines import LineFit
    from replication.fits.scaling import ScalingFit

    x = np.array([0.76, 0.80, 0.55, 0.70])
    with pytest.raises(InputError, match="x, y look like fractions"):
        LineFit(n_bootstrap=0).fit(x, x - 0.1)
    with pytest.raises(InputError, match="error looks like fractions"):
        ScalingFit(n_bootstrap=0).fit([1e18, 1e19, 1e20, 1e21], 1 - x)


# --------------------------------------------------------------------------- files cut short, headers
def test_read_table_refuses_what_is_not_one_table(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "dup.csv").write_text("model,x,y,x\na,1,2,3\n")
    (tmp_path / "garbage.parquet").write_bytes(b"\x00\x01not parquet" * 50)
    (tmp_path / "cut.csv").write_text("model,x,y\na,1,2\nb,3")
    (tmp_path / "no_newline.csv").write_text("model,x,y\na,1,2\nb,3,4")
    pq.write_table(pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["x", "x"]), tmp_path / "dup.parquet")
    for name, what in [("empty.csv", "the file is empty"), ("dup.csv", "column name(s) x appear more than once"),
                       ("dup.parquet", "column name(s) x appear more than once"),
                       ("garbage.parquet", "cannot read table"), ("cut.csv", "the last line has 2 of the header's 3"),
                       (".", "is a folder, not a table file")]:
        with pytest.raises(InputError, match=re.escape(what)):
            read_table(tmp_path / name)
    assert read_table(tmp_path / "no_newline.csv")["y"].tolist() == [2, 4]


def test_a_published_table_cut_short_is_refused_wherever_it_is_read(reference_dir, tmp_path, run):
    """`head -n` keeps whole lines: only the published row count tells. A
    table of the same name that is not the published one (another header or
    first row) is not held to it."""
    cut_ref = tmp_path / "reference"
    (cut_ref / "thompson").mkdir(parents=True)
    lines = (reference_dir / "thompson" / "models_manual.csv").read_text().splitlines(keepends=True)
    (cut_ref / "thompson" / "models_manual.csv").write_text("".join(lines[:21]))
    err = _one_line_error(run, "figures", "thompson2020_compute", "--reference", cut_ref, "--out", tmp_path / "fig")
    assert "data rows, but the published thompson/models_manual.csv has 45: the file is cut short" in err
    err = _one_line_error(run, "scaling", "--table", cut_ref / "thompson" / "models_manual.csv", "--compute-col",
                          "train_compute_flop", "--error-col", "top1_err_pct", "--dropna", "--json", tmp_path / "s.json")
    assert "is cut short" in err
    timm = tmp_path / "timm"
    shutil.copytree(reference_dir / "timm", timm)
    results = (timm / "results-imagenet.csv").read_text().splitlines(keepends=True)
    (timm / "results-imagenet.csv").write_text("".join(results[:800]))
    err = _one_line_error(run, "import-results", "--source", "timm", "--path", timm, "--out", tmp_path / "t.csv")
    assert "799 data rows, but the published timm/results-imagenet.csv has 1,556" in err
    # cut inside a line: blank accuracies and an invented crop_pct are not carried into the table
    text = "".join(results)
    (timm / "results-imagenet.csv").write_text(text[:len(text) // 2 - 3])
    assert "is cut short" in _one_line_error(run, "import-results", "--source", "timm", "--path", timm, "--out",
                                             tmp_path / "t.csv")
    # a user's own results file of the same name and header (another first row) is not a published copy
    (timm / "results-imagenet.csv").write_text("".join([results[0], *results[5:20]]))
    assert read_table(timm / "results-imagenet.csv").shape[0] == 15
    assert not (tmp_path / "t.csv").exists() and not (tmp_path / "fig").exists()


def test_timm_rows_with_blank_required_cells_are_refused(reference_dir, tmp_path, run):
    timm = tmp_path / "timm"
    timm.mkdir()
    src = pd.read_csv(reference_dir / "timm" / "results-imagenet.csv").iloc[1:31].reset_index(drop=True)
    src.loc[4, "top1"] = np.nan
    src.to_csv(timm / "results-imagenet.csv", index=False)
    err = _one_line_error(run, "import-results", "--source", "timm", "--path", timm, "--out", tmp_path / "t.csv")
    assert "row 5: top1 blank" in err


def test_repeated_model_ids_in_published_style_tables(reference_dir, tmp_path, run):
    tb = pd.read_csv(reference_dir / "imagenet-testbed" / "robustness_top1s.csv").iloc[1:41].reset_index(drop=True)
    tb.loc[30, "model"] = tb.loc[2, "model"]
    tb.to_csv(tmp_path / "robustness_top1s.csv", index=False)
    err = _one_line_error(run, "import-results", "--source", "testbed", "--path", tmp_path / "robustness_top1s.csv",
                          "--out", tmp_path / "t.csv")
    assert f"row 31: duplicate model {tb.loc[2, 'model']!r} (first at row 3)" in err
    ref = tmp_path / "ref" / "thompson"
    ref.mkdir(parents=True)
    manual = pd.read_csv(reference_dir / "thompson" / "models_manual.csv")
    pd.concat([manual, manual.iloc[[0]]]).to_csv(ref / "models_manual.csv", index=False)
    err = _one_line_error(run, "figures", "thompson2020_compute", "--reference", ref.parent, "--out", tmp_path / "f")
    assert "row 46: duplicate model 'AlexNet (SuperVision)'" in err
