"""Natural-shift datasets: readers of ImageNet-A/-R/-Sketch, ObjectNet and
ImageNet-ReaL on generated copies in their released layouts, their
manifests, and the scoring rules (class subsets, label sets)."""
from __future__ import annotations

import io
import json
import numpy as np
import pytest
import torch
from conftest import one_error
from eval_fixtures import objectnet_tree, photo, real_json, shift_files, write_tree
from PIL import Image

from replication.classes import imagenet_classes
from evaluators.datasets import ImageNetReal, ImageNetShiftFolder, ObjectNetFolder, open_dataset
from evaluators.datasets.objectnet import MAPPING_FILES
from evaluators.manifests import check_dataset, load_manifest
from evaluators.scoring import Scoring
from replication.errors import InputError

WNIDS = imagenet_classes().wnids

R_CLASSES = load_manifest("imagenet-r")["classes"]


def test_manifests_of_the_shifts():
    a, r = load_manifest("imagenet-a"), load_manifest("imagenet-r")
    assert (a["n_images"], len(a["classes"]), r["n_images"], len(r["classes"])) == (7500, 200, 30000, 200)
    # the first classes of each subset, as the papers' eval.py files list them
    assert a["classes"][:5] == [6, 11, 13, 15, 17] and r["classes"][:5] == [1, 2, 4, 6, 8]
    assert a["archives"][0]["sha256"].startswith("3bb36322") and r["archives"][0]["bytes"] == 2191079936
    sketch, on, real = load_manifest("imagenet-sketch"), load_manifest("objectnet"), load_manifest("imagenet-real")
    assert sketch["n_images"] == 50889 and sketch["archives"][0]["bytes"] == 7593573012
    assert (on["n_images"], on["n_classes"], len(on["classes"])) == (18514, 113, 125)
    assert real["n_images"] == 46837 == sum(real["class_counts"])
    assert real["archives"][0]["md5"] == "c03b536b209b127cb61430fd1ce950d5"


def test_real_manifest_counts_follow_real_json(reference_dir):
    """The manifest's per-class counts are the val images with a non-empty ReaL list, by original label."""
    real = json.loads((reference_dir / "real-reassessed-imagenet/raw/real.json").read_text())
    import pandas as pd

    labels = pd.read_csv(reference_dir / "real-reassessed-imagenet/real_original_label_votes.csv")["cid"].to_numpy()
    kept = np.array([bool(r) for r in real])
    assert load_manifest("imagenet-real")["class_counts"] == np.bincount(labels[kept], minlength=1000).tolist()


def test_imagenet_r_folder_reads_its_subset_and_ignores_the_readme(tmp_path):
    outside = next(c for c in range(1000) if c not in R_CLASSES)
    write_tree(tmp_path / "imagenet-r", shift_files([R_CLASSES[0], R_CLASSES[5]] + [outside]))
    src = open_dataset("imagenet-r", tmp_path)            # the folder holding imagenet-r/ works too
    assert isinstance(src, ImageNetShiftFolder) and src.root == tmp_path / "imagenet-r"
    assert src.class_subset == tuple(R_CLASSES)
    assert [(s.image_id, s.label) for s in src.samples] == [
        (f"{WNIDS[c]}/art_{k}", c) for c in (R_CLASSES[0], R_CLASSES[5]) for k in range(2)]
    assert src.problems == [f"extra folder {WNIDS[outside]}/ is not a class folder of this dataset (2 images not used)"]
    diffs = check_dataset("imagenet-r", src).differences
    assert diffs[0] == "4 images found, manifest expects 30000"
    assert sum("missing (no images)" in d for d in diffs) == 198
    assert not any("README" in d for d in diffs)


def test_sketch_ids_keep_their_folder(tmp_path):
    write_tree(tmp_path / "sketch", shift_files([0, 999], ext="JPEG", readme=False))
    src = open_dataset("imagenet-sketch", tmp_path / "sketch")
    assert src.class_subset is None and [s.image_id for s in src.samples] == [
        "n01440764/art_0", "n01440764/art_1", "n15075141/art_0", "n15075141/art_1"]
    check = check_dataset("imagenet-sketch", src)
    assert not any("appears" in d for d in check.differences)      # ids unique despite repeated file names
    assert sum("missing (no images)" in d for d in check.differences) == 998


