"""Local backends for every tool, in one process of their own, counting what arrives.

- Mona: the repository's ``tests/mona_server.MonaTestServer`` (token, ``/export``,
  validation of every message), the same server the test suite trusts; mona_sdk and
  our exporter both authenticate against it.
- OpenTelemetry: ``POST /v1/traces`` (OTLP/HTTP protobuf); spans are counted by
  decoding the request with ``opentelemetry-proto`` when it is installed.
- Sentry: ``POST /api/<project>/envelope/`` (gzip, brotli or plain); transactions and
  the SDK's own ``client_report`` of what it discarded are counted.

Control: ``GET /_bench/stats`` returns every counter as JSON, ``POST /_bench/reset``
zeroes them. Run as ``python -m benchmarks.sinks``: it prints ``READY {endpoints}`` and
serves until its stdin closes, so it never outlives the runner.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

from .common import child_env

try:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )
except ImportError:  # OTel not installed: its scenario is skipped anyway
    ExportTraceServiceRequest = ExportTraceServiceResponse = None

READY = "READY "


class _Counts:
    """Counters of the trace sink, behind one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.otlp_posts = 0
        self.otlp_spans = 0
        self.sentry_envelopes = 0
        self.sentry_items: Counter[str] = Counter()
        self.sentry_discarded: Counter[str] = Counter()
        self.connections = 0
        self.errors: list[str] = []
        self.cpu_started = time.process_time()

    def snapshot(self) -> dict[str, Any]:
        return {
            "otlp": {"posts": self.otlp_posts, "spans": self.otlp_spans},
            "sentry": {
                "envelopes": self.sentry_envelopes,
                "transactions": self.sentry_items["transaction"],
                "items": dict(self.sentry_items),
                "discarded": dict(self.sentry_discarded),
            },
            "trace_connections": self.connections,
            "errors": self.errors[-5:],
            "sink_cpu_s": time.process_time() - self.cpu_started,  # all the sinks' threads
            "process_cpu_s": time.process_time(),  # since the sink process started
        }


class _TraceHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as both SDKs use it

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.counts.lock:
            self.server.counts.connections += 1

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/_bench/stats":
            self._reply(200, json.dumps(self.server.stats()).encode(), "application/json")
        else:
            self._reply(404, b"")

    def do_POST(self) -> None:
        body = self._body()
        try:
            if self.path == "/_bench/reset":
                self.server.reset()
                self._reply(200, b"{}", "application/json")
            elif self.path == "/v1/traces":
                self._otlp(body)
            elif self.path.startswith("/api/") and self.path.rstrip("/").endswith("/envelope"):
                self._sentry(body)
            else:
                self._reply(404, b"")
        except Exception as exc:  # a sink bug must show in the results, not hang a client
            with self.server.counts.lock:
                self.server.counts.errors.append(f"{self.path}: {exc!r}")
            self._reply(400, b"")

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                chunk = self.rfile.read(size)
                self.rfile.readline()
                if not size:
                    break
                chunks.append(chunk)
            raw = b"".join(chunks)
        else:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        encoding = (self.headers.get("Content-Encoding") or "").lower()
        if encoding == "gzip":
            return gzip.decompress(raw)
        if encoding == "br":
            import brotli  # only present if the SDK chose brotli, which needs it too

            return brotli.decompress(raw)
        return raw

    def _otlp(self, body: bytes) -> None:
        spans = 0
        if ExportTraceServiceRequest is not None:
            request = ExportTraceServiceRequest.FromString(body)
            spans = sum(
                len(scope.spans) for rs in request.resource_spans for scope in rs.scope_spans
            )
        counts = self.server.counts
        with counts.lock:
            counts.otlp_posts += 1
            counts.otlp_spans += spans
        answer = b"" if ExportTraceServiceResponse is None else ExportTraceServiceResponse()
        payload = answer if isinstance(answer, bytes) else answer.SerializeToString()
        self._reply(200, payload, "application/x-protobuf")

    def _sentry(self, body: bytes) -> None:
        items = envelope_items(body)
        discarded: Counter[str] = Counter()
        for kind, payload in items:
            if kind == "client_report":
                for entry in json.loads(payload).get("discarded_events", []):
                    key = f"{entry.get('category')}:{entry.get('reason')}"
                    discarded[key] += int(entry.get("quantity", 0))
        counts = self.server.counts
        with counts.lock:
            counts.sentry_envelopes += 1
            counts.sentry_items.update(kind for kind, _ in items)
            counts.sentry_discarded.update(discarded)
        self._reply(200, b"{}", "application/json")

    def _reply(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def envelope_items(body: bytes) -> list[tuple[str, bytes]]:
    """``(type, payload)`` of each item of a Sentry envelope (header line, then items).

    >>> envelope_items(b'{}\\n{"type":"transaction","length":2}\\n{}\\n{"type":"x"}\\nab')
    [('transaction', b'{}'), ('x', b'ab')]
    """
    items = []
    pos = body.find(b"\n") + 1 if b"\n" in body else len(body)
    while pos < len(body):
        end = body.find(b"\n", pos)
        end = len(body) if end < 0 else end
        line = body[pos:end].strip()
        pos = end + 1
        if not line:
            continue
        header = json.loads(line)
        length = header.get("length")
        if length is None:
            end = body.find(b"\n", pos)
            end = len(body) if end < 0 else end
            payload, pos = body[pos:end], end + 1
        else:
            payload, pos = body[pos : pos + length], pos + length + 1
        items.append((str(header.get("type")), payload))
    return items


class _TraceServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, mona: Any) -> None:
        self.counts = _Counts()
        self.mona = mona
        super().__init__(("127.0.0.1", 0), _TraceHandler)

    def server_bind(self) -> None:  # no reverse DNS lookup of 127.0.0.1
        import socketserver

        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", self.server_address[1]

    def reset(self) -> None:
        with self.counts.lock:
            self.counts.reset()
        self.mona.clear()

    def stats(self) -> dict[str, Any]:
        with self.counts.lock:
            data = self.counts.snapshot()
        exports = self.mona.export_requests()
        accepted = [r for r in exports if r.status == 200 and isinstance(r.json, dict)]
        data["mona"] = {
            "posts": len(exports),
            "posts_ok": len(accepted),
            "messages": sum(len(r.json.get("messages") or ()) for r in accepted),
            "connections": self.mona.connections,
            "token_requests": self.mona.token_requests,
            "errors": self.mona.errors[-3:],
        }
        return data


