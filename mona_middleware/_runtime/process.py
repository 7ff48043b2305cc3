"""The process's configuration and exporter, created lazily, replaced by ``configure()``.

The one module that knows both sides: the API asks it for the config and hands it
closed contexts; it owns the exporter and tells it what only the process knows (the
kill switch). Nothing here runs at import. The first context that closes creates the
exporter from the environment; its threads and the ``atexit`` flush are set up then.

Never on a running event loop: building the exporter and looking at the spool touch
the file system (``abspath``, ``getcwd``, ``listdir``), which would stall every request
the loop serves. A middleware built on a loop (Starlette builds its stack on the first
call; uvicorn workers import the app on theirs) has that done on a thread, and what
closes on the loop before it is ready waits in ``pending``, bounded, then goes to the
exporter from that thread. Whatever cannot be taken is counted in ``stats()["dropped"]``
by reason, never lost silently.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from collections import deque
from typing import Any, NamedTuple

from .._export.exporter import BatchExporter
from .._export.prepare import message_count
from .._export.state import State
from .._util import forks
from .._util.log import limited, logger, set_logger
from .._util.stats import ExportStats
from ..config import MonaConfig, warn_not_applying
from ..transports import JsonlFileTransport, create_transport
from . import children, uwsgi_host
from .killswitch import ConfigFileWatcher

__all__ = [
    "Saved",
    "config",
    "configure",
    "count",
    "current_exporter",
    "detach",
    "enqueue",
    "enqueue_explicit",
    "exporter",
    "file_switched_off",
    "flush",
    "pin_transport",
    "restore",
    "resume_spool",
    "shutdown",
    "stats",
    "switched_off",
]


class _State:
    config: MonaConfig | None = None
    pinned_transport: Any = None  # set by the pytest fixture: configure() keeps it
    exporter: BatchExporter | None = None
    watcher: ConfigFileWatcher | None = None
    hooks_installed = False
    children_hooked = False
    lock = threading.RLock()
    # Closed on an event loop before the exporter was built: a thread hands them over.
    pending: deque[Any] = deque()
    handing = threading.Lock()  # held while pending items go to the exporter
    # Counts made while no exporter exists, under EARLY: the exporter built next adopts
    # them. A dict, so that making and taking them are one atomic step each (setdefault,
    # pop) without a lock a signal handler could wait for.
    early: dict[str, ExportStats] = {}
    builder: threading.Thread | None = None
    # The exporter shutdown() stopped, until another is built: stats() reports its ledger
    # (what the shutdown spooled, dropped or left unanswered), not a new, empty one's.
    stopped: BatchExporter | None = None


STATE = _State()
# Not a drop reason of the exporter's own: the item never reached its queue.
NOT_QUEUED = "could not be queued ({})"
EXPORTER_FAILED = "the exporter could not be built"
EARLY = "counts"  # the key of STATE.early
# How long shutdown() waits for a start under way on another thread (it takes ms).
_START_GRACE = 0.25


class Saved(NamedTuple):
    """The process's state as ``detach`` set it aside."""

    config: MonaConfig | None
    exporter: BatchExporter | None
    pinned_transport: Any
    pending: deque[Any] | None = None
    early: dict[str, ExportStats] | None = None


def config() -> MonaConfig:
    """The active configuration; read from the environment on first use."""
    current = STATE.config
    if current is None:
        with STATE.lock:
            if STATE.config is None:
                _activate(MonaConfig.resolve(strict=False))
            current = STATE.config
    return current  # type: ignore[return-value]  # set: _activate() sets it


def exporter() -> BatchExporter:
    """The process's exporter, built here if need be (so never call it on a running
    event loop: ``enqueue`` and ``count`` do not)."""
    current = STATE.exporter
    if current is None:
        with STATE.lock:
            if STATE.exporter is None:
                built = _new_exporter(config())
                # Published first: a count() that misses the take-over sees it and hands its own.
                STATE.exporter, STATE.stopped = built, None
                _take_early(built)
            current = STATE.exporter
        _install_hooks()
    if STATE.pending:
        _take_pending(current, wait=not on_event_loop())
    return current


