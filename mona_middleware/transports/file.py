"""Appends wire messages to a JSONL file: the no-account default, and replayable later."""

from __future__ import annotations

import os
import threading
from typing import Any

from .._util import jsonwire
from .base import SendResult, Transport


class JsonlFileTransport(Transport):
    """One wire message per line, appended with ``O_APPEND`` in one write per batch.

    One write per batch keeps lines whole when several gunicorn workers share the file.
    ``mona-middleware replay PATH`` sends such a file to Mona later.
    """

    name = "file"
    encoded_messages = True

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(os.path.expanduser(path))
        self._lock = threading.Lock()
        self._fd: int | None = None

    def send(self, messages: list[dict[str, Any]]) -> SendResult:
        try:
            data = jsonwire.dumps_lines(messages)
        except ValueError as exc:
            return SendResult.rejected(len(messages), f"not JSON: {exc}")
        try:
            with self._lock:
                if self._fd is None:
                    directory = os.path.dirname(self.path)
                    if directory:
                        os.makedirs(directory, exist_ok=True)
                    self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                view = memoryview(data)
                while view:
                    view = view[os.write(self._fd, view) :]
        except OSError as exc:
            return SendResult.transient(len(messages), f"cannot write {self.path}: {exc.strerror}")
        return SendResult.ok(len(messages))

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def after_fork(self) -> None:
        self._lock = threading.Lock()  # the inherited fd stays valid and appends safely

    def describe(self) -> str:
        return f"file {self.path}"
