"""Exceptions that the command line turns into one-line messages (exit 1)."""
from __future__ import annotations


class InputError(ValueError):
    """Bad user input: a file, row, image or argument that cannot be used.

    The message is one line and names the file and the first offending rows.
    """


class FitError(RuntimeError):
    """A statistical fit that cannot be carried out on the given data
    (too few images per level, a degenerate prior, ...). One-line message."""
