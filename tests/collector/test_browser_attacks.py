"""Web pages attacking a collector on the same laptop, in a real headless Chromium.

- Cross-origin: a page on another loopback origin (127.0.0.1, another port) tries every
  write a browser lets it send without asking (``no-cors`` text/plain, a form post), a
  JSON write (which needs a preflight), and reads.
- DNS rebinding: the attacker's name first serves the attacker's page, then resolves
  to 127.0.0.1, so the page's same-origin requests reach the collector with the
  attacker's ``Host``. A proxy plays the attacker's DNS here: ``/attack.html`` comes from
  the attacker, every other path from the collector, all under ``evil.example``.

Each page writes what it achieved into ``#result``; the collector's own store says
what reached it. A control run against a collector told to serve any host shows the
rebinding page would read everything, so the refusal is what the test sees.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from .browser import needs_chromium, render

pytestmark = needs_chromium

PERSONAL = "personal-data-of-a-customer"
WRITE = json.dumps(
    {"userId": "local", "messages": [{"arcClass": "PWNED", "contextId": "x", "message": {"a": 1}}]}
)

# The classic JSON-by-form trick: a text/plain form whose one field spells a JSON body.
FORM_FIELD = (
    '{"userId":"local","messages":[{"arcClass":"PWNED","contextId":"form",'
    '"message":{"a":1}}],"pad":"'
)
CROSS_ORIGIN_PAGE = """<!doctype html><title>attacker</title>
<iframe name="sink" id="sink"></iframe>
<form id="form" method="POST" action="TARGET/monaExport" enctype="text/plain" target="sink">
<input name='FORM_FIELD' value='"}'>
</form>
<pre id="result"></pre>
<script>
const target = "TARGET";
const body = BODY;
const results = {};
async function attempt(name, run) {
  try { results[name] = await run(); } catch (error) { results[name] = "blocked " + error.name; }
}
(async () => {
  for (const path of ["/monaExport", "/export"]) {
    for (const type of ["text/plain", "application/x-www-form-urlencoded"]) {
      await attempt("no-cors " + type + " " + path, () => fetch(target + path, {
        method: "POST", mode: "no-cors", headers: { "Content-Type": type }, body,
      }).then((response) => response.type));
    }
  }
  await attempt("json write", () => fetch(target + "/monaExport", {
    method: "POST", headers: { "Content-Type": "application/json" }, body,
  }).then((response) => response.status));
  await attempt("read contexts", () => fetch(target + "/api/contexts")
    .then((response) => response.text()));
  await attempt("read page", () => fetch(target + "/").then((response) => response.text()));
  document.getElementById("form").submit();
  setTimeout(() => {
    document.getElementById("result").textContent = JSON.stringify(results);
  }, 1000);
})();
</script>"""

REBINDING_PAGE = """<!doctype html><title>attacker</title><pre id="result"></pre>
<script>
const body = BODY;
const results = {};
async function attempt(name, run) {
  try { results[name] = await run(); } catch (error) { results[name] = "blocked " + error.name; }
}
const answer = (response) => response.text().then((text) => response.status + " " + text);
(async () => {
  await attempt("read contexts", () => fetch("/api/contexts").then(answer));
  await attempt("read health", () => fetch("/api/health").then(answer));
  await attempt("read page", () => fetch("/").then(answer));
  await attempt("json write", () => fetch("/monaExport", {
    method: "POST", headers: { "Content-Type": "application/json" }, body,
  }).then(answer));
  await attempt("token", () => fetch("/identity/resources/auth/v1/api-token", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ clientId: "k", secret: "s" }),
  }).then(answer));
  document.getElementById("result").textContent = JSON.stringify(results);
})();
</script>"""


@contextlib.contextmanager
def _serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _page_handler(page: str) -> type[BaseHTTPRequestHandler]:
    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            payload = page.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    return Page


def _rebinding_proxy(page: str, collector_port: int) -> type[BaseHTTPRequestHandler]:
    """An HTTP proxy for evil.example: the attacker's page, then the collector."""

    class Proxy(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _relay(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/attack.html":
                status, headers, payload = 200, {"Content-Type": "text/html"}, page.encode()
            else:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                forwarded = {
                    name: value
                    for name, value in self.headers.items()
                    if name.lower() not in ("proxy-connection", "connection")
                }
                upstream = http.client.HTTPConnection("127.0.0.1", collector_port, timeout=10)
                target = url.path + (f"?{url.query}" if url.query else "")
                upstream.request(self.command, target, body=body, headers=forwarded)
                answer = upstream.getresponse()
                status, payload = answer.status, answer.read()
                headers = {name: value for name, value in answer.getheaders()
                           if name.lower() not in ("connection", "transfer-encoding",
                                                   "content-length")}  # fmt: skip
                upstream.close()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_OPTIONS = _relay

        def log_message(self, *args: object) -> None:
            pass

    return Proxy


def _seed(running) -> None:
    message = {"arcClass": "ORDERS", "contextId": PERSONAL, "message": {"email": PERSONAL}}
    assert running.post("/export", {"userId": "local", "messages": [message]}).ok


def _result(page) -> dict:
    return json.loads(page.by_id("result").text)


def test_a_page_on_another_loopback_origin_can_neither_write_nor_read(
    start_collector, tmp_path: Path
) -> None:
    running = start_collector("--db", ":memory:", "-v")  # -v: its log shows what arrived
    _seed(running)
    page = (
        CROSS_ORIGIN_PAGE.replace("TARGET", running.url)
        .replace("BODY", json.dumps(WRITE))
        .replace("FORM_FIELD", FORM_FIELD)
    )

    with _serve(_page_handler(page)) as port:
        result = _result(render(f"http://127.0.0.1:{port}/", tmp_path, budget_ms=8000))

    # The browser sent every write (the log has them), the collector refused each; its
    # answers carry Cross-Origin-Resource-Policy, so the page cannot even see them.
    refused = [line for line in running.stderr if '"POST /' in line and '" 403 ' in line]
    assert len(refused) == 4 + 1, running.stderr  # four no-cors fetches and the form
    assert result["no-cors text/plain /monaExport"].startswith("blocked")
    assert running.get("/api/classes").json()["classes"].keys() == {"ORDERS"}
    assert running.get("/api/health").json()["messages"] == 1
    assert result["json write"].startswith("blocked")  # no CORS grant to the preflight
    assert result["read contexts"].startswith("blocked")
    assert result["read page"].startswith("blocked")
    assert PERSONAL not in json.dumps(result)


@pytest.mark.parametrize("serve_any_host", [False, True], ids=["default", "control"])
def test_a_rebinding_page_gets_nothing(start_collector, tmp_path: Path, serve_any_host) -> None:
    running = start_collector("--db", ":memory:", *(["--allow-host", "*"] * serve_any_host))
    _seed(running)
    page = REBINDING_PAGE.replace("BODY", json.dumps(WRITE))
    origin = f"http://evil.example:{running.port}"

    with _serve(_rebinding_proxy(page, running.port)) as port:
        dom = render(
            origin + "/attack.html", tmp_path, budget_ms=8000,
            extra=[f"--proxy-server=http://127.0.0.1:{port}"],
        )  # fmt: skip
    result = _result(dom)

    if serve_any_host:  # the control: the same page, had the Host not been checked
        assert result["read contexts"].startswith("200") and PERSONAL in result["read contexts"]
        return
    assert {name: answer[:3] for name, answer in result.items()} == {
        "read contexts": "403", "read health": "403", "read page": "403",
        "json write": "403", "token": "403",
    }  # fmt: skip
    assert PERSONAL not in json.dumps(result)
    assert running.get("/api/health").json()["messages"] == 1
