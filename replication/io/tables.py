"""Loading and validating the contract input tables.

Annotations: ``dataset, image_id, n_annotators, n_selected[, class_id]``.
Correctness matrix: ``dataset, image_id[, label]`` then one 0/1 column per model.
Accuracy table: ``model`` (unique) plus one column per dataset id (percent).

Every check raises :class:`~replication.errors.InputError` with one line that
names the file and the first offending rows (1-based data rows; in a CSV file,
data row r is line r + 1).
"""
from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from replication.errors import InputError
from replication.io.published import check_not_cut

DATASET_IDS = (
    "imagenet-val",
    "imagenetv2-matched-frequency",
    "imagenetv2-threshold0.7",
    "imagenetv2-top-images",
    "imagenet-a",
    "imagenet-r",
    "imagenet-sketch",
    "objectnet",
    "imagenet-real",
)
ANNOTATION_COLUMNS = ("dataset", "image_id", "n_annotators", "n_selected")
CORRECTNESS_KEYS = ("dataset", "image_id")
CORRECTNESS_META = ("dataset", "image_id", "label", "class_id")
#: labels and class ids are ILSVRC-2012 class indices 0..999
N_CLASSES = 1000
#: the largest count (annotators, selections) a table may hold
MAX_COUNT = 2**31 - 1
_MAX_LISTED = 5


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a CSV or Parquet file, chosen by extension; ``image_id``,
    ``dataset`` and ``model`` are always read as strings.

    Refused with :class:`InputError`: a folder or an empty file, a file that
    cannot be parsed, repeated column names (pandas would rename them
    ``x.1``), a CSV whose last line stops short of the header's fields, and a
    published reference table with rows missing (see
    :mod:`replication.io.published`).
    """
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{p}: is a folder, not a table file")
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    if p.stat().st_size == 0:
        raise InputError(f"{p}: the file is empty")
    parquet = p.suffix.lower() in {".parquet", ".pq"}
    try:
        header = [str(c) for c in pq.read_schema(p).names] if parquet else _csv_header(p)
        repeated = sorted({c for c in header if header.count(c) > 1})
        if repeated:
            raise InputError(f"{p}: column name(s) {name_list(repeated)} appear more than once in the header; "
                             f"each column needs its own name")
        df = pd.read_parquet(p) if parquet else pd.read_csv(p, dtype={"image_id": str, "dataset": str, "model": str})
    except InputError:
        raise
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{p}: cannot read table: {first}") from None
    if not parquet:
        _check_last_line(p, len(header))
    for col in ("dataset", "image_id", "model"):
        if col in df.columns and df[col].dtype != object:
            df[col] = df[col].astype(str)
    check_not_cut(p, df)
    return df


def _csv_header(path: Path) -> list[str]:
    """The column names of a CSV file's first line, as written (no renaming)."""
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
        return next(csv.reader(f), [])


def _check_last_line(path: Path, n_fields: int) -> None:
    """A CSV file that does not end with a line break and whose last line has
    fewer fields than the header was cut in the middle of a line."""
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - 65536))
        tail = f.read()
    if tail.endswith((b"\n", b"\r")):
        return
    last = tail.rsplit(b"\n", 1)[-1].decode("utf-8", errors="replace")
    fields = next(csv.reader([last]), [])
    if 0 < len(fields) < n_fields:
        raise InputError(f"{path}: the last line has {len(fields)} of the header's {n_fields} fields and no line "
                         f"break: the file is cut short (copy or download it again)")


def _rows(mask: np.ndarray) -> str:
    idx = np.flatnonzero(np.asarray(mask)) + 1
    shown = ", ".join(str(i) for i in idx[:_MAX_LISTED])
    more = f" (+{len(idx) - _MAX_LISTED} more)" if len(idx) > _MAX_LISTED else ""
    word = "row" if len(idx) == 1 else "rows"
    return f"{word} {shown}{more}"


def _fail(path: str | os.PathLike, mask: np.ndarray, what: str, df: pd.DataFrame | None = None) -> None:
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return
    ids = ""
    if df is not None and "image_id" in df.columns:
        first = df.loc[mask, "image_id"].astype(str).head(3).tolist()
        ids = f" (image_id {', '.join(first)})"
    raise InputError(f"{path}: {_rows(mask)}{ids}: {what}")


def name_list(names: Iterable[object], limit: int = 10) -> str:
    """``a, b, c`` -- the first ``limit`` names, then ``(+N more)``."""
    names = [str(n) for n in names]
    more = f" (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def require_columns(path: str | os.PathLike, df: pd.DataFrame, cols: Iterable[str], what: str = "column(s)") -> None:
    """Fail with one line naming the missing ``cols`` and (some of) the columns present."""
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing {what} {name_list(missing)} (not found; the table has {name_list(df.columns)})")


