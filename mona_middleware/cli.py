"""The ``mona-middleware`` command line: one subcommand per entry in ``COMMANDS``.

A subcommand is two functions, one adding its arguments to its parser and one running
it and returning the exit status. Add one with ``COMMANDS["name"] = Command(help,
add_arguments, run)``. ``run`` imports what it needs itself, so ``--help`` and every
other subcommand stay fast and never import a web framework.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import NamedTuple

from ._version import __version__


class Command(NamedTuple):
    """A subcommand: its one-line help, its argument set-up and its body."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _collector_arguments(parser: argparse.ArgumentParser) -> None:
    from .collector.main import add_arguments

    add_arguments(parser)


def _run_collector(args: argparse.Namespace) -> int:
    from .collector.main import run_collector

    return run_collector(args)


COMMANDS: dict[str, Command] = {
    "collector": Command(
        "run a local Mona-compatible collector with a browser UI",
        _collector_arguments,
        _run_collector,
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """The parser with one subparser per registered command."""
    parser = argparse.ArgumentParser(
        prog="mona-middleware", description="Tools for mona_middleware."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in COMMANDS.items():
        sub = subparsers.add_parser(name, help=command.help, description=command.help)
        command.add_arguments(sub)
        sub.set_defaults(func=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mona-middleware`` and ``python -m mona_middleware``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