MAPPING = {"alarm_clock": ("Alarm clock", (409, 530)),        # analog clock; digital clock
           "banana": ("Banana", (954,)),
           "mug": ("Mug", (504,))}


def _objectnet(tmp_path, **kw):
    images = {"alarm_clock": [photo(1), photo(2)], "banana": [photo(3)], "mug": [photo(4, (37, 29))],
              "sponge": [photo(5)]}
    return objectnet_tree(tmp_path / "objectnet-1.0", MAPPING, images, unmapped={"sponge": "Sponge"}, **kw)


def test_objectnet_reads_through_its_mapping_files(tmp_path):
    root = _objectnet(tmp_path)
    (root / "images" / "not_a_class").mkdir()
    src = open_dataset("objectnet", tmp_path)
    assert isinstance(src, ObjectNetFolder) and src.class_subset == (409, 504, 530, 954)
    by_folder = {s.location.split("/")[1]: (s.label, s.targets) for s in src.samples}
    assert by_folder == {"alarm_clock": (409, (409, 530)), "banana": (954, (954,)), "mug": (504, (504,))}
    assert len(src) == 4 and src.unmapped_images == 1
    assert src.problems == ["extra folder images/not_a_class/ is not an ObjectNet class folder (0 images not used)"]


def test_objectnet_border_is_cut_before_preprocessing(tmp_path):
    src = ObjectNetFolder(_objectnet(tmp_path))
    i = next(i for i, s in enumerate(src.samples) if "mug" in s.location)
    got = np.asarray(Image.open(io.BytesIO(src.read_bytes(i))).convert("RGB"))
    assert np.array_equal(got, photo(4, (37, 29)))               # exactly the picture inside the red frame
    on_disk = np.asarray(Image.open(src.root / src.samples[i].location).convert("RGB"))
    assert on_disk.shape == (33, 41, 3) and (on_disk[:2, :, 0] == 255).all() and (on_disk[:2, :, 1] == 0).all()


def test_objectnet_without_its_mapping_is_refused(tmp_path):
    root = _objectnet(tmp_path, mappings=False)
    with pytest.raises(InputError, match=f"{MAPPING_FILES[0]}: ObjectNet mapping file not found"):
        open_dataset("objectnet", root)


def test_objectnet_cli_error_without_mapping(tmp_path, run):
    root = _objectnet(tmp_path, mappings=False)
    code, out, err = run("evaluate", "--model", "efficientnet_lite0", "--weights", "random", "--dataset", "objectnet",
                         "--root", root, "--out", tmp_path / "out", "--allow-partial")
    assert code == 1 and "mappings/folder_to_objectnet_label.json: ObjectNet mapping file not found" in one_error(err)


def _val_tree(tmp_path, ids_labels):
    files = {f"{WNIDS[c]}/ILSVRC2012_val_{i:08d}.JPEG": photo(i) for i, c in ids_labels}
    from eval_fixtures import jpeg_bytes

    return write_tree(tmp_path / "val", {k: jpeg_bytes(v) for k, v in files.items()})


def test_real_labels_on_a_val_copy(tmp_path):
    root = _val_tree(tmp_path, [(1, 65), (2, 970), (3, 230), (4, 230)])
    real_json(tmp_path / "real.json", {0: [65], 1: [970, 795], 3: [230, 231]})   # image 3: empty -> left out
    src = open_dataset("imagenet-real", root)
    assert isinstance(src, ImageNetReal) and src.labels_file == tmp_path / "real.json" and src.n_excluded == 1
    assert [(s.image_id, s.label, s.targets) for s in src.samples] == [
        ("ILSVRC2012_val_00000001", 65, (65,)), ("ILSVRC2012_val_00000004", 230, (230, 231)),
        ("ILSVRC2012_val_00000002", 970, (795, 970))]
    assert src.read_bytes(1) == (root / WNIDS[230] / "ILSVRC2012_val_00000004.JPEG").read_bytes()
    assert check_dataset("imagenet-real", src).differences[0] == "3 images found, manifest expects 46837"


