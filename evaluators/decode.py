"""Robust image decoding and the per-model uint8 crop.

:func:`decode_image` turns raw file bytes into an RGB PIL image whatever the
file is named (JPEG, PNG, CMYK or grayscale JPEG, ...) and raises
:class:`DecodeError` with a short reason for an empty, truncated, corrupt or
unknown file. :func:`crop_uint8` applies a :class:`PreprocessCfg`'s resize and
centre crop with Pillow (as torchvision's and timm's eval transforms do on
PIL images); :func:`resize_crop` does the same on a uint8 tensor, on the CPU
or the GPU, reproducing Pillow's arithmetic (see its docstring).

:func:`load_crop` is what the evaluators call. With ``cfg.decoder ==
"pil"`` (the default) every file goes through Pillow. With ``"torch"`` an
intact RGB or grayscale JPEG is decoded by ``torchvision.io.decode_jpeg``
(libjpeg-turbo, the library Pillow wraps: identical pixels) and cropped by
:func:`resize_crop` on torch's uint8 kernels: 2-3x faster per image on one
CPU core; 0.1% (bilinear) to 0.3% (bicubic) of crop values differ from
Pillow's, by 1-2 levels (``benchmarks/decode.py``). Other files still go
through Pillow, which also gives the reason for a broken file. (libjpeg
prints its "Corrupt JPEG data" warnings on stderr, where Pillow is silent.)
"""
from __future__ import annotations

import io
import warnings

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from evaluators.preprocess import PreprocessCfg

#: Pillow's filter for each :data:`~evaluators.preprocess.INTERPOLATIONS` name (torchvision's mapping)
PIL_RESAMPLE = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
                "bicubic": Image.Resampling.BICUBIC}
JPEG_MAGIC = b"\xff\xd8"
JPEG_END = b"\xff\xd9"  # missing in truncated files, which go to Pillow for their reason


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


def jpeg_mode(data: bytes) -> str | None:
    """Pillow's mode (``"RGB"``, ``"L"``, ``"CMYK"``) of a JPEG with both its
    start and end markers, read from the header only; None for anything else."""
    if data[:2] != JPEG_MAGIC or data.rstrip(b"\0")[-2:] != JPEG_END:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = Image.open(io.BytesIO(data))
            return img.mode if img.format == "JPEG" else None
    except Exception:  # noqa: BLE001 - not decodable here; the full decoder gives the reason
        return None


def centre_crop(F, image, height: int, width: int, cfg: PreprocessCfg):
    """``cfg.crop_size`` square centre crop of a PIL image or a tensor with
    torchvision functional module ``F`` (v1 for PIL, v2 for tensors) at
    ``cfg.crop_offset`` (``round`` is torchvision's ``center_crop``); an
    image smaller than the crop is padded by ``F.center_crop``."""
    c = cfg.crop_size
    if min(height, width) < c:
        return F.center_crop(image, [c, c])
    return F.crop(image, cfg.crop_offset(height), cfg.crop_offset(width), c, c)


def crop_uint8(img: Image.Image, cfg: PreprocessCfg) -> torch.Tensor:
    """Resize (the shorter side, or both with ``squash``) to ``cfg.resize_size``
    and centre-crop ``cfg.crop_size`` with Pillow; returns uint8 (3, crop, crop).
    The same Pillow calls as torchvision's ``Resize``, ``CenterCrop`` (at
    ``cfg.crop_offset``) and ``PILToTensor`` on a PIL image (identical bytes,
    tested), without importing torchvision in every DataLoader worker (a crop
    larger than the resized image, which torchvision pads, goes through it)."""
    h, w = ((cfg.resize_size,) * 2 if cfg.resize_mode == "squash"
            else resized_hw(img.height, img.width, cfg.resize_size))
    if (h, w) != (img.height, img.width):
        img = img.resize((w, h), PIL_RESAMPLE[cfg.interpolation])
    c = cfg.crop_size
    if min(h, w) < c:
        from torchvision.transforms import functional as F

        return F.pil_to_tensor(centre_crop(F, img, h, w, cfg))
    top, left = cfg.crop_offset(h), cfg.crop_offset(w)
    img = img.crop((left, top, left + c, top + c))
    return torch.as_tensor(np.array(img, copy=True)).permute(2, 0, 1)


