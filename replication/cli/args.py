"""Argument types and flags shared by the commands.

Every number on the command line is checked by argparse through one of these
types, so a bad value (``--seed -1``, ``--bootstrap 1e9``, ``--alpha 2``) ends
in one line and exit status 2 before any work. Commands add their seed and
bootstrap flags with :func:`add_seed` and :func:`add_bootstrap`.

Only the standard library is imported here (``replication --help`` stays fast).
"""
from __future__ import annotations

import argparse
import math
from typing import Callable

#: most bootstrap replicates a command accepts (100,000 replicates put the Monte-Carlo error of a 95%
#: percentile bound far below its sampling error; more only costs time and memory)
MAX_BOOTSTRAP = 100_000


class CommandParser(argparse.ArgumentParser):
    """argparse parser whose usage errors are one line: ``replication bias:
    error: argument --seed: must be >= 0, got -1 (see replication bias --help)``."""

    def error(self, message: str):  # noqa: D102  (argparse's hook)
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(text: str, kind: type, what: str):
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def integer_in(low: int, high: int | None = None, note: str = "") -> Callable[[str], int]:
    """An argparse type: an integer in ``[low, high]`` (``high`` None: no upper
    bound); ``note`` is added to the message for a value above ``high``."""
    def parse(text: str) -> int:
        value = _number(text, int, "an integer")
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be <= {high:,}{note}, got {value:,}")
        return value
    parse.__name__ = f"integer >= {low}"
    return parse


nonnegative_int = integer_in(0)
positive_int = integer_in(1)
#: numpy's seeds are non-negative integers
seed = integer_in(0)
bootstrap_replicates = integer_in(0, MAX_BOOTSTRAP, " (the most replicates a command runs)")


def probability(text: str) -> float:
    """An argparse type: a number strictly between 0 and 1 (e.g. ``--alpha``)."""
    value = _number(text, float, "a number")
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must lie strictly between 0 and 1, got {text}")
    return value


def unit_interval(text: str) -> float:
    """An argparse type: a number in the closed interval [0, 1] (a share, a threshold)."""
    value = _number(text, float, "a number")
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1], got {text}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0."""
    value = _number(text, float, "a number")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def nonnegative_float(text: str) -> float:
    """An argparse type: a finite number >= 0."""
    value = _number(text, float, "a number")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def finite_float(text: str) -> float:
    """An argparse type: any finite number."""
    return _number(text, float, "a number")


def add_seed(p: argparse.ArgumentParser, help: str = "random seed (default 0)", **kwargs) -> None:
    """``--seed S``: a non-negative integer (default 0 unless ``kwargs`` say otherwise)."""
    kwargs.setdefault("default", 0)
    p.add_argument("--seed", type=seed, metavar="S", help=help, **kwargs)


def add_bootstrap(p: argparse.ArgumentParser, default: int | None,
                  help: str = "bootstrap replicates") -> None:
    """``--bootstrap B``: replicates, 0..:data:`MAX_BOOTSTRAP`."""
    shown = "" if default is None else f"default {default}; "
    p.add_argument("--bootstrap", type=bootstrap_replicates, default=default, metavar="B",
                   help=f"{help} ({shown}0 to {MAX_BOOTSTRAP:,})")
