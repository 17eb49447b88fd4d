"""What every vote importer shares: the result object, the pickle policy,
and column checks that name the file and rows."""
from __future__ import annotations

import logging
import os
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from replication.errors import InputError
from replication.io.tables import _fail, name_list, read_table

log = logging.getLogger(__name__)

#: extensions of pickled files (``torch.save`` writes zip archives of pickles)
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle")
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_MAGIC = b"\x80"


@dataclass(frozen=True)
class Dropped:
    """Something an importer left out: how many of what, and why."""

    count: int
    what: str
    reason: str

    def __str__(self) -> str:
        return f"{self.count:,} {self.what}: {self.reason}"


@dataclass(frozen=True)
class ImportedVotes:
    """One source's votes as contract tables.

    annotations : DataFrame ``dataset, image_id, n_annotators, n_selected[, class_id]``,
        one row per image, sorted by dataset and image id
    correctness : DataFrame ``dataset, image_id[, label]`` and one 0/1 column per model, or None
    dropped : what was left out, and why
    notes : what a user should know about the source (how it was sampled, what k counts)
    """

    source: str
    path: Path
    annotations: pd.DataFrame
    correctness: pd.DataFrame | None = None
    dropped: tuple[Dropped, ...] = ()
    notes: tuple[str, ...] = field(default=())

    def summary_lines(self) -> list[str]:
        """What was imported, per dataset, what was dropped and the notes."""
        ann = self.annotations
        per_set = ", ".join(f"{ds} {count:,}" for ds, count in ann.groupby("dataset").size().items())
        n = ann["n_annotators"]
        lines = [f"{self.source}: {len(ann):,} images ({per_set}); annotators per image {n.min()}-{n.max()} "
                 f"(mean {n.mean():.2f}); mean selection frequency {(ann['n_selected'] / n).mean():.3f}"]
        if self.correctness is not None:
            models = [c for c in self.correctness.columns if c not in ("dataset", "image_id", "label")]
            lines.append(f"{self.source}: correctness of {len(models)} model(s): {name_list(models, 8)}")
        lines += [f"dropped {d}" for d in self.dropped] or ["dropped nothing"]
        lines += [f"note: {n}" for n in self.notes]
        return lines


def report_drops(source: str, dropped: list[Dropped]) -> tuple[Dropped, ...]:
    """Log each drop (one line each) and return them as a tuple."""
    for d in dropped:
        log.info("%s: dropped %s", source, d)
    return tuple(dropped)


def is_pickle(path: Path) -> bool:
    """Whether ``path`` is a pickle or a ``torch.save`` archive (by extension or first bytes)."""
    if path.suffix.lower() in PICKLE_SUFFIXES:
        return True
    with open(path, "rb") as fh:
        head = fh.read(4)
    return head.startswith(_PICKLE_MAGIC) or (head == _ZIP_MAGIC and _is_torch_zip(path))


