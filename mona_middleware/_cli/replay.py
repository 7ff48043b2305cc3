"""``mona-middleware replay PATH``: send a spool directory or a JSONL file to Mona.

For the file transport's output (what an app wrote before it had credentials) and for a
spool a dead process left behind. A spool loses each batch once it is sent; it is claimed
batch by batch like the exporter does, so a live app sharing it never resends what the
replay sends, and batches an app left claimed when it died come back (see ``spool``).

A file's resume point is saved after every batch in ``PATH.replayed`` (JSON): the byte
offset just past the last line handled, the lines before it, and the file's identity, its
device and inode plus the sha256 of its first bytes and of the bytes just before the
offset. A file that no longer matches (replaced, or truncated and rewritten) is replayed
from its start, said on stderr. The offset never passes a last line without its line end:
a writer may still be writing it, so it waits for the next run (and is not a bad line).
A marker holding a plain line count (what earlier versions wrote) is read as that many
lines sent when the file has them, else the file is replayed from its start.

Lines are UTF-8, split as bytes (at ``\\n``, ``\\r\\n`` or ``\\r``): orjson writes U+2028
and friends raw, and ``str.splitlines`` would cut a message there; JSON escapes every
``\\r`` and ``\\n`` inside a string, so bytes never do. The file is streamed, never read
whole. A line that is not a wire message (not UTF-8, not JSON, cut short, or JSON without
``arcClass`` and a ``message`` object) is skipped, listed by number and counted.

Exit status: 0 every whole line was sent; 1 the backend stopped answering (run again to
resume); 2 the replay could not start or go on (bad arguments, no backend, a file or its
resume point that cannot be read or written, another replay of the file running); 3 done,
but lines were skipped or refused by Mona (listed on stderr); 130 interrupted. A spool
answers 0 or 1, as before: what it cannot read is counted in the summary.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from .._export.delivery import Delivery
from .._export.spool import Spool
from .._util.protocol import ACTIONS
from .._util.stats import ExportStats
from ..config import MonaConfig
from ..errors import MonaConfigError
from ..transports.base import WireBatch
from ..transports.rest import MonaRestTransport
from .terminal import ProgressBar

try:
    import fcntl
except ImportError:  # Windows: no advisory lock, one replay at a time is then up to you
    fcntl = None  # type: ignore[assignment]

SENT, BACKEND_STOPPED, NOT_RUN, SKIPPED, INTERRUPTED = 0, 1, 2, 3, 130
LISTED = 20  # bad lines listed by number; the rest are only counted
CHUNK = 1 << 20  # bytes read at a time
FINGERPRINT = 4096  # bytes hashed at the start of the file and before the offset

Send = Callable[[list[dict[str, Any]]], bool]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="a spool directory or a JSONL file of wire messages")
    parser.add_argument("--batch-size", type=int, default=500, help="messages per request")


def run(args: argparse.Namespace) -> int:
    try:
        config = MonaConfig.resolve({"batch_size": args.batch_size})
    except MonaConfigError as exc:
        print(f"mona-middleware replay: {exc}", file=sys.stderr)
        return NOT_RUN
    if config.transport_choice()[0] != "rest":
        print(
            "mona-middleware replay: no Mona backend is configured; set MONA_SDK_API_KEY and "
            "MONA_SDK_SECRET (or AUTH_MODE and its settings), as for the app",
            file=sys.stderr,
        )
        return NOT_RUN
    path = Path(args.path)
    if not path.exists():
        print(f"mona-middleware replay: {path} does not exist", file=sys.stderr)
        return NOT_RUN
    stats = ExportStats()
    transport = MonaRestTransport(config)
    replayer = Replayer(_sender(config, transport, stats), stats, config.batch_size)
    ok, stopped = False, None
    try:
        ok = replayer.spool(path) if path.is_dir() else replayer.file(path)
    except KeyboardInterrupt:
        stopped = INTERRUPTED, "\ninterrupted; run the same command again to resume"
    except (OSError, ReplayError) as exc:  # the file or its resume point, before or between sends
        stopped = NOT_RUN, f"mona-middleware replay: {exc}"
    finally:
        replayer.progress.finish()  # ends the line it redraws on a terminal
        transport.close()
    replayer.report()
    if stopped is not None:
        print(stopped[1], file=sys.stderr)
        return stopped[0]
    return _summary(stats.snapshot(), replayer, ok, path.is_dir())


def _summary(snapshot: dict[str, Any], replayer: Replayer, ok: bool, spool: bool) -> int:
    """The last line on stdout, and the exit status it stands for."""
    unreadable = sum(n for why, n in snapshot["dropped"].items() if why.startswith("spool"))
    print(
        f"\nsent {snapshot['messages_sent']}, rejected by Mona {snapshot['messages_failed']}"
        + (f", skipped {replayer.skipped} (listed on stderr)" if replayer.skipped else "")
        + (f", unreadable in the spool {unreadable}" if unreadable else "")
        + ("" if ok else "; the backend stopped answering: run again to resume")
    )
    if not ok:
        return BACKEND_STOPPED
    if spool:  # as before: the spool counts what it cannot read, Mona's refusals are logged
        return SENT
    return SKIPPED if replayer.skipped or snapshot["messages_failed"] else SENT


class ReplayError(Exception):
    """Nothing can be replayed (another replay holds the file); said before sending."""


def _sender(config: MonaConfig, transport: MonaRestTransport, stats: ExportStats) -> Send:
    """The one place replay uses the exporter's delivery: retries as the app has them,
    True when the backend answered (sent, or refused for good and counted)."""
    delivery = Delivery(config, transport, stats, None)

    def send(batch: list[dict[str, Any]]) -> bool:
        if not isinstance(batch, WireBatch):
            batch = WireBatch(batch)
        # What the backend did not take stays behind the resume point: nothing to account.
        outcome = delivery.deliver(batch, account_if=lambda outcome: not outcome.unsent)
        return not outcome.unsent

    return send


@dataclass(frozen=True)
class ResumePoint:
    """Where a file's replay goes on, and which file that was (see the module's note)."""

    offset: int
    lines: int
    device: int
    inode: int
    head_sha256: str
    tail_sha256: str

    @classmethod
    def at(cls, handle: IO[bytes], offset: int, lines: int) -> ResumePoint:
        info = os.fstat(handle.fileno())
        head, tail = _fingerprint(handle, offset)
        return cls(offset, lines, info.st_dev, info.st_ino, head, tail)

    def batch_key(self) -> str:
        """The idempotency key of the batch that ends here: the same when a replay stopped
        after sending it but before saving this point sends it again."""
        place = f"{self.device}:{self.inode}:{self.head_sha256}:{self.offset}"
        return "replay" + hashlib.sha256(place.encode()).hexdigest()[:32]

    def changed(self, handle: IO[bytes]) -> str | None:
        """Why ``handle`` is not the file this point was saved for, or None."""
        info = os.fstat(handle.fileno())
        if (info.st_dev, info.st_ino) != (self.device, self.inode):
            return "it is not the file replayed before (its device and inode differ)"
        if info.st_size < self.offset:
            return f"it is shorter ({info.st_size} bytes) than the {self.offset} replayed before"
        if _fingerprint(handle, self.offset) != (self.head_sha256, self.tail_sha256):
            return "its bytes before the resume point are not those replayed before"
        return None


class Replayer:
    """Sends batches with the exporter's retries and shows a progress bar on stderr."""

    def __init__(self, send: Send, stats: ExportStats, batch_size: int) -> None:
        self.send = send
        self.stats = stats
        self.batch_size = batch_size
        self.progress = ProgressBar(0, "messages")  # replaced when the run knows its total
        self.skipped = 0
        self.reasons: Counter[str] = Counter()
        self.listed: list[str] = []

    def _start(self, total: int, done: int) -> None:
        self.progress = ProgressBar(total, "messages", done=done, log_tenths=True)

    def _send(self, batch: list[dict[str, Any]]) -> bool:
        if not self.send(batch):
            return False
        self.progress.advance(len(batch))
        return True

    def _skip(self, number: int, reason: str) -> None:
        self.skipped += 1
        self.reasons[reason.split(":")[0]] += 1
        if len(self.listed) < LISTED:
            self.listed.append(f"line {number}: {reason}")

    def report(self) -> None:
        """The lines skipped: the first ``LISTED`` by number, then how many of each kind."""
        if not self.skipped:
            return
        for entry in self.listed:
            print(f"mona-middleware replay: skipped {entry}", file=sys.stderr)
        kinds = ", ".join(f"{count} {reason}" for reason, count in self.reasons.most_common())
        more = f" (the first {LISTED} listed above)" if self.skipped > LISTED else ""
        print(
            f"mona-middleware replay: skipped {self.skipped} line(s): {kinds}{more}",
            file=sys.stderr,
        )

    def file(self, path: Path) -> bool:
        marker = path.with_name(path.name + ".replayed")
        with open(path, "rb") as handle:
            _lock(handle, path)
            point = self._resume(path, handle, marker)
            start = point.offset
            if start and _read_at(handle, start - 1, 2) == b"\r\n":
                start += 1  # the \r ended the last line handled; its \n came after
            count, end, size = _scan(handle, start)
            if size > end:
                print(
                    f"mona-middleware replay: {path}: line {point.lines + count + 1} has no "
                    "line end yet (a writer may still be writing it): left for the next run",
                    file=sys.stderr,
                )
            _write_atomic(marker, json.dumps(asdict(point)))  # also migrates an old marker
            if point.lines:
                print(
                    f"resuming after {point.lines} lines ({point.offset} bytes) replayed before",
                    file=sys.stderr,
                )
            self._start(point.lines + count, point.lines)
            return self._file(handle, marker, point.lines, start, end)

    def _file(self, handle: IO[bytes], marker: Path, number: int, start: int, end: int) -> bool:
        batch: list[dict[str, Any]] = []
        bad: list[tuple[int, str]] = []  # skipped for good once the saved point passes them
        unsaved = 0  # lines read since the point was saved
        offset = start
        for line, offset in _lines(handle, start, end):
            number += 1
            unsaved += 1
            if line.strip():  # a blank line is nothing to send
                message, reason = read_message(line)
                if message is None:
                    bad.append((number, reason))
                else:
                    batch.append(message)
            if len(batch) >= self.batch_size:
                if not self._commit(handle, marker, batch, bad, (offset, number, unsaved)):
                    return False
                batch, bad, unsaved = [], [], 0
        return self._commit(handle, marker, batch, bad, (offset, number, unsaved))

    def _commit(
        self,
        handle: IO[bytes],
        marker: Path,
        batch: list[dict[str, Any]],
        bad: list[tuple[int, str]],
        place: tuple[int, int, int],
    ) -> bool:
        """Send ``batch``, then save the point past its lines: (offset, line number, lines)."""
        offset, number, lines = place
        point = ResumePoint.at(handle, offset, number)
        if batch and not self._send(WireBatch(batch, key=point.batch_key())):
            return False  # its bad lines are found, and reported, again next time
        _write_atomic(marker, json.dumps(asdict(point)))
        for entry in bad:
            self._skip(*entry)
        self.progress.advance(lines - len(batch))
        return True

    def _resume(self, path: Path, handle: IO[bytes], marker: Path) -> ResumePoint:
        """The saved point if it still fits this file, else the start (saying why)."""
        fresh = ResumePoint.at(handle, 0, 0)
        try:
            saved = json.loads(marker.read_text(encoding="utf-8") or "0")
        except FileNotFoundError:
            return fresh
        except (OSError, ValueError) as exc:
            return _restart(path, f"{marker.name} cannot be read ({exc})", fresh)
        if isinstance(saved, int) and not isinstance(saved, bool):
            return _migrate(path, handle, saved, fresh)
        try:
            point = ResumePoint(**saved)
            if not all(isinstance(n, int) and n >= 0 for n in (point.offset, point.lines)):
                raise TypeError("offset and lines must be whole numbers")
        except TypeError:
            return _restart(path, f"{marker.name} is not a resume point this version reads", fresh)
        why = point.changed(handle)
        return point if why is None else _restart(path, why, fresh)

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


