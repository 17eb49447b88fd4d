"""Which paths a command reads and writes, and the check that no output lands
on an input or on another output.

Paths are compared after resolving symbolic links and ``..`` (and, for files
that exist, by device and inode, so hard links count too). Output folders are
stricter than output files: a command may rewrite anything inside its output
folder, so no input may lie inside one, and an output folder may not lie inside
an input folder (results written into a dataset or the reference data).
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from replication.errors import InputError

PathArg = str | os.PathLike | None


def resolve(path: str | os.PathLike) -> Path:
    """``path`` made absolute, with symbolic links and ``..`` resolved (also
    where the path does not exist yet)."""
    return Path(os.path.realpath(os.path.abspath(os.fspath(path))))


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether ``a`` and ``b`` name the same file or folder (links resolved; hard
    links of an existing file count as the same)."""
    ra, rb = resolve(a), resolve(b)
    if ra == rb:
        return True
    try:
        return os.path.samefile(ra, rb)
    except OSError:
        return False


def is_within(inner: str | os.PathLike, outer: str | os.PathLike) -> bool:
    """Whether ``inner`` lies strictly inside the folder ``outer`` (resolved)."""
    ri, ro = resolve(inner), resolve(outer)
    return ri != ro and ro in ri.parents


def _flatten(named: Mapping[str, PathArg | Iterable[PathArg]]) -> list[tuple[str, Path]]:
    """(flag, path) pairs; list values (repeated flags) give one pair each, None is skipped."""
    pairs = []
    for flag, value in named.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        pairs += [(flag, Path(os.fspath(v))) for v in values if v is not None and os.fspath(v) != ""]
    return pairs


def check_distinct_paths(inputs: Mapping[str, PathArg | Iterable[PathArg]] = {},
                         outputs: Mapping[str, PathArg | Iterable[PathArg]] = {},
                         output_dirs: Mapping[str, PathArg | Iterable[PathArg]] = {}) -> None:
    """Refuse, with one :class:`InputError` line naming both flags and the path,
    an output (file or folder) that is an input or another output, an input
    inside an output folder, and an output folder inside an input folder.

    Each mapping goes from a flag as the user typed it (``"--json"``) to a path,
    a list of paths (a repeated flag) or None (not given).
    """
    ins, files, dirs = _flatten(inputs), _flatten(outputs), _flatten(output_dirs)
    outs = files + dirs
    for i, (flag, path) in enumerate(outs):
        for other_flag, other in outs[i + 1:]:
            if same_file(path, other):
                raise InputError(f"{flag} and {other_flag} are the same path ({path}): each output needs its own")
        for in_flag, in_path in ins:
            if same_file(path, in_path):
                raise InputError(f"{flag} {path} is the input {in_flag}: refusing to overwrite an input")
    for flag, folder in dirs:
        for in_flag, in_path in ins:
            if is_within(in_path, folder):
                raise InputError(f"the input {in_flag} {in_path} lies inside the output folder {flag} {folder}: "
                                 f"choose an output folder that holds no input")
            if in_path.is_dir() and is_within(folder, in_path):
                raise InputError(f"the output folder {flag} {folder} lies inside the input folder {in_flag} "
                                 f"{in_path}: write results outside the data they are computed from")
    for flag, path in files:
        for dir_flag, folder in dirs:
            if is_within(path, folder):
                raise InputError(f"{flag} {path} lies inside the output folder {dir_flag} {folder}")


@dataclass(frozen=True)
class PathRoles:
    """The flags of a command that name inputs, output files and output folders.

    Set on a subparser with ``p.set_defaults(path_roles=PathRoles(...))``; the
    command line checks them with :func:`check_distinct_paths` before the
    command runs. Flags are written as typed (``"--weights-out"``); a
    positional argument by its name (``"dir"``).
    """

    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    output_dirs: tuple[str, ...] = ()

    @staticmethod
    def dest(flag: str) -> str:
        """The argparse destination of ``flag`` (``--weights-out`` -> ``weights_out``)."""
        return flag.lstrip("-").replace("-", "_")

    def check(self, args: object) -> None:
        """Run :func:`check_distinct_paths` on the values of ``args`` (an argparse Namespace)."""
        def values(flags: tuple[str, ...]) -> dict:
            return {flag: getattr(args, self.dest(flag), None) for flag in flags}
        check_distinct_paths(values(self.inputs), values(self.outputs), values(self.output_dirs))
