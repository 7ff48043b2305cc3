"""``mona-middleware replay PATH``: send a spool directory or a JSONL file to Mona.

For the file transport's output (what an app wrote before it had credentials) and for a
spool a dead process left behind. Progress is saved after every batch (a file's next
line in ``PATH.replayed``; a spool loses each batch once it is sent), so an interrupted
replay resumes where it stopped and never sends a message twice.

Lines are UTF-8, split as bytes (at ``\n``, ``\r\n`` or ``\r``): orjson writes U+2028
and friends raw, and ``str.splitlines`` would cut a message there; JSON escapes every
``\r`` and ``\n`` inside a string, so bytes never do. A spool is claimed batch by batch like
the exporter does, so a live app sharing it never resends what the replay sends, and
batches an app left claimed when it died come back to the spool (see ``spool``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._export.delivery import Delivery
from .._export.spool import Spool, parse_line
from .._util.stats import ExportStats
from ..config import MonaConfig
from ..errors import MonaConfigError
from ..transports.base import WireBatch
from ..transports.rest import MonaRestTransport
from .terminal import ProgressBar


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="a spool directory or a JSONL file of wire messages")
    parser.add_argument("--batch-size", type=int, default=500, help="messages per request")


def run(args: argparse.Namespace) -> int:
    try:
        config = MonaConfig.resolve({"batch_size": args.batch_size})
    except MonaConfigError as exc:
        print(f"mona-middleware replay: {exc}", file=sys.stderr)
        return 2
    if config.transport_choice()[0] != "rest":
        print(
            "mona-middleware replay: no Mona backend is configured; set MONA_SDK_API_KEY and "
            "MONA_SDK_SECRET (or AUTH_MODE and its settings), as for the app",
            file=sys.stderr,
        )
        return 2
    path = Path(args.path)
    if not path.exists():
        print(f"mona-middleware replay: {path} does not exist", file=sys.stderr)
        return 2
    stats = ExportStats()
    transport = MonaRestTransport(config)
    replayer = Replayer(Delivery(config, transport, stats, None), stats, config.batch_size)
    try:
        ok = replayer.spool(path) if path.is_dir() else replayer.file(path)
    except KeyboardInterrupt:
        print("\ninterrupted; run the same command again to resume", file=sys.stderr)
        return 130
    finally:
        replayer.progress.finish()  # ends the line it redraws on a terminal
        transport.close()
    snapshot = stats.snapshot()
    print(
        f"\nsent {snapshot['messages_sent']}, rejected by Mona {snapshot['messages_failed']}"
        + ("" if ok else "; the backend stopped answering: run again to resume")
    )
    return 0 if ok else 1


class Replayer:
    """Sends batches with the exporter's retries and shows a progress bar on stderr."""

    def __init__(self, delivery: Delivery, stats: ExportStats, batch_size: int) -> None:
        self.delivery = delivery
        self.stats = stats
        self.batch_size = batch_size
        self.progress = ProgressBar(0, "messages")  # replaced when the run knows its total

    def _start(self, total: int, done: int) -> None:
        if done:
            print(f"resuming after {done} already sent", file=sys.stderr)
        self.progress = ProgressBar(total, "messages", done=done, log_tenths=True)

    def _send(self, batch: list[dict[str, Any]]) -> bool:
        # What the backend did not take stays for the next run: not counted, not spooled.
        outcome = self.delivery.deliver(WireBatch(batch), account_if=lambda o: not o.unsent)
        if outcome.unsent:
            return False
        self.progress.advance(len(batch))
        return True

    def file(self, path: Path) -> bool:
        marker = path.with_name(path.name + ".replayed")
        done = int(marker.read_text(encoding="utf-8") or 0) if marker.exists() else 0
        lines = path.read_bytes().splitlines()  # bytes: \n, \r\n or \r, never U+2028
        self._start(len(lines), done)
        for start in range(done, len(lines), self.batch_size):
            chunk = lines[start : start + self.batch_size]
            batch = list(_parse(chunk, self.stats))
            if batch and not self._send(batch):
                return False
            self.progress.advance(len(chunk) - len(batch))  # blank or unreadable lines
            _write_atomic(marker, str(start + len(chunk)))
        return True

    def spool(self, directory: Path) -> bool:
        spool = Spool(str(directory), 1 << 62, self.stats)
        self._start(spool.pending()[1], 0)
        while (item := spool.claim()) is not None:
            sent = False
            try:
                messages = spool.load(item)  # counts what it cannot read
                sent = not messages or self._send(messages)
            finally:
                if sent:
                    spool.done(item)
                else:  # the backend stopped answering, or ^C: the batch stays for next time
                    spool.release(item)
            if not sent:
                return False
            self.progress.advance(max(item.count - len(messages), 0))  # unreadable ones
        return True


def _parse(lines: list[bytes], stats: ExportStats) -> Iterator[dict[str, Any]]:
    for line in lines:
        if line.strip():
            message = parse_line(line)
            if message is None:
                stats.drop("unreadable line", 1)
            else:
                yield message


def _write_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
