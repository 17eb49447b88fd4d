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


def shift_files(classes, per_class: int = 2, ext: str = "jpg", readme: bool = True) -> dict[str, bytes]:
    """ImageNet-A/-R/-Sketch style files: ``<wnid>/art_<k>.<ext>`` per class index
    (names repeat across class folders, as in the releases), plus ``README.txt``."""
    from replication.classes import imagenet_classes

    wnids = imagenet_classes().wnids
    out = {f"{wnids[c]}/art_{k}.{ext}": jpeg_bytes(photo(c * 100 + k)) for c in classes for k in range(per_class)}
    if readme:
        out["README.txt"] = b"release notes\n"
    return out


def with_border(arr: np.ndarray, border: int = 2) -> np.ndarray:
    """``arr`` (H, W, 3) framed by ``border`` red pixels on every side, as ObjectNet's images are."""
    h, w, _ = arr.shape
    out = np.zeros((h + 2 * border, w + 2 * border, 3), np.uint8)
    out[..., 0] = 255
    out[border:border + h, border:border + w] = arr
    return out


def png_bytes(arr: np.ndarray) -> bytes:
    """Lossless PNG file bytes of an RGB array."""
    return jpeg_bytes(arr, fmt="PNG")


def objectnet_tree(root: Path, mapping: dict[str, tuple[str, tuple[int, ...]]], images: dict[str, list[np.ndarray]],
                   unmapped: dict[str, str] = {}, border: int = 2, mappings: bool = True) -> Path:
    """An ObjectNet 1.0 release under ``root``: ``images/<folder>/<hex>.png``
    (each array of ``images[folder]`` framed by a red border) and, when
    ``mappings``, the four files of ``mappings/`` in the release's formats:
    ``mapping`` is folder -> (ObjectNet label, ImageNet class indices),
    ``unmapped`` folder -> label for classes without an ImageNet class. The
    ImageNet names file lists the classes in a shuffled order, so labels go
    through ``pytorch_to_imagenet_2012_id.json``."""
    import json

    from replication.classes import imagenet_classes

    names = imagenet_classes().full_names
    for folder, arrays in images.items():
        for k, arr in enumerate(arrays):
            p = root / "images" / folder / f"{folder[:4]}{k:011x}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(png_bytes(with_border(arr, border)))
    if mappings:
        order = np.random.default_rng(7).permutation(len(names))  # line -> class index
        m = root / "mappings"
        m.mkdir(parents=True, exist_ok=True)
        (m / "folder_to_objectnet_label.json").write_text(json.dumps(
            {**{f: lab for f, (lab, _) in mapping.items()}, **unmapped}))
        (m / "objectnet_to_imagenet_1k.json").write_text(json.dumps(
            {lab: "; ".join(names[c] for c in classes) for lab, classes in mapping.values()}))
        (m / "imagenet_to_label_2012_v2").write_text("".join(names[c] + "\n" for c in order))
        (m / "pytorch_to_imagenet_2012_id.json").write_text(json.dumps(
            {str(int(c)): line for line, c in enumerate(order)}))
    return root


def real_json(path: Path, lists: dict[int, list[int]], n: int = 50_000) -> Path:
    """ReaL's ``real.json``: ``n`` label lists, ``lists[i]`` for val image
    i + 1 and ``[]`` elsewhere."""
    import json

    path.write_text(json.dumps([lists.get(i, []) for i in range(n)]))
    return path
