"""The engine and the evaluate/collect commands on small random-init models."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from conftest import missing
from eval_fixtures import jpeg_bytes, photo, v2_files, write_tree

from evaluators.datasets import ImageNetV2Folder
from evaluators.decode import crop_uint8, decode_image
from evaluators.engine import evaluate_source
from evaluators.registry import create_model
from evaluators.runner import ModelRunner
from replication.cli import main

V2 = "imagenetv2-matched-frequency"
SMALL = {"crop_size": 32, "resize_size": 36}
SMALL_ARGS = ["--crop-size", "32", "--resize-size", "36"]


@pytest.fixture(scope="module")
def tiny_model():
    return create_model("resnet18", weights="random", preprocess=SMALL)


def _evaluate(*extra, out, root, model="resnet18"):
    return main(["evaluate", "--model", model, "--weights", "random", "--dataset", V2, "--root", str(root),
                 "--out", str(out), "--workers", "0", "--batch-size", "4", "--allow-partial", *SMALL_ARGS, *extra])


def test_outputs_equal_a_direct_forward_pass(tmp_path, tiny_model):
    """With the default decoder (Pillow) the outputs are exactly those of torchvision's eval transforms."""
    from torchvision import transforms as T

    root = write_tree(tmp_path / "v2", v2_files(classes=(2, 10, 100, 999), per_class=3))
    res = evaluate_source(tiny_model, ImageNetV2Folder(root), V2, tmp_path / "out", device="cpu", batch_size=5,
                          workers=0, save_logits=True, chunk_size=4, progress=False)
    table = pd.read_parquet(tmp_path / "out" / V2 / "resnet18.parquet")
    src = ImageNetV2Folder(root)
    tf = T.Compose([T.Resize(36, T.InterpolationMode.BILINEAR), T.CenterCrop(32), T.ToTensor(),
                    T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    from PIL import Image
    x = torch.stack([tf(Image.open(root / s.location).convert("RGB")) for s in src.samples])
    with torch.no_grad():
        ref = tiny_model.module.float().to(memory_format=torch.contiguous_format)(x)
    assert list(table["image_id"]) == [s.image_id for s in src.samples]
    assert list(table["label"]) == [s.label for s in src.samples]
    preds = table[[f"pred{k}" for k in range(1, 6)]].to_numpy()
    assert np.array_equal(preds, ref.topk(5, 1).indices.numpy())
    logits = np.stack(table["logits"].to_numpy()).astype(np.float32)
    assert logits.shape == (12, 1000)
    np.testing.assert_allclose(logits, ref.numpy(), rtol=2e-3, atol=2e-3)  # float16 storage
    assert np.array_equal(table["correct1"], (preds[:, 0] == table["label"]).astype(int))
    assert res["n_images"] == 12 and res["n_errors"] == 0 and res["top1"] == table["correct1"].mean()
    assert res["preprocess"]["crop_size"] == 32 and len(res["preprocess_hash"]) == 16
    assert res["preprocess"]["decoder"] == "pil"
    assert not (tmp_path / "out" / V2 / ".resnet18.work").exists()


def test_decoder_option_reaches_the_crops_and_the_sidecar(tmp_path):
    root = write_tree(tmp_path / "v2", v2_files(classes=(2, 10), per_class=3))
    assert _evaluate("--decoder", "torch", "--save-logits", out=tmp_path / "torch", root=root) == 0
    assert _evaluate("--save-logits", out=tmp_path / "pil", root=root) == 0
    sides = {d: json.loads((tmp_path / d / V2 / "resnet18.json").read_text()) for d in ("torch", "pil")}
    assert sides["torch"]["preprocess"]["decoder"] == "torch" and sides["pil"]["preprocess"]["decoder"] == "pil"
    assert sides["torch"]["run_key"] != sides["pil"]["run_key"]
    a, b = (np.stack(pd.read_parquet(tmp_path / d / V2 / "resnet18.parquet")["logits"]).astype(np.float32)
            for d in ("torch", "pil"))
    assert 0 < np.abs(a - b).max() < 0.05 * np.abs(b).max()  # crops within a level or two of Pillow's


def test_workers_and_batch_sizes_give_the_same_predictions(tmp_path, tiny_model):
    root = write_tree(tmp_path / "v2", v2_files(classes=(3, 40), per_class=4))
    kw = dict(device="cpu", progress=False, save_logits=False)
    evaluate_source(tiny_model, ImageNetV2Folder(root), V2, tmp_path / "a", batch_size=8, workers=0, **kw)
    evaluate_source(tiny_model, ImageNetV2Folder(root), V2, tmp_path / "b", batch_size=3, workers=2, chunk_size=5, **kw)
    a = pd.read_parquet(tmp_path / "a" / V2 / "resnet18.parquet")
    b = pd.read_parquet(tmp_path / "b" / V2 / "resnet18.parquet")
    pd.testing.assert_frame_equal(a, b)


def test_bad_images_are_listed_and_max_errors_enforced(tmp_path, capsys):
    files = {**v2_files(classes=(1, 2), per_class=2), "1/zero.jpeg": b"", "2/trunc.jpeg": jpeg_bytes(photo(9))[:300],
             "2/png.jpeg": jpeg_bytes(photo(8), fmt="PNG"), "1/cmyk.jpeg": jpeg_bytes(photo(7), mode="CMYK"),
             "1/gray.jpeg": jpeg_bytes(photo(6), mode="L")}
    root = write_tree(tmp_path / "v2", files)
    out = tmp_path / "out"
    assert _evaluate("--max-errors", "1", out=out, root=root) == 1
    err = capsys.readouterr().err
    assert "2 unreadable image(s), more than --max-errors 1" in err and "zero.jpeg (empty file" in err
    assert not (out / V2 / "resnet18.parquet").exists() and not (out / V2 / "resnet18.json").exists()
    assert _evaluate("--max-errors", "2", out=out, root=root) == 0
    side = json.loads((out / V2 / "resnet18.json").read_text())
    assert side["n_images"] == 9 and side["n_errors"] == 2 and side["n_scored"] == 7
    assert {e["image_id"]: e["reason"][:15] for e in side["errors"]} == {"zero": "empty file (0 b", "trunc": "truncated or co"}
    table = pd.read_parquet(out / V2 / "resnet18.parquet")
    assert len(table) == 9 and table["error"].notna().sum() == 2
    assert (table.loc[table["error"].notna(), "pred1"] == -1).all()
    assert side["manifest_check"]["allow_partial"] is True and not side["manifest_check"]["ok"]


def test_partial_copy_refused_without_allow_partial(tmp_path, capsys):
    root = write_tree(tmp_path / "v2", v2_files(classes=(1,), per_class=1))
    rc = main(["evaluate", "--model", "resnet18", "--weights", "random", "--dataset", V2, "--root", str(root),
               "--out", str(tmp_path / "out")])
    assert rc == 1
    err = capsys.readouterr().err
    assert "1 images found, manifest expects 10000" in err and "--allow-partial" in err
    assert not (tmp_path / "out").exists()


def test_skip_finished_unless_force_and_collect(tmp_path, capsys):
    root = write_tree(tmp_path / "v2", v2_files(classes=(5, 6), per_class=2))
    out = tmp_path / "out"
    assert _evaluate(out=out, root=root) == 0
    first = (out / V2 / "resnet18.json").read_text()
    assert _evaluate(out=out, root=root) == 0
    assert "already done" in capsys.readouterr().out and (out / V2 / "resnet18.json").read_text() == first
    assert _evaluate("--force", out=out, root=root) == 0
    assert json.loads((out / V2 / "resnet18.json").read_text())["run_key"] == json.loads(first)["run_key"]
    assert _evaluate(out=out, root=root, model="mobilenet_v3_small") == 0
    assert main(["collect", str(out), "--out", str(tmp_path / "m.csv")]) == 0
    m = pd.read_csv(tmp_path / "m.csv")
    assert list(m.columns) == ["dataset", "image_id", "label", "mobilenet_v3_small", "resnet18"]
    r18 = pd.read_parquet(out / V2 / "resnet18.parquet")
    assert list(m["resnet18"]) == list(r18["correct1"]) and set(m["dataset"]) == {V2}


def test_collect_refuses_unscored_images_unless_dropped(tmp_path, capsys):
    root = write_tree(tmp_path / "v2", {**v2_files(classes=(5,), per_class=2), "5/bad.jpeg": b""})
    out = tmp_path / "out"
    assert _evaluate("--max-errors", "1", out=out, root=root) == 0
    assert main(["collect", str(out), "--out", str(tmp_path / "m.parquet")]) == 1
    assert "--drop-errors" in capsys.readouterr().err and not (tmp_path / "m.parquet").exists()
    assert main(["collect", str(out), "--out", str(tmp_path / "m.parquet"), "--drop-errors"]) == 0
    assert len(pd.read_parquet(tmp_path / "m.parquet")) == 2


def test_resume_after_sigkill_gives_identical_outputs(tmp_path):
    root = write_tree(tmp_path / "v2", v2_files(classes=tuple(range(0, 960, 80)), per_class=4))  # 48 images
    args = ["--chunk-size", "4", "--batch-size", "2", "--save-logits"]
    cmd = [sys.executable, "-m", "replication", "evaluate", "--model", "resnet18", "--weights", "random",
           "--dataset", V2, "--root", str(root), "--workers", "0", "--allow-partial", *SMALL_ARGS, *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    assert main(cmd[3:] + ["--out", str(tmp_path / "full")]) == 0  # uninterrupted, in process
    work = tmp_path / "killed" / V2 / ".resnet18.work"
    proc = subprocess.Popen(cmd + ["--out", str(tmp_path / "killed")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and len(list(work.glob("chunk-*.parquet"))) < 2:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_done = len(list(work.glob("chunk-*.parquet")))
    assert 2 <= n_done < 12, "the kill must land mid-dataset"
    assert not (tmp_path / "killed" / V2 / "resnet18.parquet").exists()
    for chunk in work.glob("chunk-*.parquet"):  # every visible chunk is complete (atomic renames)
        assert pq.read_metadata(chunk).num_rows == 4
    assert subprocess.run(cmd + ["--out", str(tmp_path / "killed")], env=env, capture_output=True).returncode == 0
    a = (tmp_path / "full" / V2 / "resnet18.parquet").read_bytes()
    b = (tmp_path / "killed" / V2 / "resnet18.parquet").read_bytes()
    assert a == b
    side = json.loads((tmp_path / "killed" / V2 / "resnet18.json").read_text())
    assert side["resumed_chunks"] >= n_done and side["images_this_run"] == 48 - 4 * side["resumed_chunks"]
    assert not work.exists()


def test_runner_precisions_on_cpu(tiny_model):
    x = torch.stack([crop_uint8(decode_image(jpeg_bytes(photo(i, size=(48, 40)))), tiny_model.preprocess)
                     for i in range(6)])
    ref = ModelRunner(tiny_model.module, tiny_model.preprocess, torch.device("cpu"), "fp32", False)(x)
    for prec in ("bf16", "fp16"):
        out = ModelRunner(tiny_model.module, tiny_model.preprocess, torch.device("cpu"), prec, True)(x)
        assert out.dtype == torch.float32
        assert torch.corrcoef(torch.stack([out.ravel(), ref.ravel()]))[0, 1] > 0.99


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_cuda_path_matches_cpu(tmp_path, tiny_model, precision):
    root = write_tree(tmp_path / "v2", v2_files(classes=(3, 40, 700), per_class=4))
    kw = dict(batch_size=4, workers=2, progress=False)
    cpu = evaluate_source(tiny_model, ImageNetV2Folder(root), V2, tmp_path / "cpu", device="cpu", **kw)
    gpu = evaluate_source(create_model("resnet18", weights="random", preprocess=SMALL), ImageNetV2Folder(root), V2,
                          tmp_path / "gpu", device="cuda", precision=precision, **kw)
    assert gpu["device"].startswith("cuda:") and gpu["n_scored"] == cpu["n_scored"] == 12
    a = pd.read_parquet(tmp_path / "cpu" / V2 / "resnet18.parquet")
    b = pd.read_parquet(tmp_path / "gpu" / V2 / "resnet18.parquet")
    assert (a["pred1"] == b["pred1"]).mean() >= (1.0 if precision == "fp32" else 0.9)


def test_classifier_runs_in_fp32_under_autocast_and_survives_copies(tiny_model):
    import copy
    import pickle

    from evaluators.runner import Float32Linear, classifier_in_fp32

    assert classifier_in_fp32(tiny_model.module) == [tiny_model.module.fc]
    assert type(tiny_model.module.fc) is Float32Linear
    twin = copy.deepcopy(tiny_model.module)
    torch.nn.init.zeros_(twin.fc.weight)  # the copy's head must use its own weights
    again = pickle.loads(pickle.dumps(tiny_model.module))
    head = tiny_model.module.fc
    x = torch.randn(2, 512).bfloat16()
    with torch.inference_mode():
        ref = torch.nn.functional.linear(x.float(), head.weight, head.bias)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, out_twin, out_again = head(x), twin.fc(x), again.fc(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(out_again, ref)
    assert torch.equal(out_twin, twin.fc.bias.expand(2, -1).float())


def test_classifier_of_timm_style_models_with_two_heads():
    from evaluators.runner import Float32Linear, classifier_in_fp32

    class Distilled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.head, self.head_dist, self.proj = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3), torch.nn.Linear(4, 4)

        def get_classifier(self):
            return self.head, self.head_dist

    m = Distilled()
    assert classifier_in_fp32(m) == [m.head, m.head_dist] and type(m.proj) is torch.nn.Linear
    assert type(m.head) is Float32Linear
    assert classifier_in_fp32(torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1))) == []


def test_default_cpu_batch_gives_the_outputs_of_batch_64(tmp_path):
    """On the CPU the default batch is 8 (faster: activations stay in the caches); batches whose size is a
    multiple of 4 give the same logits bit for bit, so the files equal those of --batch-size 64."""
    root = write_tree(tmp_path / "v2", v2_files(classes=(2, 10, 100, 999), per_class=4))  # 16 images
    args = ["evaluate", "--model", "resnet18", "--weights", "random", "--dataset", V2, "--root", str(root),
            "--workers", "0", "--allow-partial", "--save-logits", *SMALL_ARGS]
    assert main(args + ["--out", str(tmp_path / "default")]) == 0
    assert main(args + ["--out", str(tmp_path / "b64"), "--batch-size", "64"]) == 0
    side = json.loads((tmp_path / "default" / V2 / "resnet18.json").read_text())
    assert side["batch_size"] == 8 and side["device"].startswith("cpu")
    assert ((tmp_path / "default" / V2 / "resnet18.parquet").read_bytes()
            == (tmp_path / "b64" / V2 / "resnet18.parquet").read_bytes())


def test_default_workers_leave_the_cpu_model_most_cores():
    """Feeding a GPU: CPUs - 1 workers (at most 8); beside a model on the CPU, a quarter of them (at least 1)."""
    from evaluators.runner import default_workers

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    for cores, on_cpu, on_gpu in ((1, 0, 0), (2, 1, 1), (8, 2, 7), (32, 8, 8)):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(os, "cpu_count", lambda: cores)
            assert (default_workers(cpu), default_workers(cuda), default_workers()) == (on_cpu, on_gpu, on_gpu)


@pytest.mark.parametrize("preset,expected", [(None, "GOMP_SPINCOUNT = '0'"), ("ACTIVE", "OMP_WAIT_POLICY = 'ACTIVE'")])
def test_evaluate_lets_openmp_threads_sleep_unless_told_otherwise(tmp_path, preset, expected):
    """evaluate sets OMP_WAIT_POLICY=PASSIVE before torch (and its OpenMP) loads, unless the environment has one;
    OMP_DISPLAY_ENV makes libgomp print how it started (unset, it spins 300,000 times before it sleeps)."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env.update({"OMP_DISPLAY_ENV": "VERBOSE", **({"OMP_WAIT_POLICY": preset} if preset else {}),
                "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))})
    child = subprocess.run([sys.executable, "-m", "replication", "evaluate", "--model", "resnet18", "--dataset", V2,
                            "--root", str(tmp_path / "missing"), "--out", str(tmp_path / "out")],
                           env=env, capture_output=True, text=True, timeout=300)
    assert child.returncode == 1 and "dataset path not found" in child.stderr  # failed after torch was loaded
    assert expected in child.stderr


def test_a_reused_heap_keeps_freed_activations_for_the_next_batch():
    """Inside reused_heap a freed 64 MB buffer is reused (no fresh pages to zero); outside, every one is new."""
    import platform
    import resource

    if platform.libc_ver()[0] != "glibc":
        missing("the C library is not glibc")  # CI runs Debian

    from evaluators.runner import reused_heap

    def page_faults(n=4):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(n):
            torch.ones(16 << 20).sum()  # 64 MB written, then freed
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    pages = (64 << 20) // os.sysconf("SC_PAGE_SIZE")
    assert page_faults() >= 3 * pages
    with reused_heap():
        page_faults(1)
        assert page_faults() < pages // 4
    assert page_faults() >= 3 * pages
