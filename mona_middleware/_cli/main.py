"""The ``mona-middleware`` command line: one subcommand per entry in ``COMMANDS``.

A subcommand is a module with two functions, one adding its arguments to its parser and
one running it and returning the exit status. Add one with ``COMMANDS["name"] =
Command(help, "module.path")``. Only the command being run is imported, so ``--help``
stays fast, and no subcommand imports a web framework.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import NamedTuple

from .._util.version import __version__


class Command(NamedTuple):
    """A subcommand: its one-line help and the module holding its two functions.

    The module defines ``add_arguments(parser)`` and ``run(args) -> int``; it is only
    imported when the command is used (and for the parser's help).
    """

    help: str
    module: str

    def load(self) -> ModuleType:
        return importlib.import_module(self.module)


COMMANDS: dict[str, Command] = {
    "demo": Command(
        "run an example app against a local collector and show what it stored",
        "mona_middleware._cli.demo",
    ),
    "check": Command(
        "print the effective configuration and test the Mona endpoints it points at",
        "mona_middleware._cli.check",
    ),
    "collector": Command(
        "run a local Mona-compatible collector with a browser UI",
        "mona_middleware.collector.main",
    ),
    "replay": Command(
        "send a spool directory or a JSONL file of messages to the configured Mona",
        "mona_middleware._cli.replay",
    ),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser with one subparser per registered command; with ``only``, only that
    command's module is imported (the others show their one-line help)."""
    parser = argparse.ArgumentParser(
        prog="mona-middleware", description="Tools for mona_middleware."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in COMMANDS.items():
        sub = subparsers.add_parser(name, help=command.help, description=command.help)
        if only is not None and name != only:
            continue
        module = command.load()
        module.add_arguments(sub)
        sub.set_defaults(func=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mona-middleware`` and ``python -m mona_middleware``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    chosen = next((arg for arg in argv if not arg.startswith("-")), "")
    parser = build_parser(only=chosen)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
