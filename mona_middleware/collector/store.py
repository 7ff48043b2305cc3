"""SQLite storage for the collector: raw messages and the contexts they fold into.

One connection guarded by a lock serves every request thread: SQLite allows one writer
at a time anyway, ``:memory:`` databases cannot be shared between connections, and the
lock makes "fold in arrival order" a plain fact instead of a race. File databases use
WAL so a reader in another process (``sqlite3`` on the command line) never blocks us.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable
from typing import Any

from .._util.log import logger
from ..aggregate import apply_message
from .summary import summarize
from .validate import Message

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    batch_id TEXT NOT NULL,
    arrived REAL NOT NULL,
    class TEXT NOT NULL,
    context_id TEXT NOT NULL,
    action TEXT NOT NULL,
    timestamp REAL,
    fields TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_context ON messages (class, context_id, seq);
CREATE TABLE IF NOT EXISTS contexts (
    class TEXT NOT NULL,
    context_id TEXT NOT NULL,
    fields TEXT NOT NULL,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    last_seq INTEGER NOT NULL,
    message_count INTEGER NOT NULL,
    PRIMARY KEY (class, context_id)
);
CREATE INDEX IF NOT EXISTS contexts_by_recency ON contexts (class, last_seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

# What one message's data can raise; anything else is the database's own failure.
_DATA_ERRORS = (ValueError, TypeError, OverflowError, RecursionError, sqlite3.InterfaceError)
_CONTEXT_COLUMNS = "class, context_id, fields, first_seen, last_seen, message_count"


def _context_row(row: tuple[Any, ...]) -> dict[str, Any]:
    context_class, context_id, fields, first_seen, last_seen, count = row
    return {
        "class": context_class,
        "id": context_id,
        "fields": json.loads(fields),
        "first_seen": first_seen,
        "last_seen": last_seen,
        "messages": count,
    }


class Store:
    """Messages and aggregated contexts; thread-safe; survives reopening the same file.

    >>> store = Store(":memory:")
    >>> store.context_count()
    0
    """

    def __init__(self, path: str = ":memory:") -> None:
        self.path = path
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA busy_timeout = 5000")
        if path != ":memory:":
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add_batch(
        self, messages: Iterable[Message], arrived: float | None = None
    ) -> tuple[str | None, dict[int, str]]:
        """Store one batch and fold each message into its context, in order.

        Returns (batch id, or None when nothing was stored; reasons by message index).
        Validation (``parse_message``) already refused what cannot be stored; should a
        message still fail on its data, only it is rolled back (a savepoint each) and
        reported, never the batch. A database failure (disk full, locked) rolls back the
        whole batch and raises: the client may send it again.
        """
        batch_id = uuid.uuid4().hex
        arrived = time.time() if arrived is None else arrived
        failures: dict[int, str] = {}
        stored = 0
        with self._changed:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for message in messages:
                    reason = self._add_alone(batch_id, arrived, message)
                    if reason is None:
                        stored += 1
                    else:
                        failures[message.index] = reason
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._changed.notify_all()
        return (batch_id if stored else None), failures

    def _add_alone(self, batch_id: str, arrived: float, message: Message) -> str | None:
        """Add one message inside its own savepoint; the reason it could not be, or None."""
        self._db.execute("SAVEPOINT message")
        try:
            self._add_message(batch_id, arrived, message)
        except _DATA_ERRORS as exc:
            self._db.execute("ROLLBACK TO message")
            self._db.execute("RELEASE message")
            logger.warning("collector: message %d not stored: %r", message.index, exc)
            return f"could not be stored: {type(exc).__name__}"
        self._db.execute("RELEASE message")
        return None

    def _add_message(self, batch_id: str, arrived: float, message: Message) -> None:
        key = (message.context_class, message.context_id)
        cursor = self._db.execute(
            "INSERT INTO messages (batch_id, arrived, class, context_id, action, timestamp,"
            " fields) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                batch_id,
                arrived,
                *key,
                message.action,
                message.timestamp,
                json.dumps(message.fields),
            ),
        )
        row = self._db.execute(
            "SELECT fields FROM contexts WHERE class = ? AND context_id = ?", key
        ).fetchone()
        record = json.loads(row[0]) if row else {}
        apply_message(record, message.fields, message.action)
        self._db.execute(
            "INSERT INTO contexts (class, context_id, fields, first_seen, last_seen, last_seq,"
            " message_count) VALUES (?, ?, ?, ?, ?, ?, 1)"
            " ON CONFLICT (class, context_id) DO UPDATE SET fields = excluded.fields,"
            " last_seen = excluded.last_seen, last_seq = excluded.last_seq,"
            " message_count = message_count + 1",
            (*key, json.dumps(record), arrived, arrived, cursor.lastrowid),
        )

    def wait_for_messages(self, count: int, timeout: float = 5.0) -> bool:
        """Block until at least ``count`` messages are stored; False after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._count("messages") < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
        return True

    def _count(self, table: str) -> int:
        return self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def message_count(self) -> int:
        with self._lock:
            return self._count("messages")

    def context_count(self) -> int:
        with self._lock:
            return self._count("contexts")

    def classes(self) -> dict[str, dict[str, Any]]:
        """Context class -> number of contexts and messages, and when one last arrived."""
        rows = self._query(
            "SELECT class, COUNT(*), SUM(message_count), MAX(last_seen) FROM contexts"
            " GROUP BY class ORDER BY class"
        )
        return {
            name: {"contexts": contexts, "messages": messages, "last_seen": last_seen}
            for name, contexts, messages, last_seen in rows
        }

    def contexts(self, context_class: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """The ``limit`` most recently updated contexts, of one class or of all."""
        where, params = ("WHERE class = ?", (context_class,)) if context_class else ("", ())
        rows = self._query(
            f"SELECT {_CONTEXT_COLUMNS} FROM contexts {where} ORDER BY last_seq DESC LIMIT ?",
            (*params, limit),
        )
        return [_context_row(row) for row in rows]

    def context(self, context_class: str, context_id: str) -> dict[str, Any] | None:
        """One context's fields and every message that built it, oldest first."""
        key = (context_class, context_id)
        with self._lock:
            row = self._db.execute(
                f"SELECT {_CONTEXT_COLUMNS} FROM contexts WHERE class = ? AND context_id = ?", key
            ).fetchone()
            history = self._db.execute(
                "SELECT seq, batch_id, arrived, action, timestamp, fields FROM messages"
                " WHERE class = ? AND context_id = ? ORDER BY seq",
                key,
            ).fetchall()
        if row is None:
            return None
        result = _context_row(row)
        result["history"] = [
            {"seq": seq, "batch": batch, "arrived": arrived, "action": action,
             "timestamp": stamp, "fields": json.loads(fields)}
            for seq, batch, arrived, action, stamp, fields in history
        ]  # fmt: skip
        return result

    def summary(self, context_class: str) -> dict[str, Any]:
        """Per-field statistics over the class's aggregated contexts (see ``summarize``)."""
        rows = self._query("SELECT fields FROM contexts WHERE class = ?", (context_class,))
        result = summarize(json.loads(fields) for (fields,) in rows)
        return {"class": context_class, **result}

    def get_meta(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )
