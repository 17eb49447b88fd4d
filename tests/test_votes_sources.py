"""The real, cleanlab and imagenet-multilabel importers on the published files in
../shared/reference, with the counts their own documentation gives, checked
against the independent derivations kept beside them; bad input."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from replication.classes import imagenet_classes


@pytest.fixture(scope="module")
def loc_val_solution(reference_dir, tmp_path_factory):
    """Kaggle's LOC_val_solution.csv (ImageId, PredictionString = wnid and box
    coordinates) written from the val labels of Recht et al.'s correctness file."""
    cor = pd.read_parquet(reference_dir / "imagenetv2/recht2019_correct_top1.parquet", columns=["dataset", "image_id", "label"])
    val = cor[cor["dataset"] == "imagenet-val"]
    wnids = np.asarray(imagenet_classes().wnids)[val["label"].to_numpy()]
    path = tmp_path_factory.mktemp("labels") / "LOC_val_solution.csv"
    pd.DataFrame({"ImageId": val["image_id"], "PredictionString": wnids + " 10 20 110 120"}).to_csv(path, index=False)
    return path


def test_real_raw_rater_data(reference_dir, loc_val_solution, tmp_path, run):
    """Beyer et al.'s raw ReaL data: 24,889 of 50,000 val images were rated, 5 raters
    on the original label each (PROVENANCE.md: 184,962 questions, 85 raters); the
    counts equal the reference folder's own derivation (real_votes_annotations.csv)."""
    out = tmp_path / "real.csv"
    code, stdout, err = run("import-annotations", "--source", "real", "--path",
                            reference_dir / "real-reassessed-imagenet/raw", "--labels", loc_val_solution, "--out", out)
    assert code == 0, err
    assert "real: 24,889 images (imagenet-val 24,889); annotators per image 5-5" in stdout
    assert "dropped 25,111 val images: never sent to raters" in stdout
    assert "184,962 questions answered by 85 raters" in stdout
    got = pd.read_csv(out)
    expected = pd.read_csv(reference_dir / "real-reassessed-imagenet/real_votes_annotations.csv")
    expected = expected.sort_values(["dataset", "image_id"]).reset_index(drop=True)[list(got.columns)]
    pd.testing.assert_frame_equal(got, expected)
    derived = pd.read_csv(reference_dir / "real-reassessed-imagenet/real_original_label_votes.csv")
    assert int(derived["rated"].sum()) == len(got) == 24_889


def test_real_needs_the_val_labels(reference_dir, tmp_path, run):
    code, _, err = run("import-annotations", "--source", "real", "--path",
                       reference_dir / "real-reassessed-imagenet/raw/raters.npz", "--out", tmp_path / "a.csv")
    assert code == 1 and "--labels" in err and "original label" in err
    code, _, err = run("import-annotations", "--source", "cleanlab", "--labels", tmp_path / "x.csv", "--path",
                       reference_dir / "cleanlab-label-errors/raw/imagenet_mturk.json", "--out", tmp_path / "a.csv")
    assert code == 1 and "--labels does not apply to --source cleanlab" in err
    assert not (tmp_path / "a.csv").exists()


def test_cleanlab_mturk_votes(reference_dir, tmp_path, run):
    """Northcutt et al.: 5,440 flagged val images, 5 MTurk workers each; k = given + both."""
    out = tmp_path / "cleanlab.parquet"
    code, stdout, err = run("import-annotations", "--source", "cleanlab", "--path",
                            reference_dir / "cleanlab-label-errors/raw/imagenet_mturk.json", "--out", out)
    assert code == 0, err
    assert "cleanlab: 5,440 images (imagenet-val 5,440); annotators per image 5-5" in stdout
    got = pd.read_parquet(out)
    derived = pd.read_csv(reference_dir / "cleanlab-label-errors/imagenet_mturk_votes.csv")
    derived = derived.assign(image_id=derived["file_name"].str.replace(".JPEG", "", regex=False)).sort_values("image_id")
    assert got["image_id"].tolist() == derived["image_id"].tolist()
    assert (got["n_annotators"].to_numpy() == derived["n_workers"].to_numpy()).all()
    assert (got["n_selected"].to_numpy() == derived["k_accept_given"].to_numpy()).all()
    assert (got["class_id"].to_numpy() == derived["given_label"].to_numpy()).all()


