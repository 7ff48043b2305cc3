"""Running the collector from the command line until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import signal
import sqlite3
import sys
import threading
from collections.abc import Callable

from .app import DEFAULT_MAX_BODY, Collector
from .server import is_loopback
from .validate import MAX_MESSAGES

DEFAULT_DB = "mona-collector.sqlite3"
# The routes, for --help (the README's "Collector API" has the details).
ROUTES_HELP = """\
routes:
  POST /identity/resources/auth/v1/api-token   Mona's token endpoint (clientId, secret)
  POST /identity/resources/auth/v1/api-token/token/refresh   (refreshToken)
  POST /export        a batch, with a Bearer token; Idempotency-Key stores a batch once
  POST /monaExport    a batch without a token (loopback, not --strict)
  GET  /              the page (?token=... when a token is required)
  GET  /api/health    status and counts                       ?user=
  GET  /api/users     user ids, the one that sent last first  ?limit=
  GET  /api/classes   classes with counts                     ?user= &limit=
  GET  /api/contexts  latest contexts, newest first           ?user= &class= &limit= &offset=
  GET  /api/contexts/<class>/<id>   one context and its messages
                                      ?user= &history_limit= &history_offset= &full=1
  GET  /api/summary   per-field statistics of a class          ?class= &user=
  GET  /api/overview  the page's chart data of a class         ?class= &user= &split=<field>
Without ?user= the read API answers for every user id. Lists answer total and truncated.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``collector`` subcommand's options."""
    _add_serving_arguments(parser)
    _add_admission_arguments(parser)
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log every request (tokens masked)"
    )
    parser.epilog = ROUTES_HELP
    parser.formatter_class = argparse.RawDescriptionHelpFormatter


def _add_serving_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the collector listens, what it stores in, and the credentials it issues for."""
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=8765, help="0 picks a free port (default: %(default)s)"
    )
    parser.add_argument(
        "--db", default=DEFAULT_DB, help="SQLite file, or :memory: (default: %(default)s)"
    )
    parser.add_argument(
        "--api-key", help="API key clients must present (default: generated and kept in --db)"
    )
    parser.add_argument("--secret", help="secret for --api-key")
    parser.add_argument(
        "--user-id", default="local", help="Mona user id / tenant (default: %(default)s)"
    )
    parser.add_argument(
        "--allow-no-auth",
        action="store_true",
        help="serve /monaExport without a token on a non-loopback host",
    )


def _add_admission_arguments(parser: argparse.ArgumentParser) -> None:
    """What a request may carry, which hosts it may name, and how strictly it is checked."""
    parser.add_argument(
        "--max-body",
        type=int,
        default=DEFAULT_MAX_BODY,
        help="largest request body in bytes (default: %(default)s)",
    )
    parser.add_argument(
        "--max-messages",
        type=int,
        default=MAX_MESSAGES,
        help="most messages in one request; more is refused with 413 (default: %(default)s)",
    )
    parser.add_argument(
        "--allow-host",
        action="append",
        default=None,
        metavar="NAME",
        help="also answer requests for this host name (repeatable; '*' for any). A loopback"
        " collector answers only localhost and loopback addresses, so a web page cannot"
        " reach it by rebinding its own name",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="take only this collector's api key, secret and user id, and require a token on"
        " every route, the page included (its URL with the token is printed); by default a"
        " loopback collector takes any, as a local dev server",
    )


def banner(collector: Collector) -> str:
    """What a user needs to point an app at the collector, ready to paste in a shell."""
    db = collector.store.path
    lines = [
        f"Mona collector listening on {collector.url}"
        f" (db: {db if db == ':memory:' else os.path.abspath(db)})",
        f"UI:      {collector.ui_url()}",
        f"API key: {collector.api_key}",
        f"Secret:  {collector.secret}",
        f"User id: {collector.user_id}",
    ]
    if collector.accept_any:
        lines.append(
            "Any API key, secret, token and user id is accepted (bound to loopback; --strict"
            " takes only the ones above); the page opens on the user id that sent last, and"
            " each user id's data is at the UI's #user=<user id>."
        )
    if collector.require_auth and is_loopback(collector.host):
        lines.append(
            "Strict: every endpoint but the token endpoints and /static/ needs a token; the"
            " UI link above carries one (valid 7 days), keep it to yourself."
        )
    elif collector.require_auth:
        lines.append(
            f"Bound to {collector.host or 'all interfaces'} (not loopback): every endpoint"
            " but the token endpoints and /static/ needs a token; reach it by this machine's"
            " address from elsewhere."
        )
    lines.append("Point mona_sdk or mona_middleware at it with:")
    lines += [f"  export {name}={shlex.quote(value)}" for name, value in collector.env().items()]
    lines.append("Press Ctrl-C to stop.")
    return "\n".join(lines)


def _printer(where: list[Collector]) -> Callable[[str, str], None]:
    """Prints each api key and user id a loopback collector accepts, and for a user id
    where its data is shown (``where`` holds the collector once it exists)."""

    def accepted(kind: str, value: str) -> None:
        line = f"Accepted {kind} {value!r} (a local collector takes any; --strict to refuse)"
        if kind == "user id" and where:
            line += f"; its data: {where[0].user_url(value)}"
        print(line, flush=True)

    return accepted


def run_collector(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM (must run in the main thread); the exit status."""
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(message)s")
    where: list[Collector] = []
    try:
        collector = Collector(
            host=args.host,
            port=args.port,
            db=args.db,
            api_key=args.api_key,
            secret=args.secret,
            user_id=args.user_id,
            allow_no_auth=args.allow_no_auth,
            max_body=args.max_body,
            strict=args.strict,
            require_auth=True if args.strict else None,
            accepted=_printer(where),
            allowed_hosts=args.allow_host,
            max_messages=args.max_messages,
        )
    except (ValueError, sqlite3.Error) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    where.append(collector)
    stop = threading.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    handlers = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in signals}
    try:
        try:
            collector.start()
        except OSError as exc:
            print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
            return 1
        print(banner(collector), flush=True)
        # Waking up now and then keeps signal handling prompt on every platform.
        while not stop.wait(0.5):
            pass
    finally:
        collector.stop()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    print("Mona collector stopped.", flush=True)
    return 0


run = run_collector  # the name mona_middleware.cli looks for
