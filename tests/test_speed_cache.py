"""Decode once, evaluate many: the crop cache, grouping by crop key, the
pipelined runner's out-of-memory back-off and the torchrun chunk shards."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from eval_fixtures import v2_files, write_tree

from evaluators.cache import CropCache, group_by_crop_key
from evaluators.datasets import ImageNetV2Folder
from evaluators.engine import evaluate_source
from evaluators.gpu import PipelinedRunner
from evaluators.preprocess import PreprocessCfg
from evaluators.registry import create_model
from evaluators.runner import Batch, CropDataset, ModelRunner, shard_chunks
from replication.cli import main

V2 = "imagenetv2-matched-frequency"
SMALL = {"crop_size": 32, "resize_size": 36}


@pytest.fixture()
def tree(tmp_path):
    return write_tree(tmp_path / "v2", {**v2_files(classes=(2, 10, 100, 999), per_class=3), "10/empty.jpeg": b""})


@pytest.mark.parametrize("where", ["memory", "disk"])
def test_cached_crops_equal_fresh_decoding_and_outputs_match(tmp_path, tree, where):
    src = ImageNetV2Folder(tree)
    lm = create_model("resnet18", weights="random", preprocess=SMALL)
    cache = CropCache(src, lm.preprocess, dataset=V2, cache_dir=tmp_path / "c" if where == "disk" else None,
                      chunk_size=5).fill(workers=0, progress=False)
    assert cache.n_decoded_ == len(src) == 13
    crops, fresh = cache.crops(), CropDataset(src, lm.preprocess)
    for i in range(len(src)):
        (_, a, ea), (_, b, eb) = crops[i], fresh[i]
        assert ea == eb and (a is None) == (b is None) and (a is None or torch.equal(a, b))
    kw = dict(device="cpu", batch_size=4, workers=0, max_errors=1, save_logits=True, chunk_size=4, progress=False)
    plain = evaluate_source(lm, src, V2, tmp_path / "plain", **kw)
    cached = evaluate_source(lm, src, V2, tmp_path / "cached", crops=crops, **kw)
    a = pd.read_parquet(tmp_path / "plain" / V2 / "resnet18.parquet")
    b = pd.read_parquet(tmp_path / "cached" / V2 / "resnet18.parquet")
    pd.testing.assert_frame_equal(a, b)
    assert cached["errors"] == plain["errors"] and cached["images_from"].startswith("crop cache")
    if where == "disk":  # a second cache over the same copy and crop key decodes nothing
        again = CropCache(src, lm.preprocess, dataset=V2, cache_dir=tmp_path / "c", chunk_size=5).fill(workers=0,
                                                                                                    progress=False)
        assert again.n_decoded_ == 0 and again.key == cache.key


def test_cache_key_follows_listing_and_crop_not_normalization(tmp_path, tree):
    src = ImageNetV2Folder(tree)
    base = PreprocessCfg(**SMALL)
    key = CropCache(src, base, dataset=V2).key
    assert CropCache(src, base.replace(mean=(0.5,) * 3, std=(0.5,) * 3), dataset=V2).key == key
    assert CropCache(src, base.replace(interpolation="bicubic"), dataset=V2).key != key
    assert CropCache(src, base.replace(decoder="torch"), dataset=V2).key != key
    assert CropCache(src, base, dataset="imagenetv2-top-images").key != key
    (tree / "2" / "extra.jpeg").write_bytes(next((tree / "999").iterdir()).read_bytes())  # one more image
    assert CropCache(ImageNetV2Folder(tree), base, dataset=V2).key != key


def test_group_by_crop_key():
    a, b = PreprocessCfg(), PreprocessCfg(interpolation="bicubic")
    groups = group_by_crop_key({"m1": a, "m2": b, "m3": a.replace(mean=(0.5,) * 3), "m4": b})
    assert list(groups.values()) == [["m1", "m3"], ["m2", "m4"]]


def test_cli_cache_shares_decoding_and_equals_uncached_runs(tmp_path, tree):
    base = ["evaluate", "--weights", "random", "--dataset", V2, "--root", str(tree), "--workers", "0",
            "--allow-partial", "--max-errors", "1", "--crop-size", "32", "--resize-size", "36", "--batch-size", "4"]
    models = ["--model", "resnet18", "--model", "mobilenet_v3_small"]
    assert main(base + models + ["--out", str(tmp_path / "x"), "--cache", "disk"]) == 1  # no --cache-dir
    assert not (tmp_path / "x").exists()
    assert main(base + models + ["--out", str(tmp_path / "plain")]) == 0
    assert main(base + models + ["--out", str(tmp_path / "cached"), "--cache", "disk",
                                 "--cache-dir", str(tmp_path / "cache")]) == 0
    caches = list((tmp_path / "cache").iterdir())
    assert len(caches) == 1  # both models share one crop key: decoded once
    for m in ("resnet18", "mobilenet_v3_small"):
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "plain" / V2 / f"{m}.parquet"),
                                      pd.read_parquet(tmp_path / "cached" / V2 / f"{m}.parquet"))
        side = json.loads((tmp_path / "cached" / V2 / f"{m}.json").read_text())
        assert side["images_from"].startswith("crop cache") and side["n_errors"] == 1


def test_out_of_memory_halves_the_batch_and_keeps_outputs():
    cfg = PreprocessCfg(crop_size=8, resize_size=9)
    lin = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 1000))

    class Fragile(torch.nn.Module):
        def forward(self, x):
            if len(x) > 3:
                raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
            return lin(x)

    x = torch.randint(0, 256, (10, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    runner = PipelinedRunner(Fragile(), cfg, torch.device("cpu"), "fp32", False)
    batches = [Batch(torch.arange(s, min(s + 5, 10)), x[s:s + 5], []) for s in (0, 5)]
    out = torch.cat([logits for _, logits in runner.map(batches)])
    ref = ModelRunner(lin, cfg, torch.device("cpu"), "fp32", False)(x)
    torch.testing.assert_close(out, ref)
    assert runner.max_batch_ == 2 and runner.oom_retries_ == 1  # 5 -> 2 once, later batches start at 2


@pytest.mark.parametrize("n_chunks,world", [(1, 2), (5, 2), (7, 3), (64, 8)])
def test_shards_are_contiguous_and_cover_every_chunk_once(n_chunks, world):
    shards = [shard_chunks(n_chunks, r, world) for r in range(world)]
    assert [i for s in shards for i in s] == list(range(n_chunks))
    sizes = np.array([len(s) for s in shards])
    assert sizes.max() - sizes.min() <= 1
