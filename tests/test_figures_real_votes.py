"""Accuracy against ImageNet-ReaL votes, by model family."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from replication.errors import InputError
from replication.figures import generate
from replication.figures._families import model_family
from replication.figures.real_votes import accuracy_by_votes


def _toy():
    ann = pd.DataFrame({"dataset": "imagenet-val", "image_id": ["a", "b", "c", "d"],
                        "n_annotators": 2, "n_selected": [0, 0, 2, 1]})
    cor = pd.DataFrame({"dataset": "imagenet-val", "image_id": ["d", "c", "b", "a"],
                        "resnet50": [1, 1, 0, 1], "vgg16": [0, 1, 1, 0]})
    return ann, cor


def test_accuracy_by_votes_by_hand():
    ann, cor = _toy()
    res = accuracy_by_votes(ann, cor)
    assert res["n_images"].tolist() == [2, 1, 1]
    np.testing.assert_allclose(res["models"]["resnet50"], [0.5, 1.0, 1.0])
    np.testing.assert_allclose(res["models"]["vgg16"], [0.5, 0.0, 1.0])
    fam = res["families"]["ResNet / ResNeXt / SENet"]
    assert fam["models"] == ["resnet50"]
    # level 0: values 1 and 0 -> mean 0.5, sd/sqrt(n-1) = 0.5
    assert fam["ci_low"][0] == pytest.approx(0.5 - 1.959964 * 0.5, abs=1e-5)


def test_accuracy_by_votes_missing_image_is_an_error():
    ann, cor = _toy()
    with pytest.raises(InputError, match="no correctness row"):
        accuracy_by_votes(ann, cor[cor.image_id != "b"])


def test_families_of_known_models():
    assert model_family("resnet50") == "ResNet / ResNeXt / SENet"
    assert model_family("inception_resnet_v2_tf") == "Inception / Xception"
    assert model_family("fv_64k") == "Fisher vectors"
    assert model_family("pnasnet5large") == "NASNet / PNASNet"


def test_real_votes_figure(reference_dir, tmp_path):
    saved = generate("real_votes", reference_dir, tmp_path)
    assert saved.png.stat().st_size > 20_000 and saved.pdf.stat().st_size > 5_000
    data = json.loads(saved.json.read_text())
    nums = data["numbers"]
    # independently: join votes and correctness with pandas, average each family's models per image, then
    # the mean and normal interval over the images at each vote level
    votes = pd.read_csv(reference_dir / "real-reassessed-imagenet" / "real_votes_annotations.csv")
    cor = pd.read_parquet(reference_dir / "imagenetv2" / "recht2019_correct_top1.parquet")
    joined = votes.merge(cor[cor["dataset"] == "imagenet-val"], on=["dataset", "image_id"])
    assert nums["n_images"] == joined["n_selected"].value_counts().sort_index().tolist()
    assert sum(nums["n_images"]) == 24_889
    for fam, r in nums["families"].items():
        per_image = joined[r["models"]].mean(axis=1).groupby(joined["n_selected"])
        mean, sem = per_image.mean(), per_image.std(ddof=1) / np.sqrt(per_image.count())
        np.testing.assert_allclose(r["mean"], mean, rtol=1e-9)
        np.testing.assert_allclose(r["ci_high"], mean + stats.norm.ppf(0.975) * sem, rtol=1e-9)
        assert all(model_family(m) == fam for m in r["models"])
    # the real signal: every CNN family is more accurate on images all raters accept than on those none accept
    for fam, r in nums["families"].items():
        if fam != "Fisher vectors":
            assert r["ci_low"][-1] > r["ci_high"][0] + 0.10, fam
    assert {rec["path"] for rec in data["inputs"]} == {
        "real-reassessed-imagenet/real_votes_annotations.csv", "imagenetv2/recht2019_correct_top1.parquet"}
    assert data["inputs"][0]["source"].startswith("Source repo: github.com/google-research/reassessed-imagenet")