def read_message(line: bytes) -> tuple[dict[str, Any] | None, str]:
    """(the wire message, "") or (None, why this line is not one)."""
    nul = line.find(b"\0")
    if nul >= 0:
        return None, f"binary: a NUL byte at column {nul + 1}"
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8: byte 0x{line[exc.start]:02x} at column {exc.start + 1}"
    try:
        message = json.loads(text)
    except RecursionError:
        return None, "not JSON: nested too deeply"
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string"):
            return None, f"truncated: the JSON ends early, after {len(line)} bytes"
        return None, f"not JSON: {exc.msg} at column {exc.colno}"
    except ValueError as exc:  # JSON, but beyond what Python reads (an integer's digits)
        return None, f"unreadable JSON: {exc}"
    why = _not_a_message(message)
    return (None, f"not a Mona message: {why}") if why else (message, "")


def _not_a_message(message: Any) -> str | None:
    """Why a JSON value is not a wire message (its shape only: Mona judges the fields)."""
    if not isinstance(message, dict):
        return f"a JSON {type(message).__name__}, not an object"
    arc_class = message.get("arcClass")
    if not isinstance(arc_class, str) or not arc_class:
        hint = " (mona_sdk's contextClass is written arcClass)" if "contextClass" in message else ""
        return "arcClass must be a non-empty string" + hint
    fields = message.get("message")
    if not isinstance(fields, dict) or not fields:
        return "message must be a non-empty object"
    if not isinstance(message.get("contextId"), (str, type(None))):
        return "contextId must be a string or null"
    action = message.get("action")
    if action is not None and action not in ACTIONS:
        return f"action must be one of {', '.join(sorted(ACTIONS))} or null"
    return None


