"""Dataset readers, one class per on-disk layout, and :func:`open_dataset`,
which picks the reader for a dataset id and a path."""
from __future__ import annotations

import os
from pathlib import Path

from replication.classes import imagenet_classes
from evaluators.datasets.base import IMG_EXTENSIONS, ImageSource, Sample
from evaluators.datasets.class_folder import ClassFolder, read_class_map
from evaluators.datasets.hf import SAVED_MARKERS, HFImageDataset, parquet_files
from evaluators.datasets.imagenet_flat import VAL_NAME, ImageNetValFlat, read_val_labels
from evaluators.datasets.imagenet_folder import ImageNetFolder
from evaluators.datasets.imagenet_shift import ImageNetShiftFolder
from evaluators.datasets.imagenetv2 import ImageNetV2Folder, ImageNetV2Tar
from evaluators.datasets.objectnet import ObjectNetFolder
from evaluators.datasets.real import ImageNetReal
from replication.errors import InputError
from replication.io.tables import DATASET_IDS

LAYOUTS = ("auto", "imagenet-folder", "imagenet-flat", "imagenetv2-folder", "imagenetv2-tar", "hf", "class-folder",
           "imagenet-shift-folder", "objectnet")
#: datasets whose images are ImageNet val's (read with the val layouts)
VAL_IMAGES = ("imagenet-val", "imagenet-real")
#: natural-shift releases stored as wnid class folders
SHIFT_FOLDERS = ("imagenet-a", "imagenet-r", "imagenet-sketch")
#: layouts that read their labels from a separate file (``labels``)
LABEL_FILE_LAYOUTS = ("imagenet-flat", "class-folder")


def detect_layout(dataset_id: str, root: Path) -> str:
    """Guess the layout of ``root`` for ``dataset_id`` (see :data:`LAYOUTS`)."""
    if root.is_file():
        if root.name.endswith((".tar.gz", ".tgz", ".tar")):
            return "imagenetv2-tar"
        raise InputError(f"{root}: a file that is not a .tar.gz/.tar archive; give the dataset folder")
    if not root.is_dir():
        raise InputError(f"{root}: dataset path not found")
    names = [p.name for p in root.iterdir()]
    if any(n in SAVED_MARKERS for n in names) or parquet_files(root):
        return "hf"
    if dataset_id == "objectnet":
        return "objectnet"
    if dataset_id in SHIFT_FOLDERS:
        return "imagenet-shift-folder"
    if dataset_id in VAL_IMAGES:
        wnids = imagenet_classes().wnid_to_index
        if any(n in wnids for n in names):
            return "imagenet-folder"
        if any(VAL_NAME.match(os.path.splitext(n)[0]) for n in names):
            return "imagenet-flat"
        raise InputError(f"{root}: neither wnid class folders nor ILSVRC2012_val_*.JPEG files found")
    return "imagenetv2-folder"


def release_root(root: Path, folder_name: str | None) -> Path:
    """``root``, or the release folder ``folder_name`` inside it
    (``imagenet-a``, ``sketch``, ``objectnet-1.0``, ...) when ``root`` holds
    that folder and neither wnid class folders nor ``images/`` of its own."""
    if not folder_name or not (root / folder_name).is_dir() or (root / "images").is_dir():
        return root
    wnids = imagenet_classes().wnid_to_index
    return root if any(p.name in wnids for p in root.iterdir()) else root / folder_name


def open_dataset(dataset_id: str, root: str | os.PathLike, *, layout: str = "auto",
                 labels: str | os.PathLike | None = None, split: str | None = None,
                 real_labels: str | os.PathLike | None = None, **hf_kwargs: str | None) -> ImageSource:
    """The reader for ``dataset_id`` stored at ``root``.

    ``labels``: for ``imagenet-flat`` the devkit or ``LOC_val_solution.csv``;
    for ``class-folder`` the class map (JSON or CSV). ``real_labels``: ReaL's
    ``real.json`` for ``imagenet-real`` (default: found beside the val copy).
    ``hf_kwargs`` go to :class:`HFImageDataset` (image_column, label_column,
    id_column, cache_dir). A dataset scored on a class subset (its manifest's
    ``classes``) gets it as ``class_subset`` whatever the layout; an id that
    is not a dataset id has no manifest (a plain copy, e.g. an annotation pool).
    """
    from evaluators.manifests import load_manifest  # (evaluators.manifests imports this package)

    if layout not in LAYOUTS:
        raise InputError(f"unknown layout {layout!r}; choose from {', '.join(LAYOUTS)}")
    manifest = load_manifest(dataset_id) if dataset_id in DATASET_IDS else {}  # other ids: a plain copy (annotate)
    root = release_root(Path(root), manifest.get("folder_name"))
    if layout == "auto":
        layout = detect_layout(dataset_id, root)
    if labels is not None and layout not in LABEL_FILE_LAYOUTS:
        raise InputError(f"--labels {labels}: the {layout} layout has its labels in the copy itself; a label file "
                         f"applies to {' and '.join(LABEL_FILE_LAYOUTS)}")
    source = _open_layout(root, layout, labels, split, hf_kwargs, manifest.get("classes"))
    if dataset_id == "imagenet-real":
        return ImageNetReal(source, real_labels)
    if manifest.get("classes") is not None and source.class_subset is None:
        source.class_subset = tuple(manifest["classes"])
    return source


def _open_layout(root: Path, layout: str, labels: str | os.PathLike | None, split: str | None, hf_kwargs: dict,
                 classes: list[int] | None) -> ImageSource:
    if layout == "imagenet-shift-folder":
        return ImageNetShiftFolder(root, classes)
    if layout == "objectnet":
        return ObjectNetFolder(root)
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
    "read_class_map", "read_val_labels", "ImageNetShiftFolder", "ObjectNetFolder", "ImageNetReal",
]
