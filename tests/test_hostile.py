"""Hostile input to every public call: nothing reaches the app as an exception it did not
ask for.

Each public function of ``mona_middleware.__all__``, and the adapters' public callables
(the WSGI middleware and a request through it, ``MonaFlask`` and its ``app.config``, the
Celery signal receivers), is fed values whose own methods raise (``__str__``,
``__repr__``, ``__bool__``, ``__len__``, ``__iter__``, ``__getitem__``, ``__eq__``,
``__hash__``), Mappings that raise, header pairs, NaN, huge numbers, control
characters... drawn by hypothesis. The rule: a call returns what it documents, or raises
a ``MonaError`` where that is its documented answer (``configure`` and adapter options:
``MonaConfigError``, found at start-up). After all of it the exporter still delivers.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mona_middleware as mona
from mona_middleware.config import OPTIONS as CONFIG_OPTIONS
from mona_middleware.errors import MonaConfigError, MonaError
from mona_middleware.transports import InMemoryTransport

# -- values that fight back -----------------------------------------------------------


class Boom(Exception):
    """What the hostile objects raise: never something the package raises itself."""


class Unprintable:
    def __str__(self) -> str:
        raise Boom("str")

    def __repr__(self) -> str:
        raise Boom("repr")

    def __format__(self, spec: str) -> str:
        raise Boom("format")


class Falsy:
    def __bool__(self) -> bool:
        raise Boom("bool")

    def __len__(self) -> int:
        raise Boom("len")


class Unhashable:
    __hash__ = None  # type: ignore[assignment]

    def __eq__(self, other: object) -> bool:
        raise Boom("eq")


class Colliding:
    """Hashes like 1 and compares by raising: found in a dict only by comparing."""

    def __hash__(self) -> int:
        return 1

    def __eq__(self, other: object) -> bool:
        raise Boom("eq")

    def __repr__(self) -> str:
        raise Boom("repr")


class RaisingMapping(Mapping):
    def __init__(self, where: str = "both") -> None:
        self.where = where

    def __getitem__(self, key: Any) -> Any:
        raise Boom("getitem")

    def __iter__(self):
        if self.where == "getitem":
            return iter(["a", "baggage", "message", "contextClass"])
        raise Boom("iter")

    def __len__(self) -> int:
        return 1


class RaisingIterable:
    def __iter__(self):
        yield {"message": {"a": 1}, "contextClass": "OK"}
        raise Boom("next")


class UnprintableStr(str):
    def __repr__(self) -> str:
        raise Boom("repr")


class NoAttributes:
    def __getattr__(self, name: str) -> Any:
        raise Boom(f"getattr {name}")


FIXED = [
    None,
    Unprintable(),
    Falsy(),
    Unhashable(),
    Colliding(),
    RaisingMapping(),
    RaisingMapping("getitem"),
    RaisingIterable(),
    UnprintableStr("x"),
    NoAttributes(),
    float("nan"),
    float("inf"),
    -float("inf"),
    10**400,
    -1,
    True,
    b"\xff\xfe",
    "",
    "a\x1b[2J\nb\x00",
    "x" * 10_000,
    [("baggage", "a=1"), ("x",)],
    [Unprintable()],
    {"a": Unprintable(), Colliding(): 1},
    {Unprintable(): float("nan")},
]


def fixed(index: int) -> Any:
    """One of FIXED (drawn by index: hypothesis shows a strategy's values, which raise)."""
    return FIXED[index]


scalars = st.one_of(
    st.integers(0, len(FIXED) - 1).map(fixed),
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=40),
    st.binary(max_size=20),
)
hostile = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(st.one_of(st.text(max_size=10), st.integers()), inner, max_size=4),
    ),
    max_leaves=8,
)
keywords = st.dictionaries(st.sampled_from(sorted(CONFIG_OPTIONS)), hostile, max_size=3)

HOSTILE = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def quiet(memory, caplog):
    """The exporter sends to memory; the package's log lines are kept, not printed."""
    caplog.set_level(logging.CRITICAL + 1, "mona_middleware")
    return memory


def refused_at_start(call, *args, **kwargs) -> Any:
    """Run a set-up call: it works or raises MonaConfigError, nothing else."""
    try:
        return call(*args, **kwargs)
    except MonaConfigError:
        return None


def still_delivers(transport: InMemoryTransport) -> None:
    mona.configure(transport=transport, flush_interval=0.05)
    with mona.context("AFTER_HOSTILE", context_id="after"):
        assert mona.export({"fine": True}) is True
    assert mona.flush(5)
    assert transport.contexts()[("AFTER_HOSTILE", "after")] == {"fine": True}


# -- the core API ---------------------------------------------------------------------


