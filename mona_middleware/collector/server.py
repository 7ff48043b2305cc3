"""The collector's HTTP endpoints: Mona's token and export protocol, a JSON read API, a UI.

Routes are a table, so what the server answers is readable in one place (the README's
"Collector API" lists them with their parameters). The export and token endpoints
answer errors in the shapes the ``mona_sdk`` parses (``topLevelError`` and ``errors``);
the read API answers ``{"error": ...}``.

Every request passes two checks first, because a collector on a developer's laptop is
reachable by every web page their browser opens:

- ``Host`` must name this machine (a loopback name or address, or one of
  ``allowed_hosts``): a page that rebinds its own DNS name to 127.0.0.1 sends its own
  name, and is refused before it can read anything.
- A request carrying an ``Origin`` other than the collector's own, or that the browser
  marks as made for another site (``Sec-Fetch-Site``, navigation aside), is refused:
  browsers send these on cross-origin requests; SDKs never do.

Export routes take only ``application/json``, which a browser may send to another
origin only after a preflight, and the preflight (``OPTIONS``) is never granted.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

from .._util.log import logger
from .httpbase import HttpError, JsonRequestHandler, safe_for_log
from .store import Store
from .summary import clip
from .tokens import ACCESS, REFRESH, TokenIssuer
from .validate import MAX_FIELDS, MAX_MESSAGES, MAX_NAME, BatchError, TooLarge, parse_batch

TOKEN_PATH = "/identity/resources/auth/v1/api-token"
REFRESH_PATH = TOKEN_PATH + "/token/refresh"
EXPORT_PATHS = ("/export", "/monaExport")
STATIC_DIR = Path(__file__).with_name("static")
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}
STATIC_FILES = frozenset(path.name for path in STATIC_DIR.iterdir() if path.suffix in CONTENT_TYPES)
ROUTES: dict[str, dict[str, str]] = {
    TOKEN_PATH: {"POST": "token"},
    REFRESH_PATH: {"POST": "refresh"},
    "/export": {"POST": "export"},
    "/monaExport": {"POST": "mona_export"},
    "/": {"GET": "index"},
    "/api/health": {"GET": "health"},
    "/api/users": {"GET": "users"},
    "/api/classes": {"GET": "classes"},
    "/api/contexts": {"GET": "contexts"},
    "/api/summary": {"GET": "summary"},
    "/api/overview": {"GET": "overview"},
}
PREFIX_ROUTES: tuple[tuple[str, dict[str, str]], ...] = (
    ("/api/contexts/", {"GET": "context"}),
    ("/static/", {"GET": "static"}),
)
MAX_LIMIT = 1000
BEARER = {"WWW-Authenticate": "Bearer"}
# The page's own rules: scripts, styles and requests from this origin only, no framing.
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# Idempotency-Key (IETF httpapi draft): an opaque token of visible ASCII characters.
_IDEMPOTENCY_KEY = re.compile(r'^"?([\x21\x23-\x7e]{1,255})"?$')


def is_loopback(host: str) -> bool:
    """True for hosts only this machine can reach: ``localhost`` (and ``*.localhost``,
    which browsers resolve to loopback themselves) and loopback addresses."""
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def host_name(header: str) -> str:
    """The name in a ``Host`` header, without its port: ``[::1]:80`` -> ``::1``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


@dataclass(frozen=True)
class ServerConfig:
    """Everything a request handler needs, shared by all handler threads."""

    store: Store
    issuer: TokenIssuer
    require_auth: bool
    allow_no_auth: bool = False
    token_ttl: float = 4 * 3600.0
    max_body: int = 10 * 1024 * 1024
    # A local dev server (loopback, not strict): any key/secret gets a token, any user id
    # is stored; ``accepted`` hears of each new key and user id.
    accept_any: bool = False
    accepted: Callable[[str, str], None] | None = None
    # Host names served besides loopback ones; None serves any (a public bind, where
    # every route needs a token anyway).
    allowed_hosts: frozenset[str] | None = frozenset()
    max_messages: int = MAX_MESSAGES
    max_fields: int = MAX_FIELDS
    max_values: int = 1_000_000


