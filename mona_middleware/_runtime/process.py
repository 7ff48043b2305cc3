"""The process's configuration and exporter, created lazily, replaced by ``configure()``.

The one module that knows both sides: the API asks it for the config and hands it
closed contexts; it owns the exporter and tells it what only the process knows (the
kill switch). Nothing here runs at import. The first context that closes creates the
exporter from the environment; its threads and the ``atexit`` flush are set up then.
"""

from __future__ import annotations

import atexit
import os
import threading
from typing import Any, NamedTuple

from .._export.exporter import BatchExporter
from .._util import forks
from .._util.log import limited, logger, set_logger
from ..config import MonaConfig, warn_not_applying
from ..transports import JsonlFileTransport, create_transport
from . import children, uwsgi_host
from .killswitch import ConfigFileWatcher

__all__ = [
    "Saved",
    "config",
    "configure",
    "current_exporter",
    "detach",
    "disabled",
    "enqueue",
    "enqueue_explicit",
    "exporter",
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
    lock = threading.RLock()


STATE = _State()


class Saved(NamedTuple):
    """The process's state as ``detach`` set it aside."""

    config: MonaConfig | None
    exporter: BatchExporter | None
    pinned_transport: Any


def config() -> MonaConfig:
    """The active configuration; read from the environment on first use."""
    current = STATE.config
    if current is None:
        with STATE.lock:
            if STATE.config is None:
                _activate(MonaConfig.resolve(strict=False))
            current = STATE.config
    return current


def exporter() -> BatchExporter:
    current = STATE.exporter
    if current is None:
        with STATE.lock:
            if STATE.exporter is None:
                STATE.exporter = _new_exporter(config())
                _install_hooks()
            current = STATE.exporter
    return current


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
        STATE.exporter = None
    if old is not None:
        old.shutdown(old.config.shutdown_timeout)
    return new_config


def resume_spool() -> bool:
    """Start the exporter now if an earlier process left batches in the spool to resend.

    Called when a middleware is set up, so a restarted app resends them even before
    its first request. True when it started for that reason.
    """
    try:
        current = exporter()
        if current.spool is not None and current.spool.has_pending():
            return current.start()
    except Exception:
        logger.exception("mona_middleware: could not look at the spool")
    return False


def enqueue(item: Any) -> bool:
    current = STATE.exporter  # every closing context comes here: no extra call
    return (current or exporter()).enqueue(item)


def enqueue_explicit(batch: Any) -> bool:
    """One chunk of ``export_batch``; waits while earlier chunks fill the queue."""
    current = STATE.exporter
    return (current or exporter()).enqueue_explicit(batch)


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


def disabled() -> bool:
    """The live kill switch (``disable_all`` in the config file) is on."""
    watcher = STATE.watcher
    return watcher is not None and watcher.disabled


def switched_off() -> bool:
    """``MONA_DISABLE_ALL`` or the live kill switch: nothing is recorded or sent."""
    return config().disable_all or disabled()


def count_refused(reason: str) -> None:
    exporter().stats.add("exports_refused")


def count_sampled_out() -> None:
    exporter().stats.add("contexts_sampled_out")


def export_outside_context() -> bool:
    if switched_off():
        return False  # switched off on purpose: nothing to warn about
    exporter().stats.add("exports_outside_context")
    limited(
        30,
        "outside_context",
        "mona_middleware: export() called outside any context; the fields were not recorded "
        "(open one with mona_middleware.context(...) or a middleware)",
    )
    return False


def flush(timeout: float = 5.0) -> bool:
    """Send everything exported so far; True when the backend answered it all in time."""
    current = STATE.exporter
    return True if current is None else current.flush(timeout)


def shutdown(timeout: float | None = None) -> bool:
    """Flush and stop the exporter; a later export starts a new one."""
    with STATE.lock:
        current, STATE.exporter = STATE.exporter, None
    if current is None:
        return True
    return current.shutdown(timeout)


def stats() -> dict[str, Any]:
    """Counters of the current exporter: sent, failed, dropped by reason, queued."""
    return exporter().snapshot()


def current_exporter() -> BatchExporter | None:
    """The exporter if one has been made (without making one)."""
    return STATE.exporter


def detach() -> Saved:
    """Set the process's config and exporter aside, unflushed: the next use starts afresh.

    For test isolation (the ``mona_capture`` fixture, a suite's own fixtures); give the
    result to ``restore`` to put them back.
    """
    with STATE.lock:
        saved = Saved(STATE.config, STATE.exporter, STATE.pinned_transport)
        STATE.config = STATE.exporter = STATE.pinned_transport = None
    return saved


def restore(saved: Saved) -> None:
    """Put back what ``detach`` set aside (the current exporter is not shut down here)."""
    with STATE.lock:
        STATE.config, STATE.exporter, STATE.pinned_transport = saved


def pin_transport(transport: Any) -> None:
    """Every later ``configure()`` keeps sending to ``transport`` (the pytest fixture)."""
    STATE.pinned_transport = transport


def _atexit() -> None:
    current = STATE.exporter
    if current is not None and current.pid == os.getpid():  # not a parent's, inherited
        current.shutdown(current.config.shutdown_timeout)


def _drain() -> None:
    """Deliver what this process holds without shutting down (takes no exporter lock)."""
    current = STATE.exporter
    if current is not None and current.pid == os.getpid():
        current.flush(current.config.shutdown_timeout)


@forks.after_fork_in_child
def _renew() -> None:
    STATE.lock = threading.RLock()
    current = STATE.exporter
    if current is not None:
        current.after_fork()
    watcher = STATE.watcher
    if watcher is not None:  # its thread did not survive the fork
        STATE.watcher = ConfigFileWatcher(watcher.path, watcher.interval).start()


def _install_hooks() -> None:
    if STATE.hooks_installed:
        return
    STATE.hooks_installed = True
    atexit.register(_atexit)
    children.install(_atexit, _drain)  # multiprocessing children leave with os._exit
    uwsgi_host.install_atexit(_atexit)  # uWSGI workers may leave without running atexit
