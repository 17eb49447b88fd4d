"""Class-folder trees: ``root/<class folder>/<image file>``.

::

    root/
      <folder a>/img1.jpeg
      <folder b>/img2.jpeg ...

The folder -> label rule is the override point (:meth:`ClassFolder.label_of`),
as ``find_classes`` is in torchvision's ``DatasetFolder``; the generic reader
takes an explicit map. Folders the rule cannot label, files outside class
folders, non-image files and nested folders are listed in ``problems``.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from replication.classes import N_CLASSES
from evaluators.datasets.base import FileSource, Sample, image_id_of, is_image_name
from replication.errors import InputError


class ClassFolder(FileSource):
    """Generic class-folder tree with an explicit ``class_map`` (folder name ->
    ILSVRC-2012 class index)::

        root/
          <folder a>/  img1.jpeg  img2.png ...
          <folder b>/  ...
          ...

    Label rule: ``class_map[folder]`` (see :func:`read_class_map`); folders not
    in the map are listed in ``problems`` and not read. ``image_id`` is the file
    stem (``<folder>/<stem>`` when ``folder_in_id``); ``location`` is ``"<folder>/<file>"``. Subclasses override
    :meth:`label_of` instead of passing a map.

    Parameters
    ----------
    root : str or os.PathLike
        The folder that holds the class folders.
    class_map : mapping of str to int, default=None
        Folder name -> class index in 0..999. Required unless a subclass
        overrides :meth:`label_of`.

    Raises
    ------
    InputError
        When ``root`` is not a folder.
    """

    layout = "class-folder"
    #: image ids are ``<folder>/<file stem>`` (for releases whose file names repeat across folders)
    folder_in_id = False

    def __init__(self, root: str | os.PathLike, class_map: Mapping[str, int] | None = None):
        super().__init__(root)
        if class_map is None and type(self).label_of is ClassFolder.label_of:  # subclasses bring their own rule
            raise InputError(f"{self.root}: a class-folder tree needs an explicit class map (folder name -> "
                             "class index 0..999; see read_class_map)")
        self.class_map = dict(class_map) if class_map is not None else None
        if not self.root.is_dir():
            raise InputError(f"{self.root}: dataset folder not found")
        self._scan()

    def label_of(self, folder: str) -> int | None:
        """The class index of a class folder, or None when it has none."""
        return self.class_map.get(folder)

    def _scan(self) -> None:
        samples = []
        for entry in sorted(os.scandir(self.root), key=lambda e: e.name):
            if entry.name.startswith("."):
                continue
            if not entry.is_dir():
                self.problems.append(f"file outside class folders: {entry.name}")
                continue
            label = self.label_of(entry.name)
            files = sorted(os.scandir(entry.path), key=lambda e: e.name)
            if label is None:
                n = sum(1 for f in files if is_image_name(f.name))
                self.problems.append(f"extra folder {entry.name}/ is not a class folder of this dataset ({n} images not used)")
                continue
            for f in files:
                rel = f"{entry.name}/{f.name}"
                if f.name.startswith("."):
                    continue
                if f.is_dir():
                    self.problems.append(f"nested folder not read: {rel}/")
                elif not is_image_name(f.name):
                    self.problems.append(f"not an image file: {rel}")
                else:
                    samples.append(Sample(f"{entry.name}/{image_id_of(f.name)}" if self.folder_in_id
                                          else image_id_of(f.name), label, rel))
        self._set_samples(samples)


def read_class_map(path: str | os.PathLike) -> dict[str, int]:
    """Read a class map: JSON ``{"folder": index}`` or a CSV with columns
    ``folder,label``. Indices must be in 0..999."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: class map file not found")
    try:
        if path.suffix.lower() == ".json":
            raw = json.loads(path.read_text())
        else:
            df = pd.read_csv(path, dtype={"folder": str})
    except (ValueError, pd.errors.ParserError) as exc:  # bad JSON, bad CSV, not UTF-8
        raise InputError(f"{path}: not a readable class map ({str(exc).splitlines()[0]})") from None
    if path.suffix.lower() == ".json":
        if not isinstance(raw, dict):
            raise InputError(f"{path}: a class map must be a JSON object folder -> class index")
        mapping = {str(k): v for k, v in raw.items()}
    else:
        if not {"folder", "label"} <= set(df.columns):
            raise InputError(f"{path}: class map CSV needs columns folder,label")
        mapping = dict(zip(df["folder"], df["label"]))
    bad = [k for k, v in mapping.items() if not str(v).isdigit() or not 0 <= int(v) < N_CLASSES]
    if bad:
        raise InputError(f"{path}: class index not in 0..{N_CLASSES - 1} for folder(s) {', '.join(bad[:5])}")
    return {k: int(v) for k, v in mapping.items()}