def require_unique(path: str | os.PathLike, df: pd.DataFrame, col: str = "model") -> None:
    """Fail with one line naming the rows and ids when ``col`` repeats a value
    (an id listed twice makes every per-id answer ambiguous)."""
    if col not in df.columns:
        return
    dup = df[col].duplicated(keep="first").to_numpy()
    if dup.any():
        first = df[col].iloc[int(np.flatnonzero(dup)[0])]
        earlier = int(np.flatnonzero((df[col] == first).to_numpy())[0]) + 1
        raise InputError(f"{path}: {_rows(dup)}: duplicate {col} {first!r} (first at row {earlier}"
                         f"{'' if dup.sum() == 1 else '; and others'}); each {col} must appear once")


#: in a column of percentages, values at most this could be fractions
_FRACTION_MAX = 1.0
#: ... and are taken for fractions when every other row's values are at least this (a gap from 1 to 5)
_GAP = 5.0


def fraction_problem(values: np.ndarray, columns: list[str]) -> tuple[np.ndarray | None, str] | None:
    """Accuracies or errors given as fractions where percent is due.

    ``values`` (n, c): numbers already in 0..100 (NaN ignored) of the columns
    named ``columns``. Returns ``(rows, message)`` -- ``rows`` a mask of the
    offending rows, or None when whole columns are at fault -- or None. Rules:

    1. a column whose values all lie in [0, 1] (not all 0) holds fractions;
    2. rows whose values all lie in [0, 1] (not all 0) are in another unit
       when every value of the other rows is at least 5: a gap between 1 and
       5 percent that no real table has. Real accuracies below 1% (models
       trained for an epoch or none, near chance at 0.1%; weak models on
       ImageNet-A) come with others of a few percent, and pass.
    """
    v = np.asarray(values, dtype=float).reshape(len(values), -1)
    finite = np.isfinite(v)
    small = ~finite | (v <= _FRACTION_MAX)
    positive = finite & (v > 0)
    whole = small.all(axis=0) & positive.any(axis=0)
    if whole.any():
        cols = [c for c, w in zip(columns, whole) if w]
        return None, (f"{', '.join(cols)} look{'s' if len(cols) == 1 else ''} like fractions (every value is "
                      f"between 0 and 1), but accuracies and errors here are in percent: multiply by 100")
    rows = small.all(axis=1) & positive.any(axis=1)
    others = v[~rows][finite[~rows]]
    if not rows.any() or others.size == 0 or others.min() < _GAP:
        return None
    return rows, (f"{', '.join(columns)} at most 1 where every other row has at least {others.min():g}: "
                  f"these rows look like fractions among percentages; multiply them by 100")


def _integer_column(path, df: pd.DataFrame, col: str) -> np.ndarray:
    """Return ``df[col]`` as int64, failing on NaN or non-integer values."""
    raw = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
    _fail(path, np.isnan(raw), f"{col} is missing or not a number", df)
    _fail(path, raw != np.round(raw), f"{col} is not an integer", df)
    _fail(path, np.abs(raw) > MAX_COUNT, f"{col} is too large (more than {MAX_COUNT:,})", df)
    return raw.astype(np.int64)


def _class_column(path, df: pd.DataFrame, col: str) -> np.ndarray:
    """``df[col]`` as int64 class indices 0..999 (ILSVRC-2012), failing otherwise."""
    values = _integer_column(path, df, col)
    _fail(path, (values < 0) | (values >= N_CLASSES), f"{col} is outside 0..{N_CLASSES - 1} (ILSVRC-2012 class indices)",
          df)
    return values


def _check_keys(path, df: pd.DataFrame) -> None:
    for col in CORRECTNESS_KEYS:
        bad = df[col].isna().to_numpy() | (df[col].astype(str).str.strip() == "").to_numpy()
        _fail(path, bad, f"{col} is empty")
    dup = df.duplicated(subset=list(CORRECTNESS_KEYS), keep="first").to_numpy()
    _fail(path, dup, "duplicate image_id within its dataset", df)


def check_dataset_ids(df: pd.DataFrame, path: str | os.PathLike, known: tuple[str, ...] = DATASET_IDS) -> None:
    """Fail on rows whose ``dataset`` is not one of ``known`` (the contract ids)."""
    bad = ~df["dataset"].isin(known).to_numpy()
    if bad.any():
        first = df.loc[bad, "dataset"].astype(str).iloc[0]
        _fail(path, bad, f"unknown dataset {first!r} (known: {', '.join(known)})", df)


def validate_annotations(df: pd.DataFrame, path: str | os.PathLike = "<annotations>") -> pd.DataFrame:
    """Check an annotation table and return a clean copy with int64 counts."""
    require_columns(path, df, ANNOTATION_COLUMNS)
    if len(df) == 0:
        raise InputError(f"{path}: the annotation table has no rows")
    out = df.copy()
    _check_keys(path, out)
    n = _integer_column(path, out, "n_annotators")
    k = _integer_column(path, out, "n_selected")
    _fail(path, n < 1, "n_annotators < 1", out)
    _fail(path, k < 0, "n_selected < 0", out)
    _fail(path, k > n, "n_selected > n_annotators", out)
    out["n_annotators"], out["n_selected"] = n, k
    if "class_id" in out.columns:
        out["class_id"] = _class_column(path, out, "class_id")
    return out.reset_index(drop=True)


