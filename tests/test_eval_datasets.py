"""Dataset readers on generated real JPEG trees: every layout, labels, manifests."""
from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest
from conftest import require_module
from eval_fixtures import jpeg_bytes, photo, v2_files, write_tar, write_tree

from replication.classes import imagenet_classes
from evaluators.datasets import (ClassFolder, HFImageDataset, ImageNetFolder, ImageNetV2Folder, ImageNetV2Tar,
                                 ImageNetValFlat, open_dataset)
from evaluators.manifests import check_archive, check_dataset, load_manifest
from replication.cli import main
from replication.errors import InputError

V2 = "imagenetv2-matched-frequency"


def test_class_table_is_sorted_wnids():
    cls = imagenet_classes()
    assert len(cls) == 1000 and list(cls.wnids) == sorted(cls.wnids)
    assert cls.names[967] == "espresso" and cls.index("n01440764") == 0


def test_v2_folder_labels_are_int_folder_names(tmp_path):
    root = write_tree(tmp_path / "imagenetv2-matched-frequency-format-val", v2_files())
    src = ImageNetV2Folder(root)
    assert [s.label for s in src.samples] == [2, 2, 10, 10, 100, 100, 999, 999]
    assert all(s.location.startswith(f"{s.label}/") for s in src.samples)
    assert src.samples[0].image_id == f"002{0:037x}" and not src.problems
    # the parent folder holding the single *-format-val folder works too
    assert [s.image_id for s in ImageNetV2Folder(tmp_path).samples] == [s.image_id for s in src.samples]


def test_torchvision_imagefolder_would_mislabel_v2(tmp_path):
    from torchvision.datasets import ImageFolder

    root = write_tree(tmp_path, v2_files())
    tv = ImageFolder(str(root))
    tv_labels = {p.split("/")[-2]: t for p, t in tv.samples}
    assert tv_labels == {"10": 0, "100": 1, "2": 2, "999": 3}  # string-sorted positions, all wrong
    ours = {s.location.split("/")[0]: s.label for s in ImageNetV2Folder(root).samples}
    assert ours == {"10": 10, "100": 100, "2": 2, "999": 999}


def test_v2_tar_reads_like_the_folder_without_extracting(tmp_path):
    files = v2_files(prefix="imagenetv2-matched-frequency-format-val/")
    folder = ImageNetV2Folder(write_tree(tmp_path / "x", files))
    tar = ImageNetV2Tar(write_tar(tmp_path / "imagenetv2-matched-frequency.tar.gz", files))
    assert [(s.image_id, s.label) for s in tar.samples] == [(s.image_id, s.label) for s in folder.samples]
    for i in reversed(range(len(tar))):  # backwards: forces gzip rewinds
        assert tar.read_bytes(i) == folder.read_bytes(i)
    assert not list((tmp_path).glob("imagenetv2-matched-frequency-format-val"))
    assert open_dataset(V2, tmp_path / "imagenetv2-matched-frequency.tar.gz").layout == "imagenetv2-tar"


def test_v2_tar_unreadable_member_and_truncated_archive(tmp_path):
    files = v2_files(classes=(5,), per_class=2, prefix="top/")
    link = tarfile.TarInfo(f"top/7/{'ab' * 20}.jpeg")
    link.type, link.linkname = tarfile.SYMTYPE, "../nowhere.jpeg"
    tar = ImageNetV2Tar(write_tar(tmp_path / "a.tar.gz", files, extra=[link]))
    i = [s.label for s in tar.samples].index(7)
    with pytest.raises(OSError, match="unreadable archive member"):
        tar.read_bytes(i)
    # an uncompressed archive cut in the middle of the last member's data
    plain = tmp_path / "b.tar"
    with tarfile.open(plain, "w") as tf:
        for rel, data in files.items():
            ti = tarfile.TarInfo(rel)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    raw = plain.read_bytes()
    cut = tmp_path / "cut.tar"
    cut.write_bytes(raw[: 512 * 3 + len(list(files.values())[0]) + 700])
    src = ImageNetV2Tar(cut)
    assert len(src) == 2
    with pytest.raises(OSError, match="truncated"):
        src.read_bytes(1)
    assert src.read_bytes(0) == list(files.values())[0]


