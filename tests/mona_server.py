"""A real local HTTP server that speaks Mona's REST ingestion protocol, for tests.

Why a real server and not a mocked ``requests``: the exporter's interesting behaviour
lives in the transport (keep-alive reuse, gzip bodies, timeouts, refused connections,
``Retry-After``, token refresh), and a mock cannot prove any of it. This server listens
on 127.0.0.1, answers like Mona does (shared/docs/mona-rest-protocol.md), records every
request, and lets a test inject faults while it runs.

Standard library only, so it works in every test environment the package supports.
It folds accepted messages with :func:`mona_middleware.aggregate.aggregate`, so the
fixture and the package can never disagree about OVERWRITE/ADD/NEW.

Typical use::

    with MonaTestServer() as mona:
        mona.respond_with(503, headers={"Retry-After": "2"}, times=1)
        ...  # run the exporter against mona.export_url / mona.token_url
        assert mona.wait_for_messages(3, timeout=2)
        assert mona.contexts() == {...}

Idempotency keys (the IETF httpapi ``Idempotency-Key`` draft): an export carrying the
header is stored once per key; a retry with the same key gets the first answer again
(``Idempotent-Replayed: true``) and stores nothing, and a retry while the first is still
being processed gets 409. ``honour_idempotency=False`` makes a backend that ignores keys.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import copy
import email.utils
import gzip
import hashlib
import itertools
import json
import math
import secrets
import socket
import socketserver
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

try:
    from mona_middleware._util.protocol import ACTIONS
    from mona_middleware.aggregate import aggregate
except ModuleNotFoundError:  # a source checkout run with the bare ``pytest`` script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from mona_middleware._util.protocol import ACTIONS
    from mona_middleware.aggregate import aggregate

__all__ = ["FaultRotation", "FaultStep", "MonaTestServer", "RecordedRequest", "retry_after_date"]

TOKEN_PATH = "/identity/resources/auth/v1/api-token"
REFRESH_PATH = TOKEN_PATH + "/token/refresh"
EXPORT_PATH = "/export"
NOAUTH_EXPORT_PATH = "/monaExport"
EXPORT_PATHS = frozenset((EXPORT_PATH, NOAUTH_EXPORT_PATH))
KNOWN_PATHS = frozenset((TOKEN_PATH, REFRESH_PATH, *EXPORT_PATHS))

MODES = ("accept", "respond", "hang", "slow", "drop", "top_level_error")
IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"

# Seconds the serve loop may sleep before noticing a shutdown request: small, so that
# stop() and stop_listening() return quickly.
_POLL_INTERVAL = 0.05


def retry_after_date(delay: float) -> str:
    """An HTTP-date ``delay`` seconds from now, for the date form of ``Retry-After``.

    Clients must honour both forms (seconds and HTTP-date); this builds the second.
    """
    return email.utils.formatdate(time.time() + delay, usegmt=True)


def _b64url(data: bytes) -> str:
    """Base64url without padding, as JWT segments are encoded."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _is_iso8601(value: str) -> bool:
    """Whether ``value`` parses as ISO-8601 (``Z`` accepted also on Python 3.10)."""
    text = value[:-1] + "+00:00" if value[-1:] in ("Z", "z") else value
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _is_timestamp(value: Any) -> bool:
    """``null``, a finite Unix-seconds number, or an ISO-8601 string, as Mona accepts."""
    if value is None:
        return True
    if isinstance(value, bool):  # bool is an int subclass, but not a timestamp
        return False
    if isinstance(value, (int, float)):
        return math.isfinite(value)
    return isinstance(value, str) and _is_iso8601(value)


def _unquoted(key: str | None) -> str | None:
    """An ``Idempotency-Key`` value: the draft sends an sf-string (``"k"``); a bare
    token is taken too, as the same key."""
    if key is None:
        return None
    key = key.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    return key


def _message_error(message: Any) -> str | None:
    """Why one wire message would be rejected by Mona, or None when it is valid."""
    if not isinstance(message, dict):
        return "message entry must be a JSON object"
    arc_class = message.get("arcClass")
    if not isinstance(arc_class, str) or not arc_class:
        return "arcClass must be a non-empty string"
    fields = message.get("message")
    if not isinstance(fields, dict) or not fields:
        return "message must be a non-empty JSON object"
    action = message.get("action")
    if action is not None and action not in ACTIONS:
        return f"action must be one of {sorted(ACTIONS)} or null, got {action!r}"
    for key in ("exportTimestamp", "sendTimestamp"):
        if not _is_timestamp(message.get(key)):
            return f"{key} must be null, Unix seconds or an ISO-8601 string"
    context_id = message.get("contextId")
    if context_id is not None and not isinstance(context_id, str):
        return "contextId must be a string or null"
    return None