def on_event_loop() -> bool:
    """Whether this thread runs an asyncio event loop, where nothing may block.

    asyncio is looked up, never imported: a process that never imported it runs no loop.
    """
    module = sys.modules.get("asyncio")
    return module is not None and module._get_running_loop() is not None


def _new_exporter(cfg: MonaConfig) -> BatchExporter:
    transport = create_transport(cfg)
    if isinstance(transport, JsonlFileTransport) and cfg.transport == "auto":
        logger.warning(
            "mona_middleware: no Mona credentials are set (MONA_SDK_API_KEY/MONA_SDK_SECRET), "
            "so messages are appended to %s; set the credentials to send them to Mona, "
            "or replay the file later with `mona-middleware replay %s`",
            transport.path,
            transport.path,
        )
    exporter = BatchExporter(cfg, transport, switched_off)
    if uwsgi_host.running_module() is not None:
        exporter.threads_allowed = uwsgi_host.threads_allowed
    return exporter


def configure(**options: Any) -> MonaConfig:
    """Resolve options (then environment, then defaults) and make them the active config.

    An invalid value raises ``MonaConfigError`` naming it. An exporter already running
    is flushed and shut down first, so nothing it holds is lost.
    """
    if STATE.pinned_transport is not None:
        options = {**options, "transport": STATE.pinned_transport}
    new_config = MonaConfig.resolve(options)
    with STATE.lock:
        if new_config == STATE.config:
            return new_config  # e.g. one Django handler per test client: nothing to restart
        old = STATE.exporter
        _activate(new_config)
        STATE.exporter = STATE.stopped = None
    if old is not None:
        if on_event_loop():  # its flush waits for the backend: not on the loop
            threading.Thread(
                target=old.shutdown, args=(old.config.shutdown_timeout,), name="mona-shutdown"
            ).start()
        else:
            old.shutdown(old.config.shutdown_timeout)
    return new_config


def resume_spool() -> bool | None:
    """Build the exporter, and start it now if an earlier process left batches in the
    spool to resend.

    Called when a middleware is set up, so a restarted app resends them even before
    its first request. On a running event loop both are done on a thread (False then).
    True when it started for that reason (None: a start was under way on another
    thread). The exit hooks are installed here, on the caller's thread: the main thread
    may take SIGTERM, a helper thread may not.
    """
    _install_hooks()
    if on_event_loop():
        _build_off_loop()
        return False
    return _resume_spool_here()


def _resume_spool_here() -> bool | None:
    try:
        current = exporter()
        if current.spool is not None and current.spool.has_pending():
            return current.start()
    except Exception:
        logger.exception("mona_middleware: could not look at the spool")
    return False


def _build_off_loop() -> None:
    """Build the exporter (and look at the spool) on a thread: the loop goes on serving.

    Not a daemon: an interpreter that exits waits for it (it is short), so what waits in
    ``pending`` reaches the exporter before ``atexit`` flushes it.
    """
    builder = STATE.builder
    if builder is not None and builder.is_alive():
        return  # two racing starts build once: exporter() holds the lock
    builder = threading.Thread(target=_resume_spool_here, name="mona-exporter-setup")
    STATE.builder = builder
    try:
        builder.start()
    except RuntimeError:  # at interpreter exit: whoever flushes takes the pending ones
        STATE.builder = None


def enqueue(item: Any) -> bool:
    """Hand a closed context to the exporter; never raises, never blocks an event loop
    for the exporter's sake. False when it was not taken (then it is counted)."""
    current = STATE.exporter  # every closing context comes here: no extra call
    if current is None:
        current = _exporter_for(item)
        if current is None:
            return _pend(item)
    try:
        return current.enqueue(item)
    except Exception as exc:
        return _not_taken(current, item, exc)


