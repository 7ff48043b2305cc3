"""A small JSON-over-HTTP/1.1 request handler on top of ``http.server``.

It owns the parts that keep a dev server robust against bad clients: a size limit
checked before a body is read, bounded gzip inflation (a 10 KB zip bomb must not
become gigabytes), a bound on the JSON values a body may hold checked before it is
decoded (3,000,000 ``{}`` fit in 9 MB and would take 800 MB as Python objects), JSON for
every answer including the stdlib's own protocol errors (finite JSON only: never
``Infinity``), closing the connection whenever a request body was left unread, and log
lines a terminal can print safely (control characters escaped, tokens masked).
"""

from __future__ import annotations

import json
import math
import re
import zlib
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any

from .._util.log import logger


class HttpError(Exception):
    """Ends a request with ``status`` and a JSON error body."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def _inflate(raw: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(raw, limit + 1)
    except zlib.error as exc:
        raise HttpError(400, f"body is not valid gzip: {exc}") from None
    if len(data) > limit:
        raise HttpError(413, f"body inflates to more than {limit} bytes")
    if not inflater.eof:
        raise HttpError(400, "body is truncated gzip")
    return data


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# A JSON string, escapes included (the unrolled form: linear, no backtracking).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')


def _structure(data: bytes) -> int:
    return data.count(b",") + data.count(b":") + data.count(b"[") + data.count(b"{") + 1


def json_values_bound(raw: bytes, limit: int) -> int:
    """An upper bound of the values (keys included) in the JSON text ``raw``: every
    value but the first follows a ``,``, ``:``, ``[`` or ``{``. Counted on the raw bytes
    first; only when that passes ``limit`` again with strings blanked out, since a
    string may hold any number of commas."""
    bound = _structure(raw)
    return bound if bound <= limit else _structure(_STRING.sub(b'""', raw))


def finite_json(value: Any) -> Any:
    """``value`` with any non-finite float replaced by its name (``"inf"``, ``"-inf"``,
    ``"nan"``): JSON cannot carry them, and ``json.dumps`` would write ``Infinity``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {key: finite_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(item) for item in value]
    return value


_CONTROL = {code: f"\\x{code:02x}" for code in [*range(0x20), *range(0x7F, 0xA0)]}
_SECRET_PARAM = re.compile(r"((?:^|[?&;\s])(?:token|access_token|secret)=)[^&;\s\"]*", re.I)


def safe_for_log(text: str) -> str:
    """``text`` with tokens in query strings masked and control characters escaped, so a
    request line can neither leak the page's token nor drive the terminal."""
    return _SECRET_PARAM.sub(r"\1***", text).translate(_CONTROL)


class JsonRequestHandler(BaseHTTPRequestHandler):
    """Base handler: subclasses implement ``handle_request`` and raise ``HttpError``."""

    protocol_version = "HTTP/1.1"
    server_version = "MonaCollector"
    max_body = 10 * 1024 * 1024
    max_values = 1_000_000
    # A client that announces a body and never sends it must not hold a thread forever.
    timeout = 30.0

    def handle_one_request(self) -> None:
        self._body_read = False
        super().handle_one_request()

    def handle_request(self) -> None:  # pragma: no cover - overridden
        raise HttpError(404, "not found")

    def error_body(self, message: str) -> dict[str, Any]:
        """The JSON shape of an error; endpoints that mimic Mona override it."""
        return {"error": message}

    def _dispatch(self) -> None:
        try:
            self.handle_request()
        except HttpError as exc:
            self.send_json(exc.status, self.error_body(exc.message), exc.headers)
        except Exception:
            logger.exception("collector: %s %s failed", self.command, safe_for_log(self.path))
            self.send_json(500, self.error_body("internal error; see the collector's log"))

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _dispatch

    def read_body(self) -> bytes:
        """The request body, size-checked before reading and gunzipped if sent so."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise HttpError(411, "chunked bodies are not supported; send Content-Length")
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            raise HttpError(400, "Content-Length is not a number") from None
        if length < 0:
            raise HttpError(400, "Content-Length is negative")
        if length > self.max_body:
            raise HttpError(413, f"body is larger than {self.max_body} bytes")
        try:
            raw = self.rfile.read(length)
        except TimeoutError:
            raise HttpError(408, f"the body did not arrive within {self.timeout} s") from None
        self._body_read = True
        encoding = self.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding == "gzip":
            return _inflate(raw, self.max_body)
        if encoding not in ("", "identity"):
            raise HttpError(415, f"Content-Encoding {encoding!r} is not supported; use gzip")
        return raw

    def read_json(self) -> Any:
        """The body decoded as JSON (NaN and Infinity refused, as strict parsers do), if it
        holds at most ``max_values`` values: decoding costs ~64 bytes a value."""
        raw = self.read_body()
        bound = json_values_bound(raw, self.max_values)
        if bound > self.max_values:
            raise HttpError(413, f"body holds up to {bound} JSON values; at most {self.max_values}")
        try:
            return json.loads(raw, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            raise HttpError(400, f"body is not valid JSON: {exc}") from None

    def send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        try:
            payload = json.dumps(body, allow_nan=False).encode()
        except ValueError:
            payload = json.dumps(finite_json(body), allow_nan=False).encode()
        self.send_bytes(status, payload, "application/json", headers)

    def send_bytes(
        self, status: int, payload: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        """Answer; closes the connection if the request's body was not consumed."""
        if self._has_unread_body():
            # An unread body would be parsed as the next request on this connection.
            self.close_connection = True
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        # Other origins may not embed what we answer (<script src>, <img>, fetch no-cors).
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _has_unread_body(self) -> bool:
        headers = getattr(self, "headers", None)
        if getattr(self, "_body_read", False) or headers is None:
            return False
        return headers.get("Content-Length", "0").strip() != "0" or "Transfer-Encoding" in headers

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The stdlib's protocol errors (bad request line, 414, 431...) as JSON too."""
        self.close_connection = True
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":
            # Garbage is not HTTP/0.9 worth a header-less answer: give a real status line.
            self.request_version = "HTTP/1.0"
        text = message or HTTPStatus(code).phrase
        if not getattr(self, "command", None):
            self.command = "GET"
        self.send_json(code, self.error_body(text))

    def log_message(self, format: str, *args: Any) -> None:
        # The request line is the client's: the page's ?token= and escape sequences.
        logger.debug("collector: %s %s", self.address_string(), safe_for_log(format % args))
