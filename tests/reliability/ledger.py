"""The ledger the reliability tests check: every context by its unique id, every message
by the exporters' own counters.

Two books must agree. The server's: each id the app answered is stored exactly once
(the test server honours ``Idempotency-Key``, so a retry of a batch that landed is not
stored again). The processes': every closed context's message is sent, dropped with a
reason, or still in the spool, and nothing is counted twice:
``messages_sent + dropped_total + left in the spool == contexts closed``.
The checks are invariants of the run, never timings, so they hold or fail whatever
the machine's speed; the figures are reported either way.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..mona_server import FaultStep, MonaTestServer
from ..servers import ROOT, mona_env

STATS_DIR = "RELIABILITY_STATS_DIR"  # where each process writes its final stats


def exporter_env(server: MonaTestServer, spool: Path, stats: Path, **extra: str) -> dict[str, str]:
    """The environment of every process under test: a short ``http_timeout`` (the slow
    turns answer after it), quick retries, a spool shared by all, and the stats directory."""
    settings = {
        "MONA_MIDDLEWARE_HTTP_TIMEOUT": "0.5",
        "MONA_MIDDLEWARE_SHUTDOWN_TIMEOUT": "4",
        "MONA_MIDDLEWARE_FLUSH_INTERVAL": "0.1",
        "MONA_MIDDLEWARE_BATCH_SIZE": "25",
        "MONA_MIDDLEWARE_RETRY_BACKOFF": "0.05",
        "MONA_MIDDLEWARE_RETRY_MAX_BACKOFF": "0.5",
        "MONA_MIDDLEWARE_SPOOL_DIR": str(spool),
        STATS_DIR: str(stats),
    }
    return mona_env(server, **{**settings, **extra})


def rotating_faults(slower_than_timeout: float = 1.25) -> list[FaultStep]:
    """The issue's faults in turns: 503s, 429 with Retry-After, answers slower than
    ``http_timeout`` (stored first, or stored after the wait), connections refused then
    back on the same port, and a connection lost after the batch was stored."""
    slow = {"seconds": slower_than_timeout}
    return [
        FaultStep("respond", {"status": 503}, times=3, seconds=2),
        FaultStep("accept", seconds=0.3),
        FaultStep("respond", {"status": 429, "headers": {"Retry-After": "1"}}, times=2, seconds=2),
        FaultStep("slow", slow, times=2, seconds=3),
        FaultStep("accept", seconds=0.3),
        FaultStep("refuse", seconds=1.0),
        FaultStep("hang", slow, times=2, seconds=3),
        FaultStep("drop", {"store": True}, times=2, seconds=2),
        FaultStep("accept", seconds=0.3),
    ]


@dataclass(repr=False)
class Ledger:
    """Both books of one run, and what they must agree on. Every app here makes one
    message per context, so messages and contexts are counted alike."""

    answered: set[str]  # ids whose context the app surely closed (it answered)
    stored: collections.Counter[str]  # messages stored per id at the server (our ids only)
    processes: list[dict[str, Any]]  # each process's final record (exit_stats)
    spool_left: int  # messages still in the spool at the end
    maybe: set[str] = field(default_factory=set)  # requests whose fate the client missed
    answering_pids: set[int] = field(default_factory=set)  # processes that answered
    server: dict[str, Any] = field(default_factory=dict)  # replays, conflicts, faults met
    honoured: bool = True  # the server stored each Idempotency-Key's batch once

    @property
    def exporters(self) -> list[dict[str, Any]]:
        return [snap for record in self.processes for snap in record.get("exporters", [])]

    def total(self, name: str) -> int:
        return sum(int(snap.get(name) or 0) for snap in self.exporters)

    @property
    def dropped(self) -> dict[str, int]:
        reasons: collections.Counter[str] = collections.Counter()
        for snap in self.exporters:
            reasons.update(snap.get("dropped") or {})
        return dict(reasons)

    @property
    def duplicated(self) -> dict[str, int]:
        return {key: n for key, n in self.stored.items() if n > 1}

    @property
    def missing(self) -> list[str]:
        return sorted(self.answered - set(self.stored))

    @property
    def unexpected(self) -> list[str]:
        return sorted(set(self.stored) - self.answered - self.maybe)

    @property
    def closed(self) -> int:
        """Contexts closed in the app: those answered, and unanswered ones that arrived."""
        return len(self.answered) + len(self.maybe & set(self.stored))

    @property
    def accounted(self) -> int:
        """Messages the processes' books account for."""
        dropped = sum(self.dropped.values())
        return self.total("messages_sent") + dropped + self.spool_left

    @property
    def silent_exits(self) -> list[int]:
        """Processes that answered requests but left no final stats (killed, or hung)."""
        return sorted(self.answering_pids - {int(r["pid"]) for r in self.processes})

    def problems(self, strict: bool = True) -> list[str]:
        """Every broken promise; with ``strict``, every answered context must arrive
        (else one missing for each message counted as dropped or still spooled is fine).

        At a server that honours keys nothing may be stored twice; at one that ignores
        them, each extra copy must be counted in ``possibly_duplicated``.
        """
        found = []
        extra = sum(self.duplicated.values()) - len(self.duplicated)
        allowed = 0 if self.honoured else self.total("possibly_duplicated")
        if extra > allowed:
            found.append(
                f"{len(self.duplicated)} contexts stored more than once ({extra} extra, "
                f"{allowed} counted as possibly duplicated)"
            )
        unaccounted_missing = len(self.missing) - (
            0 if strict else sum(self.dropped.values()) + self.spool_left
        )
        if self.missing and unaccounted_missing > 0:
            found.append(f"{len(self.missing)} answered contexts never arrived")
        if self.unexpected:
            found.append(f"{len(self.unexpected)} stored ids the test never sent")
        if self.accounted != self.closed:
            found.append(
                f"the exporters' books say {self.accounted} messages (sent + dropped + "
                f"spooled), the app closed {self.closed} contexts "
                f"({self.closed - self.accounted:+d} unaccounted)"
            )
        if self.silent_exits:
            found.append(f"processes {self.silent_exits} answered but wrote no final stats")
        return found

    def figures(self) -> dict[str, Any]:
        return {
            "answered": len(self.answered),
            "maybe": len(self.maybe),
            "closed": self.closed,
            "stored_ids": len(self.stored),
            "stored_messages": sum(self.stored.values()),
            "duplicated_ids": len(self.duplicated),
            "missing": len(self.missing),
            "processes": len(self.processes),
            "contexts": self.total("contexts"),
            "messages_sent": self.total("messages_sent"),
            "retries": self.total("retries"),
            "messages_spooled": self.total("messages_spooled"),
            "messages_resent_from_spool": self.total("messages_resent_from_spool"),
            "possibly_duplicated": self.total("possibly_duplicated"),
            "extra_copies_stored": sum(self.duplicated.values()) - len(self.duplicated),
            "dropped": self.dropped,
            "spool_left": self.spool_left,
            "queued_at_exit": self.total("queued"),
            "in_flight_at_exit": self.total("in_flight"),
            "shutdowns_not_flushed": sum(1 for r in self.processes if not r.get("shutdown_ok")),
            **self.server,
        }

    def report(self, strict: bool = True) -> str:
        lines = ["ledger problems: " + ("; ".join(self.problems(strict)) or "none")]
        lines.append("figures: " + json.dumps(self.figures(), sort_keys=True))
        if self.duplicated:
            lines.append("duplicated (first 10): " + str(sorted(self.duplicated.items())[:10]))
        if self.missing:
            lines.append("missing (first 10): " + str(self.missing[:10]))
        return "\n".join(lines)


