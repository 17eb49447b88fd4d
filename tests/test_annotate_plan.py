"""Annotation plans: Recht et al.'s task design, mixing of reference and
candidate images, small classes, reproducibility, the class descriptions,
and refusals of bad image tables."""
from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
from annotate_fixtures import image_table

from replication.annotate.classes import load_class_descriptions
from replication.annotate.plan import Plan, PlanSettings, build_plan, read_images, validate_images
from replication.errors import InputError


def test_recht_design(tmp_path, reference_dir):
    args = json.loads((reference_dir / "imagenetv2" / "raw" / "sample_args_10.json").read_text())
    hit = args["generate_hits"]
    table = image_table(tmp_path, classes=(0, 1, 2, 3, 7), n_ref=20, n_cand=130)
    plan = build_plan(validate_images(table), PlanSettings())  # the defaults are Recht et al.'s
    s = plan.settings
    assert (s.images_per_task, s.positive_controls, s.negative_controls, s.annotators) == \
        (hit["images_per_hit"], hit["pos_control"], hit["neg_control"], args["submit_hits"]["max_assignments"])
    items = plan.items.merge(plan.images, on="image_no", suffixes=("", "_image"))
    tasks = plan.tasks()
    # 150 images per class -> 4 tasks of 37 or 38 to label (never one of 42 and a runt), 3 + 3 controls each
    assert sorted(tasks["n_label"].unique()) == [37, 38] and (tasks.groupby("class_id").size() == 4).all()
    assert (tasks["n_positive"] == 3).all() and (tasks["n_negative"] == 3).all()
    assert tasks["n_items"].max() <= 48
    # one target class per task; positives are of it, negatives of three other classes
    assert (items.loc[items["kind"] != "negative", "class_id_image"] == items.loc[items["kind"] != "negative", "class_id"]).all()
    neg = items[items["kind"] == "negative"]
    assert (neg["class_id_image"] != neg["class_id"]).all()
    assert (neg.groupby("task_id")["class_id_image"].nunique() == 3).all()
    # every image to label in exactly one task; controls come from the reference images (role both)
    labels = items[items["kind"] == "label"]
    assert labels["image_no"].is_unique and len(labels) == len(table)
    assert (items.loc[items["kind"] != "label", "dataset"] == "imagenet-val").all()
    assert not items.duplicated(["task_id", "image_no"]).any()
    # reference and candidates mixed in the same tasks, in random positions
    per_task = labels.groupby("task_id")["dataset"].agg(lambda d: (d == "imagenet-val").sum())
    assert (per_task >= 1).all() and per_task.sum() == 5 * 20
    ref_pos = labels.loc[labels["dataset"] == "imagenet-val", "position"]
    assert 15 < ref_pos.mean() < 32  # not bunched at the start or the end
    # controls rotate: the 4 tasks of a class do not all show the same positives
    pos = items[items["kind"] == "positive"].groupby("class_id")["image_no"].nunique()
    assert (pos >= 9).all()


