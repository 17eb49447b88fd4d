"""Votes table -> annotations table: counting accepted votes per image,
controls excluded, quality control on the controls, and the votes-table
checks. Compared with a plain-Python recount."""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd
import pytest

from replication.annotate.votes import count_votes, validate_votes
from replication.errors import InputError


def _votes(seed: int = 0) -> pd.DataFrame:
    """6 annotators x 4 tasks (class 0..3), 8 images to label + 2 positive + 2 negative controls each;
    annotators 4 and 5 click at random."""
    rng = np.random.default_rng(seed)
    rows = []
    for ann in range(6):
        for task in range(4):
            for i in range(12):
                kind = "label" if i < 8 else ("pos" if i < 10 else "neg")
                cls = task if kind != "neg" else (task + 1 + i) % 4
                image = f"img{task}_{i}" if kind == "label" else f"ctl{cls}_{i}"
                if ann >= 4:
                    sel = rng.random() < 0.5
                else:
                    sel = rng.random() < {"label": 0.6, "pos": 0.97, "neg": 0.02}[kind]
                rows.append(("ds" if task % 2 else "ref", image, cls, f"a{ann}", f"t{task}", int(sel),
                             f"2024-05-01T12:{task:02d}:{i:02d}Z", int(kind != "label")))
    return pd.DataFrame(rows, columns=["dataset", "image_id", "class_id", "annotator_id", "task_id", "selected",
                                       "submitted_at", "is_control"])


def _recount(votes: pd.DataFrame, threshold: float, level: str):
    """Plain-Python quality control and counting."""
    task_class = {}
    for r in votes.itertuples():
        if not r.is_control:
            task_class[r.task_id] = r.class_id
    right, total = defaultdict(int), defaultdict(int)
    for r in votes.itertuples():
        if r.is_control:
            key = r.annotator_id if level == "annotator" else (r.annotator_id, r.task_id)
            total[key] += 1
            right[key] += int(bool(r.selected) == (r.class_id == task_class[r.task_id]))
    counts = {}
    for r in votes.itertuples():
        key = r.annotator_id if level == "annotator" else (r.annotator_id, r.task_id)
        if r.is_control or (total[key] and right[key] / total[key] < threshold):
            continue
        n, k = counts.get((r.dataset, r.image_id), (0, 0))
        counts[(r.dataset, r.image_id)] = (n + 1, k + r.selected)
    return counts


@pytest.mark.parametrize("level,threshold", [("annotator", 0.7), ("submission", 0.75), ("annotator", 0.0)])
def test_counts_match_a_plain_recount(level, threshold):
    votes = _votes()
    ann, report = count_votes(votes, min_control_accuracy=threshold, level=level)
    expected = _recount(votes, threshold, level)
    got = {(d, i): (n, k) for d, i, n, k in ann[["dataset", "image_id", "n_annotators", "n_selected"]].itertuples(index=False)}
    assert got == expected
    assert not ann["image_id"].str.startswith("ctl").any()  # control votes never count
    assert list(ann.columns) == ["dataset", "image_id", "n_annotators", "n_selected", "class_id"]
    if level == "annotator" and threshold == 0.7:
        assert report.counts["n_annotators_dropped"] == 2 and set(ann["n_annotators"]) == {4}
        assert report.counts["n_label_votes_dropped"] == 2 * 4 * 8
        acc = report.units.set_index("annotator_id")["accuracy"]
        assert (acc[["a0", "a1", "a2", "a3"]] > 0.7).all() and (acc[["a4", "a5"]] < 0.7).all()
        assert "dropped 2 of 6 annotators" in report.lines()[0]


def test_no_quality_control_and_lost_images():
    votes = _votes()
    ann, report = count_votes(votes, level="none")
    assert (ann["n_annotators"] == 6).all() and report.counts["n_label_votes_dropped"] == 0
    careless_only = votes[~((votes["task_id"] == "t0") & votes["annotator_id"].isin(["a0", "a1", "a2", "a3"]))]
    ann, report = count_votes(careless_only)  # task t0's images were seen only by the two who fail the controls
    assert report.counts["n_images_without_accepted_votes"] == 8 and len(ann) == 24
    assert "8 image(s) lost every vote" in report.lines()[-1] and "ref/img0_0" in report.images_without_votes
    d = report.to_dict()
    assert d["level"] == "annotator" and len(d["units"]) == 6


