"""Real published data (../shared/reference): Recht et al.'s correctness
matrix and ImageNet-ReaL human votes through the contract loaders."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from replication.estimators.results import SelectionBiasEstimator
from replication.io import load_annotations, load_correctness
from replication.io.tables import model_columns
from replication.study import StudyData

VAL, MF = "imagenet-val", "imagenetv2-matched-frequency"


@pytest.fixture(scope="module")
def correct_top1(reference_dir):
    return load_correctness(reference_dir / "imagenetv2" / "recht2019_correct_top1.parquet")


def test_recht_accuracies_are_reproduced(correct_top1, reference_dir):
    acc = correct_top1.groupby("dataset")[model_columns(correct_top1)].mean()
    assert acc.loc[VAL, "resnet50"] == pytest.approx(0.7613, abs=5e-6)
    assert acc.loc[MF, "resnet50"] == pytest.approx(0.6333, abs=5e-6)
    assert correct_top1["dataset"].value_counts().to_dict() == {
        VAL: 50_000, MF: 10_000, "imagenetv2-threshold0.7": 10_000, "imagenetv2-top-images": 10_000}
    published = pd.read_csv(reference_dir / "imagenetv2" / "model_accuracies_recht2019_67models.csv",
                            index_col="model")
    assert len(published) == 67
    for ours, theirs in ((VAL, "imagenet-validation-original_top1"), (MF, "imagenetv2-b-33_top1"),
                         ("imagenetv2-threshold0.7", "imagenetv2-a-44_top1"),
                         ("imagenetv2-top-images", "imagenetv2-c-12_top1")):
        diff = (100 * acc.loc[ours, published.index] - published[theirs]).abs()
        assert diff.max() <= 0.005 + 1e-9, (ours, diff.idxmax())  # published to two decimals


def test_real_votes_load_as_annotations_and_accuracy_rises_with_votes(correct_top1, reference_dir):
    votes = load_annotations(reference_dir / "real-reassessed-imagenet" / "real_votes_annotations.csv")
    assert len(votes) == 24_889 and set(votes["n_annotators"]) == {5}
    joined = votes.merge(correct_top1[correct_top1["dataset"] == VAL], on=["dataset", "image_id"], how="left",
                         validate="one_to_one")
    assert joined["label"].notna().all() and (joined["class_id"] == joined["label"]).all()
    cnns = [m for m in model_columns(correct_top1) if not m.startswith("fv_")]
    assert len(cnns) == 64
    by_votes = joined.groupby("n_selected")[cnns].mean().mean(axis=1)
    assert by_votes.index.tolist() == [0, 1, 2, 3, 4, 5]
    assert np.all(np.diff(by_votes.to_numpy()) > 0), by_votes
    assert by_votes[5] - by_votes[0] > 0.2


def test_bias_estimator_runs_on_real_votes_split(correct_top1, reference_dir):
    """A staged study on real votes: val images split by parity of their file
    number into a 'reference' half and a 'replication' half (same population):
    the naive adjusted gap is near zero for every CNN."""
    votes = load_annotations(reference_dir / "real-reassessed-imagenet" / "real_votes_annotations.csv")
    odd = votes["image_id"].str[-1].astype(int) % 2 == 1
    ann = votes.assign(dataset=np.where(odd, VAL, MF))
    cor = correct_top1[correct_top1["dataset"] == VAL].merge(votes[["image_id"]], on="image_id")
    cor = cor.assign(dataset=np.where(cor["image_id"].str[-1].astype(int) % 2 == 1, VAL, MF))
    cols = ["dataset", "image_id", "label", "resnet50", "alexnet", "vgg16"]
    study = StudyData.from_tables(ann, cor[cols])
    res = SelectionBiasEstimator(("naive", "jackknife"), n_bootstrap=200, random_state=0).fit(study)
    ci = res.conf_int().xs("adjusted_gap[naive]", level="quantity")
    assert ((ci["lower"] < 0.02) & (ci["upper"] > -0.02)).all()
    assert (res.adjusted_gap["naive"].abs() < 0.03).all()