def test_reproducible_and_seeded(tmp_path):
    table = image_table(tmp_path / "img", n_ref=8, n_cand=50)
    a = build_plan(validate_images(table), PlanSettings(seed=4))
    a.write(tmp_path / "a")
    build_plan(validate_images(table.sample(frac=1, random_state=1)), PlanSettings(seed=4)).write(tmp_path / "b")
    for name in ("plan.json", "images.csv", "tasks.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    c = build_plan(validate_images(table), PlanSettings(seed=5))
    assert c.plan_id != a.plan_id and not c.items["image_no"].equals(a.items["image_no"])
    back = Plan.read(tmp_path / "a")
    assert back.plan_id == a.plan_id and back.settings == a.settings
    pd.testing.assert_frame_equal(back.items, a.items)


def test_small_classes_and_controls(tmp_path):
    table = image_table(tmp_path, classes=(0, 1, 2), n_ref=2, n_cand=3, n_control=1)
    table = table[~((table["class_id"] == 2) & (table["dataset"] == "controls"))].copy()
    table.loc[table["class_id"] == 2, "role"] = "label"
    plan = build_plan(validate_images(table), PlanSettings())
    tasks = plan.tasks().set_index("class_id")
    assert (tasks["n_label"] == 5).all() and (tasks["n_items"] < 48).all()  # one small task per class
    assert tasks.loc[0, "n_positive"] == 1  # the control-only image: the reference images are labelled in this task
    assert tasks.loc[2, "n_positive"] == 0  # no control image of class 2
    assert tasks.loc[0, "n_negative"] == 1 and tasks.loc[2, "n_negative"] == 2  # classes with control images
    assert any("positive control" in w for w in plan.warnings)
    summary = plan.summary()
    assert summary["n_label_images"] == 15 and summary["n_control_only_images"] == 2


def test_class_descriptions_match_imagenetv2(reference_dir):
    ours = load_class_descriptions()
    theirs = json.loads((reference_dir / "imagenetv2" / "raw" / "class_info.json").read_text())
    assert len(ours) == len(theirs) == 1000
    for row in theirs:
        d = ours[int(row["cid"])]
        assert list(d.names) == row["synset"] and d.gloss == row["gloss"]


def test_own_class_file(tmp_path):
    path = tmp_path / "classes.csv"
    path.write_text("class_id,names,gloss\n0,apple;malus,a fruit\n1,pear,another fruit\n")
    classes = load_class_descriptions(path)
    assert classes[0].names == ("apple", "malus") and classes[1].gloss == "another fruit"
    bad = tmp_path / "bad.json"
    bad.write_text('[{"names": ["x"]}]')
    with pytest.raises(InputError, match="entry 1 needs a class_id"):
        load_class_descriptions(bad)


def test_bad_image_tables(tmp_path):
    table = image_table(tmp_path / "img", n_ref=3, n_cand=4)

    def refuse(df, match, **kw):
        path = tmp_path / "images.csv"
        df.to_csv(path, index=False)
        with pytest.raises(InputError, match=match):
            read_images(path, **kw)

    refuse(table.drop(columns="path"), "missing column")
    refuse(table.iloc[:0], "no rows")
    refuse(pd.concat([table, table.iloc[[3]]]), r"row 29 \(image_id can0_0\): duplicate")
    refuse(table.assign(class_id=table["class_id"].astype(str).where(table.index != 4, "x")), r"row 5 .*not a number")
    gone = table.copy()
    gone.loc[6, "path"] = str(tmp_path / "nowhere.jpg")
    refuse(gone, r"row 7 .*image file missing")
    text = tmp_path / "img" / "text.jpg"
    text.write_text("hello")
    refuse(table.assign(path=table["path"].where(table.index != 2, str(text))), r"row 3 .*not a JPEG")
    if os.geteuid() != 0:  # root reads every file
        locked = tmp_path / "img" / "locked.jpg"
        locked.write_bytes(b"\xff\xd8\xff")
        locked.chmod(0)
        refuse(table.assign(path=table["path"].where(table.index != 1, str(locked))), r"row 2 .*unreadable")
    refuse(table.assign(role="maybe"), "role must be one of")
    refuse(table, "no images of nope", controls_from=("nope",))
    only_candidates = table[table["dataset"] == "candidates"]
    only_candidates.to_csv(tmp_path / "c.csv", index=False)
    with pytest.raises(InputError, match="no control images"):
        build_plan(read_images(tmp_path / "c.csv"), PlanSettings())
    assert build_plan(read_images(tmp_path / "c.csv"), PlanSettings(positive_controls=0, negative_controls=0))
    with pytest.raises(InputError, match="no name or description for class_id 5000"):
        build_plan(validate_images(table.assign(class_id=5000)), PlanSettings())
    with pytest.raises(InputError, match="--annotators must be >= 1"):
        PlanSettings(annotators=0).validate()


def test_relative_paths_are_taken_from_the_table_folder(tmp_path):
    table = image_table(tmp_path / "data" / "img", n_ref=2, n_cand=2)
    table["path"] = [os.path.relpath(p, tmp_path / "data") for p in table["path"]]
    table.to_csv(tmp_path / "data" / "images.csv", index=False)
    images = read_images(tmp_path / "data" / "images.csv")
    assert images["path"].map(os.path.isabs).all() and images["path"].map(os.path.isfile).all()
    assert np.array_equal(images["image_no"], np.arange(len(images)))