def enqueue_explicit(batch: Any) -> bool:
    """One chunk of ``export_batch``; waits while earlier chunks fill the queue."""
    current = STATE.exporter
    if current is None:
        current = _exporter_for(batch)
        if current is None:
            return _pend(batch)
    try:
        return current.enqueue_explicit(batch)
    except Exception as exc:
        return _not_taken(current, batch, exc)


def _exporter_for(item: Any) -> BatchExporter | None:
    """The exporter, built here unless this thread runs an event loop (None then)."""
    if on_event_loop():
        return None
    try:
        return exporter()
    except Exception as exc:
        _count_lost(item, EXPORTER_FAILED, exc)
        return None


def _exporter_or_count_pending() -> BatchExporter | None:
    """At exit or flush: the exporter for what waits in ``pending``; if it cannot be
    built, those are counted."""
    try:
        return exporter()
    except Exception as exc:
        while STATE.pending:
            try:
                _count_lost(STATE.pending.popleft(), EXPORTER_FAILED, exc)
            except IndexError:
                break
        return None


def _pend(item: Any) -> bool:
    """Keep ``item`` for the exporter a thread is building; counted when full."""
    _install_hooks()  # on this thread: a helper thread may not take SIGTERM
    pending = STATE.pending
    current_config = STATE.config
    limit = current_config.queue_size if current_config is not None else 10_000
    if len(pending) >= limit:
        _early().drop("queue full", message_count([item]))
        return False
    pending.append(item)
    _build_off_loop()
    current = STATE.exporter
    if current is not None:  # built meanwhile, maybe after its builder took the pending
        _take_pending(current, wait=False)
    return True


def _take_pending(current: BatchExporter, wait: bool = True) -> None:
    """Hand what waited for the exporter over to it, in order, under ``handing``: a flush
    waits for the hand-over, so its marker never overtakes them. On a loop (``wait``
    False) a hand-over under way elsewhere takes this thread's items too: the holder
    looks again after letting go."""
    pending, handing = STATE.pending, STATE.handing
    while pending:
        if not handing.acquire(wait):
            return
        try:
            while True:
                try:
                    item = pending.popleft()
                except IndexError:
                    break
                try:
                    if isinstance(item, list):  # an export_batch chunk
                        current.enqueue_explicit(item)
                    else:
                        current.enqueue(item)
                except Exception as exc:
                    _not_taken(current, item, exc)
        finally:
            handing.release()


def _not_taken(current: BatchExporter, item: Any, exc: Exception) -> bool:
    """``enqueue`` raised (it should not): count the item unless it stayed queued.

    Only the taker of a queued item accounts for it: withdrawn here, it is counted
    here; already taken by the batcher, it is sent and counted there.
    """
    if current.admission.withdraw(item):
        _count_lost(item, NOT_QUEUED.format(type(exc).__name__), exc, current.stats)
    return False


def _count_lost(item: Any, reason: str, exc: Exception, stats: ExportStats | None = None) -> None:
    try:
        amount = message_count([item])
    except Exception:
        amount = 1
    (stats or _early()).drop(reason, amount)
    limited(
        logging.ERROR,
        f"lost:{reason}",
        "mona_middleware: %d message(s) dropped: %s",
        amount,
        reason,
        exc_info=exc,
    )


def _early() -> ExportStats:
    """Where counts go while no exporter exists; racing threads get the same one."""
    early = STATE.early.get(EARLY)
    if early is None:
        early = STATE.early.setdefault(EARLY, ExportStats())
    return early


def _take_early(built: BatchExporter) -> None:
    """``built`` adopts what was counted while no exporter existed. By reference: a count
    that lands in them after this (its thread read them just before) still shows."""
    early = STATE.early.pop(EARLY, None)  # one taker, however many race
    if early is not None:
        built.stats.adopt(early)


