"""ImageNet val as released: one flat folder of ``ILSVRC2012_val_*.JPEG`` plus
a label file::

    root/
      ILSVRC2012_val_00000001.JPEG
      ...
      ILSVRC2012_val_00050000.JPEG

Labels come from either

* the devkit (``ILSVRC2012_devkit_t12/`` or ``ILSVRC2012_devkit_t12.tar.gz``):
  ``data/ILSVRC2012_validation_ground_truth.txt`` holds one ILSVRC2012_ID
  (1..1000) per image, in image-number order. These ids are NOT class indices
  in sorted-wnid order: they are mapped to wnids through ``data/meta.mat``
  (the leaf synsets), then to indices; or
* Kaggle's ``LOC_val_solution.csv`` (``ImageId,PredictionString``; the first
  token of PredictionString is the wnid).

When no label file is given, ``root`` and its parent are searched for one.
"""
from __future__ import annotations

import io
import os
import re
import tarfile
from pathlib import Path

from evaluators.datasets.base import FileSource, Sample, image_id_of, is_image_name
from replication.classes import imagenet_classes
from replication.errors import InputError
from replication.io.tables import read_table

VAL_NAME = re.compile(r"^ILSVRC2012_val_(\d{8})$")
LABEL_FILES = ("LOC_val_solution.csv", "ILSVRC2012_devkit_t12.tar.gz", "ILSVRC2012_devkit_t12")
GROUND_TRUTH = "data/ILSVRC2012_validation_ground_truth.txt"
META = "data/meta.mat"


def _devkit_files(path: Path) -> tuple[bytes, bytes]:
    """(meta.mat bytes, ground-truth txt bytes) from a devkit folder or tar.gz."""
    if path.is_dir():
        try:
            return (path / META).read_bytes(), (path / GROUND_TRUTH).read_bytes()
        except FileNotFoundError as exc:
            raise InputError(f"{path}: devkit folder lacks {Path(exc.filename).relative_to(path)}") from None
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:*") as tf:
            for m in tf:
                for want in (META, GROUND_TRUTH):
                    if m.isreg() and m.name.endswith(want):
                        found[want] = tf.extractfile(m).read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise InputError(f"{path}: unreadable devkit archive ({exc})") from None
    missing = [w for w in (META, GROUND_TRUTH) if w not in found]
    if missing:
        raise InputError(f"{path}: devkit archive lacks {', '.join(missing)}")
    return found[META], found[GROUND_TRUTH]


def devkit_labels(path: str | os.PathLike) -> dict[str, int]:
    """image id -> class index from an ILSVRC-2012 devkit (folder or tar.gz)."""
    from scipy.io import loadmat

    path = Path(path)
    meta_bytes, gt_bytes = _devkit_files(path)
    try:
        synsets = loadmat(io.BytesIO(meta_bytes), squeeze_me=True)["synsets"]
        leaves = synsets[synsets["num_children"] == 0]
    except Exception as exc:  # noqa: BLE001 - scipy raises several types for a file that is not meta.mat
        raise InputError(f"{path}: {META} is not the devkit's synset table ({type(exc).__name__}: {exc})") from None
    to_index = imagenet_classes().wnid_to_index
    try:
        id_to_label = {int(i): to_index[str(w)] for i, w in zip(leaves["ILSVRC2012_ID"], leaves["WNID"])}
    except KeyError as exc:
        raise InputError(f"{path}: meta.mat names a wnid that is not an ILSVRC-2012 class: {exc}") from None
    labels = {}
    for line_no, line in enumerate(gt_bytes.decode("utf-8", "replace").split(), start=1):
        if not line.isdigit() or int(line) not in id_to_label:
            raise InputError(f"{path}: {GROUND_TRUTH} line {line_no}: {line[:20]!r} is not an ILSVRC2012_ID of meta.mat")
        labels[f"ILSVRC2012_val_{line_no:08d}"] = id_to_label[int(line)]
    return labels


def loc_solution_labels(path: str | os.PathLike) -> dict[str, int]:
    """image id -> class index from Kaggle's ``LOC_val_solution.csv``."""
    df = read_table(path)
    if not {"ImageId", "PredictionString"} <= set(df.columns):
        raise InputError(f"{path}: expected columns ImageId,PredictionString")
    to_index = imagenet_classes().wnid_to_index
    wnids = df["PredictionString"].astype(str).str.split().str[0]
    unknown = ~wnids.isin(list(to_index))
    if unknown.any():
        row = int(unknown.to_numpy().argmax())
        raise InputError(f"{path}: row {row + 2}: {wnids.iloc[row]!r} is not an ILSVRC-2012 wnid")
    return dict(zip(df["ImageId"].astype(str), wnids.map(to_index).astype(int)))


def read_val_labels(path: str | os.PathLike) -> dict[str, int]:
    """Labels from a devkit (folder/tar.gz) or ``LOC_val_solution.csv``."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: label file not found")
    if path.suffix.lower() == ".csv":
        return loc_solution_labels(path)
    return devkit_labels(path)


def find_label_file(root: Path) -> Path:
    """The first of :data:`LABEL_FILES` found in ``root``, then in its parent;
    InputError naming where to put one when there is none."""
    for folder in (root, root.parent):
        for name in LABEL_FILES:
            if (folder / name).exists():
                return folder / name
    raise InputError(
        f"{root}: flat ImageNet val needs labels: put LOC_val_solution.csv or "
        f"ILSVRC2012_devkit_t12.tar.gz (md5 fa75699e90414af021442c21a62c3abf) in {root} or {root.parent}, "
        "or pass --labels PATH"
    )


class ImageNetValFlat(FileSource):
    """ImageNet val as released: one flat folder plus a label file::

        root/
          ILSVRC2012_val_00000001.JPEG
          ILSVRC2012_val_00000002.JPEG
          ...
          ILSVRC2012_val_00050000.JPEG
          LOC_val_solution.csv         (or ILSVRC2012_devkit_t12[.tar.gz],
                                        here or in root's parent)

    Label rule: ``label_map[file stem]`` from the label file (see
    :func:`read_val_labels`; devkit ILSVRC2012_IDs are mapped through
    ``meta.mat`` to sorted-wnid indices). Images without a label are listed in
    ``problems``; labelled ids without a file are :meth:`missing_ids`.

    Parameters
    ----------
    root : str or os.PathLike
        The flat image folder.
    labels : str or os.PathLike, default=None
        Devkit folder/tar.gz or ``LOC_val_solution.csv``; when None it is
        searched for with :func:`find_label_file`.
    """

    layout = "imagenet-flat"

    def __init__(self, root: str | os.PathLike, labels: str | os.PathLike | None = None):
        super().__init__(root)
        if not self.root.is_dir():
            raise InputError(f"{self.root}: dataset folder not found")
        self.label_file = Path(labels) if labels is not None else find_label_file(self.root)
        self.label_map = read_val_labels(self.label_file)
        samples = []
        for entry in sorted(os.scandir(self.root), key=lambda e: e.name):
            if entry.name.startswith(".") or entry.is_dir() or entry.name in LABEL_FILES:
                continue
            image_id = image_id_of(entry.name)
            if not is_image_name(entry.name):
                self.problems.append(f"not an image file: {entry.name}")
            elif image_id not in self.label_map:
                self.problems.append(f"image without a label in {self.label_file.name}: {entry.name}")
            else:
                samples.append(Sample(image_id, self.label_map[image_id], entry.name))
        self._set_samples(samples)

    def missing_ids(self) -> list[str]:
        """Labelled image ids that have no file."""
        present = {s.image_id for s in self.samples}
        return sorted(set(self.label_map) - present)
