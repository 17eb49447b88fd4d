"""Reading a JSON file with one-line errors (its writer is :func:`replication.io.atomic.write_json`)."""
from __future__ import annotations

import json
import os
from pathlib import Path

from replication.errors import InputError


def read_json(path: str | os.PathLike, expected: type | tuple[type, ...], what: str) -> object:
    """The JSON value in ``path``; InputError naming the file when it is
    missing, unreadable, not valid JSON (e.g. cut short) or not of type
    ``expected`` (``what`` says what it should be)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot be read ({exc})") from None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InputError(f"{path}: not valid JSON ({exc}); truncated?") from None
    if not isinstance(value, expected):
        raise InputError(f"{path}: expected {what}")
    return value
