"""A size-capped directory of batches the backend could not take yet, resent later.

Each batch is one JSONL file (one wire message per line, the file transport's format,
so ``mona-middleware replay`` reads both), named ``<time_ns>-<pid>-<key>-<a|n>-<count>.jsonl``
so that the oldest sorts first, the message count survives any damage to the content,
and a resend carries the batch's idempotency key (``key``) and what is known of its
earlier sends (``a``: one may have been stored unanswered) as the first sends did. Files
of earlier versions (``<time_ns>-<pid>-<token>-<seq>-<count>.jsonl``) get a key made from
their name, the same on every resend.
Files are written under a temporary name and renamed, and claimed by renaming before
they are resent, so several processes (gunicorn workers, the next deploy) can share one
spool without sending a batch twice: of two processes renaming one file, one wins.

Claims. A claim is ``<file>.claimed-<host>-<pid>-<token>-<ms>``: a hash of the hostname,
the claimer's PID, a random token made for each process (renewed in a forked child) and
the claim's time. A claim is given back to the spool (stale) when it was made on this
host by a process with our PID but another token (this container's PID 1 before a
crash), or by a PID that no longer runs. A claim whose owner cannot be verified (another
host sharing the directory, or a PID that runs but may be another namespace's or a reused
one) is given back once it is older than ``claim_max_age``, which must be longer than a
resend takes: one ``http_timeout`` for the exporter, ``retry_max_time`` for ``replay``.
Containers have hostnames of their own, so one hostname is taken to mean one PID
namespace.

Cap. Sizes are summed and the new file written under one lock, so threads never push the
spool past ``max_bytes``; batches being resent and other processes' unfinished files
count too. Processes share no lock: when P processes write at the same instant, each may
miss the others' batch in flight, so the directory can pass the cap by at most P - 1
batches, and the next write trims it back under the cap.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from .._util import forks, jsonwire
from .._util.log import limited, logger
from .._util.stats import ExportStats
from ..transports.base import WireBatch, new_batch_key

SUFFIX = ".jsonl"
CLAIM = ".claimed-"
TEMPORARY = ".tmp"
CLAIM_MAX_AGE = 600.0
_ignore_missing = contextlib.suppress(FileNotFoundError)
_write_lock = threading.Lock()  # one spool write at a time in this process, any directory
_token_lock = threading.Lock()
_token: str | None = None


def process_token() -> str:
    """A random token for this process, made at the first spool's creation."""
    global _token
    with _token_lock:
        if _token is None:
            _token = secrets.token_hex(6)
        return _token


def forget_token() -> None:
    """Be a new process: the next claim gets a new token (a forked child's first step)."""
    global _token, _token_lock
    _token, _token_lock = None, threading.Lock()


@forks.after_fork_in_child
def _renew() -> None:
    # A lock some other thread of the parent held is held forever in the child.
    global _write_lock
    _write_lock = threading.Lock()
    forget_token()


def host_tag() -> str:
    return hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