def _val_files(wnid_idx=(0, 1, 500), per=2):
    wn = imagenet_classes().wnids
    files, labels, n = {}, {}, 0
    for c in wnid_idx:
        for _ in range(per):
            n += 1
            iid = f"ILSVRC2012_val_{n:08d}"
            files[f"{wn[c]}/{iid}.JPEG"] = jpeg_bytes(photo(n))
            labels[iid] = c
    return files, labels


def _devkit(folder, labels):
    """A devkit whose ILSVRC2012_IDs are a permutation of the sorted-wnid order."""
    from scipy.io import savemat

    wn = imagenet_classes().wnids
    perm = np.random.default_rng(1).permutation(1000)  # ILSVRC2012_ID k+1 <-> class perm[k]
    dt = [("ILSVRC2012_ID", "O"), ("WNID", "O"), ("words", "O"), ("gloss", "O"), ("num_children", "O")]
    rows = [(k + 1, wn[perm[k]], "w", "g", 0) for k in range(1000)] + [(1001, "n00001740", "entity", "g", 3)]
    syn = np.array(rows, dtype=dt)
    (folder / "data").mkdir(parents=True)
    savemat(folder / "data" / "meta.mat", {"synsets": syn})
    id_of = {int(c): k + 1 for k, c in enumerate(perm)}
    lines = [str(id_of[labels[f"ILSVRC2012_val_{n:08d}"]]) for n in range(1, len(labels) + 1)]
    (folder / "data" / "ILSVRC2012_validation_ground_truth.txt").write_text("\n".join(lines) + "\n")
    return folder


def test_imagenet_val_folder_flat_devkit_and_loc_csv_agree(tmp_path):
    files, labels = _val_files()
    fold = ImageNetFolder(write_tree(tmp_path / "val", files))
    assert {s.image_id: s.label for s in fold.samples} == labels
    flat_files = {k.split("/")[1]: v for k, v in files.items()}
    flat = write_tree(tmp_path / "flat", flat_files)
    devkit = _devkit(tmp_path / "ILSVRC2012_devkit_t12", labels)
    by_devkit = ImageNetValFlat(flat, devkit)
    assert {s.image_id: s.label for s in by_devkit.samples} == labels
    with tarfile.open(tmp_path / "ILSVRC2012_devkit_t12.tar.gz", "w:gz") as tf:
        tf.add(devkit, arcname="ILSVRC2012_devkit_t12")
    assert [s.label for s in ImageNetValFlat(flat, tmp_path / "ILSVRC2012_devkit_t12.tar.gz").samples] == \
        [s.label for s in fold.samples]
    wn = imagenet_classes().wnids
    csv = "ImageId,PredictionString\n" + "".join(f"{i},{wn[c]} 1 2 3 4\n" for i, c in labels.items())
    (flat / "LOC_val_solution.csv").write_text(csv)
    auto = open_dataset("imagenet-val", flat)  # finds LOC_val_solution.csv in root
    assert auto.layout == "imagenet-flat" and [s.label for s in auto.samples] == [s.label for s in fold.samples]
    assert [s.image_id for s in auto.samples] == [s.image_id for s in fold.samples]


def test_flat_val_without_labels_says_where_to_put_them(tmp_path):
    write_tree(tmp_path / "flat", {"ILSVRC2012_val_00000001.JPEG": jpeg_bytes(photo(1))})
    with pytest.raises(InputError, match="LOC_val_solution.csv or ILSVRC2012_devkit_t12.tar.gz"):
        open_dataset("imagenet-val", tmp_path / "flat")


def test_class_folder_with_explicit_map(tmp_path):
    root = write_tree(tmp_path / "d", {"cats/a.jpg": jpeg_bytes(photo(1)), "dogs/b.jpg": jpeg_bytes(photo(2)),
                                        "birds/c.jpg": jpeg_bytes(photo(3))})
    (tmp_path / "map.json").write_text('{"cats": 281, "dogs": 207}')
    src = open_dataset(V2, root, layout="class-folder", labels=tmp_path / "map.json")
    assert [(s.image_id, s.label) for s in src.samples] == [("b", 207), ("a", 281)]
    assert any("birds" in p for p in src.problems)
    assert isinstance(src, ClassFolder)


