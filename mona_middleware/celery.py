"""Celery: ``MonaCelery(app)``: every task run is a Mona context.

Wired through Celery's signals, so any pool (prefork, threads, solo, eager ``apply``)
is covered: ``task_prerun`` opens the context, ``task_failure``/``task_retry`` note the
exception, ``task_postrun`` records the task fields and closes it. A task queued inside
a context carries that context's class and id in its message headers
(``before_task_publish``): the task's own context records ``parent_context_id``, or,
with ``continue_context=True``, the task exports into the queuing context itself.

Prefork children (billiard) leave with ``os._exit``, so ``atexit`` never runs there:
the exporter is shut down on ``worker_process_shutdown`` in each child and on
``worker_shutdown`` in the main process, each within ``shutdown_timeout``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

try:
    import celery
    from celery import signals
except ImportError as exc:  # pragma: no cover - exercised by the tox core env
    raise ImportError(
        "mona_middleware.celery needs Celery: pip install 'mona_middleware[celery]'"
    ) from exc

from ._api.context import MonaContext, current_context, sample
from ._runtime import process
from ._util.log import Guard, logger
from ._web.options import (
    CELERY_OPTIONS,
    CeleryOptions,
    split_celery_options,
)
from .config import OPTIONS as CONFIG_OPTIONS

__all__ = ["HEADER", "MonaCelery", "TaskState"]

# The message header that carries the queuing context: {"class": ..., "id": ...}.
HEADER = "mona_context"
_MAX_ID = 256

_PUBLISH = Guard("could not add the context to the task's headers")
_OPEN = Guard("could not open the task's context")
_CLOSE = Guard("could not close the task's context")
_FLUSH = Guard("could not flush the exporter at the worker's shutdown")

# Field names of a task's own context, and of a queuing context the task continues
# (prefixed there, so the request's own duration_ms and exception_type are kept).
_OWN_NAMES = ("retries", "state", "duration_ms", "exception_type")
_CONTINUED_NAMES = ("task_retries", "task_state", "task_duration_ms", "task_exception_type")


class TaskState:
    """The running task's facts (``ctx.request``): ``@monitor`` inside names its context.

    Not a live web request (``live_request``): a backfill inside a task waits for room
    in a full queue, as any code outside a web request does, instead of dropping.
    """

    __slots__ = ("continued", "exception", "started")
    live_request = False

    def __init__(self, continued: bool) -> None:
        self.started = time.perf_counter()
        self.continued = continued
        self.exception: str | None = None


if TYPE_CHECKING:

    class _TaskContext(MonaContext):
        """A task's context: its host state is the task's own (``TaskState``)."""

        request: TaskState

else:
    _TaskContext = MonaContext  # the same class at run time: a name for the type checker


class _ContinuedContext(_TaskContext):
    """The queuing context, continued in a task: it keeps its class (``@monitor`` inside
    the task does not rename it, or the request and the task would split in two)."""

    __slots__ = ()

    def rename(self, context_class: str) -> None:
        return None


class MonaCelery:
    """The Celery integration: one line, ``MonaCelery(app)``.

    Options are arguments, then ``app.conf.mona_<option>`` (read once the app is
    configured), then the environment; exporter options (``api_key``...) configure the
    process-wide exporter, as ``mona_middleware.configure`` would.

    >>> app = celery.Celery("shop")
    >>> MonaCelery(app, context_class="SHOP_TASKS").options.context_class
    'SHOP_TASKS'
    """

    def __init__(self, app: celery.Celery | None = None, **options: Any) -> None:
        self._given = options
        self.options = CeleryOptions.resolve(split_celery_options(options)[0])
        self.app: celery.Celery | None = None
        self._running: dict[str | None, _TaskContext] = {}  # (looked up by _task_key())
        self._lock = threading.Lock()
        if app is not None:
            self.init_app(app)

    def init_app(self, app: celery.Celery) -> None:
        """Connect the signals; read ``app.conf`` now, or once Celery has loaded it."""
        self.app = app
        if app.configured:
            self._configure(app)
        else:
            app.on_after_configure.connect(self._on_after_configure, weak=False)
        uid = f"mona_middleware:{id(self)}"
        signals.before_task_publish.connect(self._before_publish, weak=False, dispatch_uid=uid)
        signals.task_prerun.connect(self._prerun, weak=False, dispatch_uid=uid)
        signals.task_failure.connect(self._failure, weak=False, dispatch_uid=uid)
        signals.task_retry.connect(self._retry, weak=False, dispatch_uid=uid)
        signals.task_postrun.connect(self._postrun, weak=False, dispatch_uid=uid)
        signals.worker_process_shutdown.connect(self._shutdown, weak=False, dispatch_uid=uid)
        signals.worker_shutdown.connect(self._shutdown, weak=False, dispatch_uid=uid)

    def _on_after_configure(self, sender: Any = None, **kwargs: Any) -> None:
        self._configure(self.app)

    def _configure(self, app: Any) -> None:
        options = {**_from_conf(app.conf), **self._given}
        own, exporter_options = split_celery_options(options)
        if exporter_options:
            process.configure(**exporter_options)
        self.options = CeleryOptions.resolve(own)

    # -- the queuing side ---------------------------------------------------------

    def _before_publish(self, sender: Any = None, headers: Any = None, **kwargs: Any) -> None:
        """Put the current context's class and id in the message headers."""
        if not self.options.propagate_context or headers is None:
            return
        ctx = current_context()
        # A sampled-out context travels too: the task, sampled by the same id, agrees.
        if ctx is None or (ctx.disabled and not ctx.sampled_out):
            return
        with _PUBLISH:
            if isinstance(headers, MutableMapping):
                headers[HEADER] = {"class": ctx.context_class, "id": ctx.context_id}

    # -- the task's side ----------------------------------------------------------

    def _prerun(self, sender: Any = None, task_id: Any = None, task: Any = None, **kw: Any) -> None:
        try:
            self._open(task_id, task)
        except Exception as exc:  # a task object of a kind we do not know: it runs as is
            _OPEN.caught(exc)

    def _open(self, task_id: Any, task: Any) -> None:
        options = self.options
        if (
            not options.enabled
            or task is None
            or (self.app is not None and getattr(task, "app", None) is not self.app)
        ):
            return
        config = process.config()
        if process.switched_off(config):
            return
        name = getattr(task, "name", None)
        name = name if isinstance(name, str) and name else "celery_task"
        if options.excluded_tasks and any(p.search(name) for p in options.excluded_tasks):
            return
        key = _task_key(task_id)
        if key is None:
            return
        parent = _parent(getattr(task, "request", None))
        continued = options.continue_context and parent is not None
        if continued:
            # (continued: the parent is not None)
            ctx: _TaskContext = _ContinuedContext(parent[0], parent[1])  # type: ignore[index]
        else:
            ctx = _TaskContext(options.context_class or name)
        sample(ctx, config)
        ctx.before_send = options.before_send
        ctx.request = TaskState(continued)
        fields: dict[str, Any] = {"task_name": name, "task_id": key}
        if parent is not None and not continued:
            fields["parent_context_id"] = parent[1]
        ctx.record(fields)
        with self._lock:
            self._running[key] = ctx.open()

    def _failure(
        self, sender: Any = None, task_id: Any = None, exception: Any = None, **kw: Any
    ) -> None:
        with _CLOSE:
            ctx = self._running.get(_task_key(task_id))
            if ctx is not None and isinstance(exception, BaseException):
                ctx.request.exception = type(exception).__name__

    def _retry(
        self, sender: Any = None, request: Any = None, reason: Any = None, **kw: Any
    ) -> None:
        with _CLOSE:
            ctx = self._running.get(_task_key(getattr(request, "id", None)))
            cause = getattr(reason, "exc", None) or reason  # celery's Retry wraps the cause
            if ctx is not None and isinstance(cause, BaseException):
                ctx.request.exception = type(cause).__name__

    def _postrun(
        self,
        sender: Any = None,
        task_id: Any = None,
        task: Any = None,
        state: Any = None,
        **kw: Any,
    ) -> None:
        ctx = None
        with _CLOSE:
            key = _task_key(task_id)
            with self._lock:
                ctx = self._running.pop(key, None)
            if ctx is None:
                return
            task_state = ctx.request
            names = _CONTINUED_NAMES if task_state.continued else _OWN_NAMES
            retries = getattr(getattr(task, "request", None), "retries", None)
            fields: dict[str, Any] = {
                names[0]: retries if type(retries) is int else 0,
                names[2]: round((time.perf_counter() - task_state.started) * 1000, 3),
            }
            if isinstance(state, str):
                fields[names[1]] = state
            if task_state.exception is not None:
                fields[names[3]] = task_state.exception
            ctx.record(fields)
        if ctx is not None:
            ctx.close()

    # -- shutdown -----------------------------------------------------------------

    def _shutdown(self, sender: Any = None, **kwargs: Any) -> None:
        """A prefork child about to ``os._exit``, or the worker stopping: send it all."""
        with _FLUSH:
            current = process.current_exporter()
            if current is not None and not process.shutdown(current.config.shutdown_timeout):
                logger.warning(
                    "mona_middleware: the worker's exporter was not flushed within "
                    "shutdown_timeout; see stats() and the spool"
                )