@dataclass
class RecordedRequest:
    """One HTTP request as the server saw it, for assertions.

    ``body`` is the raw wire bytes (still gzip-compressed if it was sent so); ``json``
    is the parsed, decompressed body or None when it did not parse. ``status`` is the
    status the server chose to answer, None while the request is in flight or when it
    was dropped without an answer (a hang released by stop(), a ``drop`` fault).

    ``idempotency_key`` is the export's ``Idempotency-Key`` (unquoted), None without
    one. ``replayed`` is True when the answer was the stored one for that key (nothing
    stored), False when this request stored the key's batch, None otherwise (no key, a
    server that ignores keys, a fault or 401 answered first, a 409 or 422).
    """

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    json: Any
    arrived: float
    connection_id: int
    status: int | None = None
    idempotency_key: str | None = None
    replayed: bool | None = None

    def header(self, name: str) -> str | None:
        """Case-insensitive header lookup (``headers`` keeps the wire spelling)."""
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None


@dataclass
class _Fault:
    """The injected behaviour for export requests; ``remaining`` None means forever."""

    mode: str
    remaining: int | None
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    message: str = ""
    skip: int = 0  # exports answered normally before the fault starts
    store: bool = False  # ``drop``: store the batch before dropping the connection
    used: int = 0  # exports that met this fault


@dataclass(frozen=True)
class _Answer:
    """What a key's first request was answered, replayed to every retry with that key."""

    status: int
    body: bytes
    fingerprint: str


# A key another request is still processing (the draft's 409), or used for another batch.
_KEY_REFUSALS: dict[str, tuple[int, dict[str, str]]] = {
    "conflict": (409, {"topLevelError": "a request with this Idempotency-Key is in progress"}),
    "mismatch": (422, {"topLevelError": "this Idempotency-Key was used for another batch"}),
}


@dataclass
class _Accepted:
    """An accepted wire message with its batch's ``defaultAction``, for contexts()."""

    message: dict[str, Any]
    default_action: str | None


class _HTTPServer(ThreadingHTTPServer):
    """One listening socket of a MonaTestServer (a new one per start_listening())."""

    daemon_threads = True
    # Never join handler threads on close: a hanging or keep-alive handler must not
    # hold stop() hostage. stop() shuts their sockets down instead.
    block_on_close = False
    allow_reuse_address = True  # rebind the same port right after stop_listening()

    def __init__(self, address: tuple[str, int], mona: MonaTestServer) -> None:
        self.mona = mona
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse DNS lookup, which can stall offline."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about dropped connections; record real handler bugs."""
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            return
        self.mona._record_error(traceback.format_exc())


