"""Provenance records of input files: path, size, sha256 and the line of the
folder's PROVENANCE.md that names the source (where such a file exists)."""
from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

_SOURCE_PREFIXES = ("source repo:", "source:")


@functools.lru_cache(maxsize=256)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file (cached on path, size and modification time)."""
    st = Path(path).stat()
    return _sha256(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def provenance_lines(path: str | os.PathLike) -> tuple[str | None, str | None]:
    """``(source, mention)`` from the PROVENANCE.md beside ``path`` (or in a
    parent folder up to two levels up): the first ``Source:``/``Source repo:``
    line and the first line that names the file. Without a PROVENANCE.md,
    the line of a README.md (beside it or one level up) that names the file
    is the mention. ``None`` where absent."""
    p = Path(path)
    for folder in (p.parent, p.parent.parent, p.parent.parent.parent):
        prov = folder / "PROVENANCE.md"
        if prov.is_file():
            lines = _lines(prov)
            source = next((ln for ln in lines if ln.lower().startswith(_SOURCE_PREFIXES)), None)
            mention = next((ln for ln in lines if p.name in ln), None)
            return source, mention
    for folder in (p.parent, p.parent.parent):
        readme = folder / "README.md"
        if readme.is_file():
            mention = next((ln for ln in _lines(readme) if p.name in ln), None)
            if mention is not None:
                return None, mention
    return None, None


def _lines(path: Path) -> list[str]:
    return [ln.strip() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines()]


def file_record(path: str | os.PathLike, root: str | os.PathLike | None = None) -> dict:
    """Provenance of one input file: ``path`` (relative to ``root`` when it is
    below it), ``bytes``, ``sha256``, ``source`` and ``provenance`` lines."""
    p = Path(path)
    shown = str(p)
    if root is not None:
        try:
            shown = str(p.resolve().relative_to(Path(root).resolve()))
        except ValueError:
            shown = str(p)
    source, mention = provenance_lines(p)
    return {"path": shown, "bytes": p.stat().st_size, "sha256": sha256_file(p),
            "source": source, "provenance": mention}