def test_explicit_target_class_wins():
    votes = _votes()
    votes["target_class_id"] = votes["task_id"].str[1].astype(int)
    a, _ = count_votes(votes)
    b, _ = count_votes(votes.drop(columns="target_class_id"))
    pd.testing.assert_frame_equal(a, b)


def test_votes_table_checks():
    votes = _votes()

    def refuse(df, match):
        with pytest.raises(InputError, match=match):
            validate_votes(df, "votes.csv")

    refuse(votes.drop(columns="is_control"), "missing column")
    refuse(votes.assign(selected=votes["selected"].where(votes.index != 3, 2)), r"votes.csv: row 4 .*selected is not 0 or 1")
    refuse(votes.assign(submitted_at=votes["submitted_at"].where(votes.index != 7, "2024-05-01 12:00:00")),
           r"row 8 .*not a UTC ISO 8601")
    refuse(votes.assign(submitted_at=votes["submitted_at"].where(votes.index != 7, "2024-05-01T12:00:00+02:00")),
           r"row 8 .*not a UTC ISO 8601")
    twice = pd.concat([votes, votes.iloc[[0]].assign(task_id="t9")], ignore_index=True)
    refuse(twice, r"row 289 \(image_id img0_0\): the same annotator voted twice on this image")
    ctl_twice = pd.concat([votes, votes.iloc[[10]]], ignore_index=True)
    refuse(ctl_twice, r"row 289 .*twice in one task")
    ok = pd.concat([votes, votes.iloc[[10]].assign(task_id="t2")], ignore_index=True)  # a control seen in two tasks
    assert len(validate_votes(ok)) == len(votes) + 1
    refuse(votes.assign(annotator_id=votes["annotator_id"].where(votes.index != 0, "")), "row 1 .*annotator_id is empty")
    refuse(votes.iloc[:0], "no rows")
    mixed = votes.copy()
    mixed.loc[0, "class_id"] = 3
    with pytest.raises(InputError, match=r"task\(s\) t0 hold images to label of several classes"):
        count_votes(mixed)
    with pytest.raises(InputError, match="level must be one of"):
        count_votes(votes, level="worker")


@pytest.mark.parametrize("extra, level, threshold", [((), "annotator", 0.7),
                                                     (("--qc", "submission", "--min-control-accuracy", "0.75"),
                                                      "submission", 0.75),
                                                     (("--min-control-accuracy", "0"), "annotator", 0.0)])
def test_import_annotations_from_a_votes_table(tmp_path, run, extra, level, threshold):
    """``import-annotations --source votes`` counts a votes file through the same quality control
    as ``annotate export``: compared with the plain-Python recount, and what it dropped is said."""
    votes = _votes(3).replace({"dataset": {"ref": "imagenet-val", "ds": "imagenetv2-matched-frequency"}})
    votes.to_csv(tmp_path / "votes.csv", index=False)
    code, out, err = run("import-annotations", "--source", "votes", "--path", tmp_path / "votes.csv",
                         "--out", tmp_path / "ann.parquet", *extra)
    assert code == 0, err
    got = pd.read_parquet(tmp_path / "ann.parquet")
    expected = _recount(votes, threshold, level)
    assert {(r.dataset, r.image_id): (r.n_annotators, r.n_selected) for r in got.itertuples()} == expected
    assert "control votes: controls count only for quality control" in out
    if threshold > 0:
        assert "votes on images to label: cast by" in out and "quality control: dropped" in out


def test_import_annotations_votes_refuses_bad_tables(tmp_path, run):
    votes = _votes(0)
    votes.loc[5, "selected"] = 2
    votes.to_csv(tmp_path / "votes.csv", index=False)
    code, _, err = run("import-annotations", "--source", "votes", "--path", tmp_path / "votes.csv",
                       "--out", tmp_path / "ann.csv")
    assert code == 1 and "row 6" in err and "selected is not 0 or 1" in err
    assert not (tmp_path / "ann.csv").exists()
    code, _, err = run("import-annotations", "--source", "cleanlab", "--qc", "none", "--path", tmp_path / "votes.csv",
                       "--out", tmp_path / "ann.csv")
    assert code == 1 and "--qc does not apply to --source cleanlab" in err
