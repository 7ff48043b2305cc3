"""The README tells the truth: its option tables are the declarations, and every Python
block in it runs.

Tables: run ``UPDATE_README=1 pytest tests/test_readme.py`` after changing an option to
rewrite them; without it, a table that no longer matches fails here.

Blocks: each ```` ```python ```` block is extracted from README.md (as ``.ci/run``
extracts its commands) and run as a script in a fresh interpreter, in an empty
directory with no Mona settings, so what it exports lands in ``mona-messages.jsonl``
(the file transport), which is then read back as Mona would store it. A block that
needs a framework runs for real: a ``Harness`` below, matched by the block's section and
a piece of its code, adds what the reader supplies (``websocket_urlpatterns``, a
``score``), drives it (a test client, a server on a free port, a worker's task) and says
what it must have exported. A block without a harness must run as it is. One that cannot
run at all says why in an HTML comment just above it, ``<!-- readme-test: skip: why -->``.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from mona_middleware._util.options import markdown_table
from mona_middleware._web.options import CELERY_OPTIONS
from mona_middleware._web.options import OPTIONS as WEB_OPTIONS
from mona_middleware.config import OPTIONS

from .servers import free_port

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TABLES = {
    "adapters": lambda: markdown_table(WEB_OPTIONS, env_column=False),
    "exporter": lambda: markdown_table(OPTIONS, env_column=True),
    "celery": lambda: markdown_table(CELERY_OPTIONS, env_column=False),
}
BLOCK = re.compile(r"(<!-- options: (\w+) -->\n)(.*?)(<!-- /options -->)", re.DOTALL)
MAX_SKIPPED = 2  # a block that cannot run is a rare exception, each with its reason


def test_the_option_tables_are_the_declarations():
    text = README.read_text(encoding="utf-8")
    found = {match.group(2) for match in BLOCK.finditer(text)}
    assert found == set(TABLES), f"README has tables {sorted(found)}, expected {sorted(TABLES)}"

    def render(match: re.Match[str]) -> str:
        return f"{match.group(1)}{TABLES[match.group(2)]()}\n{match.group(4)}"

    expected = BLOCK.sub(render, text)
    if os.environ.get("UPDATE_README") and expected != text:
        README.write_text(expected, encoding="utf-8")
        text = expected
    assert text == expected, "README option tables are stale: UPDATE_README=1 pytest " + __file__


def test_every_option_named_in_the_readme_exists():
    text = README.read_text(encoding="utf-8")
    declared = set(OPTIONS) | set(WEB_OPTIONS) | set(CELERY_OPTIONS)
    for match in BLOCK.finditer(text):
        for name in re.findall(r"^\| `(\w+)` \|", match.group(3), re.MULTILINE):
            assert name in declared, name


# -- the Python blocks ---------------------------------------------------------------------

FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<info>\S*)\s*$")
SKIP = re.compile(r"<!--\s*readme-test:\s*skip:\s*(?P<why>.*?)\s*-->")


@dataclass(frozen=True)
class Block:
    """One ```` ```python ```` block: where it is, its code (dedented) and any skip reason."""

    line: int
    heading: str
    code: str
    skip: str | None

    def __str__(self) -> str:
        return f"README.md:{self.line} ({self.heading})"


def python_blocks(text: str) -> list[Block]:
    """Every Python block, in order, with the heading it is under (fences in lists too)."""
    lines = text.splitlines()
    blocks, heading, index = [], "", 0
    while index < len(lines):
        line = lines[index]
        fence = FENCE.match(line)
        if fence is None:
            if line.startswith("#"):
                heading = line.lstrip("#").strip()
            index += 1
            continue
        indent, body, end = fence["indent"], [], index + 1
        while end < len(lines) and not FENCE.match(lines[end]):
            body.append(lines[end][len(indent) :] if lines[end].startswith(indent) else lines[end])
            end += 1
        if fence["info"] == "python":
            above = index - 1
            while above >= 0 and not lines[above].strip():
                above -= 1
            skip = SKIP.search(lines[above]) if above >= 0 else None
            code = textwrap.dedent("\n".join(body)) + "\n"
            blocks.append(Block(index + 1, heading, code, skip["why"] if skip else None))
        index = end + 1
    return blocks


BLOCKS = python_blocks(README.read_text(encoding="utf-8"))
Contexts = dict[str, dict[str, Any]]  # "CLASS|id" -> fields, as Mona stores them


@dataclass(frozen=True)
class Harness:
    """How to run one block for real: matched by its section and a piece of its code."""

    heading: str
    contains: str
    prelude: str = ""  # what the reader's own code supplies, before the block
    then: str = ""  # drives what the block built, after it (assertions welcome)
    expect: Callable[[Contexts, subprocess.CompletedProcess[str]], None] | None = None
    server: Callable[[str], None] | None = None  # the block serves: requests to its URL
    pytest: str | None = None  # the block is a test: this conftest.py, then pytest runs it

    def matches(self, block: Block) -> bool:
        return block.heading == self.heading and self.contains in block.code


def only(contexts: Contexts, context_class: str) -> dict[str, Any]:
    found = [fields for key, fields in contexts.items() if key.split("|")[0] == context_class]
    assert len(found) == 1, (context_class, contexts)
    return found[0]


def expect_quick_start(contexts: Contexts, _: Any) -> None:
    fields = only(contexts, "RECOMMENDATIONS")
    assert fields["item_count"] == 3 and fields["model_version"] == "v3"
    assert fields["score"] == 0.93
    assert (fields["http_method"], fields["http_route"], fields["http_status_code"]) == (
        "POST",
        "/predict",
        200,
    )
    assert fields["duration_ms"] >= 0


def drive_aiohttp(url: str) -> None:
    response = requests.get(url + "/items/7", timeout=10)
    assert response.status_code == 200 and response.json() == {"id": "7"}


def expect_aiohttp(contexts: Contexts, _: Any) -> None:
    fields = only(contexts, "SHOP_API")
    assert (fields["item_id"], fields["http_route"], fields["http_status_code"]) == (
        "7",
        "/items/{item_id}",
        200,
    )


CHANNELS_PRELUDE = """
import django
from django.conf import settings

settings.configure(
    SECRET_KEY="readme-only",
    INSTALLED_APPS=[
        "django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions"
    ],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    MONA={"handle_sigterm": False},
    USE_TZ=True,
)
django.setup()

from channels.generic.websocket import WebsocketConsumer
from django.urls import path


class Chat(WebsocketConsumer):
    def connect(self):
        mona.export({"room": self.scope["url_route"]["kwargs"]["room"]})
        self.accept()

    def receive(self, text_data=None, bytes_data=None):
        self.send(text_data=text_data.upper())


websocket_urlpatterns = [path("ws/chat/<str:room>/", Chat.as_asgi())]
"""
CHANNELS_THEN = """
import asyncio
from channels.testing import WebsocketCommunicator


async def talk():
    communicator = WebsocketCommunicator(application, "/ws/chat/lobby/")
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_to(text_data="hi")
    assert await communicator.receive_from() == "HI"
    await communicator.disconnect()


asyncio.run(talk())
"""


def expect_channels(contexts: Contexts, _: Any) -> None:
    fields = only(contexts, "WEBSOCKET")
    assert fields["room"] == "lobby" and fields["http_route"] == "/ws/chat/<str:room>/"
    assert (fields["messages_received"], fields["messages_sent"]) == (1, 1)


def expect_monitor(contexts: Contexts, _: Any) -> None:
    request = only(contexts, "FRAUD_CHECK")  # the request's own context, renamed
    assert (request["team"], request["http_method"], request["http_status_code"]) == (
        "risk",
        "GET",
        200,
    )
    assert "duration_ms" in only(contexts, "NIGHTLY_RETRAIN")


def expect_context(contexts: Contexts, _: Any) -> None:
    assert contexts["FRAUD_MODEL|tx-1"] == {
        "score": 0.87,
        "model_version": "v3",
        "latency_ms": [12.5],
    }


def expect_celery(contexts: Contexts, _: Any) -> None:
    fields = only(contexts, "shop.add")
    assert (fields["task_name"], fields["state"], fields["sum"]) == ("shop.add", "SUCCESS", 5)


def expect_lambda(contexts: Contexts, _: Any) -> None:
    fields = only(contexts, "ORDER_HANDLER")
    assert (fields["order_id"], fields["score"]) == ("o-1", 0.42) and "duration_ms" in fields


def json_lines(text: str) -> list[dict[str, Any]]:
    found = []
    for line in text.splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return found


def expect_log_filter(_: Contexts, result: subprocess.CompletedProcess[str]) -> None:
    scored = [line for line in json_lines(result.stderr) if line.get("message") == "scored"]
    assert scored == [
        {
            "level": "INFO",
            "message": "scored",
            "mona_context_id": "0b6f-1",
            "mona_context_class": "HTTP_REQUEST",
        }
    ], result.stderr


def expect_structlog(_: Contexts, result: subprocess.CompletedProcess[str]) -> None:
    scored = [line for line in json_lines(result.stdout) if line.get("event") == "scored"]
    assert scored[-1] == {
        "event": "scored",
        "mona_context_id": "0b6f-2",
        "mona_context_class": "HTTP_REQUEST",
    }, result.stdout
    assert scored[0]["mona_context_id"] == ""  # the block's own call, outside a context


def expect_compat(contexts: Contexts, _: Any) -> None:
    assert contexts["LEGACY|l-1"] == {"score": 0.5}


QUICK_START = next(block for block in BLOCKS if block.heading == "Quick start")

HARNESSES = [
    Harness(
        "Quick start",
        "MonaFlask(app",
        then="""
            response = app.test_client().post("/predict", json={"items": [1, 2, 3]})
            assert response.status_code == 200, response.status_code
        """,
        expect=expect_quick_start,
    ),
    Harness(
        "aiohttp",
        "instrument(app",
        prelude="""
            import functools
            from aiohttp import web as _web
            _web.run_app = functools.partial(_web.run_app, host="127.0.0.1", port=PORT, print=None)
        """,
        server=drive_aiohttp,
        expect=expect_aiohttp,
    ),
    Harness(
        "Websockets",
        "websocket_application(",
        prelude=CHANNELS_PRELUDE,
        then=CHANNELS_THEN,
        expect=expect_channels,
    ),
    Harness(
        "`@monitor`, and code outside requests",
        "NIGHTLY_RETRAIN",
        then="""
            from wsgiref.util import setup_testing_defaults
            from mona_middleware.wsgi import MonaWSGIMiddleware

            retrain()

            def view(environ, start_response):  # a request: check() names its context
                check(environ)
                start_response("200 OK", [])
                return [b"ok"]

            environ = {}
            setup_testing_defaults(environ)
            wsgi = MonaWSGIMiddleware(view, handle_sigterm=False)
            assert b"".join(wsgi(environ, lambda *status_and_headers: None)) == b"ok"
        """,
        expect=expect_monitor,
    ),
    Harness(
        "`@monitor`, and code outside requests",
        "FRAUD_MODEL",
        prelude="""
            from types import SimpleNamespace
            transaction, score = SimpleNamespace(id="tx-1"), 0.87
        """,
        expect=expect_context,
    ),
    Harness(
        "Celery",
        "MonaCelery(app)",
        then="""
            @app.task(name="shop.add")
            def add(x, y):
                mona.export({"sum": x + y})
                return x + y

            assert add.apply(args=(2, 3)).get() == 5
            # The broker the block names: its transport and client load (no connection).
            assert type(app.connection_for_write().transport).__module__ == "kombu.transport.redis"
        """,
        expect=expect_celery,
    ),
    Harness(
        "gevent",
        "mona_middleware.gevent.patch()",
        then="""
            import gevent

            with mona.context("GEVENT_JOB", context_id="g-1"):
                gevent.spawn(lambda: mona.export({"in_greenlet": True})).join()
            assert mona.flush(10)
            found = [json.loads(line) for line in open("mona-messages.jsonl")]
            found = [m["message"] for m in found if m["contextId"] == "g-1"]
            assert found == [{"in_greenlet": True}], found
        """,
    ),
    Harness(
        "Serverless (AWS Lambda)",
        "ORDER_HANDLER",
        prelude="""
            def score(event):
                return 0.42
        """,
        then="""
            assert handler({"order_id": "o-1"}, None) == {"statusCode": 200}
            # flush=True: delivered before the handler returned, with no flush() of ours
            sent = [json.loads(line) for line in open("mona-messages.jsonl")]
            assert [m["arcClass"] for m in sent] == ["ORDER_HANDLER"], sent
        """,
        expect=expect_lambda,
    ),
    Harness(
        "Testing your app",
        "mona_capture",
        pytest=QUICK_START.code
        + textwrap.dedent(
            """
            import pytest


            @pytest.fixture
            def client():
                return app.test_client()
            """
        ),
    ),
    Harness(
        "Across services",
        "propagate(requests.Session())",
        then="""
            import threading
            from http.server import BaseHTTPRequestHandler, HTTPServer

            class Echo(BaseHTTPRequestHandler):
                def do_GET(self):
                    body = (self.headers.get("baggage") or "").encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

                def log_message(self, *args):
                    pass

            server = HTTPServer(("127.0.0.1", 0), Echo)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            url = f"http://127.0.0.1:{server.server_address[1]}/"
            session.trust_env = False
            with mona.context("GATEWAY", context_id="gw-1"):
                for answer in (session.get(url, timeout=10), client.get(url, timeout=10)):
                    assert "mona.context_id=gw-1" in answer.text, answer.text
                    assert "mona.context_class=GATEWAY" in answer.text, answer.text
            assert session.get(url, timeout=10).text == ""  # outside a context: nothing
            server.shutdown()
        """,
    ),
    Harness(
        "Across services",
        "ContextFilter()",
        then="""
            logging.getLogger().setLevel(logging.INFO)
            with mona.context("HTTP_REQUEST", context_id="0b6f-1"):
                logging.getLogger("app").info("scored")
        """,
        expect=expect_log_filter,
    ),
    Harness(
        "Across services",
        "add_mona_context",
        then="""
            with mona.context("HTTP_REQUEST", context_id="0b6f-2"):
                structlog.get_logger().info("scored")
        """,
        expect=expect_structlog,
    ),
    Harness(
        "Coming from mona_sdk or mona-client",
        "compat.mona_sdk import",
        then="""
            with client.new_mona_context("LEGACY", "l-1"):
                client.export({"score": 0.5})
            assert issubclass(MonaThread, threading.Thread) and callable(Client)
        """,
        expect=expect_compat,
    ),
]

SCRIPT = """\
import json, os, sys, threading
import mona_middleware as mona

PORT = int(os.environ.get("PORT", "0"))
{prelude}
# ---- {block}
{code}
# ---- driven by tests/test_readme.py
{then}
assert mona.flush(10), "the exporter did not deliver in time"
from mona_middleware.aggregate import aggregate

sent = []
if os.path.exists("mona-messages.jsonl"):
    with open("mona-messages.jsonl") as lines:
        sent = [json.loads(line) for line in lines]
contexts = {{f"{{c}}|{{i}}": fields for (c, i), fields in aggregate(sent).items()}}
with open("contexts.json", "w") as out:
    json.dump(contexts, out)
"""


def harness_of(block: Block) -> Harness | None:
    found = [harness for harness in HARNESSES if harness.matches(block)]
    assert len(found) <= 1, f"{block}: more than one harness matches"
    return found[0] if found else None


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONA_", "AUTH_MODE"))}
    env.update({"MONA_MIDDLEWARE_FLUSH_INTERVAL": "0.05", "PYTHONUNBUFFERED": "1"}, **extra)
    env["NO_PROXY"] = "127.0.0.1,localhost"
    return env


def run_script(block: Block, harness: Harness | None, workdir: Path) -> tuple[Contexts, Any]:
    """The block as a script (with its harness around it); what it sent, as Mona stores it."""
    harness = harness or Harness(block.heading, "")
    script = workdir / "readme_block.py"
    script.write_text(
        SCRIPT.format(
            prelude=textwrap.dedent(harness.prelude),
            block=block,
            code=block.code,
            then=textwrap.dedent(harness.then),
        ),
        encoding="utf-8",
    )
    port = free_port()
    env = clean_env(PORT=str(port), XDG_CACHE_HOME=str(workdir / "cache"))
    command = [sys.executable, str(script)]
    if harness.server is None:
        result = subprocess.run(
            command, cwd=workdir, env=env, capture_output=True, text=True, timeout=120
        )
    else:
        result = serve_and_stop(command, workdir, env, port, harness.server)
    assert result.returncode == 0, f"{block} failed:\n{result.stdout}\n{result.stderr}"
    return json.loads((workdir / "contexts.json").read_text()), result


def serve_and_stop(
    command: list[str], workdir: Path, env: dict[str, str], port: int, drive: Callable
) -> subprocess.CompletedProcess[str]:
    """Start the block's server, wait for its port, drive it, then Ctrl-C it (it flushes)."""
    process = subprocess.Popen(
        command, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.communicate()
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, "the block's server never listened"
            time.sleep(0.05)
        drive(f"http://127.0.0.1:{port}")
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def test_the_readme_has_python_blocks_and_harnesses_match_them():
    assert len(BLOCKS) >= 10
    for harness in HARNESSES:
        matched = [block for block in BLOCKS if harness.matches(block)]
        assert len(matched) == 1, f"harness {harness.heading!r}/{harness.contains!r}: {matched}"
    skipped = [block for block in BLOCKS if block.skip is not None]
    assert len(skipped) <= MAX_SKIPPED, [str(block) for block in skipped]
    assert all(len(block.skip or "-----") >= 5 for block in skipped), "say why it is skipped"


def test_python_blocks_are_extracted_with_their_section_and_indentation():
    text = (
        "# Top\n\n## Part\n\n```python\nx = 1\n```\n\n- a list:\n\n  ```python\n  y = 2\n"
        "  if y:\n      y += 1\n  ```\n\n```sh\n# not a heading\n```\n\n"
        "<!-- readme-test: skip: needs a GPU -->\n```python\nz = 3\n```\n"
    )
    assert python_blocks(text) == [
        Block(5, "Part", "x = 1\n", None),
        Block(11, "Part", "y = 2\nif y:\n    y += 1\n", None),
        Block(22, "Part", "z = 3\n", "needs a GPU"),
    ]


