"""The published tables of the reference folder, so that a copy cut short is
an error rather than a smaller answer.

``data_manifests/published_tables.json`` lists each table of
``../shared/reference`` with its number of data rows, its header (sha256 of the
column names) and the first cell of its first data row. A table whose file
name, header and first cell are a published table's but which has fewer rows
is a cut copy (a download or copy that stopped, ``head -n``) and is refused. A
longer one (a newer release of the same table) passes.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
from importlib import resources
from pathlib import Path

import pandas as pd

from replication.errors import InputError

MANIFEST = "published_tables.json"


@functools.lru_cache(maxsize=1)
def published_tables() -> dict[str, dict]:
    """File name -> the manifest entry of that published table (with its ``path`` in the reference folder)."""
    doc = json.loads(resources.files("data_manifests").joinpath(MANIFEST).read_text())
    return {Path(path).name: {**entry, "path": path} for path, entry in doc["tables"].items()}


def header_sha256(columns) -> str:
    """sha256 of the column names joined by U+001F (the manifest's ``header_sha256``)."""
    return hashlib.sha256("\x1f".join(map(str, columns)).encode()).hexdigest()


def check_not_cut(path: str | os.PathLike, df: pd.DataFrame) -> None:
    """Refuse ``df``, read from ``path``, when it is a published table with rows missing."""
    entry = published_tables().get(Path(path).name)
    if entry is None or len(df) >= entry["rows"] or len(df) == 0:
        return
    if header_sha256(df.columns) == entry["header_sha256"] and str(df.iloc[0, 0]) == entry["first"]:
        raise InputError(f"{path}: {len(df):,} data rows, but the published {entry['path']} has {entry['rows']:,}: "
                         f"the file is cut short (copy or download it again)")
