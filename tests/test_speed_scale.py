"""Scale-out on CPU: the grid as Ray tasks on a local cluster, and one model
across two torchrun processes (gloo), each compared with the single-process
output; resume of a cached run after SIGKILL."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from conftest import require_module
from eval_fixtures import v2_files, write_tree

from replication.cli import main

V2 = "imagenetv2-matched-frequency"
MODELS = ["--model", "resnet18", "--model", "mobilenet_v3_small"]


def _args(root, out, *extra):
    return ["evaluate", "--weights", "random", "--dataset", V2, "--root", str(root), "--out", str(out),
            "--workers", "0", "--allow-partial", "--crop-size", "32", "--resize-size", "36", "--batch-size", "3",
            "--save-logits", *extra]


def _same_outputs(a, b, models=("resnet18", "mobilenet_v3_small")):
    for m in models:
        x = pd.read_parquet(a / V2 / f"{m}.parquet")
        y = pd.read_parquet(b / V2 / f"{m}.parquet")
        pd.testing.assert_frame_equal(x.drop(columns="logits"), y.drop(columns="logits"))
        # float16 logits: equal up to float32 summation order (thread counts differ between processes)
        np.testing.assert_allclose(np.stack(x["logits"]).astype(np.float32), np.stack(y["logits"]).astype(np.float32),
                                   rtol=0, atol=2e-2)
        sx, sy = (json.loads((d / V2 / f"{m}.json").read_text()) for d in (a, b))
        for k in ("n_images", "n_errors", "top1", "top5", "preprocess_hash", "run_key"):
            assert sx[k] == sy[k], k


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return write_tree(tmp_path_factory.mktemp("scale") / "v2", v2_files(classes=(1, 20, 300, 4000 % 1000), per_class=5))


@pytest.fixture(scope="module")
def single(tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    assert main(_args(tree, out, *MODELS, "--chunk-size", "4")) == 0
    return out


def test_ray_local_cluster_writes_what_the_local_backend_writes(tree, single, tmp_path):
    require_module("ray")
    assert main(_args(tree, tmp_path, *MODELS, "--chunk-size", "4", "--backend", "ray")) == 0
    _same_outputs(single, tmp_path)
    # grouped by crop key with a disk cache: one fill task, then one task per model
    assert main(_args(tree, tmp_path / "c", *MODELS, "--chunk-size", "4", "--backend", "ray", "--cache", "disk",
                      "--cache-dir", str(tmp_path / "cache"))) == 0
    _same_outputs(single, tmp_path / "c")
    assert len(list((tmp_path / "cache").iterdir())) == 1


def test_torchrun_two_gloo_processes_equal_one_process(tree, single, tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m",
           "replication", *_args(tree, tmp_path, "--model", "resnet18", "--chunk-size", "4", "--device", "cpu")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    _same_outputs(single, tmp_path, models=("resnet18",))
    side = json.loads((tmp_path / V2 / "resnet18.json").read_text())
    assert side["world_size"] == 2 and side["images_this_run"] == 8  # rank 0: chunks 0-1 of 0-4 (20 images)
    assert not (tmp_path / V2 / ".resnet18.work").exists()


def test_torchrun_ranks_fill_one_disk_cache_and_equal_one_process(tree, single, tmp_path):
    cache = tmp_path / "cache"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m",
           "replication", *_args(tree, tmp_path / "out", *MODELS, "--chunk-size", "4", "--device", "cpu",
                                 "--cache", "disk", "--cache-dir", str(cache))]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    _same_outputs(single, tmp_path / "out")
    (folder,) = cache.iterdir()  # one crop key, its 5 chunks of 4 images (ranks filled 0-1 and 2-4)
    assert len(list(folder.glob("chunk-*.json"))) == 5
    side = json.loads((tmp_path / "out" / V2 / "resnet18.json").read_text())
    assert side["world_size"] == 2 and side["images_from"].startswith("crop cache")


def test_sigkill_during_cache_fill_resumes_from_finished_chunks(tmp_path):
    from eval_fixtures import jpeg_bytes, photo

    root = write_tree(tmp_path / "v2", {f"{c}/{c:03d}{k:05d}.jpeg": jpeg_bytes(photo(c * 10 + k, size=(900, 700)))
                                        for c in (7, 70, 700) for k in range(16)})  # 48 slow-to-decode images
    assert main(_args(root, tmp_path / "full", *MODELS, "--chunk-size", "4")) == 0
    cache = tmp_path / "cache"
    cmd = [sys.executable, "-m", "replication",
           *_args(root, tmp_path / "killed", *MODELS, "--chunk-size", "4", "--cache", "disk", "--cache-dir", str(cache))]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 90
    while time.time() < deadline and len(list(cache.glob("*/chunk-*.json"))) < 2:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    metas = sorted(cache.glob("*/chunk-*.json"))
    assert 2 <= len(metas) < 12, "the kill must land while the cache is filling"
    for meta in metas:  # every visible chunk is complete: its array loads whole
        assert np.load(meta.with_suffix(".npy")).shape == (json.loads(meta.read_text())["n"], 3, 32, 32)
    visible = {p.name for p in cache.glob("*/*") if not p.name.startswith(".")}
    assert all(n == "key.json" or n.startswith("chunk-") for n in visible)
    before = {p: p.stat().st_mtime_ns for p in cache.glob("*/chunk-*.npy")}
    assert not (tmp_path / "killed" / V2 / "resnet18.parquet").exists()
    assert subprocess.run(cmd, env=env, capture_output=True).returncode == 0
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())  # finished chunks were not decoded again
    assert len(list(cache.glob("*/chunk-*.json"))) == 12 and not list(cache.glob("*/.chunk-*"))
    _same_outputs(tmp_path / "full", tmp_path / "killed")
