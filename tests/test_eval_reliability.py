"""Evaluate, collect and verify-dataset under faults and bad input: no phantom
results after a kill at the final rename, results skipped only when asked the
same question, unique image ids and output names, one-line errors."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import require_module
from eval_fixtures import jpeg_bytes, photo, v2_files, write_tar, write_tree

from evaluators.datasets import ImageNetFolder, ImageNetV2Folder, ImageNetV2Tar, ImageNetValFlat
from evaluators.runner import Batch, iter_chunks
from replication.cli import main
from replication.errors import InputError

V2 = "imagenetv2-matched-frequency"
TINY = ["--weights", "random", "--dataset", V2, "--workers", "0", "--allow-partial", "--crop-size", "32",
        "--resize-size", "36", "--batch-size", "4"]

#: runs evaluate in a child that kills itself (SIGKILL) when it renames a finished result parquet into place
KILL_AT_FINAL_RENAME = """
import os, signal, sys
real = os.replace
def replace(src, dst):
    if str(dst).endswith(sys.argv[1] + ".parquet"):
        os.kill(os.getpid(), signal.SIGKILL)
    return real(src, dst)
os.replace = replace
from replication.cli import main
main(sys.argv[2:])
"""


def _evaluate(root, out, *extra, model="resnet18"):
    return main(["evaluate", "--model", model, "--root", str(root), "--out", str(out), *TINY, *extra])


def _hidden(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_kill_at_the_final_rename_leaves_no_phantom_result(tmp_path, capsys):
    root = write_tree(tmp_path / "v2", v2_files(classes=(3, 7), per_class=3))
    out = tmp_path / "out"
    assert _evaluate(root, out) == 0
    folder = out / V2
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))}
    child = subprocess.run([sys.executable, "-c", KILL_AT_FINAL_RENAME, "mobilenet_v3_small", "evaluate", "--model",
                            "mobilenet_v3_small", "--root", str(root), "--out", str(out), *TINY],
                           env=env, capture_output=True, timeout=300)
    assert child.returncode == -9
    assert not (folder / "mobilenet_v3_small.parquet").exists()
    temps = [n for n in _hidden(folder) if n.startswith(".mobilenet_v3_small.parquet.")]
    assert len(temps) == 1 and not temps[0].endswith(".parquet")  # today's naming: never a result suffix
    assert pd.read_parquet(folder / temps[0])["pred1"].notna().all()  # a complete table: a phantom if read
    # the naming of earlier versions: hidden, but ending in the result suffix, for a finished and an unfinished model
    shutil.copy(folder / "resnet18.parquet", folder / ".mobilenet_v3_small.parquet.k2j4h5g6.parquet")
    shutil.copy(folder / "resnet18.json", folder / ".resnet18.json.a1b2c3d4.tmp")
    assert main(["collect", str(out), "--out", str(tmp_path / "before.csv")]) == 0
    assert list(pd.read_csv(tmp_path / "before.csv").columns) == ["dataset", "image_id", "label", "resnet18"]

    models = ["--model", "mobilenet_v3_small"]
    assert _evaluate(root, out, *models) == 0
    assert "resnet18 on imagenetv2-matched-frequency: already done" in capsys.readouterr().out
    assert _hidden(folder) == []  # temporaries of both namings gone, work folder removed
    assert main(["collect", str(out), "--out", str(tmp_path / "after.csv")]) == 0
    m = pd.read_csv(tmp_path / "after.csv")
    assert list(m.columns) == ["dataset", "image_id", "label", "mobilenet_v3_small", "resnet18"]
    for name in ("mobilenet_v3_small", "resnet18"):
        assert list(m[name]) == list(pd.read_parquet(folder / f"{name}.parquet")["correct1"])


def test_a_finished_result_is_skipped_only_when_asked_the_same(tmp_path, capsys):
    root = write_tree(tmp_path / "v2", v2_files(classes=(3, 7), per_class=2))
    out = tmp_path / "out"
    assert _evaluate(root, out) == 0
    side = out / V2 / "resnet18.json"
    first = side.read_text()
    assert json.loads(first)["result_identity"]["preprocess"]["interpolation"] == "bilinear"
    assert _evaluate(root, out, "--batch-size", "3", "--chunk-size", "2") == 0  # how it runs: still the same result
    assert "already done" in capsys.readouterr().out
    for extra, says in ((["--interpolation", "bicubic"], "interpolation bilinear -> bicubic"),
                        (["--precision", "bf16"], "precision fp32 -> bf16"),
                        (["--save-logits"], "save_logits False -> True")):
        assert _evaluate(root, out, *extra) == 1
        err = capsys.readouterr().err
        assert says in err and "--force" in err and len(err.strip().splitlines()) == 1
        assert side.read_text() == first and not (out / V2 / ".resnet18.work").exists()  # refused before any work
    (root / "3" / "extra.jpeg").write_bytes(jpeg_bytes(photo(99)))
    assert _evaluate(root, out) == 1
    assert "dataset listing (image ids, labels or files) changed" in capsys.readouterr().err
    assert _evaluate(root, out, "--interpolation", "bicubic", "--force") == 0
    redone = json.loads(side.read_text())
    assert redone["preprocess"]["interpolation"] == "bicubic" and redone["n_images"] == 5
    legacy = {k: v for k, v in redone.items() if k != "result_identity"}  # written before identities were recorded
    side.write_text(json.dumps(legacy))
    assert _evaluate(root, out, "--interpolation", "bicubic") == 1
    assert "not recorded" in capsys.readouterr().err


def test_output_names_are_unique_per_model(tmp_path, capsys):
    from evaluators.registry import create_model, output_name, register_model

    root = write_tree(tmp_path / "v2", v2_files(classes=(3,), per_class=2))
    out = tmp_path / "out"
    net = create_model("resnet18", weights="random").module
    scripted = tmp_path / "a" / "resnet18.pt"  # stem equal to a torchvision id
    scripted.parent.mkdir()
    torch.jit.save(torch.jit.trace(net, torch.randn(1, 3, 32, 32)), str(scripted))
    assert output_name(f"torchscript:{scripted}") == "torchscript_resnet18"
    assert _evaluate(root, out) == 0
    assert _evaluate(root, out, model=f"torchscript:{scripted}") == 0  # not "already done" with resnet18's results
    assert "already done" not in capsys.readouterr().out
    assert json.loads((out / V2 / "torchscript_resnet18.json").read_text())["provenance"]["source"] == "torchscript"
    other = tmp_path / "b" / "resnet18.pt"  # same stem, other weights
    other.parent.mkdir()
    torch.nn.init.zeros_(net.fc.weight)
    torch.jit.save(torch.jit.trace(net, torch.randn(1, 3, 32, 32)), str(other))
    before = sorted(p.name for p in (out / V2).iterdir())
    assert _evaluate(root, out, model=f"torchscript:{other}") == 1
    assert "weights " in capsys.readouterr().err and sorted(p.name for p in (out / V2).iterdir()) == before
    assert main(["evaluate", "--model", f"torchscript:{scripted}", "--model", f"torchscript:{other}",
                 "--root", str(root), "--out", str(tmp_path / "two"), *TINY]) == 1
    assert "would both write torchscript_resnet18.parquet" in capsys.readouterr().err
    assert not (tmp_path / "two").exists()
    with pytest.raises(ValueError, match="not starting with"):
        register_model(lambda weights=None, download=False: None, name="timm_resnet18")


def test_image_ids_are_unique_in_every_reader(tmp_path):
    twice = {**v2_files(classes=(4,), per_class=1), "4/same.jpeg": jpeg_bytes(photo(1)),
             "9/same.jpeg": jpeg_bytes(photo(2))}
    for make in (lambda: ImageNetV2Folder(write_tree(tmp_path / "v2", twice)),
                 lambda: ImageNetV2Tar(write_tar(tmp_path / "v2.tar.gz", {f"x-format-val/{k}": v for k, v in twice.items()})),
                 lambda: ImageNetFolder(write_tree(tmp_path / "wnid", {"n01440764/same.JPEG": b"a",
                                                                        "n01443537/same.JPEG": b"b"})),
                 lambda: ImageNetValFlat(write_tree(tmp_path / "flat", {"ILSVRC2012_val_00000001.JPEG": b"a",
                                                                         "ILSVRC2012_val_00000001.png": b"b",
                                                                         "LOC_val_solution.csv": b"ImageId,PredictionString\n"
                                                                         b"ILSVRC2012_val_00000001,n01440764 1 2 3 4\n"}))):
        with pytest.raises(InputError, match=r"occurs twice, at \S+ and \S+") as exc:
            make()
        assert "\n" not in str(exc.value)


def test_every_image_unreadable_fails_within_max_errors(tmp_path, capsys):
    root = write_tree(tmp_path / "v2", {"1/a.jpeg": b"", "2/b.jpeg": b"not an image"})
    assert _evaluate(root, tmp_path / "out", "--max-errors", "5") == 1
    assert "none of the 2 images" in capsys.readouterr().err
    assert not (tmp_path / "out" / V2 / "resnet18.parquet").exists()


def _result_folder(tmp_path):
    root = write_tree(tmp_path / "v2", v2_files(classes=(3,), per_class=2))
    assert _evaluate(root, tmp_path / "out") == 0
    return tmp_path / "out", tmp_path / "out" / V2


@pytest.mark.parametrize("case,says", [
    ("garbage", "not a readable Parquet file"),
    ("other table", "not an evaluate result (no column image_id, label, correct1, error)"),
    ("no sidecar", "no extra.json beside it"),
    ("not 0/1", "is not 0/1"),
])
def test_collect_refuses_what_is_not_a_result_in_one_line(tmp_path, capsys, case, says):
    out, folder = _result_folder(tmp_path)
    target = folder / "extra.parquet"
    if case == "garbage":
        target.write_bytes(b"PAR1 not really")
    elif case == "other table":
        pd.DataFrame({"a": [1]}).to_parquet(target)
    elif case == "no sidecar":
        shutil.copy(folder / "resnet18.parquet", target)
    else:
        t = pd.read_parquet(folder / "resnet18.parquet")
        t["correct1"] = "yes"
        t.to_parquet(target)
    if case != "no sidecar":
        (folder / "extra.json").write_text("{}")
    assert main(["collect", str(out), "--out", str(tmp_path / "m.csv")]) == 1
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "m.csv").exists()


def test_collect_writes_no_matrix_over_a_result(tmp_path, capsys):
    out, folder = _result_folder(tmp_path)
    kept = (folder / "resnet18.parquet").read_bytes()
    assert main(["collect", str(out), "--out", str(folder / "resnet18.parquet")]) == 1
    assert "where evaluate keeps its results" in capsys.readouterr().err
    assert (folder / "resnet18.parquet").read_bytes() == kept
    assert main(["collect", str(out), "--out", str(out / "correct.parquet")]) == 0


def test_timm_ids_that_are_not_timm_names(capsys):
    require_module("timm")
    for model, says in (("timm/../../x", "timm has no model named '../../x'"),
                        ("timm/resnt18", "close names: resnet18"),
                        ("timm/resnet18.badtag", "no pretrained tag 'badtag' for resnet18; choose from a1_in1k")):
        assert main(["evaluate", "--model", model, "--dataset", V2, "--root", ".", "--out", "unused"]) == 1
        err = capsys.readouterr().err
        assert says in err and "weights" not in err and len(err.strip().splitlines()) == 1


def test_label_files_and_splits_that_do_not_apply_are_refused(tmp_path, capsys):
    root = write_tree(tmp_path / "v2", v2_files(classes=(3,), per_class=1))
    (tmp_path / "map.json").write_text(json.dumps({"3": 5}))
    assert main(["verify-dataset", "--dataset", V2, "--root", str(root), "--labels", str(tmp_path / "map.json")]) == 1
    assert "has its labels in the copy itself" in capsys.readouterr().err
    assert main(["verify-dataset", "--dataset", V2, "--root", str(root), "--split", "train"]) == 1
    assert "only a Hugging Face copy has splits" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{1: ")
    assert main(["verify-dataset", "--dataset", V2, "--root", str(root), "--layout", "class-folder",
                 "--labels", str(tmp_path / "bad.json")]) == 1
    assert "not a readable class map" in capsys.readouterr().err


def test_chunk_loop_groups_batches_and_refuses_crossing():
    def batch(idx, bad=()):
        return Batch(torch.tensor(idx, dtype=torch.int64), torch.zeros(len(idx), 3, 1, 1, dtype=torch.uint8),
                     [(i, "x") for i in bad])

    chunks = [range(0, 3), range(3, 5)]
    got = [(c.start, last) for _, c, last in iter_chunks([batch([0, 1]), batch([], bad=[2]), batch([3, 4])], chunks)]
    assert got == [(0, False), (0, True), (3, True)]
    with pytest.raises(RuntimeError):
        list(iter_chunks([batch([0, 1, 2, 3])], chunks))


def test_cache_fill_with_a_batch_of_unreadable_images(tmp_path):
    from evaluators.cache import CropCache
    from evaluators.preprocess import PreprocessCfg

    root = write_tree(tmp_path / "v2", {**v2_files(classes=(3,), per_class=2), "9/a.jpeg": b"", "9/b.jpeg": b"x"})
    cache = CropCache(ImageNetV2Folder(root), PreprocessCfg(crop_size=8, resize_size=9), dataset=V2).fill(
        workers=0, batch_size=2, progress=False)
    crops = cache.crops()
    assert [crops[i][2] is None for i in range(4)] == [True, True, False, False]
    assert np.all([crops[i][1].shape == (3, 8, 8) for i in range(2)])


def test_labels_outside_the_classes_are_refused(tmp_path, capsys, monkeypatch):
    from evaluators import manifests

    root = write_tree(tmp_path / "tree", v2_files(classes=(3, 7), per_class=1))
    (tmp_path / "map.json").write_text(json.dumps({"3": 3, "7": 1000}))
    assert _evaluate(root, tmp_path / "out", "--layout", "class-folder", "--labels", str(tmp_path / "map.json")) == 1
    err = capsys.readouterr().err
    assert "class index not in 0..999 for folder(s) 7" in err and len(err.strip().splitlines()) == 1
    real = manifests.load_manifest
    monkeypatch.setattr(manifests, "load_manifest", lambda ds: {**real(ds), "classes": [3]})  # a 1-class dataset
    assert _evaluate(root, tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert f"label(s) 7 are not classes of {V2} (1 in all)" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flag,value", [("--batch-size", "0"), ("--workers", "-1"), ("--chunk-size", "0"),
                                        ("--max-errors", "-2")])
def test_counts_out_of_range_are_usage_errors(tmp_path, capsys, flag, value):
    assert main(["evaluate", "--model", "resnet18", "--dataset", V2, "--root", str(tmp_path), "--out",
                 str(tmp_path / "out"), flag, value]) == 2
    err = capsys.readouterr().err
    assert f"argument {flag}: must be >= " in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