def _restart(path: Path, why: str, fresh: ResumePoint) -> ResumePoint:
    print(f"mona-middleware replay: {path}: {why}; replaying it from its start", file=sys.stderr)
    return fresh


def _migrate(path: Path, handle: IO[bytes], count: int, fresh: ResumePoint) -> ResumePoint:
    """An older marker's line count, taken only when the file has that many lines.

    Older versions counted an unfinished last line too: one line more than the file has
    whole, with an unfinished line after them, is that case, and waits for its line end.
    """
    if count <= 0:
        return fresh
    lines, offset = 0, 0
    size = os.fstat(handle.fileno()).st_size
    for _, after in _lines(handle, 0, size):
        lines, offset = lines + 1, after
        if lines == count:
            break
    unfinished = lines == count - 1 and size > offset
    if lines < count and not unfinished:
        why = f"its older marker counts {count} lines sent but the file has {lines} whole ones"
        return _restart(path, why, fresh)
    print(
        f"mona-middleware replay: {path}: read its older marker as {lines} lines sent"
        + (" (the last it counted is unfinished: it waits for its line end)" if unfinished else ""),
        file=sys.stderr,
    )
    return ResumePoint.at(handle, offset, lines)


def _lines(handle: IO[bytes], start: int, end: int) -> Iterator[tuple[bytes, int]]:
    """Each whole line between ``start`` and ``end``, with the offset just past its end.

    A ``\\r`` ending a chunk is read with the byte after it, so ``\\r\\n`` is never split;
    at ``end`` it ends a line. Seeks before each read: the caller may read in between.
    """
    pieces: list[bytes] = []  # a line longer than a chunk, so far
    position = start
    while position < end:
        handle.seek(position)
        chunk = handle.read(min(CHUNK, end - position))
        if not chunk:
            return  # shorter than it was: the next run sees why
        while chunk.endswith(b"\r") and position + len(chunk) < end:
            chunk += handle.read(1)
        for piece in chunk.splitlines(keepends=True):  # the line ends bytes.splitlines knows
            position += len(piece)
            if not piece.endswith((b"\n", b"\r")):
                pieces.append(piece)  # the chunk's unfinished last line
            elif pieces:
                yield b"".join([*pieces, piece.rstrip(b"\r\n")]), position
                pieces = []
            else:
                yield piece.rstrip(b"\r\n"), position