class CollectorHTTPServer(ThreadingHTTPServer):
    """A threaded server carrying the collector's config; IPv6 when the host is."""

    daemon_threads = True
    # socketserver's default backlog of 5 makes the sixth connection of a burst wait for
    # a SYN retransmit (1 s); the kernel caps this at net.core.somaxconn.
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], config: ServerConfig) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.config = config
        super().__init__(address, CollectorHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client gone mid-request is no news; anything else is logged with control
        characters escaped (socketserver prints the raw traceback to stderr)."""
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            logger.debug("collector: %s went away: %r", client_address[0], error)
            return
        logger.error(
            "collector: request from %s failed:\n%s",
            client_address[0],
            "\n".join(safe_for_log(line) for line in traceback.format_exc().splitlines()),
        )


def _route(path: str) -> tuple[dict[str, str], str] | None:
    if path in ROUTES:
        return ROUTES[path], ""
    for prefix, methods in PREFIX_ROUTES:
        if path.startswith(prefix) and len(path) > len(prefix):
            return methods, path[len(prefix) :]
    return None


class CollectorHandler(JsonRequestHandler):
    """Dispatches a request through ``ROUTES`` to a ``route_<name>`` method."""

    @property
    def config(self) -> ServerConfig:
        return cast(CollectorHTTPServer, self.server).config

    def handle_request(self) -> None:
        config = self.config
        self.max_body = config.max_body
        self.max_values = config.max_values
        self._check_host()
        self._check_origin()
        url = urlsplit(self.path)
        self.query = parse_qs(url.query)
        found = _route(url.path)
        if found is None:
            raise HttpError(404, f"no such path: {url.path[:200]}")
        methods, rest = found
        method = "GET" if self.command == "HEAD" else self.command
        if method not in methods:
            allowed = ", ".join(sorted({*methods, "HEAD"} if "GET" in methods else methods))
            raise HttpError(405, f"{self.command} is not allowed here", {"Allow": allowed})
        getattr(self, "route_" + methods[method])(rest)

    def _check_host(self) -> None:
        allowed = self.config.allowed_hosts
        header = self.headers.get("Host")
        if allowed is None or header is None:
            return
        name = host_name(header)
        if not (is_loopback(name) or name in allowed):
            raise HttpError(
                403,
                f"Host {header[:100]!r} is not this machine's: a loopback collector answers"
                " only to localhost and loopback addresses (start it with --allow-host NAME"
                " to serve another name)",
            )

    def _check_origin(self) -> None:
        origin = self.headers.get("Origin")
        own = "http://" + (self.headers.get("Host") or "").strip().lower()
        if origin is not None and origin.strip().lower() != own:
            raise HttpError(403, "requests from another origin are refused")
        site = (self.headers.get("Sec-Fetch-Site") or "").lower()
        navigation = (self.headers.get("Sec-Fetch-Mode") or "").lower() == "navigate"
        if site in ("cross-site", "same-site") and not navigation:
            raise HttpError(403, "requests from another site are refused")

    def error_body(self, message: str) -> dict[str, Any]:
        path = urlsplit(getattr(self, "path", "") or "").path
        if path in EXPORT_PATHS:
            return {"topLevelError": message}
        if path in (TOKEN_PATH, REFRESH_PATH):
            return {"errors": [message]}
        return {"error": message}

    # -- Mona's protocol ---------------------------------------------------------------

    def _token_field(self, name: str) -> tuple[dict[str, Any], Any]:
        body = self.read_json()
        if not isinstance(body, dict):
            raise HttpError(400, "the body must be a JSON object")
        return body, body.get(name)

    def route_token(self, _: str) -> None:
        body, client_id = self._token_field("clientId")
        config = self.config
        secret = body.get("secret")
        if config.accept_any:
            if not (isinstance(client_id, str) and client_id and isinstance(secret, str)):
                raise HttpError(401, "clientId and secret must be strings")
            if client_id != config.issuer.api_key and config.accepted is not None:
                config.accepted("api key", client_id[:MAX_NAME])
        elif not config.issuer.credentials_match(client_id, secret):
            raise HttpError(401, "wrong clientId or secret")
        self.send_json(200, config.issuer.token_response(config.token_ttl))

    def route_refresh(self, _: str) -> None:
        _body, token = self._token_field("refreshToken")
        if not self.config.issuer.verify(token, REFRESH):
            raise HttpError(401, "refreshToken is invalid or expired")
        self.send_json(200, self.config.issuer.token_response(self.config.token_ttl))

    def _bearer_token(self) -> str | None:
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        return token.strip() if scheme.lower() == "bearer" else None

    def route_export(self, _: str) -> None:
        token = self._bearer_token()
        if self.config.accept_any and token:
            pass  # a local dev server: any token (e.g. MANUAL_TOKEN's own) will do
        elif not self.config.issuer.verify(token, ACCESS):
            raise HttpError(401, "a valid Bearer access token is required", BEARER)
        self._ingest()

    def route_mona_export(self, _: str) -> None:
        if self.config.require_auth and not self.config.allow_no_auth:
            raise HttpError(
                401,
                "monaExport (no auth) is off when every route needs credentials (a"
                " non-loopback host, or --strict); use /export with a token",
                BEARER,
            )
        self._ingest()

    def _check_content_type(self) -> None:
        media = self.headers.get("Content-Type", "").partition(";")[0].strip().lower()
        if media != "application/json":
            raise HttpError(
                415, f"Content-Type must be application/json, not {media[:60] or 'missing'!r}"
            )

    def _idempotency_key(self) -> str | None:
        value = self.headers.get("Idempotency-Key")
        if value is None:
            return None
        match = _IDEMPOTENCY_KEY.match(value.strip())
        if match is None:
            raise HttpError(400, "Idempotency-Key must be 1 to 255 visible ASCII characters")
        return match.group(1)

    def _ingest(self) -> None:
        self._check_content_type()
        key = self._idempotency_key()
        config = self.config
        try:
            batch = parse_batch(self.read_json(), config.max_messages, config.max_fields)
        except TooLarge as exc:
            raise HttpError(413, str(exc)) from None
        except BatchError as exc:
            raise HttpError(400, str(exc)) from None
        own = batch.user_id == config.issuer.user_id
        if not own and not config.accept_any:
            raise HttpError(403, f"userId {batch.user_id[:100]!r} is not this collector's user id")
        stored = config.store.ingest(batch.messages, user=batch.user_id, key=key)
        if not own and stored.batch_id is not None and config.accepted is not None:
            config.accepted("user id", batch.user_id)
        unstored = {str(index): why for index, why in stored.failures.items()}
        failures = dict(sorted({**batch.failures, **unstored}.items(), key=lambda i: int(i[0])))
        body = {"total": batch.total, "failed": len(failures), "batchId": stored.batch_id}
        # With a key, always say whether it was seen: "false" tells an exporter that this
        # backend honours keys, so a retry after a timeout is no possible duplicate.
        headers = None if key is None else {"Idempotent-Replayed": str(stored.replayed).lower()}
        if failures:
            self.send_json(400, {**body, "failure_reasons": failures}, headers)
        else:
            self.send_json(200, body, headers)

    # -- read API and UI ---------------------------------------------------------------

    def _authorize_read(self) -> None:
        if not self.config.require_auth:
            return
        given: Sequence[str | None] = self.query.get("token") or [None]
        token = self._bearer_token() or given[0]
        if not self.config.issuer.verify(token, ACCESS):
            raise HttpError(401, "a token is required: Authorization: Bearer or ?token=", BEARER)

    def _param(self, name: str, required: bool = False) -> str | None:
        values = self.query.get(name)
        if required and not values:
            raise HttpError(400, f"query parameter {name!r} is required")
        return values[0] if values else None

    def _int(self, name: str, default: int, low: int, high: int) -> int:
        text = self._param(name)
        if text is None:
            return default
        if not (text.isdigit() and len(text) < 12 and low <= int(text) <= high):
            raise HttpError(400, f"{name} must be an integer from {low} to {high}")
        return int(text)

    def _user(self) -> str | None:
        """``?user=<user id>``: one user id's data; every user id's without it."""
        user = self._param("user")
        if user is None:
            return None
        if not self.config.store.context_count(user):
            raise HttpError(404, f"no data for user id {user[:100]!r}")
        return user

    def route_health(self, _: str) -> None:
        self._authorize_read()
        store, user = self.config.store, self._user()
        users = [found["user_id"] for found in store.users(limit=MAX_LIMIT)]
        self.send_json(200, {
            "status": "ok",
            "user_id": self.config.issuer.user_id,
            "user": user,
            "users": users,
            "latest_user": users[0] if users else None,
            "messages": store.message_count(user),
            "contexts": store.context_count(user),
        })  # fmt: skip

    def route_users(self, _: str) -> None:
        self._authorize_read()
        limit = self._int("limit", 200, 1, MAX_LIMIT)
        store = self.config.store
        users, total = store.users(limit=limit), store.user_count()
        self.send_json(200, {
            "users": users,
            "total": total,
            "truncated": total > len(users),
            "latest": users[0]["user_id"] if users else None,
            "own": self.config.issuer.user_id,
        })  # fmt: skip

    def route_classes(self, _: str) -> None:
        self._authorize_read()
        user, limit = self._user(), self._int("limit", 200, 1, MAX_LIMIT)
        store = self.config.store
        classes, total = store.classes(user, limit), store.class_count(user)
        self.send_json(200, {"classes": classes, "total": total, "truncated": total > len(classes)})

    def route_contexts(self, _: str) -> None:
        self._authorize_read()
        user, context_class = self._user(), self._param("class")
        limit = self._int("limit", 50, 1, MAX_LIMIT)
        offset = self._int("offset", 0, 0, 10**9)
        store = self.config.store
        rows = store.contexts(context_class, limit, user=user, offset=offset, clipped=True)
        total = store.context_count(user, context_class)
        self.send_json(200, {
            "contexts": rows,
            "total": total,
            "offset": offset,
            "limit": limit,
            "truncated": offset + len(rows) < total,
        })  # fmt: skip

    def route_context(self, rest: str) -> None:
        self._authorize_read()
        context_class, slash, context_id = rest.partition("/")
        if not slash or not context_id:
            raise HttpError(404, "use /api/contexts/<class>/<id>")
        limit = self._int("history_limit", 100, 1, MAX_LIMIT)
        offset = self._int("history_offset", 0, 0, 10**9)
        found = self.config.store.context(
            unquote(context_class),
            unquote(context_id),
            user=self._user(),
            history_limit=limit,
            history_offset=offset,
        )
        if found is None:
            raise HttpError(404, "no such context")
        found["history_offset"] = offset
        if self._param("full") != "1":
            found["fields"], cut = clip(found["fields"], items=1000, text=10_000)
            for entry in found["history"]:
                entry["fields"], was = clip(entry["fields"], items=1000, text=10_000)
                cut = cut or was
            found["clipped"] = cut
        self.send_json(200, found)

    def _class(self) -> str:
        context_class = cast(str, self._param("class", required=True))
        if len(context_class) > MAX_NAME:
            raise HttpError(400, f"class may be at most {MAX_NAME} characters")
        return context_class

    def route_summary(self, _: str) -> None:
        self._authorize_read()
        self.send_json(200, self.config.store.summary(self._class(), self._user()))

    def route_overview(self, _: str) -> None:
        self._authorize_read()
        context_class, user, split = self._class(), self._user(), self._param("split")
        if split is not None and len(split) > MAX_NAME:
            raise HttpError(400, f"split may be at most {MAX_NAME} characters")
        self.send_json(200, self.config.store.overview(context_class, user, split or None))

    def route_index(self, _: str) -> None:
        self._authorize_read()
        self._send_static("index.html")

    def route_static(self, name: str) -> None:
        # The UI's code and style carry no data, so they are served without a token.
        self._send_static(name)

    def _send_static(self, name: str) -> None:
        if name not in STATIC_FILES:
            raise HttpError(404, f"no such file: {name[:100]}")
        path = STATIC_DIR / name
        headers = {"Content-Security-Policy": PAGE_POLICY} if path.suffix == ".html" else None
        self.send_bytes(200, path.read_bytes(), CONTENT_TYPES[path.suffix], headers)