def default_spool_dir(destination: str) -> str:
    """A per-user directory, one per backend, so two apps never resend to each other's Mona."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    digest = hashlib.sha256(destination.encode()).hexdigest()[:16]
    return os.path.join(base, "mona_middleware", "spool", digest)


@dataclass(frozen=True)
class SpoolFile:
    """A claimed batch: resend it, then ``done`` (sent) or ``release`` (try later)."""

    path: Path
    original: Path
    count: int


class _Claim(NamedTuple):
    host: str | None  # None: an older version's claim, ``.claimed-<pid>``
    pid: int | None
    token: str | None
    since: float | None  # seconds since the epoch; None: read the file's ctime


class Spool:
    """Write, claim, and forget spooled batches; all methods are thread-safe and never raise."""

    def __init__(
        self,
        directory: str,
        max_bytes: int,
        stats: ExportStats,
        claim_max_age: float = CLAIM_MAX_AGE,
    ) -> None:
        self.directory = Path(directory).expanduser()
        self.max_bytes = max_bytes
        self.claim_max_age = claim_max_age
        self._stats = stats
        self._usable: bool | None = None
        self._host = host_tag()
        process_token()

    def usable(self) -> bool:
        """Create the directory on first use; if it cannot be written, say so once."""
        if self._usable is None:
            try:
                self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
                # Its own name per thread: two first uses at once must not remove each
                # other's probe (the loser would run without a spool for good).
                probe = self.directory / (
                    f".probe-{os.getpid()}-{process_token()}-{threading.get_ident()}"
                )
                probe.write_bytes(b"")
                probe.unlink()
                self._usable = True
            except OSError as exc:
                logger.warning(
                    "mona_middleware: the spool directory %s cannot be written (%s); "
                    "going on without a spool",
                    self.directory,
                    exc.strerror,
                )
                self._usable = False
        return self._usable

    # -- writing ------------------------------------------------------------------

    def write(self, messages: list[dict[str, Any]]) -> bool:
        """Keep ``messages`` for later; False when the spool cannot take them (not counted)."""
        if not messages or not self.usable():
            return False
        try:
            data = jsonwire.dumps_lines(messages)
        except ValueError as exc:  # cannot happen to converted messages; never lose them quietly
            self._stats.drop("not JSON", len(messages))
            limited(
                logging.ERROR, "spool:json", "mona_middleware: could not spool a batch: %s", exc
            )
            return True
        if len(data) > self.max_bytes:
            return self._full(len(messages))  # the spool's cap is smaller than this one batch
        key = getattr(messages, "key", None) or new_batch_key()
        flag = "a" if getattr(messages, "ambiguous", False) else "n"
        with _write_lock:
            name = f"{time.time_ns():020d}-{os.getpid()}-{key}-{flag}-{len(messages)}{SUFFIX}"
            temporary = self.directory / f".{name}{TEMPORARY}"
            try:
                if not self._make_room(len(data)):
                    return self._full(len(messages))
                temporary.write_bytes(data)
                os.replace(temporary, self.directory / name)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    temporary.unlink()
                limited(
                    logging.ERROR,
                    "spool:write",
                    "mona_middleware: could not write the spool: %s",
                    exc,
                )
                return False
        self._stats.add("messages_spooled", len(messages))
        return True

    def _full(self, count: int) -> bool:
        self._stats.drop("spool full", count)
        limited(
            logging.WARNING,
            "spool:full",
            "mona_middleware: the spool is full (%d bytes); a batch was dropped",
            self.max_bytes,
        )
        return True

    def _make_room(self, needed: int) -> bool:
        """Drop the oldest waiting batches until ``needed`` more bytes fit under the cap.

        Batches being resent and files other processes are writing count but cannot be
        dropped; False when they alone leave no room. Caller holds ``_write_lock``.
        """
        self._reclaim_stale()
        # Another process may remove or claim a file between our listing and our unlink:
        # look again before calling the spool full.
        return any(self._trim(needed) for _ in range(3))

    def _trim(self, needed: int) -> bool:
        """One look at the directory: sum what is there, drop the oldest that is waiting."""
        now = time.time()
        total = 0
        waiting: list[tuple[str, int]] = []
        with os.scandir(self.directory) as entries:
            for entry in entries:
                kind = _kind(entry.name)
                try:
                    status = entry.stat()
                except OSError:
                    continue  # gone meanwhile
                if kind == "temporary" and now - status.st_mtime > self.claim_max_age:
                    with contextlib.suppress(OSError):  # left by a process that died writing
                        os.unlink(entry.path)
                    continue
                if kind is not None:
                    total += status.st_size
                if kind == "waiting":
                    waiting.append((entry.name, status.st_size))
        for name, size in sorted(waiting):
            if total + needed <= self.max_bytes:
                break
            path = self.directory / name
            try:
                path.unlink()
            except OSError:
                continue  # claimed meanwhile: it still counts
            total -= size
            self._stats.drop("spool full (oldest dropped)", _count(path))
            limited(
                logging.WARNING,
                "spool:oldest",
                "mona_middleware: the spool is full (%d bytes); dropped its oldest batch",
                self.max_bytes,
            )
        return total + needed <= self.max_bytes

    # -- resending ----------------------------------------------------------------

    def claim(self) -> SpoolFile | None:
        """Take the oldest batch no other process is resending; None when there is none."""
        if not self.usable():
            return None
        self._reclaim_stale()
        for path in sorted(self._entries(claimed=False)):
            tag = f"{self._host}-{os.getpid()}-{process_token()}-{int(time.time() * 1000)}"
            claimed = path.with_name(f"{path.name}{CLAIM}{tag}")
            try:
                os.rename(path, claimed)
            except OSError:
                continue  # another process took it first
            return SpoolFile(claimed, path, _count(path))
        return None

    def load(self, item: SpoolFile) -> WireBatch:
        """The claimed batch's messages; what cannot be read is counted as dropped.

        A file that yields nothing is removed here (counted by the count in its name),
        so it is never stuck and never silently gone; ``done`` after it is harmless.
        """
        try:
            data = item.path.read_bytes()
        except FileNotFoundError:
            return WireBatch()  # taken back by a process that judged our claim stale
        except OSError as exc:
            self._lost(item.count, "spool file unreadable", exc.strerror or str(exc), item)
            self._discard(item)
            return WireBatch()
        messages, bad = _parse_lines(data)
        if bad or len(messages) < item.count:
            lost = max(item.count - len(messages), bad)
            why = f"{len(messages)} of {item.count} message(s) readable"
            self._lost(lost, "spool line unreadable", why, item)
        if not messages:
            self.done(item)
        key, ambiguous = batch_identity(item.original.name)
        return WireBatch(messages, key=key, ambiguous=ambiguous)

    def _lost(self, count: int, reason: str, why: str, item: SpoolFile) -> None:
        self._stats.drop(reason, count)
        limited(
            logging.ERROR,
            f"spool:{reason}",
            "mona_middleware: %s: %d message(s) of %s dropped (%s)",
            reason,
            count,
            item.original.name,
            why,
        )

    def _discard(self, item: SpoolFile) -> None:
        """Remove an unreadable batch, or at least hide it, so nobody counts it again."""
        try:
            item.path.unlink()
        except FileNotFoundError:
            pass
        except OSError:
            with contextlib.suppress(OSError):
                os.rename(item.path, item.path.with_name(f".unreadable-{item.original.name}"))

    def done(self, item: SpoolFile) -> None:
        try:
            item.path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            limited(
                logging.ERROR,
                "spool:done",
                "mona_middleware: could not remove %s: %s",
                item.path,
                exc,
            )

    def release(self, item: SpoolFile) -> None:
        try:
            os.rename(item.path, item.original)
        except FileNotFoundError:
            pass
        except OSError as exc:
            limited(
                logging.ERROR,
                "spool:release",
                "mona_middleware: could not release %s: %s",
                item.path,
                exc,
            )

    # -- looking ------------------------------------------------------------------

    def has_pending(self) -> bool:
        """Any batch waiting, or held by a dead process (without creating the directory)."""
        if any(self._entries(claimed=False)):
            return True
        now = time.time()
        return any(self._stale(path, now) for path in self._claims())

    def summary(self) -> dict[str, Any]:
        """What ``stats()["spool"]`` shows."""
        batches, messages = self.pending()
        return {"directory": str(self.directory), "batches": batches, "messages": messages}

    def pending(self) -> tuple[int, int]:
        """(batches, messages) in the spool, those being resent included."""
        files = list(self._entries(claimed=True))
        return len(files), sum(_count(path) for path in files)

    def _entries(self, claimed: bool):
        try:
            for path in self.directory.iterdir():
                if path.name.startswith("."):
                    continue
                if path.name.endswith(SUFFIX) or (claimed and CLAIM in path.name):
                    yield path
        except OSError:
            return

    def _claims(self):
        return (path for path in self._entries(claimed=True) if CLAIM in path.name)

    def _reclaim_stale(self) -> None:
        """A process that died while resending leaves a claim: give its batch back."""
        now = time.time()
        for path in self._claims():
            if self._stale(path, now):
                with contextlib.suppress(OSError):  # another process gave it back first
                    os.rename(path, path.with_name(path.name.rpartition(CLAIM)[0]))

    def _stale(self, path: Path, now: float) -> bool:
        claim = _parse_claim(path.name)
        pid = os.getpid()
        if claim.host == self._host and claim.pid is not None:
            if claim.pid == pid:
                return claim.token != process_token()  # an earlier process with our PID
            if not _alive(claim.pid):
                return True
        elif claim.host is None and claim.pid not in (None, pid) and not _alive(claim.pid):
            return True  # an older version's claim: same host, as that version assumed
        since = claim.since if claim.since is not None else _changed(path)
        return now - since > self.claim_max_age


def _kind(name: str) -> str | None:
    """What a directory entry is: a batch waiting, claimed, being written, or not ours."""
    if name.startswith("."):
        return "temporary" if name.endswith(TEMPORARY) and not name.startswith(".probe") else None
    if CLAIM in name:
        return "claimed"
    return "waiting" if name.endswith(SUFFIX) else None


def _parse_claim(name: str) -> _Claim:
    tail = name.rpartition(CLAIM)[2]
    if tail.isdigit():
        return _Claim(None, int(tail), None, None)
    parts = tail.split("-")
    if len(parts) == 4 and parts[1].isdigit() and parts[3].isdigit():
        return _Claim(parts[0], int(parts[1]), parts[2], int(parts[3]) / 1000)
    return _Claim("?", None, None, None)  # unknown: only its age can free it


def parse_line(line: bytes) -> dict[str, Any] | None:
    """One JSONL line (a spool's or the file transport's) as a wire message, or None."""
    try:
        message = json.loads(line.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    return message if isinstance(message, dict) else None


def _parse_lines(data: bytes) -> tuple[list[dict[str, Any]], int]:
    """(messages, unreadable lines); bytes split on newlines only, not on U+2028."""
    messages: list[dict[str, Any]] = []
    bad = 0
    for line in data.split(b"\n"):
        if line.strip():
            message = parse_line(line)
            if message is None:
                bad += 1
            else:
                messages.append(message)
    return messages, bad


def batch_identity(name: str) -> tuple[str, bool]:
    """(idempotency key, an earlier send may have been stored) from a spool file's name."""
    parts = name.split(SUFFIX)[0].split("-")
    if len(parts) == 5 and parts[3] in ("a", "n"):
        return parts[2], parts[3] == "a"
    # An earlier version's file: a key of its own, the same on every resend of it.
    return "spool" + hashlib.sha256(name.encode()).hexdigest()[:24], False


def _count(path: Path) -> int:
    try:
        return int(path.name.split(SUFFIX)[0].rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return 0


def _changed(path: Path) -> float:
    """When the file was last renamed or written (a rename sets ctime); now if unknown."""
    try:
        status = path.stat()
    except OSError:
        return time.time()
    return max(status.st_mtime, status.st_ctime)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def spool_for(config: Any, transport: Any, stats: ExportStats) -> Spool | None:
    """A spool for backends that can be down (REST); a local file or memory needs none."""
    if not config.spool or transport.name != "rest":
        return None
    directory = config.spool_dir or default_spool_dir(transport.spool_key())
    return Spool(directory, config.spool_max_bytes, stats)
