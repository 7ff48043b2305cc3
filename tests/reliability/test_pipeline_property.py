"""The exporter pipeline, driven in-process by programs hypothesis writes: producer threads
closing contexts, ``flush``, ``shutdown`` while producers run, ``os.fork`` (the child
closes contexts of its own, flushes, shuts down), and faults of a key-honouring Mona
test server (503, 429 with Retry-After, answers slower than ``http_timeout``, connections
lost before or after the batch was stored, refused connections).

After each program: whatever exporter remains is shut down, a last one resends the
spool, and the ledger must hold. Every context id arrived at most once (against a server
that ignores ``Idempotency-Key``: every extra copy is counted in ``possibly_duplicated``);
the exporters' books (sent + dropped by reason + left in the spool) add up to the
contexts closed; and every id that did not arrive is one counted as dropped or spooled.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mona_middleware as mona
from mona_middleware._runtime import process

from ..conftest import rest_options
from ..mona_server import MonaTestServer
from ..servers import wait_for_child
from . import exit_stats
from .ledger import Ledger, ids_with_prefix, read_processes, spool_messages, wait_until

pytestmark = pytest.mark.timeout(300)

CLASS = "PROPERTY"
HTTP_TIMEOUT = 0.2
SLOWER = 0.4  # than HTTP_TIMEOUT: the client gives up, the batch is stored all the same


def refuse_for_a_while(server: MonaTestServer) -> None:
    server.stop_listening()
    timer = threading.Timer(0.3, server.start_listening)
    timer.daemon = True
    timer.start()


FAULTS: dict[str, Callable[[MonaTestServer], None]] = {
    "503": lambda server: server.respond_with(503, times=2),
    "429": lambda server: server.respond_with(429, headers={"Retry-After": "0.2"}, times=1),
    "slow": lambda server: server.slow(SLOWER, times=1),
    "hang": lambda server: server.hang(SLOWER, times=1),
    "lost after storing": lambda server: server.drop_connection(times=1, store=True),
    "lost before storing": lambda server: server.drop_connection(times=1),
    "refused": refuse_for_a_while,
}

operations = st.one_of(
    st.tuples(st.just("produce"), st.integers(1, 40)),
    st.tuples(st.just("flush"), st.sampled_from([0.0, 0.05, 1.0])),
    st.tuples(st.just("shutdown"), st.sampled_from([0.0, 0.1, 1.0])),
    st.tuples(st.just("fork"), st.integers(0, 8)),
    st.tuples(st.just("fault"), st.sampled_from(sorted(FAULTS))),
    st.tuples(st.just("join"), st.none()),
)
exporter_options = st.fixed_dictionaries(
    {
        "batch_size": st.integers(1, 20),
        "sender_threads": st.integers(1, 3),
        "queue_size": st.sampled_from([8, 10_000]),  # 8: producers wait for room
    }
)


def close_contexts(ids: list[str], closed: list[str]) -> None:
    for uid in ids:
        with mona.context(CLASS, context_id=uid):
            mona.export({"uid": uid})
        closed.append(uid)


def forked(ids: list[str], stats: Path) -> None:
    """In the child: close contexts, flush, shut down, leave the child's ledger; exit."""
    code = 1
    try:
        exit_stats.forget()
        close_contexts(ids, [])
        mona.flush(1.0)
        flushed = exit_stats.shutdown_tracked(2.0)
        record = {"pid": os.getpid(), "label": "fork", "shutdown_ok": flushed}
        exit_stats.write_record(stats, {**record, "exporters": exit_stats.snapshots()})
        code = 0
    finally:
        os._exit(code)


