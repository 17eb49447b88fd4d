"""Realistic test JPEGs for the evaluator benchmarks (no ImageNet here).

:func:`make_images` writes an ImageNet-v2-style tree of class folders whose
JPEGs (500x375 or 375x500, quality 90, like ImageNet's) are random crops of
scikit-image's photos with flips and colour jitter, written in parallel.
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "retina", "hubble_deep_field", "immunohistochemistry",
          "colorwheel", "logo")


def _photos() -> list[np.ndarray]:
    from skimage import data

    out = []
    for name in PHOTOS:
        img = getattr(data, name)()
        if img.ndim == 3 and img.shape[2] >= 3:
            out.append(np.ascontiguousarray(img[..., :3]))
    return out


def _write_one(args) -> None:
    from PIL import Image, ImageEnhance

    seed, path, photos = args
    rng = np.random.default_rng(seed)
    src = Image.fromarray(photos[seed % len(photos)])
    w, h = src.size
    area = rng.uniform(0.3, 1.0) * w * h
    ar = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    cw, ch = min(w, int(np.sqrt(area * ar))), min(h, int(np.sqrt(area / ar)))
    x0, y0 = rng.integers(0, w - cw + 1), rng.integers(0, h - ch + 1)
    img = src.crop((x0, y0, x0 + cw, y0 + ch)).resize((500, 375) if rng.random() < 0.75 else (375, 500),
                                                      Image.BICUBIC)
    if rng.random() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    img = ImageEnhance.Color(ImageEnhance.Brightness(img).enhance(rng.uniform(0.7, 1.3))).enhance(rng.uniform(0.6, 1.4))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    img.save(path, "JPEG", quality=90)


def make_images(root: Path, n: int, n_classes: int = 100, procs: int | None = None) -> Path:
    """``n`` JPEGs in class folders ``0..n_classes-1`` under ``root``."""
    photos = _photos()
    jobs = [(i, str(root / str(i % n_classes) / f"img{i:06d}.jpeg"), photos) for i in range(n)]
    with ProcessPoolExecutor(procs or os.cpu_count()) as ex:
        list(ex.map(_write_one, jobs, chunksize=64))
    return root