def read_processes(directory: Path) -> list[dict[str, Any]]:
    """Every final record written to ``directory`` (hidden, half-written ones skipped)."""
    if not directory.exists():
        return []
    return [
        json.loads(path.read_text())
        for path in sorted(directory.glob("*.json"))
        if not path.name.startswith(".")
    ]


def spool_messages(directory: Path) -> int:
    """Messages in the spool's batch files, waiting or claimed (one JSON line each)."""
    if not directory.exists():
        return 0
    count = 0
    for path in directory.iterdir():
        if path.name.startswith(".") or ".jsonl" not in path.name:
            continue
        try:
            count += sum(1 for line in path.read_bytes().split(b"\n") if line.strip())
        except FileNotFoundError:
            continue
    return count


def server_figures(server: MonaTestServer, rotation: Any = None) -> dict[str, Any]:
    exports = server.export_requests()
    figures = {
        "exports": len(exports),
        "keyed_exports": sum(1 for r in exports if r.idempotency_key is not None),
        "replays": sum(1 for r in exports if r.replayed),
        "conflicts_409": sum(1 for r in exports if r.status == 409),
        "statuses": dict(collections.Counter(str(r.status) for r in exports)),
    }
    if rotation is not None:
        figures["faults_met"] = rotation.met()
    return figures


def drain_spool(server: MonaTestServer, spool: Path, stats: Path, timeout: float = 30) -> str:
    """A last process resends what the others left in the spool, and writes its stats."""
    env = exporter_env(server, spool, stats)
    child = subprocess.run(
        [sys.executable, "-m", "tests.reliability.drain"],
        env=env,
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert child.returncode == 0, child.stdout[-2000:] + child.stderr[-3000:]
    return child.stdout


def children_of(pid: int) -> list[int]:
    """The live child processes of ``pid`` (from /proc: no psutil needed)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        if len(fields) > 1 and int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return sorted(found)


def signal_quietly(pid: int, sig: int) -> bool:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def wait_until(predicate: Any, timeout: float, step: float = 0.05) -> bool:
    """Poll ``predicate`` until true or ``timeout``: for processes, which have no events."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)


def ids_with_prefix(counts: Iterable[tuple[Any, int]], prefix: str) -> collections.Counter[str]:
    stored: collections.Counter[str] = collections.Counter()
    for key, n in counts:
        if isinstance(key, str) and key.startswith(prefix):
            stored[key] += n
    return stored
