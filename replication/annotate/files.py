"""Image files of a plan: is each one there, readable, and an image, and
which media type to serve it as (from its first bytes, not its name)."""
from __future__ import annotations

import os
from collections.abc import Iterable

#: leading bytes -> media type
_MAGIC = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
)


def media_type(head: bytes) -> str | None:
    """The image media type of a file starting with ``head`` (at least 12
    bytes), or None when it is not a JPEG, PNG, GIF, BMP or WebP image."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return next((kind for magic, kind in _MAGIC if head.startswith(magic)), None)


def sniff(path: str | os.PathLike) -> tuple[str | None, str | None]:
    """``(media type, None)`` for an image file that can be served, or
    ``(None, reason)``: missing, unreadable, empty or not an image."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except FileNotFoundError:
        return None, "missing"
    except IsADirectoryError:
        return None, "a folder, not a file"
    except OSError as exc:
        return None, f"unreadable ({exc.strerror or exc})"
    if not head:
        return None, "empty"
    kind = media_type(head)
    return (kind, None) if kind else (None, "not a JPEG/PNG/GIF/BMP/WebP image")


def file_problems(paths: Iterable[str | os.PathLike]) -> list[tuple[int, str]]:
    """``(index, reason)`` for every path that cannot be served."""
    return [(i, reason) for i, (_, reason) in enumerate(map(sniff, paths)) if reason is not None]