def count(name: str, amount: int = 1) -> None:
    """Add to one of ``stats()``'s counters from anywhere, an event loop included.

    Never builds the exporter (its transport, spool, threads and exit hooks are not a
    counter's business): before it exists the count waits in ``early``, adopted by the
    exporter built next, and ``stats()`` shows it meanwhile.
    """
    current = STATE.exporter
    if current is not None:
        current.stats.add(name, amount)
        return
    _early().add(name, amount)
    current = STATE.exporter
    if current is not None:  # built meanwhile, maybe after it took the early counts
        _take_early(current)


def _activate(new_config: MonaConfig) -> None:
    """Make ``new_config`` current: its logging settings and its kill-switch file."""
    STATE.config = new_config
    set_logger(new_config.logger_name, new_config.log_level, new_config.print_logs)
    warn_not_applying(os.environ)
    if STATE.watcher is not None:
        STATE.watcher.stop()
        STATE.watcher = None
    if new_config.config_file:
        STATE.watcher = ConfigFileWatcher(
            new_config.config_file, new_config.config_poll_interval
        ).start()


def file_switched_off() -> bool:
    """Only the live switch: ``{"disable_all": true}`` in the config file, as last read
    (``switched_off()`` is the whole answer)."""
    watcher = STATE.watcher
    return watcher is not None and watcher.disabled


def switched_off(current: MonaConfig | None = None) -> bool:
    """Nothing is recorded or sent: the static switch (``disable_all``, e.g.
    ``MONA_DISABLE_ALL``) or the live one (``file_switched_off``). ``current``: the
    config the caller holds already (one call, not two, where a context opens)."""
    return (config() if current is None else current).disable_all or file_switched_off()


def count_refused(reason: str) -> None:
    count("exports_refused")


def count_sampled_out() -> None:
    count("contexts_sampled_out")


def export_outside_context() -> bool:
    if switched_off():
        return False  # switched off on purpose: nothing to warn about
    count("exports_outside_context")
    limited(
        logging.WARNING,
        "outside_context",
        "mona_middleware: export() called outside any context; the fields were not recorded "
        "(open one with mona_middleware.context(...) or a middleware)",
    )
    return False


def flush(timeout: float = 5.0) -> bool:
    """Send everything exported so far; True when the backend answered it all in time."""
    current = STATE.exporter
    if current is None and STATE.pending:
        current = _exporter_or_count_pending()  # what closed on a loop waits for it
    if current is None:
        return True
    if STATE.pending or STATE.handing.locked():
        _take_pending(current)  # handed over before the flush marker, never after
        with STATE.handing:
            pass
    return current.flush(timeout)


def shutdown(timeout: float | None = None) -> bool:
    """Flush and stop the exporter; a later export starts a new one."""
    if STATE.exporter is None and STATE.pending:
        _exporter_or_count_pending()
    with STATE.lock:
        current, STATE.exporter = STATE.exporter, None
    if current is None:
        return True
    STATE.stopped = current
    flushed = current.shutdown(timeout)
    if current.admission.state is not State.CLOSED:
        # Its start was under way on another thread (a first context closing), which
        # shutdown(0) cannot wait for: shut it down once that is done, or it runs on,
        # forgotten, with what it holds (issue 21, found by the pipeline property test).
        flushed = current.shutdown(max(timeout or 0.0, _START_GRACE)) and flushed
    return flushed


def stats() -> dict[str, Any]:
    """Counters of the current exporter: sent, failed, dropped by reason, queued.

    On an event loop before the exporter is built, what was counted so far (it is built
    on a thread meanwhile).
    """
    if STATE.exporter is None and on_event_loop():
        _build_off_loop()
        data = (STATE.early.get(EARLY) or ExportStats()).snapshot()
        data.update(queued=len(STATE.pending), in_flight=0, spool=None, state="new")
        data["transport"] = None
        return data
    stopped = STATE.stopped
    if STATE.exporter is None and stopped is not None and not STATE.pending:
        return _with_early(stopped)
    current = exporter()
    _take_early(current)  # counted while it was being built, after it took the rest
    return current.snapshot()