def test_every_public_name_is_covered_here():
    covered = {
        "MonaConfig", "MonaConfigError", "MonaContext", "MonaError", "MonaExportError",
        "MonaMessage", "MonaThread", "__version__", "configure", "context",
        "current_context", "export", "export_batch", "flush", "monitor", "outgoing_headers",
        "shutdown", "stats", "sub_context", "wrap",
    }  # fmt: skip
    assert set(mona.__all__) == covered  # a new public name needs its hostile test here


@HOSTILE
@given(message=hostile, action=hostile, timestamp=hostile, cls=hostile, context_id=hostile)
def test_contexts_and_exports(quiet, message, action, timestamp, cls, context_id):
    with mona.context(cls, context_id=context_id, export_timestamp=timestamp) as ctx:
        assert isinstance(mona.export(message), bool)
        assert isinstance(mona.export(message, action=action), bool)
        assert isinstance(mona.export({"n": 1}, export_timestamp=timestamp), bool)
        assert isinstance(ctx.export(message, action, timestamp), bool)
        with mona.sub_context(cls, sub_id=context_id) as part:
            assert isinstance(mona.export(message), bool)
            assert isinstance(repr(part), str)
        ctx.rename(cls)
        assert isinstance(repr(ctx), str)
        assert mona.current_context() is ctx
    direct = mona.MonaContext(cls, context_id, timestamp)
    with direct:
        assert isinstance(direct.export(message), bool)
    assert mona.current_context() is None
    assert isinstance(mona.export(message), bool)  # outside any context


@HOSTILE
@given(headers=hostile)
def test_outgoing_headers(quiet, headers):
    assert mona.outgoing_headers(headers) == {}  # outside a context: nothing to send
    with mona.context("CALLER", context_id="c-1"):
        found = mona.outgoing_headers(headers)
    assert found == {} or found["baggage"].endswith("mona.context_id=c-1")


@HOSTILE
@given(entries=st.lists(hostile, max_size=4), messages=hostile, action=hostile)
def test_export_batch(quiet, entries, messages, action):
    mona.configure(transport=quiet, flush_interval=0.05)
    assert isinstance(mona.export_batch(messages, default_action=action), int)
    assert isinstance(mona.export_batch(entries, default_action=action), int)
    batch = [
        mona.MonaMessage(message=m, contextClass=c, contextId=i, exportTimestamp=t, action=a)
        for m, c, i, t, a in zip(entries, entries[1:], entries, entries, entries, strict=False)
    ]
    assert isinstance(mona.export_batch(batch), int)
    for entry in entries:
        as_dict = {"message": entry, "contextClass": "X", "contextId": entry, "action": entry}
        assert mona.export_batch([as_dict]) in (0, 1)


@HOSTILE
@given(cls=hostile, fields=hostile)
def test_monitor_wrap_and_threads(quiet, cls, fields):
    def work(n: int) -> int:
        mona.export({"n": n})
        return n * 2

    assert mona.monitor(cls, fields=fields)(work)(2) == 4
    assert mona.monitor(work)(3) == 6
    with mona.context("REQ"):
        assert mona.monitor(cls, fields=fields)(work)(4) == 8
    for value in (cls, fields):
        wrapped = mona.wrap(value)
        assert callable(wrapped)
    thread = mona.MonaThread(target=lambda: None)
    thread.start()
    thread.join(5)


@HOSTILE
@given(timeout=hostile)
def test_flush_shutdown_and_stats(quiet, timeout):
    with mona.context("T"):
        mona.export({"a": 1})
    assert isinstance(mona.flush(timeout), bool)
    assert isinstance(mona.stats(), dict)
    assert isinstance(mona.shutdown(timeout), bool)
    assert isinstance(mona.shutdown(), bool)
    mona.configure(transport=quiet, flush_interval=0.05)


@HOSTILE
@given(options=keywords)
def test_configure_raises_only_config_errors(quiet, options):
    options.pop("print_logs", None)  # adds a handler to stdout that outlives the example
    level, name = logging.getLogger("mona_middleware").level, "mona_middleware"
    try:
        refused_at_start(mona.configure, **options)
        refused_at_start(mona.MonaConfig.resolve, options, env={})
    finally:
        logging.getLogger(name).setLevel(level)
        refused_at_start(mona.configure, transport=quiet, logger_name=name)


def test_after_all_of_it_the_exporter_still_delivers(quiet):
    for value in FIXED:
        with mona.context(value, context_id=value):
            mona.export(value)
        mona.outgoing_headers(value)
        mona.export_batch(value)
        mona.flush(value)
    still_delivers(quiet)


def test_a_key_whose_repr_raises_with_a_value_that_cannot_be_sent(quiet):
    """The exporter names a field it cannot send by its key's repr: such a key costs its
    field (logged, counted), never the rest of the context."""
    with mona.context("KEYS", context_id="k"):
        assert mona.export({UnprintableStr("odd"): float("nan"), "kept": 1}) is True
        assert mona.export({Unprintable(): object()}, action="ADD") is True
    assert mona.flush(5)
    assert quiet.contexts() == {("KEYS", "k"): {"kept": 1}}
    assert mona.stats()["fields_dropped"] == 2


