"""The lead's foundation: table loading/validation, StudyData/LevelTable, the bootstrap."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from replication import bootstrap
from replication.bootstrap import bootstrap_levels, resample_counts
from replication.errors import InputError
from replication.io import load_accuracy_table, load_annotations, load_correctness, read_table, write_table
from replication.io.tables import check_dataset_ids, validate_annotations, validate_correctness
from replication.study import StudyData

VAL, REP = "imagenet-val", "imagenetv2-matched-frequency"


def _tables():
    ann = pd.DataFrame({"dataset": [VAL] * 4 + [REP] * 3,
                        "image_id": ["a", "b", "c", "d", "x", "y", "z"],
                        "n_annotators": [10, 10, 10, 12, 10, 10, 12],
                        "n_selected": [9, 9, 5, 12, 9, 5, 6],
                        "class_id": [0, 0, 1, 1, 0, 1, 1]})
    cor = pd.DataFrame({"dataset": ann["dataset"], "image_id": ann["image_id"], "label": ann["class_id"],
                        "m1": [1, 0, 1, 1, 0, 1, 1], "m2": [1, 1, 0, 0, 1, 0, 0]})
    return ann, cor


@pytest.mark.parametrize("mutate,match", [
    (lambda d: d.drop(columns=["n_selected"]), "missing column.*n_selected"),
    (lambda d: d.iloc[:0], "no rows"),
    (lambda d: d.assign(n_selected=[9, 9, 5, 13, 9, 5, 6]), r"row 4 \(image_id d\): n_selected > n_annotators"),
    (lambda d: d.assign(n_annotators=[10, 0, 10, 12, 10, 10, 12]), "row 2 .*n_annotators < 1"),
    (lambda d: d.assign(n_selected=[9, -1, 5, 12, 9, 5, 6]), "row 2 .*n_selected < 0"),
    (lambda d: d.assign(n_selected=[9, 9, 5.5, 12, 9, 5, 6]), "row 3 .*not an integer"),
    (lambda d: d.assign(n_selected=[9, 9, np.nan, 12, np.nan, 5, 6]), "rows 3, 5 .*missing or not a number"),
    (lambda d: d.assign(image_id=["a", "b", "a", "d", "x", "y", "z"]), "row 3 .*duplicate image_id"),
    (lambda d: d.assign(image_id=["a", "", "c", "d", "x", "y", "z"]), "row 2: image_id is empty"),
    (lambda d: d.assign(class_id=[0, 0, 1.5, 1, 0, 1, 1]), "row 3 .*class_id is not an integer"),
    (lambda d: d.assign(class_id=[0, 0, 1, -1, 0, 1, 1]), r"row 4 \(image_id d\): class_id is outside 0..999"),
    (lambda d: d.assign(class_id=[0, 0, 1, 1000, 0, 1, 1]), r"row 4 \(image_id d\): class_id is outside 0..999"),
    (lambda d: d.assign(n_annotators=[10, 1e12, 10, 12, 10, 10, 12]), r"row 2 .*n_annotators is too large"),
])
def test_annotation_validation(tmp_path, mutate, match):
    ann, _ = _tables()
    path = tmp_path / "ann.csv"
    mutate(ann).to_csv(path, index=False)
    with pytest.raises(InputError, match=match) as err:
        load_annotations(path)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_same_image_id_in_two_datasets_is_fine():
    ann, _ = _tables()
    ann.loc[4, "image_id"] = "a"
    assert len(validate_annotations(ann)) == 7


@pytest.mark.parametrize("mutate,match", [
    (lambda d: d[["dataset", "image_id", "label"]], "no model columns"),
    (lambda d: d.assign(m1=[1, 0, 1, 1, 0, 0.5, 1]), "row 6 .*'m1'.*not 0/1"),
    (lambda d: d.assign(m2=[1, 1, 0, 0, 1, 0, np.nan]), "row 7 .*'m2'.*not 0/1"),
    (lambda d: d.assign(label=[0, 0, 1, "cat", 0, 1, 1]), "row 4 .*label"),
    (lambda d: pd.concat([d, d.iloc[[1]]]), "row 8 .*duplicate image_id"),
])
def test_correctness_validation(tmp_path, mutate, match):
    _, cor = _tables()
    path = tmp_path / "cor.parquet"
    mutate(cor).astype({"label": object} if "label" in cor else {}).to_csv(tmp_path / "cor.csv", index=False)
    with pytest.raises(InputError, match=match):
        load_correctness(tmp_path / "cor.csv")
    assert not path.exists()


def test_unreadable_and_missing_files(tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not a parquet file")
    with pytest.raises(InputError, match="bad.parquet: cannot read table"):
        read_table(bad)
    with pytest.raises(InputError, match="no such file"):
        read_table(tmp_path / "missing.csv")


def test_accuracy_table_validation(tmp_path):
    path = tmp_path / "acc.csv"
    pd.DataFrame({"model": ["a", "b", "a"], VAL: [70, 80, 90]}).to_csv(path, index=False)
    with pytest.raises(InputError, match="row 3: duplicate model 'a' \\(first at row 1\\)"):
        load_accuracy_table(path, (VAL,))
    pd.DataFrame({"model": ["a", "b"], VAL: [0.7, 180]}).to_csv(path, index=False)
    with pytest.raises(InputError, match="row 2: .*outside 0..100"):
        load_accuracy_table(path, (VAL,))
    pd.DataFrame({"model": ["a", "b"], VAL: [70, 80]}).to_csv(path, index=False)
    assert load_accuracy_table(path, (VAL,))[VAL].tolist() == [70.0, 80.0]


def test_check_dataset_ids():
    ann, _ = _tables()
    check_dataset_ids(ann, "f.csv")
    ann.loc[2, "dataset"] = "imagenet-v3"
    with pytest.raises(InputError, match=r"f.csv: row 3 \(image_id c\): unknown dataset 'imagenet-v3'"):
        check_dataset_ids(ann, "f.csv")


def test_csv_and_parquet_round_trip(tmp_path):
    ann, cor = _tables()
    for name in ("t.csv", "t.parquet"):
        write_table(tmp_path / name, ann)
        back = load_annotations(tmp_path / name)
        assert back["image_id"].tolist() == ann["image_id"].tolist()
        assert back["n_selected"].dtype == np.int64


def test_study_levels_and_joins():
    ann, cor = _tables()
    study = StudyData.from_tables(validate_annotations(ann), validate_correctness(cor))
    assert study.models == ("m1", "m2")
    assert study.reference.class_id.tolist() == [0, 0, 1, 1]
    table = study.levels()
    assert table.levels.tolist() == [[10, 5], [10, 9], [12, 6], [12, 12]]
    assert table.ref_count.tolist() == [1, 2, 0, 1] and table.rep_count.tolist() == [1, 1, 1, 0]
    assert table.rep_correct.tolist() == [[1, 0], [0, 1], [1, 0], [0, 0]]
    assert table.reference_accuracy().tolist() == [0.75, 0.5]
    assert np.allclose(table.replication_accuracy(), [2 / 3, 1 / 3])
    # weights = repeating images
    w = study.levels(ref_weights=np.array([[2, 0, 1, 1]]), rep_weights=np.array([[0, 3, 0]]))
    assert w.batch_shape == (1,)
    assert w.ref_count[0].tolist() == [1, 2, 0, 1] and w.rep_count[0].tolist() == [3, 0, 0, 0]
    assert w.ref_correct[0].tolist() == [4, 2] and w.rep_correct[0].sum(axis=0).tolist() == [3, 0]
    # the label stands in for a missing class_id
    study2 = StudyData.from_tables(validate_annotations(ann.drop(columns=["class_id"])), validate_correctness(cor))
    assert study2.replication.class_id.tolist() == [0, 1, 1]


def test_study_errors():
    ann, cor = _tables()
    ann, cor = validate_annotations(ann), validate_correctness(cor)
    with pytest.raises(InputError, match="same dataset"):
        StudyData.from_tables(ann, cor, reference=VAL, replication=VAL)
    with pytest.raises(InputError, match="unknown model"):
        StudyData.from_tables(ann, cor, models=["m3"])
    with pytest.raises(InputError, match="no annotation rows for dataset 'imagenetv2-top-images'"):
        StudyData.from_tables(ann, cor, replication="imagenetv2-top-images")
    with pytest.raises(InputError, match="have no correctness row .*first: z"):
        StudyData.from_tables(ann, cor[cor["image_id"] != "z"])
    with pytest.raises(InputError, match="have no annotation row .*first: a"):
        StudyData.from_tables(ann[ann["image_id"] != "a"], cor)


def test_resample_counts_is_a_stratified_bootstrap():
    rng = np.random.default_rng(0)
    strata = np.array([2, 0, 0, 1, 1, 1, 2, 0])
    counts = resample_counts(strata, 8, 20_000, rng)
    assert counts.dtype == np.int32 and counts.shape == (20_000, 8)
    for s in (0, 1, 2):
        assert (counts[:, strata == s].sum(axis=1) == (strata == s).sum()).all()
    # within a stratum of size m, a count is Binomial(m, 1/m): mean 1, variance 1 - 1/m
    assert np.allclose(counts.mean(axis=0), 1, atol=0.03)
    size = np.bincount(strata)[strata]
    assert np.allclose(counts.var(axis=0), 1 - 1 / size, atol=0.04)
    one = resample_counts(None, 8, 5, np.random.default_rng(1))
    assert (one.sum(axis=1) == 8).all()
    assert np.array_equal(one, resample_counts(None, 8, 5, np.random.default_rng(1)))


def test_bootstrap_levels_chunks(monkeypatch):
    ann, cor = _tables()
    study = StudyData.from_tables(validate_annotations(ann), validate_correctness(cor))
    monkeypatch.setattr(bootstrap, "_MAX_DRAWS", 8)  # two replicates per chunk
    chunks = list(bootstrap_levels(study, 5, np.random.default_rng(0)))
    assert [c.batch_shape for c in chunks] == [(2,), (2,), (1,)]
    for c in chunks:
        assert (c.ref_count.sum(axis=-1) == 4).all() and (c.rep_count.sum(axis=-1) == 3).all()
        # class 0 of the replication set has one image (x, level (10, 9)): always drawn once
        assert (c.rep_count[:, 1] >= 1).all()


def test_long_bootstraps_run_in_chunks_with_progress_on_a_terminal(monkeypatch):
    import io

    from replication.fits.lines import LineFit
    from replication.fits.scaling import ScalingFit

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    rng = np.random.default_rng(0)
    x = rng.uniform(50, 80, 12)
    y = x - 10 + rng.normal(0, 1, 12)
    whole = (LineFit("probit", n_bootstrap=7, random_state=1).fit(x, y).boot_params,
             ScalingFit(n_bootstrap=7, random_state=1).fit(10 ** x, 100 - y).boot_params)
    monkeypatch.setattr(bootstrap, "_MAX_DRAWS", 30)  # two replicates of 12 models per chunk
    assert list(bootstrap.replicate_chunks(7, 12)) == [2, 2, 2, 1]
    shown = Terminal()
    monkeypatch.setattr("sys.stderr", shown)
    chunked = (LineFit("probit", n_bootstrap=7, random_state=1).fit(x, y).boot_params,
               ScalingFit(n_bootstrap=7, random_state=1).fit(10 ** x, 100 - y).boot_params)
    for a, b in zip(whole, chunked):   # one Generator, drawn in order: chunks change nothing
        np.testing.assert_array_equal(a, b)
    assert "7/7" in shown.getvalue() and "replicate" in shown.getvalue()