def load_annotations(path: str | os.PathLike) -> pd.DataFrame:
    """Read and validate an annotation table (CSV or Parquet)."""
    return validate_annotations(read_table(path), path)


def model_columns(df: pd.DataFrame) -> list[str]:
    """The model columns of a correctness matrix (everything but the keys)."""
    return [c for c in df.columns if c not in CORRECTNESS_META]


def select_models(df: pd.DataFrame, models: Iterable[str] | None, path: str | os.PathLike) -> list[str]:
    """``models`` (default: every model column of the correctness matrix ``df``),
    each checked to be a model column of ``df`` read from ``path``."""
    present = model_columns(df)
    if models is None:
        return present
    models = list(models)
    unknown = [m for m in models if m not in present]
    if unknown:
        raise InputError(f"{path}: unknown model(s) {name_list(unknown)}")
    return models


def validate_correctness(df: pd.DataFrame, path: str | os.PathLike = "<correctness>") -> pd.DataFrame:
    """Check a correctness matrix and return a copy with int8 0/1 model columns."""
    require_columns(path, df, CORRECTNESS_KEYS)
    if len(df) == 0:
        raise InputError(f"{path}: the correctness matrix has no rows")
    models = model_columns(df)
    if not models:
        raise InputError(f"{path}: no model columns (expected one 0/1 column per model after dataset, image_id, label)")
    meta = df[[c for c in df.columns if c not in models]].reset_index(drop=True)
    _check_keys(path, meta)
    values = _zero_one(df[models])
    if np.issubdtype(values.dtype, np.integer) and values.min() >= 0 and values.max() <= 1:
        bad = None                                  # the usual case, checked without a mask of the whole matrix
    else:
        bad = ~((values == 0) | (values == 1))      # NaN (blank, text) fails both
    if bad is not None and bad.any():
        col = models[int(np.flatnonzero(bad.any(axis=0))[0])]
        _fail(path, bad.any(axis=1), f"model column {col!r} (and maybe others) is not 0/1", meta)
    if "label" in meta.columns:
        meta["label"] = _class_column(path, meta, "label")
    # one constructor for the model columns (thousands of them): no column-by-column inserts
    return pd.concat([meta, pd.DataFrame(values.astype(np.int8, copy=False), columns=models)], axis=1)


def _zero_one(frame: pd.DataFrame) -> np.ndarray:
    """The model columns as one array (n, m): as stored when every column is
    numeric (int8 from Parquet stays int8, no float copy of the matrix),
    else as floats with NaN where a cell is blank or not a number."""
    if all(pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_complex_dtype(t) for t in frame.dtypes):
        return frame.to_numpy()
    return frame.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)


def load_correctness(path: str | os.PathLike) -> pd.DataFrame:
    """Read and validate a correctness matrix (CSV or Parquet)."""
    return validate_correctness(read_table(path), path)


def validate_accuracy_table(df: pd.DataFrame, path: str | os.PathLike = "<accuracy table>",
                            columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """Check an accuracy table: unique ``model`` ids and, for each column in
    ``columns``, numeric percentages in [0, 100] (NaN is reported)."""
    require_columns(path, df, ("model", *columns))
    if len(df) == 0:
        raise InputError(f"{path}: the accuracy table has no rows")
    out = df.copy()
    _fail(path, out["model"].isna().to_numpy(), "model is empty")
    require_unique(path, out, "model")
    for col in columns:
        vals = pd.to_numeric(out[col], errors="coerce").to_numpy(dtype=float)
        _fail(path, np.isnan(vals), f"{col} is missing or not a number")
        _fail(path, (vals < 0) | (vals > 100), f"{col} is outside 0..100 (accuracies are in percent)")
        out[col] = vals
    check_percent(path, out[list(columns)].to_numpy(dtype=float), list(columns))
    return out.reset_index(drop=True)


def check_percent(path: str | os.PathLike, values: np.ndarray, columns: list[str],
                  where: Callable[[np.ndarray], str] = _rows) -> None:
    """Fail with one line when :func:`fraction_problem` finds fractions among
    ``values`` (n, c) of the percent ``columns``; ``where`` describes a row
    mask (default: 1-based data rows)."""
    problem = fraction_problem(values, columns)
    if problem is not None:
        rows, what = problem
        raise InputError(f"{path}: {what}" if rows is None else f"{path}: {where(rows)}: {what}")


def load_accuracy_table(path: str | os.PathLike, columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """Read and validate an accuracy table (CSV or Parquet)."""
    return validate_accuracy_table(read_table(path), path, columns)
