"""Entry point of the `photopop` command.

Each command group lives in its own module under `photopop.cli` and exposes
`register(subparsers)`, which adds its sub-commands and sets `func` (a callable taking the parsed
arguments and returning an exit code). Errors derived from `PhotopopError` become one line on stderr
and exit status 2; nothing else is caught, so real bugs keep their traceback.

Messages that are not results (progress of long runs, notes) go through the ``photopop.*`` logging
hierarchy (``logging.getLogger(__name__)`` in every module); the command line shows them on stderr at
level INFO, and a command's ``--quiet`` raises the level to WARNING. Results go to stdout; tqdm bars stay
for progress within a stage.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Any, Sequence

from .. import __version__
from ..errors import PhotopopError
from .settings import Parser

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
    parser = Parser(
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


class _StderrHandler(logging.StreamHandler):
    """A handler writing to the `sys.stderr` of the moment (so redirection and test capture see it)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:  # StreamHandler.__init__ assigns it; the property decides
        pass


def configure_logging(quiet: bool = False) -> None:
    """Show ``photopop.*`` log messages on stderr as plain lines: INFO and up, WARNING and up if `quiet`."""
    logger = logging.getLogger("photopop")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    configure_logging(quiet=bool(getattr(args, "quiet", False)))
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
