"""A Hugging Face ``datasets`` copy on local disk: a ``save_to_disk`` folder,
Parquet files (as on the Hub), or an ``imagefolder`` tree loaded through
``datasets``. Needs the ``hf`` extra.

Columns: an image column (``datasets.Image``; read undecoded, as bytes or a
path) and a label column. A ``ClassLabel`` whose names are wnids maps through
the class table; names that are integers (``"0".."999"``, as ``imagefolder``
produces for an ImageNet-v2 tree) map to ``int(name)`` -- never to their
string-sorted position; other names are taken as already in index order (1000
classes). ``image_id`` is the ``id_column`` if given, else the stem of the
stored file path, else the zero-padded row number.
"""
from __future__ import annotations

import os
from pathlib import Path

from replication.classes import N_CLASSES, imagenet_classes
from evaluators.datasets.base import ImageSource, Sample, image_id_of
from evaluators.datasets.imagenetv2 import int_label
from replication.errors import InputError

SAVED_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")


def parquet_files(root: Path) -> list[str]:
    """The ``*.parquet`` files under ``root``, sorted; hidden files and
    folders (temporaries of interrupted writes, caches) are left out."""
    return sorted(str(p) for p in root.rglob("*.parquet")
                  if not any(part.startswith(".") for part in p.relative_to(root).parts))


def _load(root: Path, split: str | None, cache_dir: str | None):
    try:
        import datasets
    except ImportError:
        raise InputError("reading a Hugging Face dataset needs the 'datasets' package: pip install 'replication-bias[hf]'") from None
    try:
        if any((root / m).exists() for m in SAVED_MARKERS):
            ds, kind = datasets.load_from_disk(str(root)), "save_to_disk"
        else:
            parquet = parquet_files(root)
            if parquet:
                ds, kind = datasets.load_dataset("parquet", data_files=parquet, cache_dir=cache_dir), "parquet"
            else:
                ds, kind = datasets.load_dataset("imagefolder", data_dir=str(root), cache_dir=cache_dir), "imagefolder"
    except Exception as exc:  # noqa: BLE001 - datasets and pyarrow raise many types for a damaged copy
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise InputError(f"{root}: not a readable Hugging Face dataset ({type(exc).__name__}: {first})") from None
    if isinstance(ds, datasets.DatasetDict):
        if split is None and len(ds) == 1:
            split = next(iter(ds))
        if split not in ds:
            raise InputError(f"{root}: choose a split with --split: one of {', '.join(ds)}")
        ds = ds[split]
    return ds, kind


def _label_mapper(feature, root: Path):
    names = getattr(feature, "names", None)
    if names is None:
        return lambda v: int(v)
    to_index = imagenet_classes().wnid_to_index
    if all(n in to_index for n in names):
        table = [to_index[n] for n in names]
    elif all(int_label(n) is not None for n in names):
        table = [int_label(n) for n in names]
    elif len(names) == N_CLASSES:
        table = list(range(N_CLASSES))
    else:
        raise InputError(f"{root}: label names are neither wnids, integers 0..999 nor 1000 classes in index order "
                         f"(first: {names[:3]})")
    return lambda v: table[int(v)] if 0 <= int(v) < len(table) else -1


class HFImageDataset(ImageSource):
    """A Hugging Face ``datasets`` copy on local disk, one row per image::

        root/                      save_to_disk       or   Parquet (as on the Hub)
          dataset_info.json                                data/
          state.json                                         <split>-00000-of-NNNNN.parquet
          data-00000-of-NNNNN.arrow                          ...
          ...

    or an ``imagefolder`` tree (``root/<class name>/<image>``) loaded through
    ``datasets``.

    Label rule (``label_column``): ClassLabel names that are wnids map through
    the class table; names ``"0".."999"`` map to ``int(name)``; 1000 other
    names are taken as already in index order; a plain integer column is used
    as is. Rows without a label in 0..999 are listed in ``problems``.
    ``image_id``: ``id_column`` if given, else the stem of the stored image
    path, else the row number zero-padded to 8 digits. ``location`` is the row
    number.

    Parameters
    ----------
    root : str or os.PathLike
        The dataset folder.
    split : str, default=None
        Split of a DatasetDict; may be omitted when there is only one.
    image_column : str, default="image"
        Column of ``datasets.Image`` values (read undecoded).
    label_column : str, default="label"
        Column of class labels.
    id_column : str, default=None
        Column of image ids.
    cache_dir : str, default=None
        ``datasets`` cache for Parquet / imagefolder loads.
    """

    layout = "hf"

    def __init__(self, root: str | os.PathLike, *, split: str | None = None, image_column: str = "image",
                 label_column: str = "label", id_column: str | None = None, cache_dir: str | None = None):
        super().__init__(root)
        if not self.root.is_dir():
            raise InputError(f"{self.root}: dataset folder not found")
        import datasets

        ds, self.kind = _load(self.root, split, cache_dir)
        missing = [c for c in (image_column, label_column, id_column) if c is not None and c not in ds.column_names]
        if missing:
            raise InputError(f"{self.root}: column(s) {', '.join(missing)} not found (have {', '.join(ds.column_names)})")
        to_label = _label_mapper(ds.features[label_column], self.root)
        self.image_column = image_column
        self._ds = ds.cast_column(image_column, datasets.Image(decode=False))
        images = self._ds.select_columns([image_column])[image_column]
        ids = self._ds[id_column] if id_column else None
        samples = []
        for row, (img, raw_label) in enumerate(zip(images, self._ds[label_column])):
            path = (img or {}).get("path")
            image_id = str(ids[row]) if ids is not None else image_id_of(path) if path else f"{row:08d}"
            label = to_label(raw_label) if raw_label is not None else -1
            if not 0 <= label < N_CLASSES:
                self.problems.append(f"row {row} ({image_id}) has no ILSVRC-2012 label ({raw_label!r})")
                continue
            samples.append(Sample(image_id, label, str(row)))
        self._set_samples(samples)

    def read_bytes(self, index: int) -> bytes:
        """Encoded image bytes of row ``samples[index]`` (stored bytes, else
        the file at the stored path); OSError when the row has neither."""
        img = self._ds[int(self.samples[index].location)][self.image_column]
        if img is None:
            raise OSError("row has no image")
        if img.get("bytes") is not None:
            return img["bytes"]
        if img.get("path"):
            return Path(img["path"]).read_bytes()
        raise OSError("image has neither bytes nor a path")

    def describe(self, index: int) -> str:
        """``"row <n>"`` of sample ``index``."""
        return f"row {self.samples[index].location}"
