"""ImageNet-ReaL (Beyer et al. 2020): ImageNet val scored against the
Reassessed Labels of ``real.json``::

    real.json       [[65], [970, 795], [], ...]     50,000 label lists;
                                                    entry i is ILSVRC2012_val_{i+1:08d}

The images are any ImageNet val copy the val readers take (wnid folders,
the flat release with its devkit, a Hugging Face copy keeping the file
names). An image is correct when the prediction is in its list; images
whose list is empty (3,163: none of the labels fit) are left out of the
dataset, as Beyer et al. define ReaL accuracy
(google-research/reassessed-imagenet README).
"""
from __future__ import annotations

import os
from pathlib import Path

from replication.classes import N_CLASSES
from evaluators.datasets.base import ImageSource, Sample
from evaluators.datasets.imagenet_flat import VAL_NAME
from replication.errors import InputError
from replication.io.jsonfile import read_json

REAL_FILE = "real.json"
N_VAL = 50_000


def read_real_labels(path: str | os.PathLike) -> list[tuple[int, ...]]:
    """The 50,000 ReaL label lists of ``real.json`` (entry i: val image i + 1),
    each a sorted tuple of class indices (empty: image left out)."""
    path = Path(path)
    raw = read_json(path, list, "ReaL's real.json, a JSON list of label lists")
    if not all(isinstance(r, list) for r in raw):
        raise InputError(f"{path}: expected ReaL's real.json, a JSON list of label lists")
    if len(raw) != N_VAL:
        raise InputError(f"{path}: {len(raw):,} label lists, but ImageNet val has {N_VAL:,} images "
                         f"(entry i belongs to ILSVRC2012_val_{{i+1:08d}}); is this ReaL's real.json?")
    bad = next((i for i, r in enumerate(raw)
                if not all(isinstance(c, int) and 0 <= c < N_CLASSES for c in r)), None)
    if bad is not None:
        raise InputError(f"{path}: entry {bad} (ILSVRC2012_val_{bad + 1:08d}) holds {raw[bad]!r}, "
                         f"not class indices 0..{N_CLASSES - 1}")
    return [tuple(sorted(r)) for r in raw]


def find_real_file(root: Path) -> Path:
    """``real.json`` in ``root`` or its parent; InputError naming where to put it."""
    for folder in (root, root.parent):
        if (folder / REAL_FILE).is_file():
            return folder / REAL_FILE
    raise InputError(f"{root}: imagenet-real needs ReaL's {REAL_FILE} (github.com/google-research/reassessed-imagenet): "
                     f"put it in {root} or {root.parent}, or pass --real-labels FILE")


class ImageNetReal(ImageSource):
    """ImageNet val images with their ReaL label lists::

        <val copy>/ ...                 (read by ``val``: any val layout)
        real.json                       (``labels_file``)

    Label rule: ``label`` is the original val label; ``targets`` the image's
    ReaL list (every class in it counts as correct). Val images with an
    empty list are left out (``n_excluded``); images whose id is not an
    ``ILSVRC2012_val_NNNNNNNN`` name have no ReaL entry and are listed in
    ``problems``. ``layout`` and ``root`` are those of ``val``.

    Parameters
    ----------
    val : ImageSource
        A reader of an ImageNet val copy.
    labels_file : str or os.PathLike, default=None
        ``real.json``; default: found beside the val copy (:func:`find_real_file`).
    """

    def __init__(self, val: ImageSource, labels_file: str | os.PathLike | None = None):
        super().__init__(val.root)
        self.val = val
        self.layout = val.layout
        self.labels_file = Path(labels_file) if labels_file is not None else find_real_file(val.root)
        real = read_real_labels(self.labels_file)
        self.problems = list(val.problems)
        self.n_excluded = 0
        samples, self._val_index = [], {}
        for i, s in enumerate(val.samples):
            m = VAL_NAME.match(s.image_id)
            if m is None or not 1 <= int(m.group(1)) <= N_VAL:
                self.problems.append(f"image {s.location}: id {s.image_id!r} is not an "
                                     "ILSVRC2012_val_NNNNNNNN name, so it has no ReaL labels")
                continue
            labels = real[int(m.group(1)) - 1]
            if not labels:
                self.n_excluded += 1
                continue
            samples.append(Sample(s.image_id, s.label, s.location, labels))
            self._val_index[s.location] = i
        self._set_samples(samples)

    def read_bytes(self, index: int) -> bytes:
        """Raw bytes of sample ``index``, read by the val reader."""
        return self.val.read_bytes(self._val_index[self.samples[index].location])

    def describe(self, index: int) -> str:
        """Where the val reader says sample ``index`` is."""
        return self.val.describe(self._val_index[self.samples[index].location])