def _with_early(stopped: BatchExporter) -> dict[str, Any]:
    """The stopped exporter's snapshot, with what was counted since it stopped."""
    data = stopped.snapshot()
    early = STATE.early.get(EARLY)
    if early is not None:  # both ledgers read as one, without taking the early one over
        view = ExportStats()
        view.adopt(stopped.stats)
        view.adopt(early)
        data.update(view.snapshot())
    return data


def current_exporter() -> BatchExporter | None:
    """The exporter if one has been made (without making one)."""
    return STATE.exporter


def detach() -> Saved:
    """Set the process's config and exporter aside, unflushed: the next use starts afresh.

    For test isolation (the ``mona_capture`` fixture, a suite's own fixtures); give the
    result to ``restore`` to put them back.
    """
    with STATE.lock:
        saved = Saved(
            STATE.config, STATE.exporter, STATE.pinned_transport, STATE.pending, STATE.early
        )
        STATE.config = STATE.exporter = STATE.pinned_transport = None
        STATE.early = {}
        STATE.stopped = None
        STATE.pending = deque()
    return saved


def restore(saved: Saved) -> None:
    """Put back what ``detach`` set aside (the current exporter is not shut down here)."""
    with STATE.lock:
        STATE.config, STATE.exporter, STATE.pinned_transport = saved[:3]
        STATE.pending = deque() if saved.pending is None else saved.pending
        STATE.early = {} if saved.early is None else saved.early


def pin_transport(transport: Any) -> None:
    """Every later ``configure()`` keeps sending to ``transport`` (the pytest fixture)."""
    STATE.pinned_transport = transport


def _atexit() -> None:
    current = STATE.exporter
    if current is None and STATE.pending:
        current = _exporter_or_count_pending()  # closed on a loop before the build
    if current is not None and current.pid == os.getpid():  # not a parent's, inherited
        current.shutdown(current.config.shutdown_timeout)


def _flush_in_handler() -> None:
    """Deliver what this process holds without shutting down, from a signal handler (takes
    no exporter lock)."""
    current = STATE.exporter
    if current is not None and current.pid == os.getpid():
        current.flush(current.config.shutdown_timeout)


@forks.after_fork_in_child
def _renew() -> None:
    STATE.lock = threading.RLock()
    STATE.builder = None  # its thread did not survive the fork; pending is the parent's
    STATE.pending = deque()
    STATE.handing = threading.Lock()
    STATE.early = {}
    current = STATE.exporter
    if current is not None:
        current.after_fork()
    watcher = STATE.watcher
    if watcher is not None:  # its thread did not survive the fork
        STATE.watcher = ConfigFileWatcher(watcher.path, watcher.interval).start()


def _install_hooks() -> None:
    """Once per process, on the thread that first needs them; never raises.

    On an event loop, in a process that has not imported ``multiprocessing`` (importing
    it reads the working directory), the ``multiprocessing`` hooks wait for the thread
    that builds the exporter: such a process is no ``multiprocessing`` child, so nothing
    in them needs this thread's signals.
    """
    try:
        if not STATE.hooks_installed:
            STATE.hooks_installed = True
            atexit.register(_atexit)
            uwsgi_host.install_atexit(_atexit)  # uWSGI workers may leave without atexit
        if not STATE.children_hooked and ("multiprocessing" in sys.modules or not on_event_loop()):
            STATE.children_hooked = True
            # multiprocessing children leave with os._exit: they flush through these
            children.install(_atexit, _flush_in_handler)
    except Exception:
        logger.exception("mona_middleware: could not install the exit hooks")
