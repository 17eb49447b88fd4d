"""Atomic file writing: write to a temporary file beside the target, then
``os.replace`` it, so no reader ever sees a half-written file."""
from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from replication.errors import InputError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_writable(path: str | os.PathLike) -> Path:
    """Fail early, with :class:`InputError`, when ``path`` cannot become a file:
    it is a folder, or a file stands where one of its folders should be."""
    target = Path(path)
    blocking = next((q for q in [target.parent, *target.parent.parents] if q.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise InputError(f"cannot write {target}: {blocking} is a file, not a folder")
    if target.is_dir():
        raise InputError(f"cannot write {target}: it is a folder")
    if blocking is not None and not os.access(blocking, os.W_OK | os.X_OK):
        raise InputError(f"cannot write {target}: no permission to write in {blocking}")
    return target


def _temp_beside(target: Path, suffix: str) -> Path:
    """Create an empty temporary file in ``target``'s folder (made if needed)."""
    check_writable(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    except OSError as exc:
        raise InputError(f"cannot write {target}: {exc.strerror or exc}") from None
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; finished files follow the umask
    return Path(tmp)


@contextlib.contextmanager
def atomic_paths(*paths: str | os.PathLike, suffixes: tuple[str, ...] | None = None) -> Iterator[list[Path]]:
    """Yield temporary paths beside several targets; only when the block
    succeeds are they all renamed into place, so a failure leaves none of the
    targets written. Parent folders are created; an unwritable target fails
    before the block runs, with :class:`InputError`."""
    targets = [Path(p) for p in paths]
    suffixes = suffixes or tuple(".tmp" for _ in targets)
    temps: list[Path] = []
    try:
        for target, suffix in zip(targets, suffixes):
            temps.append(_temp_beside(target, suffix))
        yield temps
        for tmp, target in zip(temps, targets):
            os.replace(tmp, target)
    finally:
        for tmp in temps:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success rename it to
    ``path``, on error remove it (see :func:`atomic_paths`)."""
    with atomic_paths(path, suffixes=(suffix if suffix is not None else ".tmp",)) as (tmp,):
        yield tmp


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Atomically write ``data`` to ``path``."""
    return write_outputs({path: bytes(data)})[0]


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write UTF-8 ``text`` to ``path``."""
    return write_outputs({path: str(text)})[0]


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically write ``obj`` as indented JSON; numpy scalars and arrays are
    converted, non-finite floats become ``null``."""
    return write_text(path, _json_text(obj))


def _json_text(obj: Any) -> str:
    """Indented JSON text of ``obj`` (see :func:`write_json`), newline-terminated."""
    return json.dumps(_jsonable(obj), indent=2, allow_nan=False) + "\n"


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in {".parquet", ".pq"}


def _dump(tmp: Path, target: Path, obj: Any) -> None:
    """Write ``obj`` to ``tmp`` in the format its type and ``target``'s extension call for."""
    if hasattr(obj, "to_parquet"):  # a pandas DataFrame
        if _is_parquet(target):
            obj.to_parquet(tmp, index=False)
        else:
            obj.to_csv(tmp, index=False)
    elif isinstance(obj, bytes):
        tmp.write_bytes(obj)
    elif isinstance(obj, str):
        tmp.write_text(obj, encoding="utf-8")
    else:
        tmp.write_text(_json_text(obj), encoding="utf-8")


def write_outputs(outputs: dict[str | os.PathLike, Any]) -> list[Path]:
    """Atomically write several outputs together: all or none.

    Values: a DataFrame (Parquet or CSV by the path's extension), ``bytes``,
    ``str`` (UTF-8 text), or anything else as JSON (see :func:`write_json`).
    """
    targets = [Path(p) for p in outputs]
    suffixes = tuple(".parquet" if _is_parquet(t) else ".tmp" for t in targets)
    with atomic_paths(*targets, suffixes=suffixes) as temps:
        for tmp, target, obj in zip(temps, targets, outputs.values()):
            _dump(tmp, target, obj)
    return targets


def write_table(path: str | os.PathLike, frame: Any) -> Path:
    """Atomically write a pandas DataFrame as Parquet (``.parquet``) or CSV
    (anything else), chosen by the target's extension."""
    return write_outputs({path: frame})[0]
