"""SQLite storage for the collector: raw messages and the contexts they fold into.

One connection guarded by a lock serves every request thread and every user id: SQLite
allows one writer at a time anyway, ``:memory:`` databases cannot be shared between
connections, the lock makes "fold in arrival order" a plain fact instead of a race, and
the collector holds three file descriptors (database, WAL, shared memory) however many
user ids send to it. File databases use WAL so a reader in another process (``sqlite3``
on the command line) never blocks us, and are created readable by their owner only.

A batch costs time linear in its size: each context it touches is read once, folded in
memory (``ADD`` appends in place) and written once; the per-class counts the page polls
are kept in ``classes`` so reading them never scans contexts. Reads that must see every
context of a class (summaries, charts) fetch them in chunks, releasing the lock between
chunks, and their results are cached until the class changes.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._util.log import logger
from .._util.protocol import ADD, NEW
from .summary import Overview, clip, summarize
from .validate import Message

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    batch_id TEXT NOT NULL,
    arrived REAL NOT NULL,
    class TEXT NOT NULL,
    context_id TEXT NOT NULL,
    action TEXT NOT NULL,
    timestamp REAL,
    fields TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_context ON messages (user_id, class, context_id, seq);
CREATE TABLE IF NOT EXISTS contexts (
    user_id TEXT NOT NULL,
    class TEXT NOT NULL,
    context_id TEXT NOT NULL,
    fields TEXT NOT NULL,
    time REAL NOT NULL,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    last_seq INTEGER NOT NULL,
    message_count INTEGER NOT NULL,
    PRIMARY KEY (user_id, class, context_id)
);
CREATE INDEX IF NOT EXISTS contexts_by_recency ON contexts (user_id, class, last_seq);
CREATE INDEX IF NOT EXISTS contexts_by_class ON contexts (class, last_seq);
CREATE INDEX IF NOT EXISTS contexts_by_seq ON contexts (last_seq);
CREATE INDEX IF NOT EXISTS contexts_by_user ON contexts (user_id, last_seq);
CREATE TABLE IF NOT EXISTS classes (
    user_id TEXT NOT NULL,
    class TEXT NOT NULL,
    contexts INTEGER NOT NULL,
    messages INTEGER NOT NULL,
    first_time REAL NOT NULL,
    last_time REAL NOT NULL,
    last_seen REAL NOT NULL,
    last_seq INTEGER NOT NULL,
    PRIMARY KEY (user_id, class)
);
CREATE TABLE IF NOT EXISTS idempotency (
    user_id TEXT NOT NULL,
    key TEXT NOT NULL,
    batch_id TEXT NOT NULL,
    failures TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (user_id, key)
);
CREATE INDEX IF NOT EXISTS idempotency_by_age ON idempotency (user_id, created);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
SCHEMA_VERSION = 2

# What one message's data can raise; anything else is the database's own failure.
_DATA_ERRORS = (ValueError, TypeError, OverflowError, RecursionError, sqlite3.InterfaceError)
_CONTEXT_COLUMNS = "user_id, class, context_id, fields, first_seen, last_seen, message_count"
# Idempotency keys are kept this long, and at most this many per user id.
KEY_TTL = 24 * 3600.0
MAX_KEYS = 10_000
READ_CHUNK = 2_000
CACHE_ENTRIES = 16


def _context_row(row: tuple[Any, ...], clipped: bool = False) -> dict[str, Any]:
    user_id, context_class, context_id, fields, first_seen, last_seen, count = row
    out = {
        "user": user_id,
        "class": context_class,
        "id": context_id,
        "fields": json.loads(fields),
        "first_seen": first_seen,
        "last_seen": last_seen,
        "messages": count,
    }
    if clipped:
        out["fields"], out["clipped"] = clip(out["fields"])
    return out


def _user_filter(user: str | None, column: str = "user_id") -> tuple[str, tuple[Any, ...]]:
    return (f"{column} = ?", (user,)) if user is not None else ("1", ())


def fold(record: dict[str, Any], fields: Mapping[str, Any], action: str) -> None:
    """``aggregate.apply_message`` in linear time: ``ADD`` appends to the record's own
    list in place instead of copying it, so n ADDs to one field cost O(n), not O(n^2).

    Lists the record takes from a message are copied first, so appending never changes
    a message (the record owns every list it appends to).
    """
    if action == ADD:
        for key, value in fields.items():
            held = record.get(key, _MISSING)
            if held is _MISSING:
                record[key] = [value]
            elif isinstance(held, list):
                held.append(value)
            else:
                record[key] = [held, value]
        return
    if action == NEW:
        record.clear()
    for key, value in fields.items():
        record[key] = list(value) if isinstance(value, list) else value


_MISSING = object()


@dataclass
class Stored:
    """What ``Store.ingest`` did with a batch."""

    batch_id: str | None
    failures: dict[int, str] = field(default_factory=dict)
    replayed: bool = False  # an ``Idempotency-Key`` already stored: nothing was stored again


@dataclass
class _Touched:
    record: dict[str, Any]
    new: bool
    time: float
    count: int = 0
    last_seq: int = 0
    # A new context of one OVERWRITE/NEW message is that message: its JSON is reused.
    text: str | None = None


def _create_private(path: str) -> None:
    """Create the database file 0600 (it holds the generated secret and whatever apps
    sent), and tighten an existing one of ours that is readable by others."""
    if path == ":memory:" or path.startswith("file:") or os.name != "posix":
        return
    # Any other failure (no such folder, no permission) is SQLite's to report next.
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    with contextlib.suppress(OSError):
        info = os.stat(path)
        if info.st_uid == os.getuid() and info.st_mode & 0o077:
            os.chmod(path, 0o600)
            for suffix in ("-wal", "-shm", "-journal"):
                if os.path.exists(path + suffix):
                    os.chmod(path + suffix, 0o600)


class Store:
    """Messages and aggregated contexts of every user id; thread-safe; survives reopening.

    Reads take ``user=None`` for every user id, or one user id. ``user_id`` is the
    collector's own: the default user id of a write, and the owner of data in a file
    written before user ids were a column.

    >>> store = Store(":memory:")
    >>> store.context_count()
    0
    """

    def __init__(self, path: str = ":memory:", user_id: str = "local") -> None:
        self.path = path
        self.user_id = user_id
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._cache: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        _create_private(path)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA busy_timeout = 5000")
        if path != ":memory:":
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
        self._migrate()

    def _migrate(self) -> None:
        """Create the schema; a database from before user ids were a column (version 1)
        is converted in one transaction, its data owned by ``user_id``."""
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        old = {row[1] for row in self._db.execute("PRAGMA table_info(messages)")}
        if version >= SCHEMA_VERSION or not old or "user_id" in old:
            self._db.executescript(SCHEMA)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute("ALTER TABLE messages RENAME TO old_messages")
            self._db.execute("ALTER TABLE contexts RENAME TO old_contexts")
            self._db.execute("DROP INDEX IF EXISTS messages_by_context")
            self._db.execute("DROP INDEX IF EXISTS contexts_by_recency")
            self._db.execute("CREATE INDEX old_by_context ON old_messages (class, context_id, seq)")
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            self._copy_v1("main", self.user_id, 0)
            self._db.execute("DROP TABLE old_messages")
            self._db.execute("DROP TABLE old_contexts")
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        logger.info("collector: converted %s to the schema with user ids", self.path)

    def _copy_v1(self, schema: str, user_id: str, offset: int) -> None:
        """Copy version-1 tables (``old_*`` in main, or an attached file's) as ``user_id``'s
        rows, their sequence numbers moved past ``offset``; then recount the classes."""
        messages, contexts = (
            ("old_messages", "old_contexts") if schema == "main" else
            (f"{schema}.messages", f"{schema}.contexts")
        )  # fmt: skip
        self._db.execute(
            "INSERT INTO messages (seq, user_id, batch_id, arrived, class, context_id, action,"
            f" timestamp, fields) SELECT seq + ?, ?, batch_id, arrived, class, context_id,"
            f" action, timestamp, fields FROM {messages} ORDER BY seq",
            (offset, user_id),
        )
        # A context's time: its first message's timestamp, else when it first arrived.
        self._db.execute(
            "INSERT OR IGNORE INTO contexts (user_id, class, context_id, fields, time,"
            " first_seen, last_seen, last_seq, message_count) SELECT ?, c.class, c.context_id,"
            f" c.fields, COALESCE((SELECT m.timestamp FROM {messages} m WHERE m.class = c.class"
            " AND m.context_id = c.context_id AND m.timestamp IS NOT NULL ORDER BY m.seq"
            " LIMIT 1), c.first_seen), c.first_seen, c.last_seen, c.last_seq + ?,"
            f" c.message_count FROM {contexts} c",
            (user_id, offset),
        )
        self._db.execute("DELETE FROM classes WHERE user_id = ?", (user_id,))
        self._db.execute(
            "INSERT INTO classes (user_id, class, contexts, messages, first_time, last_time,"
            " last_seen, last_seq) SELECT user_id, class, COUNT(*), SUM(message_count),"
            " MIN(time), MAX(time), MAX(last_seen), MAX(last_seq) FROM contexts"
            " WHERE user_id = ? GROUP BY class",
            (user_id,),
        )

    def import_v1_file(self, path: str, user_id: str) -> int:
        """Add the contexts of a per-user-id file an earlier version wrote (one file per
        user id) as ``user_id``'s; the number of messages imported."""
        with self._changed:
            self._db.execute("ATTACH DATABASE ? AS old", (path,))
            try:
                columns = {row[1] for row in self._db.execute("PRAGMA old.table_info(messages)")}
                if not columns or "user_id" in columns:
                    raise sqlite3.DatabaseError(f"{path} is not a per-user-id file of version 1")
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    offset = self._last_seq()
                    before = self._count_messages(None)
                    self._copy_v1("old", user_id, offset)
                    imported = self._count_messages(None) - before
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            finally:
                self._db.execute("DETACH DATABASE old")
            self._cache.clear()
            self._changed.notify_all()
        return imported

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- writes --------------------------------------------------------------------------

    def add_batch(
        self, messages: Iterable[Message], arrived: float | None = None, *, user: str | None = None
    ) -> tuple[str | None, dict[int, str]]:
        """Store one batch; (batch id, or None when nothing was stored; reasons by index)."""
        stored = self.ingest(messages, arrived=arrived, user=user)
        return stored.batch_id, stored.failures

    def ingest(
        self,
        messages: Iterable[Message],
        *,
        arrived: float | None = None,
        user: str | None = None,
        key: str | None = None,
    ) -> Stored:
        """Store one batch and fold each message into its context, in order.

        Validation (``parse_message``) already refused what cannot be stored; should a
        message still fail on its data (a Python caller's tuple key), only it is skipped
        and reported, never the batch. A database failure (disk full, locked) rolls back
        the whole batch and raises: the client may send it again.

        With ``key`` (an ``Idempotency-Key``), a batch whose key this user id already
        stored is not stored again: its first result comes back with ``replayed``. Keys
        live ``KEY_TTL`` and at most ``MAX_KEYS`` per user id, in the database, so a
        retry after a restart is recognised too.
        """
        user = self.user_id if user is None else user
        arrived = time.time() if arrived is None else arrived
        with self._changed:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                found = self._stored_key(user, key) if key is not None else None
                if found is not None:
                    self._db.execute("COMMIT")
                    return found
                result = self._fold_batch(user, arrived, messages)
                if key is not None and result.batch_id is not None:
                    self._keep_key(user, key, result, arrived)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._changed.notify_all()
        return result

    def _stored_key(self, user: str, key: str) -> Stored | None:
        row = self._db.execute(
            "SELECT batch_id, failures FROM idempotency WHERE user_id = ? AND key = ?"
            " AND created > ?",
            (user, key, time.time() - KEY_TTL),
        ).fetchone()
        if row is None:
            return None
        failures = {int(index): why for index, why in json.loads(row[1]).items()}
        return Stored(row[0], failures, replayed=True)

    def _keep_key(self, user: str, key: str, result: Stored, now: float) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO idempotency (user_id, key, batch_id, failures, created)"
            " VALUES (?, ?, ?, ?, ?)",
            (user, key, result.batch_id, json.dumps(result.failures), now),
        )
        self._db.execute(
            "DELETE FROM idempotency WHERE user_id = ? AND created <= ?", (user, now - KEY_TTL)
        )
        self._db.execute(
            "DELETE FROM idempotency WHERE user_id = ? AND rowid IN (SELECT rowid FROM"
            " idempotency WHERE user_id = ? ORDER BY created DESC, rowid DESC LIMIT -1 OFFSET ?)",
            (user, user, MAX_KEYS),
        )

    def _last_seq(self) -> int:
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'messages'").fetchone()
        highest = self._db.execute("SELECT MAX(seq) FROM messages").fetchone()[0]
        return max(row[0] if row else 0, highest or 0)

    def _load(self, user: str, context_class: str, context_id: str, moment: float) -> _Touched:
        row = self._db.execute(
            "SELECT fields, time FROM contexts WHERE user_id = ? AND class = ? AND context_id = ?",
            (user, context_class, context_id),
        ).fetchone()
        if row is None:
            return _Touched({}, new=True, time=moment)
        return _Touched(json.loads(row[0]), new=False, time=row[1])

    def _fold_batch(self, user: str, arrived: float, messages: Iterable[Message]) -> Stored:
        batch_id = uuid.uuid4().hex
        seq = self._last_seq()
        rows: list[tuple[Any, ...]] = []
        touched: dict[tuple[str, str], _Touched] = {}
        failures: dict[int, str] = {}
        for message in messages:
            try:
                text = json.dumps(message.fields, allow_nan=False)
            except _DATA_ERRORS as exc:
                logger.warning("collector: message %d not stored: %r", message.index, exc)
                failures[message.index] = f"could not be stored: {type(exc).__name__}"
                continue
            key = (message.context_class, message.context_id)
            context = touched.get(key)
            if context is None:
                moment = arrived if message.timestamp is None else message.timestamp
                context = touched[key] = self._load(user, *key, moment)
            seq += 1
            rows.append((seq, user, batch_id, arrived, *key, message.action, message.timestamp,
                         text))  # fmt: skip
            fold(context.record, message.fields, message.action)
            context.count += 1
            context.last_seq = seq
            alone = context.new and context.count == 1 and message.action != ADD
            context.text = text if alone else None
        if not rows:
            return Stored(None, failures)
        self._db.executemany(
            "INSERT INTO messages (seq, user_id, batch_id, arrived, class, context_id, action,"
            " timestamp, fields) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        self._write_contexts(user, arrived, touched)
        return Stored(batch_id, failures)

    def _write_contexts(
        self, user: str, arrived: float, touched: dict[tuple[str, str], _Touched]
    ) -> None:
        self._db.executemany(
            "INSERT INTO contexts (user_id, class, context_id, fields, time, first_seen,"
            " last_seen, last_seq, message_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (user_id, class, context_id) DO UPDATE SET fields = excluded.fields,"
            " last_seen = excluded.last_seen, last_seq = excluded.last_seq,"
            " message_count = message_count + excluded.message_count",
            [
                (user, cls, cid, context.text or json.dumps(context.record), context.time,
                 arrived, arrived, context.last_seq, context.count)
                for (cls, cid), context in touched.items()
            ],
        )  # fmt: skip
        by_class: dict[str, list[Any]] = {}
        for (cls, _), context in touched.items():
            new, count, low, high, last = by_class.get(cls, (0, 0, context.time, context.time, 0))
            by_class[cls] = [
                new + context.new, count + context.count, min(low, context.time),
                max(high, context.time), max(last, context.last_seq),
            ]  # fmt: skip
        self._db.executemany(
            "INSERT INTO classes (user_id, class, contexts, messages, first_time, last_time,"
            " last_seen, last_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (user_id, class) DO UPDATE SET"
            " contexts = contexts + excluded.contexts, messages = messages + excluded.messages,"
            " first_time = MIN(first_time, excluded.first_time),"
            " last_time = MAX(last_time, excluded.last_time),"
            " last_seen = excluded.last_seen, last_seq = excluded.last_seq",
            [(user, cls, *values[:4], arrived, values[4]) for cls, values in by_class.items()],
        )

    def changes(self) -> int:
        """Rows written by this store so far (SQLite's ``total_changes``): what a batch
        costs in writes, e.g. one row per message plus one per context it touched."""
        with self._lock:
            return self._db.total_changes

    # -- reads ---------------------------------------------------------------------------

    def wait_for_messages(self, count: int, timeout: float = 5.0, user: str | None = None) -> bool:
        """Block until at least ``count`` messages are stored; False after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._count_messages(user) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
        return True

    def _count_messages(self, user: str | None) -> int:
        where, params = _user_filter(user)
        row = self._db.execute(f"SELECT SUM(messages) FROM classes WHERE {where}", params)
        return row.fetchone()[0] or 0

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def message_count(self, user: str | None = None) -> int:
        with self._lock:
            return self._count_messages(user)

    def context_count(self, user: str | None = None, context_class: str | None = None) -> int:
        where, params = _user_filter(user)
        if context_class is not None:
            where, params = f"{where} AND class = ?", (*params, context_class)
        return self._query(f"SELECT SUM(contexts) FROM classes WHERE {where}", params)[0][0] or 0

    def users(self, limit: int | None = None) -> list[dict[str, Any]]:
        """User ids with data, the one that sent last first."""
        rows = self._query(
            "SELECT user_id, SUM(contexts), SUM(messages), MAX(last_seen), MAX(last_seq)"
            " FROM classes GROUP BY user_id ORDER BY MAX(last_seq) DESC LIMIT ?",
            (-1 if limit is None else limit,),
        )
        return [
            {"user_id": user, "contexts": contexts, "messages": messages, "last_seen": last}
            for user, contexts, messages, last, _ in rows
        ]

    def user_count(self) -> int:
        return self._query("SELECT COUNT(DISTINCT user_id) FROM classes")[0][0]

    def classes(
        self, user: str | None = None, limit: int | None = None
    ) -> dict[str, dict[str, Any]]:
        """Context class -> number of contexts and messages, and when one last arrived;
        the class that changed last first."""
        where, params = _user_filter(user)
        rows = self._query(
            "SELECT class, SUM(contexts), SUM(messages), MAX(last_seen) FROM classes"
            f" WHERE {where} GROUP BY class ORDER BY MAX(last_seq) DESC LIMIT ?",
            (*params, -1 if limit is None else limit),
        )
        return {
            name: {"contexts": contexts, "messages": messages, "last_seen": last_seen}
            for name, contexts, messages, last_seen in rows
        }

    def class_count(self, user: str | None = None) -> int:
        where, params = _user_filter(user)
        return self._query(f"SELECT COUNT(DISTINCT class) FROM classes WHERE {where}", params)[0][0]

    def contexts(
        self,
        context_class: str | None = None,
        limit: int = 50,
        *,
        user: str | None = None,
        offset: int = 0,
        clipped: bool = False,
    ) -> list[dict[str, Any]]:
        """The ``limit`` most recently updated contexts after ``offset``, of one class or
        of all; ``clipped`` cuts long values (``clip``) and marks the rows it cut."""
        conditions, params = [], []
        if user is not None:
            conditions.append("user_id = ?")
            params.append(user)
        if context_class is not None:
            conditions.append("class = ?")
            params.append(context_class)
        where = "WHERE " + " AND ".join(conditions) if conditions else ""
        rows = self._query(
            f"SELECT {_CONTEXT_COLUMNS} FROM contexts {where} ORDER BY last_seq DESC"
            " LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return [_context_row(row, clipped) for row in rows]

    def context(
        self,
        context_class: str,
        context_id: str,
        *,
        user: str | None = None,
        history_limit: int | None = None,
        history_offset: int = 0,
    ) -> dict[str, Any] | None:
        """One context's fields and the messages that built it, oldest first (the
        ``history_limit`` after ``history_offset``; ``history_total`` counts them all).
        Without ``user``, the most recently updated context of that class and id."""
        where, params = _user_filter(user)
        with self._lock:
            row = self._db.execute(
                f"SELECT {_CONTEXT_COLUMNS} FROM contexts WHERE {where} AND class = ?"
                " AND context_id = ? ORDER BY last_seq DESC LIMIT 1",
                (*params, context_class, context_id),
            ).fetchone()
            if row is None:
                return None
            key = (row[0], context_class, context_id)
            history = self._db.execute(
                "SELECT seq, batch_id, arrived, action, timestamp, fields FROM messages"
                " WHERE user_id = ? AND class = ? AND context_id = ? ORDER BY seq"
                " LIMIT ? OFFSET ?",
                (*key, -1 if history_limit is None else history_limit, history_offset),
            ).fetchall()
        result = _context_row(row)
        result["history_total"] = result["messages"]
        result["history"] = [
            {"seq": seq, "batch": batch, "arrived": arrived, "action": action,
             "timestamp": stamp, "fields": json.loads(fields)}
            for seq, batch, arrived, action, stamp, fields in history
        ]  # fmt: skip
        return result

    def _class_version(self, context_class: str, user: str | None) -> tuple[Any, ...]:
        where, params = _user_filter(user)
        return tuple(
            self._query(
                "SELECT SUM(contexts), SUM(messages), MAX(last_seq), MIN(first_time),"
                f" MAX(last_time) FROM classes WHERE {where} AND class = ?",
                (*params, context_class),
            )[0]
        )

    def _class_rows(self, context_class: str, user: str | None) -> Iterator[tuple[str, float]]:
        """(fields, time) of every context of a class, fetched ``READ_CHUNK`` at a time in
        update order, so writers wait for one chunk at most, never for a whole summary (a
        context updated meanwhile moves on and is met again: ``seen`` skips it)."""
        where, params = _user_filter(user)
        after = -1
        seen: set[int] = set()
        while True:
            rows = self._query(
                f"SELECT rowid, last_seq, fields, time FROM contexts WHERE {where}"
                " AND class = ? AND last_seq > ? ORDER BY last_seq LIMIT ?",
                (*params, context_class, after, READ_CHUNK),
            )
            for rowid, _, fields, moment in rows:
                if rowid not in seen:
                    seen.add(rowid)
                    yield fields, moment
            if len(rows) < READ_CHUNK:
                return
            after = rows[-1][1]

    def _cached(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        value = compute()
        with self._lock:
            self._cache[key] = value
            while len(self._cache) > CACHE_ENTRIES:
                self._cache.popitem(last=False)
        return value

    def summary(self, context_class: str, user: str | None = None) -> dict[str, Any]:
        """Per-field statistics over the class's aggregated contexts (see ``summarize``)."""
        version = self._class_version(context_class, user)

        def compute() -> dict[str, Any]:
            records = (json.loads(fields) for fields, _ in self._class_rows(context_class, user))
            return {"class": context_class, **summarize(records)}

        return self._cached(("summary", context_class, user, version), compute)

    def overview(
        self, context_class: str, user: str | None = None, split: str | None = None
    ) -> dict[str, Any]:
        """What the page draws for a class (see ``summary.Overview``), cached until the
        class changes; ``compute_ms`` says what it cost, so the page can poll less."""
        version = self._class_version(context_class, user)

        def compute() -> dict[str, Any]:
            started = time.perf_counter()
            charts = Overview(version[3], version[4], split)
            for fields, moment in self._class_rows(context_class, user):
                charts.add(json.loads(fields), moment)
            result = {"class": context_class, **charts.result()}
            result["compute_ms"] = round((time.perf_counter() - started) * 1000, 1)
            return result

        return self._cached(("overview", context_class, user, split, version), compute)

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
