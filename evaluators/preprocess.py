"""Per-model preprocessing configuration (timm's ``PretrainedCfg`` data part).

Images are decoded to RGB, the shorter side is resized to ``resize_size``
with ``interpolation`` (and ``antialias``), then centre-cropped to
``crop_size`` x ``crop_size``; the uint8 crop is normalized with ``mean`` and
``std`` (in [0, 1] units) on the device. Two conventions other libraries
use are options: ``resize_mode="squash"`` resizes both sides to
``resize_size`` (aspect not kept: open_clip's ``squash``, Hugging Face
processors with a ``height``/``width`` size), and ``crop_rounding="floor"``
puts the crop at ``(size - crop) // 2`` where torchvision rounds
``(size - crop) / 2`` to the nearest even integer (Hugging Face processors;
the two differ by a pixel when ``size - crop`` is 3 mod 4). ``decoder`` picks the implementation
of decode and resize (:func:`evaluators.decode.load_crop`): ``"pil"``
(Pillow throughout, as timm's and torchvision's reference scripts; the
default) or ``"torch"`` (torchvision's libjpeg-turbo decoder and torch's
uint8 resize kernels: 2-3x faster, crops within 1-2 levels of Pillow's).
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, replace

from replication.errors import InputError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INTERPOLATIONS = ("nearest", "bilinear", "bicubic")
DECODERS = ("pil", "torch")
RESIZE_MODES = ("shorter", "squash")
CROP_ROUNDINGS = ("round", "floor")
#: fields left out of the hashes while at these defaults (hashes of earlier configurations stay valid)
_HASH_DEFAULTS = {"resize_mode": "shorter", "crop_rounding": "round"}


@dataclass(frozen=True)
class PreprocessCfg:
    """Preprocessing of one model. Sizes in pixels; mean/std per RGB channel
    for inputs scaled to [0, 1]."""

    crop_size: int = 224
    resize_size: int = 256
    interpolation: str = "bilinear"
    antialias: bool = True
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    decoder: str = "pil"
    resize_mode: str = "shorter"
    crop_rounding: str = "round"

    def __post_init__(self) -> None:
        for name, allowed in (("decoder", DECODERS), ("resize_mode", RESIZE_MODES), ("crop_rounding", CROP_ROUNDINGS)):
            if getattr(self, name) not in allowed:
                raise InputError(f"preprocessing {name} {getattr(self, name)!r}: choose {' or '.join(allowed)}")

    @classmethod
    def from_crop_pct(cls, crop_size: int, crop_pct: float, **kw: object) -> "PreprocessCfg":
        """timm's rule: resize the shorter side to ``floor(crop_size / crop_pct)``."""
        return cls(crop_size=crop_size, resize_size=int(math.floor(crop_size / crop_pct)), **kw)

    @property
    def crop_pct(self) -> float:
        """``crop_size / resize_size`` (e.g. 224 / 256 = 0.875)."""
        return self.crop_size / self.resize_size

    def replace(self, **overrides: object) -> "PreprocessCfg":
        """A copy with the non-None ``overrides`` applied (argument > model cfg)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def to_dict(self) -> dict:
        """JSON-ready fields (``mean``/``std`` as lists)."""
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    def _hashed(self) -> dict:
        return {k: v for k, v in self.to_dict().items() if _HASH_DEFAULTS.get(k, object()) != v}

    def hash(self) -> str:
        """Stable 16-hex-digit hash of the decoded-crop-relevant fields plus
        normalization; recorded with every result."""
        blob = json.dumps(self._hashed(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def crop_key(self) -> str:
        """Hash of the fields that determine the uint8 crop (not mean/std):
        models with equal crop keys can share decoded images."""
        d = self._hashed()
        d.pop("mean"), d.pop("std")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    def crop_offset(self, size: int) -> int:
        """Top (or left) offset of the centre crop in a side of ``size`` pixels."""
        if self.crop_rounding == "floor":
            return (size - self.crop_size) // 2
        return int(round((size - self.crop_size) / 2.0))