def missing_modules(block: Block, harness: Harness | None) -> list[str]:
    """The top-level packages the block (and its harness) import that this env lacks."""
    sources = [block.code]
    if harness is not None:
        sources += [
            textwrap.dedent(part)
            for part in (harness.prelude, harness.then, harness.pytest)
            if part
        ]
    roots: set[str] = set()
    for source in sources:
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                roots.update(alias.name.partition(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                roots.add(node.module.partition(".")[0])
    return sorted(root for root in roots if importlib.util.find_spec(root) is None)


def test_missing_modules_reads_every_import() -> None:
    block = Block(
        1,
        "Part",
        "import os\nfrom no_such_pkg_here.sub import x\nimport also_missing_pkg as y\n",
        None,
    )
    assert missing_modules(block, None) == ["also_missing_pkg", "no_such_pkg_here"]


@pytest.mark.processes
@pytest.mark.parametrize("block", BLOCKS, ids=lambda block: f"line{block.line}")
def test_each_python_block_runs(block: Block, tmp_path: Path) -> None:
    if block.skip is not None:
        pytest.skip(f"{block}: {block.skip}")
    harness = harness_of(block)
    missing = missing_modules(block, harness)
    if missing:  # the core env has no framework: a reader of that section has it installed
        pytest.skip(f"{block}: needs {', '.join(missing)}, not installed here")
    if harness is not None and harness.pytest is not None:
        (tmp_path / "conftest.py").write_text(harness.pytest, encoding="utf-8")
        (tmp_path / "test_readme_block.py").write_text(block.code, encoding="utf-8")
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "test_readme_block.py",
            ],
            cwd=tmp_path,
            env=clean_env(XDG_CACHE_HOME=str(tmp_path / "cache")),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"{block} failed:\n{result.stdout}\n{result.stderr}"
        assert re.search(r"^1 passed", result.stdout, re.MULTILINE), result.stdout
        return
    contexts, result = run_script(block, harness, tmp_path)
    if harness is not None and harness.expect is not None:
        harness.expect(contexts, result)


def test_the_quick_subset_leaves_out_modules_that_exist():
    """The README's `-m "not processes"`: tests/conftest.py names real modules."""
    from .conftest import PROCESS_MODULES

    for entry in PROCESS_MODULES:
        module, _, test = entry.partition("::")
        assert (ROOT / module).is_file(), entry
        assert not test or f"def {test}(" in (ROOT / module).read_text(encoding="utf-8"), entry
    assert '-m "not processes"' in README.read_text(encoding="utf-8")


# -- the Quick start's "see it locally", and the runnable examples it lists ----------------


def exports(banner: str) -> dict[str, str]:
    """The ``export NAME=value`` lines a collector prints, as a dict."""
    import shlex

    found = {}
    for line in banner.splitlines():
        if line.strip().startswith("export "):
            name, _, value = line.strip().removeprefix("export ").partition("=")
            found[name] = shlex.split(value)[0]
    return found


@pytest.mark.processes
def test_see_it_locally_as_the_quick_start_says(tmp_path: Path) -> None:
    """The collector, the Quick start app run with the environment it prints, a request."""
    pytest.importorskip("flask")
    (tmp_path / "app.py").write_text(QUICK_START.code, encoding="utf-8")
    collector_port, app_port = free_port(), free_port()
    script = Path(sys.executable).with_name("mona-middleware")
    collector = subprocess.Popen(
        [str(script), "collector", "--port", str(collector_port), "--db", "c.sqlite3"],
        cwd=tmp_path, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    app = None
    try:
        banner = ""
        while "Press Ctrl-C to stop." not in banner:
            line = collector.stdout.readline()
            assert line, banner
            banner += line
        env = {**clean_env(), **exports(banner)}
        assert set(exports(banner)) >= {"MONA_SDK_API_KEY", "MONA_SDK_OVERRIDE_REST_API_URL"}
        app = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "app", "run", "--port", str(app_port)],
            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        url = f"http://127.0.0.1:{app_port}/predict"
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = requests.post(url, json={"items": [3, 5]}, timeout=5)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline and app.poll() is None, "the app never started"
                time.sleep(0.1)
        assert answer.json() == {"ok": True}
        page = f"http://127.0.0.1:{collector_port}"
        assert "<html" in requests.get(page + "/", timeout=5).text.lower()
        deadline = time.monotonic() + 15  # the page shows it "within a second or two"
        while not (contexts := requests.get(page + "/api/contexts", timeout=5).json()["contexts"]):
            assert time.monotonic() < deadline, "the request never reached the collector"
            time.sleep(0.1)
        [context] = contexts
        assert context["class"] == "RECOMMENDATIONS"
        assert (
            context["fields"]["item_count"] == 2 and context["fields"]["http_route"] == "/predict"
        )
    finally:
        for process in (app, collector):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)


@pytest.mark.processes
def test_the_quickstart_example_uses_the_environment(tmp_path: Path) -> None:
    """``example_apps/quickstart.py``: a local file without settings, a collector with them."""
    from mona_middleware.collector import Collector

    command = [sys.executable, str(ROOT / "example_apps" / "quickstart.py")]
    alone = subprocess.run(
        command, cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=60
    )
    assert alone.returncode == 0, alone.stderr
    written = (tmp_path / "mona-messages.jsonl").read_text().splitlines()
    assert f"{len(written)} messages appended to {tmp_path / 'mona-messages.jsonl'}" in alone.stdout

    with Collector(port=0, db=str(tmp_path / "c.sqlite3")) as collector:
        sent = subprocess.run(
            command, cwd=tmp_path, env={**clean_env(), **collector.env()}, capture_output=True,
            text=True, timeout=60,
        )  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        assert collector.store.context_count() == 5
        assert f"5 contexts sent to {collector.export_url}" in sent.stdout
    assert (tmp_path / "mona-messages.jsonl").read_text().splitlines() == written  # untouched
