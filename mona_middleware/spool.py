"""A size-capped directory of batches the backend could not take yet, resent later.

Each batch is one JSONL file (one wire message per line, the file transport's format,
so ``mona-middleware replay`` reads both). Files are written under a temporary name and
renamed, and claimed by renaming before they are resent, so several processes (gunicorn
workers, the next deploy) can share one spool without sending a batch twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._log import limited, logger
from ._stats import ExportStats

SUFFIX = ".jsonl"
_ignore_missing = contextlib.suppress(FileNotFoundError)
CLAIM = ".claimed-"


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


class Spool:
    """Write, claim, and forget spooled batches; all methods are thread-safe and never raise."""

    def __init__(self, directory: str, max_bytes: int, stats: ExportStats) -> None:
        self.directory = Path(directory).expanduser()
        self.max_bytes = max_bytes
        self._stats = stats
        self._lock = threading.Lock()
        self._seq = 0
        self._usable: bool | None = None

    def usable(self) -> bool:
        """Create the directory on first use; if it cannot be written, say so once."""
        if self._usable is None:
            try:
                self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
                probe = self.directory / f".probe-{os.getpid()}"
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

    def write(self, messages: list[dict[str, Any]]) -> bool:
        """Keep ``messages`` for later; False when the spool cannot take them."""
        if not messages or not self.usable():
            return False
        data = "".join(json.dumps(m, separators=(",", ":")) + "\n" for m in messages).encode()
        if len(data) > self.max_bytes:
            self._stats.drop("spool full", len(messages))
            return True  # counted: the spool's cap is smaller than this one batch
        with self._lock:
            self._seq += 1
            name = f"{time.time_ns():020d}-{os.getpid()}-{self._seq}-{len(messages)}{SUFFIX}"
        try:
            self._make_room(len(data))
            temporary = self.directory / ("." + name + ".tmp")
            temporary.write_bytes(data)
            os.replace(temporary, self.directory / name)
        except OSError as exc:
            limited(40, "spool:write", "mona_middleware: could not write the spool: %s", exc)
            return False
        self._stats.add("messages_spooled", len(messages))
        return True

    def _make_room(self, needed: int) -> None:
        """Drop the oldest batches until ``needed`` bytes fit under the cap, counting them."""
        files = sorted(self._entries(claimed=True))
        total = sum(_size(path) for path in files)
        for path in files:
            if total + needed <= self.max_bytes:
                return
            if CLAIM in path.name:
                continue  # being resent right now
            total -= _size(path)
            with _ignore_missing:
                path.unlink()
                self._stats.drop("spool full (oldest dropped)", _count(path))
                limited(
                    30,
                    "spool:full",
                    "mona_middleware: the spool is full (%d bytes); dropped its oldest batch",
                    self.max_bytes,
                )

    def claim(self) -> SpoolFile | None:
        """Take the oldest batch no other process is resending; None when there is none."""
        if not self.usable():
            return None
        self._reclaim_stale()
        for path in sorted(self._entries(claimed=False)):
            claimed = path.with_name(f"{path.name}{CLAIM}{os.getpid()}")
            try:
                os.rename(path, claimed)
            except OSError:
                continue  # another process took it first
            return SpoolFile(claimed, path, _count(path))
        return None

    def load(self, item: SpoolFile) -> list[dict[str, Any]]:
        messages = []
        try:
            lines = item.path.read_text().splitlines()
        except OSError:
            return []
        for line in lines:
            try:
                messages.append(json.loads(line))
            except ValueError:
                self._stats.drop("spool line unreadable", 1)
        return messages

    def done(self, item: SpoolFile) -> None:
        with _ignore_missing:
            item.path.unlink()

    def release(self, item: SpoolFile) -> None:
        with _ignore_missing:
            os.rename(item.path, item.original)

    def has_pending(self) -> bool:
        """Any batch waiting (without creating the directory)."""
        return any(self._entries(claimed=False))

    def pending(self) -> tuple[int, int]:
        """(batches, messages) waiting in the spool."""
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

    def _reclaim_stale(self) -> None:
        """A process that died while resending leaves a claim: give its batch back."""
        for path in self._entries(claimed=True):
            name, sep, pid = path.name.rpartition(CLAIM)
            if sep and pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
                with _ignore_missing:
                    os.rename(path, path.with_name(name))


def _count(path: Path) -> int:
    try:
        return int(path.name.split(SUFFIX)[0].rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return 0


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