def _from_conf(conf: Mapping[str, Any]) -> dict[str, Any]:
    """``app.conf.mona_context_class`` -> ``context_class``.

    Lower case only: a Flask app's ``MONA_CONTEXT_CLASS`` (the request class) often
    ends up in the same config, and must not rename the tasks.
    """
    found = {}
    for name in (*CELERY_OPTIONS, *CONFIG_OPTIONS):
        try:
            value = conf.get("mona_" + name)
        except Exception:
            value = None
        if value is not None:
            found[name] = value
    return found


def _task_key(task_id: Any) -> str | None:
    """The running task's key: its id as text (Celery's are UUID strings), None when it has
    none that can be text."""
    if type(task_id) is str:
        return task_id
    if task_id is None:
        return "None"  # as before: str(None), a task run without an id (tests, apply())
    try:
        text = str(task_id)
    except Exception:
        return None
    return text if type(text) is str else None


def _parent(request: Any) -> tuple[str, str] | None:
    """The queuing context from the task's headers, if it is a well-formed one."""
    if request is None:
        return None
    carried = getattr(request, HEADER, None)
    if carried is None:
        headers = getattr(request, "headers", None)
        carried = headers.get(HEADER) if isinstance(headers, Mapping) else None
    if not isinstance(carried, Mapping):
        return None
    cls, context_id = carried.get("class"), carried.get("id")
    if not (isinstance(cls, str) and cls and isinstance(context_id, str) and context_id):
        return None
    if len(cls) > _MAX_ID or len(context_id) > _MAX_ID:
        return None
    return cls, context_id
