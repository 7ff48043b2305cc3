"""The ``mona-middleware`` command line: one subcommand per entry in ``COMMANDS``.

A subcommand is a module with two functions, one adding its arguments to its parser and
one running it and returning the exit status. Add one with ``COMMANDS["name"] =
Command(help, "module.path")``. Only the command being run is imported, so ``--help``
stays fast, and no subcommand imports a web framework.

Mistakes get a usage line and exit status 2, never a traceback: a subcommand's own
usage for its own arguments (``collector --prot 9000``, with the closest option), a
port out of range for any ``--port``, and a pipe closed early (``check --json | head``)
ends the command quietly.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import NamedTuple

from .._util.options import closest
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


def port_number(text: str) -> int:
    """An argparse type: a TCP port, 0 (pick a free one) to 65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (0 to 65535)")
    return port


def _checked_ports(parser: argparse.ArgumentParser) -> None:
    """Every ``--port`` a subcommand declares as a plain ``int`` takes ``port_number``,
    so a port out of range is a usage error, not a traceback from the socket."""
    for action in parser._actions:  # argparse keeps no public list of a parser's options
        if "--port" in action.option_strings and action.type is int:
            action.type = port_number


def build_parser(
    only: str | None = None,
) -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The parser with one subparser per registered command (and the subparsers by name);
    with ``only``, only that command's module is imported (the others show their
    one-line help)."""
    parser = argparse.ArgumentParser(
        prog="mona-middleware", description="Tools for mona_middleware."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subs = {}
    for name, command in COMMANDS.items():
        sub = subs[name] = subparsers.add_parser(name, help=command.help, description=command.help)
        if only is not None and name != only:
            continue
        module = command.load()
        module.add_arguments(sub)
        _checked_ports(sub)
        sub.set_defaults(func=module.run)
    return parser, subs


def _unrecognized(parser: argparse.ArgumentParser, extras: list[str]) -> str:
    """``unrecognized arguments: --prot 9000 (did you mean --port?)``."""
    options = [option for action in parser._actions for option in action.option_strings]
    typos = [extra.split("=")[0] for extra in extras if extra.startswith("--")]
    meant = [match for match in (closest(typo, options) for typo in typos) if match]
    text = f"unrecognized arguments: {' '.join(extras)}"
    return text + (f" (did you mean {' or '.join(meant)}?)" if meant else "")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mona-middleware`` and ``python -m mona_middleware``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    chosen = next((arg for arg in argv if not arg.startswith("-")), "")
    parser, subs = build_parser(only=chosen)
    args, extras = parser.parse_known_args(argv)
    if extras:  # the subcommand's usage, not the top level's, for its own mistakes
        (subs.get(args.command) or parser).error(
            _unrecognized(subs.get(args.command) or parser, extras)
        )
    if args.command is None:
        parser.print_help()
        return 2
    try:
        status = args.func(args)
        sys.stdout.flush()  # a closed pipe shows up here, not at exit with a traceback
        return status
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly. Python would flush stdout
        # again at exit and complain, so point it at /dev/null first.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 141  # 128 + SIGPIPE, what a shell reports for a tool the pipe stopped