def test_real_json_of_the_wrong_length_is_refused(tmp_path, run):
    root = _val_tree(tmp_path, [(1, 65)])
    real_json(tmp_path / "real.json", {0: [65]}, n=49_999)
    with pytest.raises(InputError, match="49,999 label lists, but ImageNet val has 50,000 images"):
        open_dataset("imagenet-real", root)
    code, _, err = run("evaluate", "--model", "efficientnet_lite0", "--weights", "random", "--dataset",
                       "imagenet-real", "--root", root, "--real-labels", tmp_path / "real.json", "--out",
                       tmp_path / "out", "--allow-partial")
    assert code == 1 and "real.json: 49,999 label lists" in one_error(err)


def test_real_without_a_labels_file_names_where_to_put_it(tmp_path):
    root = _val_tree(tmp_path, [(1, 65)])
    with pytest.raises(InputError, match="imagenet-real needs ReaL's real.json"):
        open_dataset("imagenet-real", root)


# ------------------------------------------------------------------ scoring rules
def test_correct_with_label_sets_matches_a_direct_count():
    rng = np.random.default_rng(0)
    preds = rng.integers(0, 8, size=(200, 5))
    labels = rng.integers(0, 8, size=200)
    targets = [tuple(rng.choice(8, size=rng.integers(0, 4), replace=False)) for _ in range(200)]
    c1, c5 = Scoring.correct(preds, labels, targets)
    accepted = [set(t) if t else {lab} for t, lab in zip(targets, labels)]
    assert c1.tolist() == [int(p[0] in a) for p, a in zip(preds, accepted)]
    assert c5.tolist() == [int(bool(set(p) & a)) for p, a in zip(preds, accepted)]
    plain1, plain5 = Scoring.correct(preds, labels)
    assert plain1.tolist() == (preds[:, 0] == labels).astype(int).tolist()


def test_top_k_restricted_to_a_subset():
    logits = torch.randn(50, 1000)
    subset = tuple(R_CLASSES)
    top = Scoring(subset).top_k(logits, 5)
    masked = np.full((50, 1000), -np.inf)
    masked[:, subset] = logits.numpy()[:, subset]
    assert (top == np.argsort(-masked, axis=1)[:, :5]).all()
    assert (Scoring().top_k(logits, 5) == np.argsort(-logits.numpy(), axis=1)[:, :5]).all()


def test_models_must_score_the_classes_a_dataset_needs():
    with pytest.raises(InputError, match=r"scores 3 ImageNet classes and lacks 199 of the 200 classes imagenet-r"):
        Scoring(tuple(R_CLASSES)).check_model("m", (R_CLASSES[0], 0, 3), "imagenet-r")
    Scoring(tuple(R_CLASSES)).check_model("m", R_CLASSES + [0], "imagenet-r")     # covers the subset: fine
    with pytest.raises(InputError, match="lacks 997 of the 1000 ImageNet classes"):
        Scoring().check_model("m", (1, 2, 3), "imagenet-sketch")
    with pytest.raises(InputError, match="gives 200 scores per image"):
        Scoring(tuple(R_CLASSES)).top_k(torch.zeros(2, 200), 5)


def test_a_model_with_200_outputs_is_refused_with_one_line(tmp_path, run):
    """A TorchScript model trained on a 200-class subset gives 200 scores: scored
    against ImageNet's 1000 it cannot be; the run says so in one line."""
    module = torch.jit.script(torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                                  torch.nn.Linear(3, 200)))
    module.save(str(tmp_path / "m200.pt"))
    a = load_manifest("imagenet-a")["classes"]
    write_tree(tmp_path / "imagenet-a", shift_files(a[:2], per_class=1))
    code, _, err = run("evaluate", "--model", f"torchscript:{tmp_path / 'm200.pt'}", "--dataset", "imagenet-a",
                       "--root", tmp_path / "imagenet-a", "--out", tmp_path / "out", "--allow-partial", "--workers", "0")
    assert code == 1 and "gives 200 scores per image, not one per ImageNet class" in one_error(err)
