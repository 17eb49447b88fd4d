"""Robust image decoding and the per-model uint8 crop.

:func:`decode_image` turns raw file bytes into an RGB PIL image whatever the
file is named (JPEG, PNG, CMYK or grayscale JPEG, ...) and raises
:class:`DecodeError` with a short reason for an empty, truncated, corrupt or
unknown file. :func:`crop_uint8` applies a :class:`PreprocessCfg`'s resize and
centre crop (PIL resampling, as torchvision's and timm's eval transforms do on
PIL images) and returns a uint8 tensor of shape (3, crop, crop).
"""
from __future__ import annotations

import io
import warnings

import torch
from PIL import Image, UnidentifiedImageError

from evaluators.preprocess import PreprocessCfg


class DecodeError(ValueError):
    """An image file that cannot be decoded; ``str(exc)`` is the reason."""


def decode_image(data: bytes) -> Image.Image:
    """Decode ``data`` (a whole image file) to a fully loaded RGB image.

    Grayscale, palette, CMYK (incl. Adobe-inverted JPEG) and alpha images are
    converted to RGB (alpha dropped, as torchvision's loader does).
    EXIF orientation is ignored, as in the standard ImageNet evaluation.
    """
    if len(data) == 0:
        raise DecodeError("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = Image.open(io.BytesIO(data))
            img.load()
    except UnidentifiedImageError:
        raise DecodeError(f"not a readable image ({len(data)} bytes, unknown format)") from None
    except Image.DecompressionBombError as exc:
        raise DecodeError(f"image too large: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        fmt = getattr(locals().get("img"), "format", None) or "image"
        raise DecodeError(f"truncated or corrupt {fmt} data: {exc}") from None
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        img = img.point(lambda v: v / 256).convert("L")  # 16-bit grayscale -> 8 bit
    return img if img.mode == "RGB" else img.convert("RGB")


def crop_uint8(img: Image.Image, cfg: PreprocessCfg) -> torch.Tensor:
    """Resize the shorter side to ``cfg.resize_size`` and centre-crop
    ``cfg.crop_size``; returns uint8 (3, crop, crop)."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as F

    mode = InterpolationMode(cfg.interpolation)
    img = F.resize(img, cfg.resize_size, interpolation=mode, antialias=cfg.antialias)
    img = F.center_crop(img, cfg.crop_size)
    return F.pil_to_tensor(img)


def load_crop(data: bytes, cfg: PreprocessCfg) -> torch.Tensor:
    """``crop_uint8(decode_image(data), cfg)``; raises :class:`DecodeError`."""
    return crop_uint8(decode_image(data), cfg)
