"""``mona-middleware demo``: the whole product end to end on one laptop, no account needed.

A collector runs in this process; an example app (``demo_apps``, shipped inside the
package, so the demo runs from any install) runs in its own process, as a real server on
127.0.0.1 with the middleware pointed at the collector through the same ``MONA_SDK_*``
environment a user sets for Mona. The demo drives requests at it, some of them failing
on purpose, stops it (its exporter flushes on the way out, as in production), prints
what the collector stored, through the collector's own JSON API, and ends with what
happened and the next step with one's own app.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import random
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, NamedTuple

from ..collector import Collector
from . import demo_apps
from .terminal import ProgressBar, clip, number, table

LATEST_CONTEXTS = 4
SUMMARY_FIELDS = 8
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
REQUEST_TIMEOUT = 10.0
SEED = 4  # the same requests every run, so two runs' tables are comparable
COLLECTOR_PORT = 8765  # `mona-middleware collector`'s default port
# The paths the demo asks for knowing they fail: what each shows.
DELIBERATE = {500: "GET /fail raises", 404: "GET /no-such-page does not exist"}


class Route(NamedTuple):
    """One kind of request the demo sends: its share of the traffic, method and path."""

    weight: int
    method: str
    path: str  # ``{n}`` becomes a number, ``{tenant}`` a tenant name


COMMON_ROUTES = (
    Route(45, "POST", "/predict"),
    Route(25, "GET", "/items/{n}"),
    Route(10, "GET", "/stream"),
    Route(8, "GET", "/fail"),  # a 500: the example's view raises
    Route(5, "GET", "/no-such-page"),  # a 404
)


@dataclass(frozen=True)
class Example:
    """How to serve one framework's example app and what to send it."""

    modules: tuple[str, ...]  # what must be importable, first the framework
    extra: str  # the pip extra that installs it
    routes: tuple[Route, ...]

    def argv(self, framework: str) -> list[str]:
        """The server command; each listens on 127.0.0.1:$PORT and flushes on SIGTERM."""
        return [sys.executable, "-m", demo_apps.__name__, framework]


EXAMPLES: dict[str, Example] = {
    "flask": Example(("flask",), "flask", COMMON_ROUTES),
    "django": Example(
        ("django",), "django", (*COMMON_ROUTES, Route(10, "GET", "/apredict?items={n},7"))
    ),
    "starlette": Example(
        ("starlette", "uvicorn"),
        "starlette",
        (*COMMON_ROUTES, Route(10, "GET", "/tenants/{tenant}/model")),
    ),
    "fastapi": Example(("fastapi", "uvicorn"), "fastapi", COMMON_ROUTES),
}


class DemoError(Exception):
    """Something the user can fix; the message says what."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``demo`` subcommand's options."""
    parser.add_argument(
        "--framework",
        choices=sorted(EXAMPLES),
        default="flask",
        help="which example app to run (default: %(default)s)",
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=200,
        metavar="N",
        help="how many requests to send it (default: %(default)s)",
    )
    parser.add_argument(
        "--serve", action="store_true", help="keep the app and the collector running until Ctrl-C"
    )
    parser.add_argument(
        "--db", help="the collector's SQLite file, kept afterwards (default: a temporary one)"
    )
    parser.add_argument(
        "--port", type=int, default=0, help="the collector's port (default: a free one)"
    )