class _Handler(BaseHTTPRequestHandler):
    """Routes one connection's requests (HTTP/1.1 keep-alive) to the Mona endpoints."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, a keep-alive client's
    # delayed ACK would stall every second request by ~40 ms.
    disable_nagle_algorithm = True
    server: _HTTPServer
    server_version = "MonaTestServer/1.0"

    connection_id: int
    _record: RecordedRequest | None
    _decode_error: str | None
    _json_ok: bool  # the body parsed as JSON (``null`` included)

    # -- connection lifecycle -------------------------------------------------------

    def setup(self) -> None:
        """Count the connection and register its socket so stop() can shut it down."""
        super().setup()
        self._record = None
        self._decode_error = None
        self._json_ok = False
        self.connection_id = self.server.mona._connection_opened(self.connection)

    def finish(self) -> None:
        """Unregister the socket; a flush on a socket stop() killed is not an error."""
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.mona._connection_closed(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request logging: tests read ``requests`` instead."""

    # -- dispatch -------------------------------------------------------------------

    def do_POST(self) -> None:
        self._dispatch()

    def do_GET(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        """Read the body, record the request, route it; turn handler bugs into 500s."""
        mona = self.server.mona
        mona._handling_changed(+1)
        try:
            self._route()
        except OSError:
            self.close_connection = True  # the peer or stop() closed the socket
        except Exception:
            mona._record_error(traceback.format_exc())
            self.close_connection = True
            with contextlib.suppress(OSError):
                self._send_json(500, {"errors": ["MonaTestServer handler error"]})
        finally:
            mona._handling_changed(-1)

    def _route(self) -> None:
        raw = self._read_body()
        if raw is None:
            return
        mona = self.server.mona
        target = urlsplit(self.path)
        decoded, self._decode_error = self._decode(raw)
        parsed: Any = None
        self._json_ok = False
        if decoded is not None:
            try:
                parsed = json.loads(decoded)
                self._json_ok = True
            except ValueError:
                parsed = None
        self._record = mona._record_request(
            RecordedRequest(
                method=self.command,
                path=target.path,
                query=target.query,
                headers=dict(self.headers.items()),
                body=raw,
                json=parsed,
                arrived=time.monotonic(),
                connection_id=self.connection_id,
                idempotency_key=_unquoted(self.headers.get(IDEMPOTENCY_HEADER)),
            )
        )
        if target.path not in KNOWN_PATHS:
            self._send_json(404, {"errors": [f"no such endpoint: {target.path}"]})
        elif self.command != "POST":
            self._send_json(405, {"errors": ["method not allowed"]}, {"Allow": "POST"})
        elif target.path == TOKEN_PATH:
            self._token()
        elif target.path == REFRESH_PATH:
            self._refresh()
        else:
            self._export(requires_auth=target.path == EXPORT_PATH)

    # -- body -----------------------------------------------------------------------

    def _read_body(self) -> bytes | None:
        """The raw request body (Content-Length or chunked); None after a 400 answer."""
        try:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                return self._read_chunked()
            length_header = self.headers.get("Content-Length")
            if length_header is None:
                return b""
            length = int(length_header)
            if length < 0:
                raise ValueError(length_header)
        except ValueError:
            self.close_connection = True  # cannot find the next request's start
            self._send_json(400, {"topLevelError": "invalid Content-Length or chunk size"})
            return None
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        """Decode a chunked body, which ``requests`` sends for generator data."""
        parts: list[bytes] = []
        while True:
            size_line = self.rfile.readline(65537)
            if not size_line:
                raise ConnectionResetError("connection closed inside a chunked body")
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # skip trailers
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline()  # CRLF after the chunk

    def _decode(self, raw: bytes) -> tuple[bytes | None, str | None]:
        """Undo Content-Encoding: (decoded body, None) or (None, why it failed)."""
        encoding = self.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding in ("", "identity"):
            return raw, None
        if encoding == "gzip":
            try:
                return gzip.decompress(raw), None
            except (OSError, EOFError) as error:
                return None, f"body is not valid gzip: {error}"
        return None, f"unsupported Content-Encoding: {encoding}"

    def _json_body(self) -> Any:
        """The parsed body recorded for this request (None if it did not parse)."""
        return self._record.json if self._record is not None else None

    # -- responses ------------------------------------------------------------------

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer with an explicit Content-Length so keep-alive always works."""
        merged: dict[str, str] = {"Content-Type": content_type, "Content-Length": str(len(body))}
        for name, value in (headers or {}).items():
            for existing in [key for key in merged if key.lower() == name.lower()]:
                del merged[existing]
            merged[name] = value
        if self._record is not None:
            self.server.mona._set_status(self._record, status)
        self.send_response(status)
        for name, value in merged.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _send_json(
        self, status: int, payload: Any, headers: Mapping[str, str] | None = None
    ) -> None:
        self._send(status, json.dumps(payload).encode("utf-8"), "application/json", headers)

    # -- endpoints ------------------------------------------------------------------

    def _token(self) -> None:
        mona = self.server.mona
        mona._count("token")
        payload = self._json_body()
        if not isinstance(payload, dict):
            self._send_json(400, {"errors": ["body must be a JSON object"]})
            return
        if payload.get("clientId") != mona.api_key or payload.get("secret") != mona.secret:
            self._send_json(401, {"errors": ["invalid clientId or secret"]})
            return
        self._send_json(200, mona._issue_tokens())

    def _refresh(self) -> None:
        mona = self.server.mona
        mona._count("refresh")
        payload = self._json_body()
        refresh_token = payload.get("refreshToken") if isinstance(payload, dict) else None
        tokens = mona._rotate_refresh_token(refresh_token)
        if tokens is None:
            self._send_json(401, {"errors": ["invalid or revoked refresh token"]})
            return
        self._send_json(200, tokens)

    def _export(self, *, requires_auth: bool) -> None:
        mona = self.server.mona
        fault = mona._take_fault()
        mode = "accept" if fault is None else fault.mode
        # These faults stand in front of the backend (a proxy, a load balancer that is
        # overloaded): the batch never reaches it, so its key is neither stored nor used.
        if fault is not None and mode == "respond":
            self._send(fault.status, fault.body, fault.content_type, fault.headers)
            return
        if fault is not None and mode == "top_level_error":
            self._send_json(400, {"topLevelError": fault.message})
            return
        if fault is not None and mode == "drop" and not fault.store:
            self._drop()
            return

        if requires_auth:
            error = mona._auth_error(self.headers.get("Authorization"))
            if error is not None:
                self._send_json(401, {"errors": [error]})
                return

        key = self._idempotency_key()
        if key == "":
            self._send_json(400, {"topLevelError": "Idempotency-Key must not be empty"})
            return
        fingerprint = self._fingerprint() if key is not None else ""
        if key is not None:
            claim = mona._claim_key(self._record, key, fingerprint)
            if isinstance(claim, _Answer):
                headers = {REPLAYED_HEADER: "true"}
                self._send(claim.status, claim.body, "application/json", headers)
                return
            if claim != "claimed":
                self._send_json(*_KEY_REFUSALS[claim])
                return
        try:
            if fault is not None and mode == "hang" and mona._released.wait(fault.seconds):
                self._drop()  # stop(): no answer, nothing stored, the key is free again
                return
            status, body = self._store(key, fingerprint)
        finally:
            if key is not None:
                mona._release_key(key)  # a no-op once stored: _store finished it
        if fault is not None and mode == "slow" and mona._released.wait(fault.seconds):
            self._drop()  # stop() during the delay: stored, but never answered
            return
        if mode == "drop":
            self._drop()  # stored, then the connection is lost before the answer
            return
        headers = {REPLAYED_HEADER: "false"} if key is not None else None
        self._send(status, body, "application/json", headers)

    def _drop(self) -> None:
        """Close the connection without an answer (the client sees it reset)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _idempotency_key(self) -> str | None:
        """The export's key when this server honours keys, None without the header."""
        if not self.server.mona.honour_idempotency:
            return None
        return _unquoted(self.headers.get(IDEMPOTENCY_HEADER))

    def _fingerprint(self) -> str:
        """The batch a key stands for; ``sendTimestamp`` may change between attempts."""
        batch = self._json_body()
        if self._json_ok and isinstance(batch, dict):
            batch = dict(batch)
            if isinstance(batch.get("messages"), list):
                batch["messages"] = [
                    {k: v for k, v in m.items() if k != "sendTimestamp"}
                    if isinstance(m, dict)
                    else m
                    for m in batch["messages"]
                ]
            raw = json.dumps(batch, sort_keys=True, separators=(",", ":")).encode()
        else:
            raw = self._record.body if self._record is not None else b""
        return hashlib.sha256(raw).hexdigest()

    def _store(self, key: str | None, fingerprint: str) -> tuple[int, bytes]:
        """Validate the batch and keep its valid messages (with the key's answer, if any)."""
        mona = self.server.mona
        batch = self._json_body()
        problem = self._decode_error or self._batch_error(batch)
        reasons: dict[str, str] = {}
        accepted: list[dict[str, Any]] = []
        if problem is not None:
            status, payload = 400, {"topLevelError": problem}
        else:
            for index, message in enumerate(batch["messages"]):
                reason = _message_error(message)
                if reason is None:
                    accepted.append(message)
                else:
                    reasons[str(index)] = reason
            status = 400 if reasons else 200
            payload = {"failed": len(reasons), "failure_reasons": reasons} if reasons else {}
        body = json.dumps(payload).encode("utf-8")
        default_action = batch.get("defaultAction") if problem is None else None
        answer = None if key is None else _Answer(status, body, fingerprint)
        mona._accept(accepted, default_action, key, answer, self._record)
        return status, body

    def _batch_error(self, batch: Any) -> str | None:
        """Why the whole batch is rejected (a ``topLevelError``), or None."""
        if not self._json_ok:
            return "body is not valid JSON"
        if not isinstance(batch, dict):
            return "body must be a JSON object"
        if batch.get("userId") != self.server.mona.user_id:
            return "userId is missing or does not match this account"
        if not isinstance(batch.get("messages"), list):
            return "messages must be a list"
        default_action = batch.get("defaultAction")
        if default_action is not None and default_action not in ACTIONS:
            return f"defaultAction must be one of {sorted(ACTIONS)} or null"
        sample_config = batch.get("sampleConfigName")
        if sample_config is not None and not isinstance(sample_config, str):
            return "sampleConfigName must be a string or null"
        return None


class MonaTestServer:
    """A local Mona (token, refresh, export, monaExport) with recording and faults.

    Every public method is safe to call from the test thread while handler threads
    serve requests: all state sits behind one lock, and waiting uses a Condition on
    that lock, so tests never poll with sleeps.

    ``honour_idempotency`` (also settable while running): store each
    ``Idempotency-Key``'s batch once, as the real backend is asked to; False makes a
    backend that ignores the header (each retry is stored again).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = "test-key",
        secret: str = "test-secret-value",
        user_id: str = "test-user",
        manual_token: str | None = None,
        expires_in: int = 14400,
        honour_idempotency: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self.api_key = api_key
        self.secret = secret
        self.user_id = user_id
        self.manual_token = manual_token
        self.expires_in = expires_in

        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        # Set by stop() (and stop_listening()) so hanging handlers wake at once.
        self._released = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._started_once = False

        self._open_sockets: set[socket.socket] = set()
        self._refuse_new = False
        self._connections = 0
        self._next_connection_id = 0  # never reset, so ids stay unique across clear()
        self._requests: list[RecordedRequest] = []
        self._export_count = 0
        self._handling = 0  # requests being handled right now (a hang, a slow answer...)
        self._accepted: list[_Accepted] = []
        self._errors: list[str] = []
        self._token_requests = 0
        self._refresh_requests = 0
        self._access_tokens: dict[str, float] = {}  # token -> exp (Unix seconds)
        self._refresh_tokens: set[str] = set()  # valid (issued, not used, not revoked)
        self._fault: _Fault | None = None
        self._honour_idempotency = honour_idempotency
        self._answers: dict[str, _Answer] = {}  # a key's stored batch: its first answer
        self._in_progress: set[str] = set()  # keys whose first request is not answered

    # -- lifecycle ------------------------------------------------------------------

    def __enter__(self) -> MonaTestServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        # Deliberately no secret, no api key and no tokens: reprs end up in CI logs.
        state = "listening" if self.listening else "stopped"
        return (
            f"MonaTestServer(url={self.url!r}, user_id={self.user_id!r}, {state}, "
            f"mode={self.mode!r})"
        )

    def start(self) -> MonaTestServer:
        """Bind (port 0 picks a free one, kept for later restarts) and serve."""
        with self._lock:
            # A new event, not clear(): a hang released by the last outage still sees its
            # own event set, however late its thread gets to run (a loaded machine).
            self._released = threading.Event()
            self._refuse_new = False
        self._open_listener()
        return self

    def stop(self) -> None:
        """Stop serving within ~2 s: wake hanging handlers, drop every connection."""
        self._close_listener(drop_connections=True)

    def stop_listening(self, *, drop_connections: bool = True) -> None:
        """Close the listening socket so new connections are refused (an outage).

        Open keep-alive connections are dropped too unless ``drop_connections`` is
        False, so a client cannot dodge the outage on a pooled connection. Recordings,
        tokens and faults survive; start_listening() reopens on the same port.
        """
        self._close_listener(drop_connections=drop_connections)

    def start_listening(self) -> None:
        """Reopen the listening socket on the same port after stop_listening()."""
        if not self._started_once:
            raise RuntimeError("start() the server before start_listening()")
        self.start()

    @property
    def listening(self) -> bool:
        with self._lock:
            return self._httpd is not None

    def _open_listener(self) -> None:
        with self._lock:
            if self._httpd is not None:
                return
            httpd = _HTTPServer((self.host, self.port), self)
            self.port = int(httpd.server_address[1])
            thread = threading.Thread(
                target=httpd.serve_forever,
                kwargs={"poll_interval": _POLL_INTERVAL},
                name=f"MonaTestServer:{self.port}",
                daemon=True,
            )
            self._httpd, self._thread = httpd, thread
            self._started_once = True
        thread.start()

    def _close_listener(self, *, drop_connections: bool) -> None:
        with self._lock:
            httpd, thread = self._httpd, self._thread
            self._httpd = self._thread = None
        if drop_connections:
            self._drop_connections()
        if httpd is None or thread is None:
            return
        # On Linux, shutting a listening socket down refuses new connections at once
        # and wakes the serve loop, so shutdown() need not wait out a poll interval.
        with contextlib.suppress(OSError):
            httpd.socket.shutdown(socket.SHUT_RDWR)
        httpd.shutdown()  # otherwise returns within one poll interval
        httpd.server_close()  # closes the listening socket: connections now refused
        thread.join(timeout=2.0)

    def _drop_connections(self) -> None:
        """Wake hangs and shut down (not close: fds belong to handlers) every socket."""
        with self._lock:
            self._refuse_new = True
            self._released.set()
            sockets = list(self._open_sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    # -- addresses ------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def token_url(self) -> str:
        return self.url + TOKEN_PATH

    @property
    def refresh_url(self) -> str:
        return self.url + REFRESH_PATH

    @property
    def export_url(self) -> str:
        return self.url + EXPORT_PATH

    @property
    def noauth_url(self) -> str:
        return self.url + NOAUTH_EXPORT_PATH

    # -- tokens ---------------------------------------------------------------------

    def expire_tokens(self) -> None:
        """Make every access token issued so far invalid (the next export gets 401).

        Refresh tokens stay valid, so a client can recover by refreshing; the manual
        token is not an issued token and keeps working.
        """
        with self._lock:
            for token in self._access_tokens:
                self._access_tokens[token] = 0.0

    def revoke_refresh_tokens(self) -> None:
        """Invalidate every refresh token, to test the fall-back to key and secret."""
        with self._lock:
            self._refresh_tokens.clear()

    def _issue_tokens(self) -> dict[str, Any]:
        now = time.time()
        header = {"alg": "none", "typ": "JWT"}
        claims = {
            "tenantId": self.user_id,
            "iat": int(now),
            "exp": int(now + self.expires_in),
            "jti": uuid.uuid4().hex,
        }
        # An unsecured JWT (RFC 7519 section 6): clients read it without verifying.
        access = ".".join(
            (
                _b64url(json.dumps(header, separators=(",", ":")).encode()),
                _b64url(json.dumps(claims, separators=(",", ":")).encode()),
                "",
            )
        )
        refresh = secrets.token_urlsafe(32)
        with self._lock:
            self._access_tokens[access] = now + self.expires_in
            self._refresh_tokens.add(refresh)
        return {"accessToken": access, "refreshToken": refresh, "expiresIn": self.expires_in}

    def _rotate_refresh_token(self, refresh_token: Any) -> dict[str, Any] | None:
        """A new pair for a valid refresh token, which is used up (rotation)."""
        with self._lock:
            if not isinstance(refresh_token, str) or refresh_token not in self._refresh_tokens:
                return None
            self._refresh_tokens.discard(refresh_token)
        return self._issue_tokens()

    def _auth_error(self, authorization: str | None) -> str | None:
        """Why an export's Authorization header is refused, or None when it is fine."""
        if not authorization:
            return "missing Authorization header"
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return "Authorization must be 'Bearer <token>'"
        if self.manual_token is not None and secrets.compare_digest(token, self.manual_token):
            return None
        with self._lock:
            expires = self._access_tokens.get(token)
        if expires is None:
            return "unknown access token"
        if expires <= time.time():
            return "access token expired"
        return None

    # -- faults ---------------------------------------------------------------------

    @property
    def mode(self) -> str:
        """The current export behaviour: one of ``MODES``."""
        with self._lock:
            return self._fault.mode if self._fault is not None else "accept"

    def set_mode(self, mode: str, **params: Any) -> None:
        """Set the export behaviour by name; ``params`` go to the matching method.

        ``set_mode("accept")`` ends any fault. The others delegate, so parametrized
        tests can name a mode: ``set_mode("respond", status=503, times=1)``.
        """
        if mode == "accept":
            if params:
                raise TypeError(f"accept takes no parameters, got {sorted(params)}")
            with self._changed:
                self._fault = None
                self._changed.notify_all()
        elif mode == "respond":
            self.respond_with(**params)
        elif mode == "hang":
            self.hang(**params)
        elif mode == "slow":
            self.slow(**params)
        elif mode == "drop":
            self.drop_connection(**params)
        elif mode == "top_level_error":
            self.top_level_error(**params)
        else:
            raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")

    def respond_with(
        self,
        status: int,
        body: Mapping[str, Any] | list[Any] | bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        times: int | None = None,
        after: int = 0,
    ) -> None:
        """Answer the next ``times`` exports (all if None) with this canned response.

        Their messages are not accepted. ``after`` exports are first answered normally
        (an outage that starts mid-run). ``body`` None gives ``{"errors": [...]}``;
        a mapping or list is sent as JSON, bytes and str as they are.
        """
        if body is None:
            body = {"errors": [f"injected HTTP {status}"]}
        if isinstance(body, bytes):
            raw, content_type = body, "application/octet-stream"
        elif isinstance(body, str):
            raw, content_type = body.encode("utf-8"), "text/plain; charset=utf-8"
        else:
            raw, content_type = json.dumps(body).encode("utf-8"), "application/json"
        fault = _Fault(
            "respond", times, status=status, body=raw, content_type=content_type, skip=after
        )
        fault.headers = dict(headers or {})
        self._install(fault)

    def hang(self, seconds: float, times: int | None = None) -> None:
        """Delay the next ``times`` exports (all if None), then answer them normally.

        The wait is on an Event that stop() sets, so a hang never outlives the server.
        """
        self._install(_Fault("hang", times, seconds=seconds))

    def slow(self, seconds: float, times: int | None = None) -> None:
        """Store the next ``times`` exports (all if None) at once, then answer ``seconds``
        later: slower than a client's timeout, the batch is stored all the same.

        ``hang`` is the other order (wait, then store), during which the export's
        ``Idempotency-Key`` is in progress: a retry with it meanwhile gets 409.
        """
        self._install(_Fault("slow", times, seconds=seconds))

    def drop_connection(self, times: int | None = None, *, store: bool = False) -> None:
        """Read the next ``times`` exports (all if None), then close the connection
        without an answer; with ``store`` the batch is stored first (the ambiguous
        failure: the client cannot tell whether it landed)."""
        self._install(_Fault("drop", times, store=store))

    def top_level_error(
        self, message: str = "injected top-level error", times: int | None = None
    ) -> None:
        """Reject the next ``times`` whole batches (all if None): 400 ``topLevelError``."""
        self._install(_Fault("top_level_error", times, status=400, message=message))

    def _install(self, fault: _Fault) -> None:
        if fault.remaining is not None and fault.remaining < 1:
            raise ValueError("times must be a positive integer or None")
        with self._changed:
            self._fault = fault
            self._changed.notify_all()

    def _take_fault(self) -> _Fault | None:
        """Consume one use of the current fault; back to accept once used up."""
        with self._lock:
            fault = self._fault
            if fault is None:
                return None
            if fault.skip > 0:
                fault.skip -= 1
                return None
            fault.used += 1
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._fault = None
                    self._changed.notify_all()  # wait_for_fault_used()
            return fault

    def wait_for_fault_used(self, timeout: float) -> bool:
        """Block until the current fault's ``times`` are used up (or it was replaced);
        False on timeout. True at once when no fault is set."""
        with self._changed:
            fault = self._fault
            if fault is None:
                return True
            return self._changed.wait_for(lambda: self._fault is not fault, timeout)

    def rotate(self, steps: list[FaultStep], duration: float) -> FaultRotation:
        """Run ``steps`` in turns, over and over, for at most ``duration`` seconds."""
        return FaultRotation(self, steps, duration).start()

    # -- idempotency ----------------------------------------------------------------

    @property
    def honour_idempotency(self) -> bool:
        with self._lock:
            return self._honour_idempotency

    @honour_idempotency.setter
    def honour_idempotency(self, value: bool) -> None:
        with self._lock:
            self._honour_idempotency = bool(value)

    def replays(self) -> list[RecordedRequest]:
        """Exports answered from a stored key (their batch was stored by an earlier one)."""
        return [r for r in self.export_requests() if r.replayed]

    # -- recording ------------------------------------------------------------------

    @property
    def connections(self) -> int:
        """Distinct TCP connections accepted since start() or the last clear()."""
        with self._lock:
            return self._connections

    @property
    def token_requests(self) -> int:
        with self._lock:
            return self._token_requests

    @property
    def refresh_requests(self) -> int:
        with self._lock:
            return self._refresh_requests

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received (any path, any outcome), in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def errors(self) -> list[str]:
        """Tracebacks of bugs in this server's handlers; tests should expect none."""
        with self._lock:
            return list(self._errors)

    @property
    def export_count(self) -> int:
        """How many export POSTs arrived (``len(export_requests())`` without the copy)."""
        with self._lock:
            return self._export_count

    def export_requests(self) -> list[RecordedRequest]:
        """POSTs to /export and /monaExport, whatever their outcome."""
        return [r for r in self.requests if r.method == "POST" and r.path in EXPORT_PATHS]

    def messages(self) -> list[dict[str, Any]]:
        """Accepted wire messages in arrival order, as sent (copies)."""
        with self._lock:
            return [copy.deepcopy(item.message) for item in self._accepted]

    def context_counts(self) -> collections.Counter[tuple[str, str | None]]:
        """How many accepted messages each ``(class, id)`` got: exactly-once checks over
        a million messages, without copying them."""
        with self._lock:
            return collections.Counter(
                (item.message.get("arcClass"), item.message.get("contextId"))
                for item in self._accepted
            )

    def field_counts(self, name: str) -> collections.Counter[Any]:
        """How many accepted messages carry each value of the field ``name`` (for ids a
        test chose but the context id is not, e.g. a Celery task's ``task_id``)."""
        with self._lock:
            return collections.Counter(
                item.message["message"].get(name)
                for item in self._accepted
                if name in item.message["message"]
            )

    def contexts(
        self, default_action: str | None = None
    ) -> dict[tuple[str, str | None], dict[str, Any]]:
        """Mona's records for the accepted messages: ``{(class, id): fields}``.

        A message's own ``action`` wins, then its batch's ``defaultAction``, then
        ``default_action``; the fold itself is the package's ``aggregate``.
        """
        with self._lock:
            items = [(copy.deepcopy(item.message), item.default_action) for item in self._accepted]
        resolved = []
        for message, batch_default in items:
            if message.get("action") is None and batch_default is not None:
                message["action"] = batch_default
            resolved.append(message)
        return aggregate(resolved, default_action)

    def wait_for_messages(self, n: int, timeout: float) -> bool:
        """Block until at least ``n`` messages were accepted; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self._accepted) >= n, timeout)

    def wait_for_requests(self, n: int, timeout: float, *, exports_only: bool = True) -> bool:
        """Block until ``n`` (export) requests arrived, e.g. one that is now hanging."""

        def arrived() -> bool:
            if not exports_only:
                return len(self._requests) >= n
            return sum(1 for r in self._requests if r.path in EXPORT_PATHS) >= n

        with self._changed:
            return self._changed.wait_for(arrived, timeout)

    def wait_idle(self, timeout: float) -> bool:
        """Block until no request is being handled (a hang or a slow answer that will
        still store its batch has finished); False on timeout. Ledgers read after it."""
        with self._changed:
            return self._changed.wait_for(lambda: self._handling == 0, timeout)

    def clear(self) -> None:
        """Forget recordings, counters and stored keys (with the batches they stood for);
        tokens, faults and listening stay as they are."""
        with self._lock:
            self._requests.clear()
            self._export_count = 0
            self._accepted.clear()
            self._answers.clear()
            self._errors.clear()
            self._connections = 0
            self._token_requests = 0
            self._refresh_requests = 0

    # -- hooks for the handler (all under the lock) ---------------------------------

    def _connection_opened(self, sock: socket.socket) -> int:
        with self._lock:
            self._connections += 1
            self._next_connection_id += 1
            connection_id = self._next_connection_id
            self._open_sockets.add(sock)
            refuse = self._refuse_new
        if refuse:  # accepted while stop() was dropping connections
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        return connection_id

    def _connection_closed(self, sock: socket.socket) -> None:
        with self._lock:
            self._open_sockets.discard(sock)

    def _record_request(self, record: RecordedRequest) -> RecordedRequest:
        with self._changed:
            self._requests.append(record)
            if record.method == "POST" and record.path in EXPORT_PATHS:
                self._export_count += 1
            self._changed.notify_all()
        return record

    def _set_status(self, record: RecordedRequest, status: int) -> None:
        with self._lock:
            record.status = status

    def _accept(
        self,
        messages: list[dict[str, Any]],
        default_action: str | None,
        key: str | None = None,
        answer: _Answer | None = None,
        record: RecordedRequest | None = None,
    ) -> None:
        """Store a batch's valid messages and, in the same step, its key's answer."""
        with self._changed:
            self._accepted.extend(_Accepted(m, default_action) for m in messages)
            if key is not None and answer is not None:
                self._answers[key] = answer
                self._in_progress.discard(key)
                if record is not None:
                    record.replayed = False
            self._changed.notify_all()

    def _claim_key(self, record: RecordedRequest | None, key: str, fingerprint: str) -> Any:
        """The stored answer to replay, or "claimed" (this request stores the batch),
        "conflict" (another request is storing it) or "mismatch" (another batch's key)."""
        with self._lock:
            answer = self._answers.get(key)
            if answer is not None:
                if answer.fingerprint != fingerprint:
                    return "mismatch"
                if record is not None:
                    record.replayed = True
                return answer
            if key in self._in_progress:
                return "conflict"
            self._in_progress.add(key)
            return "claimed"

    def _release_key(self, key: str) -> None:
        """The request that claimed ``key`` ended without storing: a retry may store it."""
        with self._lock:
            self._in_progress.discard(key)

    def _count(self, endpoint: str) -> None:
        with self._lock:
            if endpoint == "token":
                self._token_requests += 1
            else:
                self._refresh_requests += 1

    def _handling_changed(self, delta: int) -> None:
        with self._changed:
            self._handling += delta
            self._changed.notify_all()

    def _record_error(self, text: str) -> None:
        with self._lock:
            self._errors.append(text)


@dataclass(frozen=True)
class FaultStep:
    """One turn of a ``FaultRotation``.

    ``mode`` is one of ``MODES`` (``params`` go to ``set_mode`` with ``times``), or
    ``"refuse"``: the listening socket is closed (connections refused, pooled ones
    dropped) for ``seconds``, then reopened on the same port. A fault's turn ends once
    ``times`` exports used it up, or after ``seconds`` at most.
    """

    mode: str
    params: Mapping[str, Any] = field(default_factory=dict)
    times: int | None = 1
    seconds: float = 1.0

    def __post_init__(self) -> None:
        if self.mode not in (*MODES, "refuse"):
            raise ValueError(f"unknown mode {self.mode!r}; expected 'refuse' or one of {MODES}")
        if not (self.seconds > 0 and math.isfinite(self.seconds)):
            raise ValueError(f"seconds must be a positive finite number, got {self.seconds!r}")

    @property
    def label(self) -> str:
        status = self.params.get("status")
        return f"{self.mode} {status}" if status is not None else self.mode


class FaultRotation:
    """A server failing in turns (``MonaTestServer.rotate``), on a thread of its own.

    Bounded twice: each turn by its step's ``seconds``, the whole rotation by
    ``duration``. However it ends (its time is up, ``stop()``, an error), the server
    is left accepting and listening. ``turns`` says what ran: ``(label, exports that
    met the turn's fault)`` (for a refused turn, exports that arrived all the same), so
    a test can tell which faults its client really met.
    """

    def __init__(self, server: MonaTestServer, steps: list[FaultStep], duration: float) -> None:
        if not steps:
            raise ValueError("a rotation needs at least one step")
        self.server = server
        self.steps = list(steps)
        self.duration = duration
        self.turns: list[tuple[str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="FaultRotation", daemon=True)

    def start(self) -> FaultRotation:
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def wait(self, timeout: float) -> bool:
        """Until the rotation ends by itself (its duration is up); False on timeout."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """End the current turn now; the server accepts and listens again on return."""
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError("the fault rotation did not stop in time")

    def met(self) -> dict[str, int]:
        """Exports that met each kind of turn, summed over the turns."""
        met: dict[str, int] = collections.Counter()
        for label, exports in self.turns:
            met[label] += exports
        return dict(met)

    def __enter__(self) -> FaultRotation:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self) -> None:
        server = self.server
        deadline = time.monotonic() + self.duration
        try:
            for step in itertools.cycle(self.steps):
                left = deadline - time.monotonic()
                if self._stop.is_set() or left <= 0:
                    return
                self.turns.append((step.label, self._turn(step, min(step.seconds, left))))
        except Exception:
            server._record_error(traceback.format_exc())
        finally:
            server.set_mode("accept")
            if not server.listening:
                server.start_listening()

    def _turn(self, step: FaultStep, seconds: float) -> int:
        """Run one turn; the exports that met its fault (that arrived, for the others)."""
        server = self.server
        before = server.export_count
        if step.mode in ("refuse", "accept"):
            if step.mode == "refuse":
                server.stop_listening()
            else:
                server.set_mode("accept")
            self._stop.wait(seconds)
            if not server.listening:
                server.start_listening()
            return server.export_count - before
        server.set_mode(step.mode, **step.params, times=step.times)
        with server._lock:
            fault = server._fault
        end = time.monotonic() + seconds
        while not self._stop.is_set():
            left = end - time.monotonic()
            if left <= 0 or server.wait_for_fault_used(min(left, _POLL_INTERVAL)):
                break
        server.set_mode("accept")
        with server._lock:
            return fault.used if fault is not None else 0