def test_cleanlab_bad_json(reference_dir, tmp_path, run):
    records = json.loads((reference_dir / "cleanlab-label-errors/raw/imagenet_mturk.json").read_text())[:20]
    truncated = tmp_path / "truncated.json"
    truncated.write_text(json.dumps(records)[:-300])
    code, _, err = run("import-annotations", "--source", "cleanlab", "--path", truncated, "--out", tmp_path / "a.csv")
    assert code == 1 and str(truncated) in err and "not valid JSON" in err
    records[6]["mturk"]["both"] = "two"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(records))
    code, _, err = run("import-annotations", "--source", "cleanlab", "--path", bad, "--out", tmp_path / "a.csv")
    assert code == 1 and "row 7" in err and "both is not an integer" in err
    assert not (tmp_path / "a.csv").exists()


def test_imagenet_multilabel_csv(reference_dir, tmp_path, run):
    """Tsipras et al.'s CLASSIFY task: 6,761 images (the 'fu' images of their 10,000), 6-9 workers."""
    out = tmp_path / "ml.csv"
    code, stdout, err = run("import-annotations", "--source", "imagenet-multilabel", "--path",
                            reference_dir / "madrylab-imagenetmultilabel/classify_task_per_image.csv", "--out", out)
    assert code == 0, err
    assert "imagenet-multilabel: 6,761 images (imagenet-val 6,761); annotators per image 6-9" in stdout
    got = pd.read_csv(out)
    assert got["n_annotators"].value_counts().to_dict() == {9: 5598, 8: 1065, 7: 90, 6: 8}
    info = pd.read_csv(reference_dir / "madrylab-imagenetmultilabel/image_info.csv")
    fu = set(info.loc[info["annotation"] == "fu", "file_name"].str.replace(".JPEG", "", regex=False))
    assert set(got["image_id"]) == fu


def _classify_frame() -> pd.DataFrame:
    """A few rows in the published pickle's schema (index 'image', per-worker lists)."""
    rows = {
        "ILSVRC2012_val_00000004.JPEG": (809, [[809], [809, 3], [3], [809]], [809, 809, 3, 809]),
        "ILSVRC2012_val_00000030.JPEG": (858, [[698], [698, 858, 858], [698]], [698, 858, 698]),
        "ILSVRC2012_val_00000031.JPEG": (12, [[1], [2], [3], [4], [5], [6]], [1, 2, 3, 4, 5, 6]),
    }
    return pd.DataFrame({"main": [np.array(m) for _, _, m in rows.values()],
                         "selected": [s for _, s, _ in rows.values()],
                         "num_workers": [len(s) for _, s, _ in rows.values()],
                         "imagenet_label": [lab for lab, _, _ in rows.values()]},
                        index=pd.Index(list(rows), name="image"))


def test_imagenet_multilabel_pickle(tmp_path, run):
    pkl = tmp_path / "annotations_classify_task.pkl"
    _classify_frame().to_pickle(pkl)
    out = tmp_path / "ml.csv"
    code, _, err = run("import-annotations", "--source", "imagenet-multilabel", "--path", pkl, "--out", out)
    assert code == 1 and "--trust-pickle" in err and not out.exists()
    code, _, err = run("import-annotations", "--source", "imagenet-multilabel", "--path", pkl, "--trust-pickle",
                       "--out", out)
    assert code == 0, err
    got = pd.read_csv(out)
    assert got["image_id"].tolist() == ["ILSVRC2012_val_00000004", "ILSVRC2012_val_00000030", "ILSVRC2012_val_00000031"]
    assert got["n_annotators"].tolist() == [4, 3, 6]
    assert got["n_selected"].tolist() == [3, 1, 0]          # a label listed twice by one worker counts once
    bad = _classify_frame()
    bad.iat[1, 2] = 4                                       # num_workers disagrees with the lists
    bad.to_pickle(pkl)
    code, _, err = run("import-annotations", "--source", "imagenet-multilabel", "--path", pkl, "--trust-pickle",
                       "--out", out)
    assert code == 1 and "row 2" in err and "one list of labels per worker" in err


def test_correct_out_needs_a_source_with_correctness(reference_dir, tmp_path, run):
    code, _, err = run("import-annotations", "--source", "imagenet-multilabel", "--path",
                       reference_dir / "madrylab-imagenetmultilabel/classify_task_per_image.csv",
                       "--out", tmp_path / "a.csv", "--correct-out", tmp_path / "c.csv")
    assert code == 1 and "carries no model correctness" in err
    assert list(tmp_path.iterdir()) == []
