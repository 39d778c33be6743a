"""Entry point of the `photopop` command.

Each command group lives in its own module under `photopop.cli` and exposes
`register(subparsers)`, which adds its sub-commands and sets `func` (a callable taking the parsed
arguments and returning an exit code). Errors derived from `PhotopopError` become one line on stderr
and exit status 2; nothing else is caught, so real bugs keep their traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from .. import __version__
from ..errors import PhotopopError

#: command-group modules, in the order they appear in `photopop --help`
COMMAND_MODULES = (
    "photometry",
    "bands",
    "labels",
    "ifu",
    "evaluate",
    "simulate",
    "sed",
    "gradients",
    "reproduce",
    "images",
    "predict",
    "demo",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every command group that is installed."""
    parser = argparse.ArgumentParser(
        prog="photopop",
        description="Stellar-population measurements from photometric survey data with neural networks.",
    )
    parser.add_argument("--version", action="version", version=f"photopop {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"photopop.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"photopop.cli.{name}":
                continue  # command group not built yet
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except PhotopopError as exc:
        print(f"photopop: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("photopop: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