class Program:
    """One example: runs the operations, then settles and reads the ledger."""

    def __init__(self, server: MonaTestServer, root: Path, number: int) -> None:
        self.server = server
        self.prefix = f"x{number}-"
        self.spool = root / f"spool-{number}"
        self.stats = root / f"stats-{number}"
        self.closed: list[str] = []  # ids of contexts closed (appended once closed)
        self.threads: list[threading.Thread] = []
        self.counter = itertools.count()

    def run(self, ops: list[tuple[str, Any]], options: dict[str, Any]) -> Ledger:
        exit_stats.forget()
        mona.configure(
            **rest_options(self.server, http_timeout=HTTP_TIMEOUT, flush_interval=0.02),
            shutdown_timeout=1.0,
            retry_backoff=0.01,
            retry_max_backoff=0.05,
            spool_dir=str(self.spool),
            **options,
        )
        for kind, argument in ops:
            getattr(self, kind)(argument)
        self.join(None)
        return self.settle()

    def ids(self, count: int, where: str) -> list[str]:
        batch = next(self.counter)
        return [f"{self.prefix}{where}{batch}-{n}" for n in range(count)]

    def produce(self, count: int) -> None:
        thread = threading.Thread(
            target=close_contexts, args=(self.ids(count, "t"), self.closed), daemon=True
        )
        thread.start()
        self.threads.append(thread)

    def flush(self, timeout: float) -> None:
        mona.flush(timeout)

    def shutdown(self, timeout: float) -> None:
        exit_stats.shutdown_tracked(timeout)

    def fork(self, count: int) -> None:
        ids = self.ids(count, "f")
        pid = os.fork()
        if pid == 0:
            forked(ids, self.stats)
        status = wait_for_child(pid, timeout=15)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
        self.closed.extend(ids)

    def fault(self, name: str) -> None:
        FAULTS[name](self.server)

    def join(self, _: None) -> None:
        for thread in self.threads:
            thread.join(30)
        hung = [thread for thread in self.threads if thread.is_alive()]
        assert not hung, f"{len(hung)} producer thread(s) never returned"

    def settle(self) -> Ledger:
        server = self.server
        server.set_mode("accept")
        assert wait_until(lambda: server.listening, 5)
        exit_stats.shutdown_tracked(5.0)
        process.resume_spool()  # as the next process would: resend what was left
        exit_stats.track()
        wait_until(lambda: not (mona.stats()["spool"] or {}).get("messages"), 10)
        exit_stats.shutdown_tracked(5.0)
        assert server.wait_idle(10)
        here = {"pid": os.getpid(), "label": "test", "shutdown_ok": True}
        counts = server.context_counts().items()
        return Ledger(
            honoured=server.honour_idempotency,
            answered=set(self.closed),
            stored=ids_with_prefix(((key[1], n) for key, n in counts), self.prefix),
            processes=[{**here, "exporters": exit_stats.snapshots()}, *read_processes(self.stats)],
            spool_left=spool_messages(self.spool),
        )


@pytest.fixture(scope="module", params=[True, False], ids=["keys honoured", "keys ignored"])
def server(request):
    """A key-honouring server (nothing may arrive twice), or one that ignores keys
    (each extra copy must be counted in ``possibly_duplicated``)."""
    with MonaTestServer(honour_idempotency=request.param) as server:
        yield server


def test_random_interleavings_keep_the_ledger(server, tmp_path):
    examples = itertools.count()
    figures: list[dict[str, Any]] = []

    @settings(
        max_examples=int(os.environ.get("PIPELINE_PROPERTY_EXAMPLES", "25")),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        print_blob=True,
    )
    @given(ops=st.lists(operations, min_size=1, max_size=8), options=exporter_options)
    def check(ops: list[tuple[str, Any]], options: dict[str, Any]) -> None:
        started = time.monotonic()
        ledger = Program(server, tmp_path, next(examples)).run(ops, options)
        figures.append({**ledger.figures(), "seconds": round(time.monotonic() - started, 2)})
        problems = ledger.problems(strict=False)
        assert not problems, f"{ops} {options}\n{ledger.report(strict=False)}"

    try:
        check()
    finally:
        mona.shutdown(2)
        shown = ("closed", "duplicated_ids", "missing", "dropped", "seconds")
        for row in figures:
            print({key: row[key] for key in shown})
    assert server.errors == []
