"""Dataset readers, one class per on-disk layout, and :func:`open_dataset`,
which picks the reader for a dataset id and a path."""
from __future__ import annotations

import os
from pathlib import Path

from evaluators.classes import imagenet_classes
from evaluators.datasets.base import IMG_EXTENSIONS, ImageSource, Sample
from evaluators.datasets.class_folder import ClassFolder, read_class_map
from evaluators.datasets.hf import SAVED_MARKERS, HFImageDataset
from evaluators.datasets.imagenet_flat import VAL_NAME, ImageNetValFlat, read_val_labels
from evaluators.datasets.imagenet_folder import ImageNetFolder
from evaluators.datasets.imagenetv2 import ImageNetV2Folder, ImageNetV2Tar
from replication.errors import InputError

LAYOUTS = ("auto", "imagenet-folder", "imagenet-flat", "imagenetv2-folder", "imagenetv2-tar", "hf", "class-folder")


def detect_layout(dataset_id: str, root: Path) -> str:
    """Guess the layout of ``root`` for ``dataset_id`` (see :data:`LAYOUTS`)."""
    if root.is_file():
        if root.name.endswith((".tar.gz", ".tgz", ".tar")):
            return "imagenetv2-tar"
        raise InputError(f"{root}: a file that is not a .tar.gz/.tar archive; give the dataset folder")
    if not root.is_dir():
        raise InputError(f"{root}: dataset path not found")
    names = [p.name for p in root.iterdir()]
    if any(n in SAVED_MARKERS for n in names) or any(root.glob("*.parquet")) or any(root.glob("data/*.parquet")):
        return "hf"
    if dataset_id == "imagenet-val":
        wnids = imagenet_classes().wnid_to_index
        if any(n in wnids for n in names):
            return "imagenet-folder"
        if any(VAL_NAME.match(os.path.splitext(n)[0]) for n in names):
            return "imagenet-flat"
        raise InputError(f"{root}: neither wnid class folders nor ILSVRC2012_val_*.JPEG files found")
    return "imagenetv2-folder"


def open_dataset(dataset_id: str, root: str | os.PathLike, *, layout: str = "auto",
                 labels: str | os.PathLike | None = None, split: str | None = None,
                 **hf_kwargs: str | None) -> ImageSource:
    """The reader for ``dataset_id`` stored at ``root``.

    ``labels``: for ``imagenet-flat`` the devkit or ``LOC_val_solution.csv``;
    for ``class-folder`` the class map (JSON or CSV). ``hf_kwargs`` go to
    :class:`HFImageDataset` (image_column, label_column, id_column, cache_dir).
    """
    root = Path(root)
    if layout not in LAYOUTS:
        raise InputError(f"unknown layout {layout!r}; choose from {', '.join(LAYOUTS)}")
    if layout == "auto":
        layout = detect_layout(dataset_id, root)
    if layout == "imagenet-folder":
        return ImageNetFolder(root)
    if layout == "imagenet-flat":
        return ImageNetValFlat(root, labels)
    if layout == "imagenetv2-folder":
        return ImageNetV2Folder(root)
    if layout == "imagenetv2-tar":
        return ImageNetV2Tar(root)
    if layout == "hf":
        return HFImageDataset(root, split=split, **hf_kwargs)
    if labels is None:
        raise InputError("the class-folder layout needs a class map: --labels FILE (JSON folder->index or CSV folder,label)")
    return ClassFolder(root, read_class_map(labels))


__all__ = [
    "IMG_EXTENSIONS", "LAYOUTS", "ClassFolder", "HFImageDataset", "ImageNetFolder", "ImageNetV2Folder",
    "ImageNetV2Tar", "ImageNetValFlat", "ImageSource", "Sample", "detect_layout", "open_dataset",
    "read_class_map", "read_val_labels",
]
