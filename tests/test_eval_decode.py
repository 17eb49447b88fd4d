"""Robust decoding: odd-but-valid files decode right, broken files give reasons."""
from __future__ import annotations

import io

import numpy as np
import pytest
from eval_fixtures import jpeg_bytes, photo
from PIL import Image

from evaluators.decode import DecodeError, crop_uint8, decode_image
from evaluators.preprocess import PreprocessCfg


def _mean_abs(a, b):
    return np.abs(a.astype(float) - b.astype(float)).mean()


def test_png_cmyk_and_grayscale_named_jpeg_decode_to_rgb():
    arr = photo(3, size=(64, 48))
    png = jpeg_bytes(arr, fmt="PNG")
    assert np.array_equal(np.asarray(decode_image(png)), arr)  # lossless
    cmyk = jpeg_bytes(arr, mode="CMYK")
    out = decode_image(cmyk)
    assert out.mode == "RGB" and _mean_abs(np.asarray(out), arr) < 6  # JPEG loss only, colours right
    gray = jpeg_bytes(arr, mode="L")
    g = np.asarray(decode_image(gray))
    assert g.shape == (48, 64, 3) and np.array_equal(g[..., 0], g[..., 2])
    assert _mean_abs(g[..., 0], np.asarray(Image.fromarray(arr).convert("L"))) < 3
    rgba = jpeg_bytes(arr, mode="RGBA", fmt="PNG")
    assert np.array_equal(np.asarray(decode_image(rgba)), arr)


@pytest.mark.parametrize("make,reason", [
    (lambda b: b"", "empty file"),
    (lambda b: b[: len(b) // 2], "truncated or corrupt"),
    (lambda b: b"\x00" * 300, "unknown format"),
    (lambda b: b[:200] + bytes(reversed(b[200:])), "not a readable image|corrupt"),
])
def test_broken_files_raise_with_reason(make, reason):
    with pytest.raises(DecodeError, match=reason):
        decode_image(make(jpeg_bytes(photo(1, size=(96, 80)))))


def test_crop_matches_torchvision_eval_transform():
    from torchvision import transforms as T

    img = Image.fromarray(photo(4, size=(90, 70)))
    cfg = PreprocessCfg(crop_size=48, resize_size=56, interpolation="bicubic")
    ref = T.Compose([T.Resize(56, T.InterpolationMode.BICUBIC), T.CenterCrop(48), T.PILToTensor()])(img)
    out = crop_uint8(img, cfg)
    assert out.dtype.is_floating_point is False and out.shape == (3, 48, 48)
    assert np.array_equal(out.numpy(), ref.numpy())