# -- the adapters ---------------------------------------------------------------------


def plain_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    mona.export({"ran": True})
    return iter([b"ok"])


ADAPTER_OPTIONS = [
    "context_class", "excluded_urls", "context_id_header", "capture_headers", "field_names",
    "redact_headers", "request_hook", "before_send", "enabled", "service_name",
]  # fmt: skip
header_names = st.sampled_from(["HTTP_X_REQUEST_ID", "HTTP_BAGGAGE", "HTTP_USER_AGENT"])


@HOSTILE
@given(
    method=hostile,
    path=hostile,
    headers=st.dictionaries(header_names, hostile, max_size=3),
    file_wrapper=hostile,
)
def test_a_wsgi_request_with_hostile_environ_values(quiet, method, path, headers, file_wrapper):
    from mona_middleware.wsgi import MonaWSGIMiddleware

    middleware = MonaWSGIMiddleware(
        plain_app,
        handle_sigterm=False,
        context_id_header="X-Request-Id",
        accept_incoming_context=True,
        capture_headers=["User-Agent"],
    )
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "wsgi.file_wrapper": file_wrapper,
        **headers,
    }
    body = middleware(environ, lambda *args: None)
    assert list(body) == [b"ok"]
    getattr(body, "close", lambda: None)()  # the app's own body when it passed through
    assert mona.current_context() is None
    for odd_environ in (RaisingMapping(), NoAttributes(), None):
        assert list(middleware(odd_environ, lambda *args: None)) == [b"ok"]


@HOSTILE
@given(options=st.dictionaries(st.sampled_from(ADAPTER_OPTIONS), hostile, max_size=3))
def test_adapter_options_are_refused_at_start_or_work(quiet, options):
    flask = pytest.importorskip("flask")
    from mona_middleware.flask import MonaFlask, config_options
    from mona_middleware.wsgi import MonaWSGIMiddleware

    options["handle_sigterm"] = False
    middleware = refused_at_start(MonaWSGIMiddleware, plain_app, **options)
    if middleware is not None:
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "HTTP_X_REQUEST_ID": "r"}
        assert list(middleware(environ, lambda *args: None)) == [b"ok"]
    app = flask.Flask("hostile")
    app.add_url_rule("/", "index", lambda: "ok")
    if refused_at_start(MonaFlask, app, **options) is not None:
        assert app.test_client().get("/").data == b"ok"
    config = {f"MONA_{name.upper()}": value for name, value in options.items()}
    refused_at_start(config_options, config)
    refused_at_start(config_options, RaisingMapping())


@HOSTILE
@given(path=st.text(max_size=30), header=st.text(max_size=30), method=st.sampled_from(
    ["GET", "POST", "DELETE", "PATCH", "BREW"]))  # fmt: skip
def test_flask_requests_with_odd_paths_methods_and_headers(quiet, path, header, method):
    flask = pytest.importorskip("flask")
    from mona_middleware.flask import MonaFlask

    app = flask.Flask("odd")
    MonaFlask(app, handle_sigterm=False, context_id_header="X-Id", accept_incoming_context=True)
    app.add_url_rule("/items/<int:n>", "item", lambda n: str(n))
    client = app.test_client()
    headers = {"X-Id": header, "Baggage": header}
    if any(c in header for c in "\r\n") or not header.isascii():
        headers = {}  # werkzeug refuses these before any middleware sees them
    response = client.open("/" + path.lstrip("/"), method=method, headers=headers)
    assert response.status_code in (200, 301, 302, 308, 400, 404, 405)
    assert mona.current_context() is None


@HOSTILE
@given(task_id=hostile, task=hostile, state=hostile, exception=hostile, headers=hostile)
def test_celery_receivers_never_raise(quiet, task_id, task, state, exception, headers):
    celery = pytest.importorskip("celery")
    from celery import signals

    from mona_middleware.celery import MonaCelery

    app = celery.Celery("hostile")
    MonaCelery(app, context_class="TASKS")
    # The sender stays None: Celery's dispatcher hashes it before any receiver runs.
    sent = [
        signals.before_task_publish.send(sender=None, headers=headers, body=None),
        signals.task_prerun.send(sender=None, task_id=task_id, task=task, args=(), kwargs={}),
        signals.task_failure.send(sender=None, task_id=task_id, exception=exception),
        signals.task_retry.send(sender=None, request=task, reason=exception),
        signals.task_postrun.send(sender=None, task_id=task_id, task=task, state=state),
    ]
    errors = [r for responses in sent for _, r in responses if isinstance(r, BaseException)]
    assert errors == []
    assert not isinstance(mona.current_context(), MonaError)  # nothing left half-open