def _is_torch_zip(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as zf:
            return any(name.endswith("data.pkl") for name in zf.namelist())
    except zipfile.BadZipFile:
        return False


def load_pickled_frame(path: Path, trust_pickle: bool) -> pd.DataFrame:
    """The DataFrame in a pickle or ``torch.save`` file; refused unless
    ``trust_pickle``, because loading a pickle runs whatever code it names."""
    if not trust_pickle:
        raise InputError(f"{path}: a pickle (torch.save/pandas) file; loading one runs arbitrary code from it, so it "
                         "is refused unless you pass --trust-pickle (or give the same table as Parquet/CSV)")
    try:
        if zipfile.is_zipfile(path):
            import torch  # a torch.save archive; a DataFrame is no tensor, hence weights_only=False

            obj = torch.load(path, map_location="cpu", weights_only=False)
        else:
            obj = pd.read_pickle(path)
    except (pickle.UnpicklingError, EOFError, RuntimeError, ValueError, AttributeError, ImportError,
            zipfile.BadZipFile, OSError) as exc:
        if isinstance(exc, ModuleNotFoundError) and exc.name and exc.name.split(".")[0] == "torch":
            raise
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(f"{path}: cannot unpickle ({type(exc).__name__}: {first}); truncated or not a "
                         "pickled DataFrame?") from None
    if not isinstance(obj, pd.DataFrame):
        raise InputError(f"{path}: holds a {type(obj).__name__}, not a pandas DataFrame")
    return obj


def read_frame(path: str | os.PathLike, trust_pickle: bool) -> tuple[Path, pd.DataFrame]:
    """``(path, table)`` from a pickle (see :func:`load_pickled_frame`) or a CSV/Parquet file."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    if is_pickle(p):
        return p, load_pickled_frame(p, trust_pickle)
    return p, read_table(p)


def file_stems(names: pd.Series) -> pd.Series:
    """File name without folders and extension (``a/b/ILSVRC2012_val_00000001.JPEG`` ->
    ``ILSVRC2012_val_00000001``; URLs too), as strings."""
    base = names.astype(str).str.rsplit("/", n=1).str[-1].str.rsplit("\\", n=1).str[-1]
    return base.str.replace(r"\.[^.]*$", "", regex=True)


def binary_column(path, df: pd.DataFrame, col: str) -> np.ndarray:
    """``df[col]`` as int8 0/1: booleans, 0/1 numbers or the strings True/False;
    anything else (blank included) fails naming the rows."""
    s = df[col]
    if pd.api.types.is_bool_dtype(s):
        return s.to_numpy(np.int8)
    words = {"true": 1.0, "false": 0.0}
    text = s.astype(str).str.strip().str.lower()
    values = pd.to_numeric(s.where(~text.isin(list(words)), text.map(words)), errors="coerce").to_numpy(float)
    _fail(path, ~np.isin(values, (0.0, 1.0)), f"{col} is not 0/1 or True/False", None)
    return values.astype(np.int8)


def integer_column(path, df: pd.DataFrame, col: str, low: int = 0) -> np.ndarray:
    """``df[col]`` as int64 >= ``low``, failing on blanks and non-integers, naming the rows."""
    raw = pd.to_numeric(df[col], errors="coerce").to_numpy(float)
    _fail(path, ~np.isfinite(raw) | (raw != np.round(raw)) | (raw < low), f"{col} is not an integer >= {low}", None)
    return raw.astype(np.int64)


def check_constant(path, values: np.ndarray, codes: np.ndarray, first: np.ndarray, what: str,
                   keys: np.ndarray) -> None:
    """Fail when ``values`` (one per row) differ between the rows of one image.
    ``codes`` maps rows to images and ``first`` gives each image's first row."""
    ref = values[first][codes]
    differ = ~((ref == values) | (pd.isna(ref) & pd.isna(values)))
    if differ.any():
        image = keys[np.flatnonzero(differ)[0]]
        _fail(path, differ, f"{what} differs between the rows of one image ({image!r}); it must be constant per image")


def first_rows(codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Index of the first row of each group (codes 0..n_groups-1, all present)."""
    first = np.empty(n_groups, np.int64)
    first[codes[::-1]] = np.arange(len(codes) - 1, -1, -1)
    return first


def wnid_class_ids(path, wnids: pd.Series) -> np.ndarray:
    """ILSVRC-2012 class indices (0..999) of wnids; an unknown wnid fails naming the rows."""
    from replication.classes import imagenet_classes  # torch-free: the shipped class table

    to_index = imagenet_classes().wnid_to_index
    mapped = wnids.astype(str).map(to_index)
    bad = mapped.isna().to_numpy()
    if bad.any():
        _fail(path, bad, f"wnid {wnids[bad].iloc[0]!r} is not an ILSVRC-2012 class", None)
    return mapped.to_numpy(np.int64)


def annotation_table(dataset, image_id, n, k, class_id=None) -> pd.DataFrame:
    """The contract annotations table, sorted by dataset and image id."""
    cols = {"dataset": dataset, "image_id": image_id, "n_annotators": np.asarray(n, np.int64),
            "n_selected": np.asarray(k, np.int64)}
    if class_id is not None:
        cols["class_id"] = np.asarray(class_id, np.int64)
    return pd.DataFrame(cols).sort_values(["dataset", "image_id"], kind="stable").reset_index(drop=True)


def check_unique_images(path, ann: pd.DataFrame, what: str) -> None:
    """Fail when two images of one dataset share an image id (e.g. one file name in two folders)."""
    dup = ann.duplicated(["dataset", "image_id"], keep=False).to_numpy()
    if dup.any():
        ids = name_list(sorted(set(ann.loc[dup, "image_id"])), 3)
        raise InputError(f"{path}: {dup.sum()} {what} share an image id within their dataset "
                         f"(image ids are file names without extension): {ids}")
