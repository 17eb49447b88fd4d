"""Atomic file writing: write to a temporary file beside the target, then
``os.replace`` it, so no reader ever sees a half-written file. Temporary names
never match a result pattern, a rerun removes those its killed predecessor
left, and a failed write leaves no folder behind that it made."""
from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
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


#: temporary files and folders are ``.<target name>.<pid>-<random>.tmp`` beside their target: hidden, and
#: never matching a result pattern (``*.parquet``, ``*.json``, ``chunk-*.npy``, ...)
TEMP_SUFFIX = ".tmp"
_TEMP = re.compile(r"^\.(?P<target>.+)\.(?P<pid>[0-9]+)-[a-z0-9_]+" + re.escape(TEMP_SUFFIX) + "$")


def is_temporary(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a temporary file or folder of these writers
    (readers skip them: a run killed before its final rename leaves one)."""
    return _TEMP.match(Path(path).name) is not None


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (ours counts as running)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_temporaries(target: str | os.PathLike) -> list[Path]:
    """Remove the temporaries of ``target`` left by writers that no longer run
    (killed before their final rename); returns what was removed. Only names of
    our own pattern for this very target are touched, and only when their
    process is gone."""
    target = Path(target)
    removed = []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:  # no folder yet: nothing stale
        return removed
    for entry in entries:
        m = _TEMP.match(entry.name)
        if m is None or m["target"] != target.name or _alive(int(m["pid"])):
            continue
        path = Path(entry.path)
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(path) if entry.is_dir(follow_symlinks=False) else path.unlink()
        removed.append(path)
    return removed


def _make_folder(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; return those created, deepest first."""
    missing, p = [], folder
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    folder.mkdir(parents=True, exist_ok=True)
    return missing


def _temp_beside(target: Path, created: list[Path]) -> Path:
    """Create an empty temporary file in ``target``'s folder (made if needed;
    the folders made are appended to ``created``), after removing ``target``'s
    stale temporaries."""
    check_writable(target)
    try:
        created += _make_folder(target.parent)
        remove_stale_temporaries(target)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}-", suffix=TEMP_SUFFIX, dir=target.parent)
    except OSError as exc:
        raise InputError(f"cannot write {target}: {exc.strerror or exc}") from None
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; finished files follow the umask
    return Path(tmp)


@contextlib.contextmanager
def atomic_paths(*paths: str | os.PathLike) -> Iterator[list[Path]]:
    """Yield temporary paths beside several targets; only when the block
    succeeds are they all renamed into place, so a failure leaves none of the
    targets written, and no folder that was made for them. Parent folders are
    created; an unwritable target fails before the block runs, with
    :class:`InputError`. The temporaries are files of our own name pattern
    (:func:`is_temporary`); write them in any format (for ``np.save``, pass an
    open file: given a name without ``.npy`` it would write elsewhere)."""
    targets = [Path(p) for p in paths]
    for target in targets:
        check_writable(target)
    absolute = [Path(os.path.abspath(t)) for t in targets]
    for i, a in enumerate(absolute):
        for b in absolute[i + 1:]:
            if a == b or a in b.parents or b in a.parents:
                raise InputError(f"cannot write both {a} and {b}: one is or lies inside the other")
    temps: list[Path] = []
    created: list[Path] = []
    done = False
    try:
        for target in targets:
            temps.append(_temp_beside(target, created))
        yield temps
        for tmp, target in zip(temps, targets):
            os.replace(tmp, target)
        done = True
    finally:
        for tmp in temps:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        if not done:
            for folder in sorted(created, key=lambda f: len(f.parts), reverse=True):
                with contextlib.suppress(OSError):  # not empty (someone else wrote there): kept
                    folder.rmdir()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success rename it to
    ``path``, on error remove it (see :func:`atomic_paths`)."""
    with atomic_paths(path) as (tmp,):
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
    with atomic_paths(*targets) as temps:
        for tmp, target, obj in zip(temps, targets, outputs.values()):
            _dump(tmp, target, obj)
    return targets


def write_table(path: str | os.PathLike, frame: Any) -> Path:
    """Atomically write a pandas DataFrame as Parquet (``.parquet``) or CSV
    (anything else), chosen by the target's extension."""
    return write_outputs({path: frame})[0]
