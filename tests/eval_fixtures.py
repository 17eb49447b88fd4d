"""Builders of small real image files and dataset trees for the evaluator tests."""
from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image


def photo(seed: int, size=(40, 32)) -> np.ndarray:
    """A smooth random RGB image (H, W, 3) uint8, distinct per seed."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    chans = [127 + 120 * np.sin(xx / (3 + rng.uniform(0, 5)) + rng.uniform(0, 6))
             * np.cos(yy / (3 + rng.uniform(0, 5))) for _ in range(3)]
    return np.clip(np.stack(chans, -1), 0, 255).astype(np.uint8)


def jpeg_bytes(arr: np.ndarray, mode: str = "RGB", fmt: str = "JPEG") -> bytes:
    img = Image.fromarray(arr).convert(mode)
    buf = io.BytesIO()
    img.save(buf, format=fmt, quality=95)
    return buf.getvalue()


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    """Write ``{relative path: bytes}`` under ``root``."""
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return root


def v2_files(classes=(2, 10, 100, 999), per_class: int = 2, prefix: str = "") -> dict[str, bytes]:
    """ImageNet-v2 style files: ``<prefix><class>/<hex id>.jpeg``."""
    out = {}
    for c in classes:
        for k in range(per_class):
            out[f"{prefix}{c}/{c:03d}{k:037x}.jpeg"] = jpeg_bytes(photo(c * 100 + k))
    return out


def write_tar(path: Path, files: dict[str, bytes], extra=()) -> Path:
    """A .tar.gz of ``files``; ``extra`` holds ready TarInfo (e.g. symlinks) to add."""
    with tarfile.open(path, "w:gz") as tf:
        for rel, data in files.items():
            ti = tarfile.TarInfo(rel)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
        for ti in extra:
            tf.addfile(ti)
    return path