@pytest.mark.parametrize("kind", ["save_to_disk", "parquet", "imagefolder"])
def test_hugging_face_layouts(tmp_path, kind):
    datasets = require_module("datasets")
    files = v2_files(classes=(2, 10, 100), per_class=1)
    ref = ImageNetV2Folder(write_tree(tmp_path / "tree", files))
    if kind == "imagefolder":
        root = tmp_path / "tree"
    else:
        feats = datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")})
        ds = datasets.Dataset.from_dict({"image": [str(tmp_path / "tree" / s.location) for s in ref.samples],
                                         "label": [s.label for s in ref.samples]}, features=feats)
        ds = ds.cast_column("image", datasets.Image(decode=False))
        root = tmp_path / "hf"
        if kind == "save_to_disk":
            ds.save_to_disk(str(root))
        else:
            root.mkdir()
            ds.to_parquet(str(root / "test-00000.parquet"))
    src = HFImageDataset(root, cache_dir=str(tmp_path / "cache"))
    assert src.layout == "hf"
    assert [(s.image_id, s.label) for s in src.samples] == [(s.image_id, s.label) for s in ref.samples]
    assert all(src.read_bytes(i) == ref.read_bytes(i) for i in range(len(src)))


def test_manifests_load_and_publish_known_checksums():
    for ds, n, per in [("imagenet-val", 50000, 50), (V2, 10000, 10), ("imagenetv2-threshold0.7", 10000, 10),
                       ("imagenetv2-top-images", 10000, 10)]:
        m = load_manifest(ds)
        assert (m["n_images"], m["images_per_class"]) == (n, per) and m["n_classes"] * per == n
    arch = load_manifest(V2)["archives"][0]
    assert arch["name"] == "imagenetv2-matched-frequency.tar.gz" and len(arch["sha256"]) == 64
    assert load_manifest("imagenet-val")["archives"][0]["md5"] == "29b22e2961454d5413ddabcf34fc5622"
    with pytest.raises(InputError, match="unknown dataset"):
        load_manifest("imagenet-c")


def test_manifest_counts_match_the_reference_definitions(reference_dir):
    import collections
    import json

    raw = reference_dir / "imagenetv2" / "raw"
    for code, ds in [("a-44", "imagenetv2-threshold0.7"), ("b-33", V2), ("c-12", "imagenetv2-top-images")]:
        names = json.loads((raw / f"imagenetv2-{code}.json").read_text())["image_filenames"]
        counts = collections.Counter(w for _, w in names)
        m = load_manifest(ds)
        assert len(names) == m["n_images"] and set(counts.values()) == {m["images_per_class"]}
        assert set(counts) == set(imagenet_classes().wnids)


def test_missing_and_extra_class_folders_are_listed(tmp_path, capsys):
    files = {**v2_files(classes=(2, 10)), "1000/x.jpeg": jpeg_bytes(photo(5)), "notes.txt": b"hi",
             "10/readme.md": b"x"}
    root = write_tree(tmp_path / "v2", files)
    check = check_dataset(V2, open_dataset(V2, root))
    text = "\n".join(check.differences)
    assert "4 images found, manifest expects 10000" in text
    assert "class folder 0/: missing (0 of 10 images)" in text and "class folder 2/: 2 images, expected 10" in text
    assert "extra folder 1000/" in text and "notes.txt" in text and "10/readme.md" in text
    assert len(check.differences) == 1 + 1000 + 3
    assert main(["verify-dataset", "--dataset", V2, "--root", str(root)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == len(check.differences) + 1 and "1004 difference(s)" in out[-1]


def test_archive_checksum_mismatch_is_reported(tmp_path):
    p = write_tar(tmp_path / "imagenetv2-matched-frequency.tar.gz", v2_files(classes=(1,), per_class=1))
    diffs = check_archive(V2, p)
    assert any("sha256" in d for d in diffs) and any("bytes" in d for d in diffs)


def test_class_folder_without_a_class_map_is_a_clear_error(tmp_path):
    (tmp_path / "a").mkdir()
    with pytest.raises(InputError, match="explicit class map"):
        ClassFolder(tmp_path)