def resized_hw(h: int, w: int, size: int) -> tuple[int, int]:
    """(height, width) after resizing the shorter side of an h x w image to
    ``size`` pixels (torchvision's rule: the longer side is truncated)."""
    return (size, int(size * w / h)) if h <= w else (int(size * h / w), size)


def _interpolate(x: torch.Tensor, size: tuple[int, int], interpolation: str, antialias: bool) -> torch.Tensor:
    """``torch.nn.functional.interpolate`` of images (..., 3, H, W) to
    ``size`` with a :class:`PreprocessCfg` interpolation name (``nearest`` is
    torch's ``nearest-exact``, the closer to Pillow's nearest)."""
    if interpolation == "nearest":
        kw = {"mode": "nearest-exact"}
    else:
        kw = {"mode": interpolation, "antialias": antialias, "align_corners": False}
    batch = x.reshape(-1, *x.shape[-3:])
    return torch.nn.functional.interpolate(batch, size=tuple(size), **kw).reshape(*x.shape[:-2], *size)


def resize_rounded(image: torch.Tensor, size: tuple[int, int], interpolation: str,
                   antialias: bool = True) -> torch.Tensor:
    """Pillow's resize arithmetic with float kernels (CUDA has no uint8
    ones): two separable passes, horizontal then vertical, each rounded and
    clipped to [0, 255] as Pillow stores its intermediate image (halves round
    up, as Pillow's fixed-point arithmetic does); uint8 (..., 3, H, W) in,
    uint8 (..., 3, *size) out. One float pass differs from Pillow on ~15% of
    values (by up to 8 levels with bicubic); this on < 0.2%, by 1."""
    out = image.float()
    for hw in ((image.shape[-2], size[1]), tuple(size)):
        if tuple(out.shape[-2:]) != hw:
            out = _interpolate(out, hw, interpolation, antialias).add_(0.5).floor_().clamp_(0, 255)
    return out.to(torch.uint8)


def resize_crop(image: torch.Tensor, cfg: PreprocessCfg) -> torch.Tensor:
    """``cfg``'s resize and centre crop of uint8 images (..., 3, H, W) of one
    size, on their device; returns uint8 (..., 3, crop, crop), close to Pillow's
    (:func:`crop_uint8`). On the CPU torch's uint8 kernels (called directly,
    so the result does not depend on the CPU's instruction set) implement
    Pillow's fixed-point filters with coarser weights: 0.1% (bilinear) to
    0.3% (bicubic) of values differ, by 1-2 levels. Elsewhere (CUDA)
    :func:`resize_rounded`. ``nearest`` is torch's ``nearest-exact``: at some
    sizes one row or column of the crop differs from Pillow's nearest."""
    from torchvision.transforms.v2 import functional as F

    size = (cfg.resize_size,) * 2 if cfg.resize_mode == "squash" else resized_hw(*image.shape[-2:], cfg.resize_size)
    if image.device.type == "cpu" or cfg.interpolation == "nearest":
        out = _interpolate(image, size, cfg.interpolation, cfg.antialias)
    else:
        out = resize_rounded(image, size, cfg.interpolation, cfg.antialias)
    return centre_crop(F, out, *size, cfg).contiguous()


def decode_jpegs(encoded: torch.Tensor | list[torch.Tensor], device: str | torch.device = "cpu"):
    """``torchvision.io.decode_jpeg`` to RGB on ``device`` (uint8 byte
    tensors in, uint8 (3, H, W) out, one or a list), without its warnings
    (torchvision 0.29 deprecates the function; libjpeg's corrupt-data notes)."""
    from torchvision.io import ImageReadMode, decode_jpeg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return decode_jpeg(encoded, mode=ImageReadMode.RGB, device=device)


def load_crop(data: bytes, cfg: PreprocessCfg) -> torch.Tensor:
    """The uint8 (3, crop, crop) crop of the image file ``data`` for ``cfg``
    (see the module docstring for the decoder used); raises :class:`DecodeError`."""
    if cfg.decoder == "torch" and jpeg_mode(data) in ("RGB", "L"):
        try:
            image = decode_jpegs(torch.frombuffer(bytearray(data), dtype=torch.uint8))
        except RuntimeError:
            pass  # Pillow below decodes it or gives the reason
        else:
            return resize_crop(image, cfg)
    return crop_uint8(decode_image(data), cfg)