def _scan(handle: IO[bytes], start: int) -> tuple[int, int, int]:
    """(whole lines from ``start``, the offset past the last one's end, the file's size).

    Up to the size it has now: what a writer appends meanwhile is for the next run.
    """
    lines, end, position = 0, start, start
    size = handle.seek(0, os.SEEK_END)
    handle.seek(start)
    while position < size and (chunk := handle.read(min(CHUNK, size - position))):
        while chunk.endswith(b"\r") and (more := handle.read(1)):
            chunk += more  # so a \r\n is counted once
        lines += chunk.count(b"\n")
        last = chunk.rfind(b"\n")
        if b"\r" in chunk:  # rare: JSONL from this package ends lines with \n alone
            lines += chunk.count(b"\r") - chunk.count(b"\r\n")
            last = max(last, chunk.rfind(b"\r"))
        if last >= 0:
            end = position + last + 1
        position += len(chunk)
    return lines, end, position


def _fingerprint(handle: IO[bytes], offset: int) -> tuple[str, str]:
    """sha256 of the first bytes and of the bytes before ``offset``, up to FINGERPRINT each."""
    head = _read_at(handle, 0, min(offset, FINGERPRINT))
    tail = _read_at(handle, max(offset - FINGERPRINT, 0), min(offset, FINGERPRINT))
    return hashlib.sha256(head).hexdigest(), hashlib.sha256(tail).hexdigest()


def _read_at(handle: IO[bytes], offset: int, size: int) -> bytes:
    handle.seek(offset)
    return handle.read(size)


def _lock(handle: IO[bytes], path: Path) -> None:
    """One replay of a file at a time: two would send the same lines."""
    if fcntl is None:
        return
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise ReplayError(f"another replay of {path} is running; nothing sent") from None


def _write_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