def run(args: argparse.Namespace) -> int:
    """Run the demo; 0 when every answered request reached the collector."""
    if args.requests < 0:
        print("mona-middleware demo: --requests must be 0 or more", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="mona-demo-"))
    try:
        with _sigterm_interrupts():
            return _run(args, EXAMPLES[args.framework], workdir)
    except DemoError as exc:
        print(f"mona-middleware demo: {exc}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _run(args: argparse.Namespace, example: Example, workdir: Path) -> int:
    _require(example, args.framework)
    db = os.path.abspath(args.db) if args.db else str(workdir / "collector.sqlite3")
    collector = _start_collector(args.port, db)
    try:
        before = collector.store.context_count()
        app = AppServer(example, args.framework, workdir, collector.env())
        try:
            app.wait_ready()
            started = time.monotonic()
            statuses = drive(app.url, example.routes, args.requests)
            elapsed = time.monotonic() - started
            answered = sum(n for key, n in statuses.items() if isinstance(key, int))
            if args.serve:
                _wait_for_contexts(collector, before + answered)
            else:
                app.stop()  # the exporter flushes on SIGTERM, as under an orchestrator
            print(_traffic_line(args.framework, app.url, statuses, args.requests, elapsed))
            print(render_report(collector.url))
            stored = collector.store.context_count() - before
            lost = answered - stored
            print("\n" + what_happened(statuses, answered, stored))
            if lost > 0:
                print(f"mona-middleware demo: {lost} of {answered} answered requests never reached"
                      f" the collector; the app's log ends with:\n{app.log_tail()}",
                      file=sys.stderr)  # fmt: skip
            if args.serve:
                _serve(app, collector)
        finally:
            app.stop()
    finally:
        collector.stop()
    if args.db:
        print(f"\nThe data is kept in {db}: `mona-middleware collector --db {db}` shows it again.")
    if not args.serve:  # the collector is gone: its address would lead nowhere
        print("\n" + next_steps())
    return 1 if lost > 0 else 0


def what_happened(statuses: Counter[int | str], answered: int, stored: int) -> str:
    """The demo's closing words: what became of the requests, and why some failed."""
    lines = [
        f"What happened: each of the {answered} answered requests became one Mona context,"
        f" exported by the app in the background; the collector stored {stored}."
    ]
    failed = [f"{statuses[code]} x {code} ({why})" for code, why in DELIBERATE.items()
              if statuses.get(code)]  # fmt: skip
    if failed:
        lines.append(
            f"The {' and '.join(failed)} were on purpose: an error is recorded like any"
            " request, with its http_status_code (and exception_type for a 500)."
        )
    return "\n".join(lines)


def local_env(port: int = COLLECTOR_PORT) -> dict[str, str]:
    """The environment that points an app at ``mona-middleware collector`` on loopback.

    A loopback collector takes any user id on its no-auth endpoint, so three variables
    do (the collector itself prints the six of its credentials, which work as well).
    """
    return {
        "AUTH_MODE": "NO_AUTH",
        "MONA_SDK_USER_ID": "local",  # the collector's own user: its page shows these
        "MONA_SDK_OVERRIDE_REST_API_URL": f"http://127.0.0.1:{port}/monaExport",
    }


def _exports(env: dict[str, str]) -> str:
    return "export " + " ".join(f"{name}={shlex.quote(value)}" for name, value in env.items())


def next_steps() -> str:
    """The next step with one's own app, after a demo whose collector has stopped."""
    return "\n".join(
        [
            "Next, your own app:",
            "  1. in one terminal:   mona-middleware collector",
            f"     (a local Mona; its page: http://127.0.0.1:{COLLECTOR_PORT}/)",
            "  2. in another, where you start your app:",
            f"     {_exports(local_env())}",
            "     (or paste the `export` lines the collector prints), then start your app:",
            "     each request appears on the page within a second or two.",
            "Or keep this demo's app and collector open to browse them: mona-middleware"
            " demo --serve",
        ]
    )


def _start_collector(port: int, db: str) -> Any:
    try:
        return Collector(port=port, db=db).start()
    except sqlite3.Error as exc:
        raise DemoError(f"cannot use {db} as the collector's database: {exc}") from None
    except OSError as exc:
        raise DemoError(f"the collector cannot listen on 127.0.0.1:{port}: {exc}") from None


def _require(example: Example, framework: str) -> None:
    missing = [name for name in example.modules if importlib.util.find_spec(name) is None]
    if missing:
        raise DemoError(
            f"the {framework} demo needs {', '.join(missing)}: pip install {' '.join(missing)}"
            f" (or install mona_middleware with its [{example.extra}] extra, as its README's"
            " Install section says)"
        )


def free_port() -> int:
    """A port nothing listens on right now (the server binds it a moment later)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AppServer:
    """The example app serving in its own process (group), its output in a log file."""

    def __init__(self, example: Example, framework: str, workdir: Path, mona: dict[str, str]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "app.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MONA_", "AUTH_MODE"))}
        env.update(mona)
        env.update(
            {
                "PORT": str(self.port),
                # The app imports this very package, wherever it is installed.
                "PYTHONPATH": os.pathsep.join(
                    filter(None, [_package_root(), env.get("PYTHONPATH")])
                ),
                "PYTHONUNBUFFERED": "1",
                # Send often, so --serve shows new requests in the page within a second.
                "MONA_MIDDLEWARE_FLUSH_INTERVAL": "0.2",
                "MONA_MIDDLEWARE_SPOOL_DIR": str(workdir / "spool"),
                # A proxy from the environment must not carry loopback traffic.
                "NO_PROXY": ",".join(filter(None, ["127.0.0.1,localhost", env.get("NO_PROXY")])),
            }
        )
        with open(self.log_path, "wb") as log:
            # cwd is the scratch dir: a file the app might write never lands in the checkout.
            self.process = subprocess.Popen(
                example.argv(framework),
                cwd=workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches us; we stop it so it flushes
            )

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Poll ``/health`` (excluded from monitoring in every example) until it answers."""
        import requests

        deadline = time.monotonic() + timeout
        with _session() as session:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise DemoError(f"the example app exited at start-up:\n{self.log_tail()}")
                with contextlib.suppress(requests.RequestException):
                    if session.get(self.url + "/health", timeout=1).ok:
                        return
                time.sleep(0.05)
        raise DemoError(
            f"the example app did not answer within {timeout:.0f} s:\n{self.log_tail()}"
        )

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM and wait (the app flushes), SIGKILL the group if it overstays."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
                print(f"the example app did not stop within {timeout:.0f} s", file=sys.stderr)
        return self.process.returncode

    def log_tail(self, lines: int = 20) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join("  | " + line for line in text[-lines:])


def _package_root() -> str:
    """The directory this ``mona_middleware`` was imported from."""
    return str(Path(__file__).resolve().parents[2])


def _session() -> Any:
    """A session that ignores proxy settings: all the demo's traffic is on 127.0.0.1."""
    import requests

    session = requests.Session()
    session.trust_env = False
    return session


def plan_requests(routes: tuple[Route, ...], count: int) -> Iterator[tuple[str, str, Any]]:
    """``count`` (method, path, JSON body) in a fixed pseudo-random mix of ``routes``."""
    rng = random.Random(SEED)
    weights = [route.weight for route in routes]
    for route in rng.choices(routes, weights, k=count):
        path = route.path.format(n=rng.randint(1, 500), tenant=rng.choice(["acme", "globex"]))
        body = None
        if route.method == "POST":
            items = [rng.randint(1, 100) for _ in range(rng.randint(1, 8))]
            body = {"items": items, "segment": rng.choice(["new", "returning", "vip"])}
        yield route.method, path, body


def drive(url: str, routes: tuple[Route, ...], count: int) -> Counter[int | str]:
    """Send the requests one after another on a keep-alive session; status -> count."""
    import requests

    statuses: Counter[int | str] = Counter()
    bar = ProgressBar(count, "requests")
    with _session() as session:
        for method, path, body in plan_requests(routes, count):
            try:
                response = session.request(method, url + path, json=body, timeout=REQUEST_TIMEOUT)
                statuses[response.status_code] += 1
                if response.status_code >= 500:
                    # uvicorn closes the connection after an unhandled exception without
                    # saying so; reusing it would fail the next request.
                    session.close()
            except requests.RequestException as exc:
                statuses[type(exc).__name__] += 1
            bar.advance()
    bar.finish()
    return statuses


def render_report(url: str) -> str:
    """What the collector at ``url`` stored, read through the JSON API its page uses."""
    with _session() as session:

        def get(path: str, **params: Any) -> Any:
            with session.get(url + path, params=params, timeout=REQUEST_TIMEOUT) as response:
                response.raise_for_status()
                return response.json()

        health = get("/api/health")
        if not health["contexts"]:
            return "\nThe collector stored nothing."
        classes = sorted(get("/api/classes")["classes"].items(), key=lambda kv: -kv[1]["contexts"])
        latest = get("/api/contexts", limit=LATEST_CONTEXTS)["contexts"]
        summaries = [get("/api/summary", **{"class": name}) for name, _ in classes]
    return _render(health, classes, latest, summaries)


def _render(health: Any, classes: list[Any], latest: list[Any], summaries: list[Any]) -> str:
    width = max(40, shutil.get_terminal_size((120, 24)).columns - 36)
    rows = [[name, info["contexts"], info["messages"]] for name, info in classes]
    latest_rows = [
        [ctx["class"], clip(ctx["id"], 11), clip(_fields_text(ctx["fields"]), width)]
        for ctx in latest
    ]
    lines = [
        f"\nThe collector stored {health['contexts']} contexts from {health['messages']} messages:",
        table(["context class", "contexts", "messages"], rows, "lrr"),
        "\nLatest contexts:",
        table(["class", "context id", "fields"], latest_rows),
    ]
    for summary in summaries:
        lines.append(f"\nFields of {summary['class']} ({summary['contexts']} contexts):")
        lines.append(_summary_table(summary["fields"]))
    return "\n".join(lines)


def _summary_table(fields: dict[str, Any]) -> str:
    """The most common fields: count, mean/p50/p95 of numbers, top values of labels."""
    chosen = sorted(fields.items(), key=lambda kv: (-kv[1]["count"], kv[0]))[:SUMMARY_FIELDS]
    rows = []
    for name, info in chosen:
        stats = info.get("numbers")
        numbers = [number(stats[key]) for key in ("mean", "p50", "p95")] if stats else [""] * 3
        top = ", ".join(f"{clip(str(t['value']), 30)} ({t['count']})" for t in info.get("top", []))
        rows.append([name, info["count"], *numbers, top])
    if len(fields) > len(chosen):
        rows.append([f"(and {len(fields) - len(chosen)} more)", "", "", "", "", ""])
    return table(["field", "count", "mean", "p50", "p95", "top values"], rows, "lrrrrl")


def _fields_text(fields: dict[str, Any]) -> str:
    def shown(value: Any) -> str:
        if isinstance(value, float):
            return number(value)
        if isinstance(value, list):
            return "[" + ",".join(shown(item) for item in value) + "]"
        return str(value)

    return " ".join(f"{name}={shown(value)}" for name, value in fields.items())


def _traffic_line(
    framework: str, url: str, statuses: Counter[int | str], count: int, elapsed: float
) -> str:
    shown = ", ".join(f"{statuses[key]} x {key}" for key in sorted(statuses, key=str))
    return (
        f"Sent {count} requests to the {framework} example at {url} in {elapsed:.1f} s"
        f" ({shown or 'none'})."
    )


def _wait_for_contexts(collector: Any, count: int, timeout: float = 10.0) -> None:
    """With ``--serve`` the app keeps running: wait for its periodic flush instead."""
    deadline = time.monotonic() + timeout
    while collector.store.context_count() < count and time.monotonic() < deadline:
        time.sleep(0.05)


def _serve(app: AppServer, collector: Any) -> None:
    print(
        f"\nServing until Ctrl-C. The app: {app.url}   The collector's page: {collector.ui_url()}"
    )
    print(f"Try: curl -X POST {app.url}/predict -H 'content-type: application/json'"
          " -d '{\"items\": [3, 5, 8]}'")  # fmt: skip
    print("Your own app can send to this collector too, started with:")
    print(f"  {_exports(collector.env())}")
    sys.stdout.flush()
    with contextlib.suppress(KeyboardInterrupt):
        while app.process.poll() is None:
            time.sleep(0.2)
    if app.process.returncode is not None:
        print(f"the example app exited (status {app.process.returncode})", file=sys.stderr)
    else:
        print("\nStopping the app (it flushes) and the collector.")


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so the app process is stopped and not orphaned."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, interrupt)
    # Started in the background by a non-interactive shell, Python inherits SIGINT
    # ignored and Ctrl-C would never stop "Serving until Ctrl-C": take it back.
    previous_int = signal.getsignal(signal.SIGINT)
    if previous_int is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        if previous_int is signal.SIG_IGN:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