def serve() -> None:
    """The sink process: start both servers, announce them, serve until stdin closes."""
    from tests.mona_server import MonaTestServer

    mona = MonaTestServer().start()
    trace = _TraceServer(mona)
    threading.Thread(target=trace.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{trace.server_port}"
    endpoints = {
        "control": base,
        "otlp_traces": base + "/v1/traces",
        "sentry_dsn": f"http://benchkey@127.0.0.1:{trace.server_port}/1",
        "mona": {
            "api_key": mona.api_key,
            "secret": mona.secret,
            "token_url": mona.token_url,
            "refresh_url": mona.refresh_url,
            "export_url": mona.export_url,
        },
    }
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sys.stdout.write(READY + json.dumps(endpoints) + "\n")
    sys.stdout.flush()
    with contextlib.suppress(KeyboardInterrupt):
        sys.stdin.read()  # EOF when the runner exits, however it exits
    trace.shutdown()
    mona.stop()


class SinkClient:
    """The control side of a running sink process."""

    def __init__(self, endpoints: dict[str, Any]) -> None:
        self.endpoints = endpoints
        self._session = requests.Session()

    def stats(self) -> dict[str, Any]:
        return self._session.get(self.endpoints["control"] + "/_bench/stats", timeout=30).json()

    def reset(self) -> None:
        self._session.post(self.endpoints["control"] + "/_bench/reset", timeout=30)

    def settled(self, quiet: float = 0.2, limit: float = 3.0) -> dict[str, Any]:
        """Stats once nothing has changed for ``quiet`` seconds (or after ``limit``)."""
        deadline = time.monotonic() + limit
        last = self.stats()
        while time.monotonic() < deadline:
            time.sleep(quiet)
            now = self.stats()
            if _counts(now) == _counts(last):
                return now
            last = now
        return last


def _counts(stats: dict[str, Any]) -> tuple:
    return (stats["otlp"]["spans"], stats["sentry"]["envelopes"], stats["mona"]["messages"])


class SinkProcess:
    """``with SinkProcess() as sink:`` the sinks in a child process, and a client to them."""

    def __enter__(self) -> SinkClient:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.sinks"],
            env=child_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.process.stdout.readline()
        if not line.startswith(READY):
            self.process.kill()
            raise RuntimeError(f"the sink process did not start: {line!r}")
        return SinkClient(json.loads(line[len(READY) :]))

    def __exit__(self, *exc_info: object) -> None:
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


if __name__ == "__main__":
    serve()
