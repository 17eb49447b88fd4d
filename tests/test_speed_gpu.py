"""The GPU path: JPEG routing for GPU decoding (runs on CPU), and CUDA-marked
checks of the pipelined runner, nvJPEG decoding and torch.compile."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from eval_fixtures import jpeg_bytes, photo, v2_files, write_tree

from evaluators.datasets import ImageNetV2Folder
from evaluators.decode import crop_uint8, decode_image
from evaluators.engine import evaluate_source
from evaluators.gpu import EncodedFiles
from evaluators.preprocess import PreprocessCfg
from evaluators.registry import create_model
from evaluators.runner import CropDataset

V2 = "imagenetv2-matched-frequency"
SMALL = {"crop_size": 32, "resize_size": 36}
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture()
def mixed_tree(tmp_path):
    return write_tree(tmp_path / "v2", {
        **v2_files(classes=(1, 2), per_class=3), "1/empty.jpeg": b"", "2/trunc.jpeg": jpeg_bytes(photo(9))[:300],
        "2/png.jpeg": jpeg_bytes(photo(8), fmt="PNG"), "1/cmyk.jpeg": jpeg_bytes(photo(7), mode="CMYK"),
        "1/gray.jpeg": jpeg_bytes(photo(6), mode="L")})


def test_only_intact_rgb_jpegs_are_left_for_the_gpu(mixed_tree):
    src = ImageNetV2Folder(mixed_tree)
    cfg = PreprocessCfg(**SMALL)
    enc, cpu = EncodedFiles(src, cfg), CropDataset(src, cfg)
    batch = EncodedFiles.collate_fn([enc[i] for i in range(len(src))])
    names = {src.samples[i].image_id: i for i in range(len(src))}
    on_gpu = {src.samples[int(i)].image_id for i, s in zip(batch.indices, batch.spans) if s is not None}
    assert on_gpu == {s.image_id for s in src.samples} - {"empty", "trunc", "png", "cmyk", "gray"}
    assert dict(batch.errors) == {names["empty"]: cpu[names["empty"]][2], names["trunc"]: cpu[names["trunc"]][2]}
    for k, (span, d) in enumerate(zip(batch.spans, batch.decoded)):  # CPU-decoded ones equal the CPU path
        i = int(batch.indices[k])
        if span is None:
            assert torch.equal(d, cpu[i][1])
        else:
            assert batch.data[span[0]:span[1]].numpy().tobytes() == src.read_bytes(i)


@pytest.mark.cuda
@cuda
def test_gpu_decoded_crops_are_close_to_pil(tmp_path):
    from evaluators.gpu import gpu_crops

    for interp in ("bilinear", "bicubic"):
        cfg = PreprocessCfg(crop_size=96, resize_size=110, interpolation=interp)
        files = [jpeg_bytes(photo(i, size=(300, 220))) for i in range(8)]
        gpu = gpu_crops([torch.frombuffer(bytearray(f), dtype=torch.uint8) for f in files], cfg, torch.device("cuda"))
        for f, g in zip(files, gpu):
            ref = crop_uint8(decode_image(f), cfg)
            diff = (g.cpu().int() - ref.int()).abs().float()
            assert g.shape == ref.shape and diff.mean() < 2.0, (interp, diff.mean())


@pytest.mark.cuda
@cuda
def test_cuda_resize_reproduces_pillow_rounding():
    """The GPU resize alone (libjpeg-turbo decode on the CPU): Pillow's crop to within 1 level on < 1% of values."""
    from torchvision.io import decode_jpeg

    from evaluators.decode import resize_crop

    for interp in ("bilinear", "bicubic"):
        cfg = PreprocessCfg(crop_size=224, resize_size=256, interpolation=interp)
        for i in range(4):
            f = jpeg_bytes(photo(i, size=(500, 375)))
            gpu = resize_crop(decode_jpeg(torch.frombuffer(bytearray(f), dtype=torch.uint8)).cuda(), cfg).cpu()
            d = (gpu.int() - crop_uint8(decode_image(f), cfg).int()).abs()
            assert d.max() <= 1 and (d > 0).float().mean() < 0.01, (interp, int(d.max()))  # CPU float: <= 0.16%


@pytest.mark.cuda
@cuda
def test_cuda_pipeline_gpu_decode_and_compile_match_cpu(mixed_tree, tmp_path):
    lm = create_model("resnet18", weights="random", preprocess=SMALL)
    kw = dict(batch_size=3, workers=2, progress=False, max_errors=2, save_logits=True)
    src = ImageNetV2Folder(mixed_tree)
    evaluate_source(lm, src, V2, tmp_path / "cpu", device="cpu", **kw)
    fp32 = evaluate_source(lm, src, V2, tmp_path / "gpu", device="cuda", **kw)
    dec = evaluate_source(lm, src, V2, tmp_path / "dec", device="cuda", gpu_decode=True, **kw)
    comp = evaluate_source(lm, src, V2, tmp_path / "comp", device="cuda", compile=True, **kw)
    a = pd.read_parquet(tmp_path / "cpu" / V2 / "resnet18.parquet")
    for name, res in (("gpu", fp32), ("dec", dec), ("comp", comp)):
        b = pd.read_parquet(tmp_path / name / V2 / "resnet18.parquet")
        assert list(a["error"].fillna("")) == list(b["error"].fillna("")) and res["n_errors"] == 2
        la, lb = (np.stack(t["logits"]).astype(np.float32) for t in (a, b))
        ok = a["error"].isna().to_numpy()
        tol = 0.3 if name == "dec" else 0.05  # decoder differences move logits more than rounding
        assert np.abs(la[ok] - lb[ok]).max() < tol * np.abs(la[ok]).max(), name
    assert comp["compile_s"] > 0 and comp["device"].startswith("cuda:")


def test_batched_decode_and_resize_equal_the_per_image_torch_decoder():
    """gpu_crops (run here on the CPU) groups images by size; each crop equals --decoder torch's."""
    from evaluators.decode import load_crop
    from evaluators.gpu import gpu_crops

    files = [jpeg_bytes(photo(i, size=size)) for i, size in enumerate([(120, 90), (90, 120), (120, 90), (64, 64),
                                                                        (120, 90), (90, 120)])]
    for interp in ("bilinear", "bicubic", "nearest"):
        cfg = PreprocessCfg(crop_size=48, resize_size=56, interpolation=interp, decoder="torch")
        crops = gpu_crops([torch.frombuffer(bytearray(f), dtype=torch.uint8) for f in files], cfg,
                          torch.device("cpu"))
        assert len(crops) == len(files)
        for f, c in zip(files, crops):
            assert torch.equal(c, load_crop(f, cfg)), interp
