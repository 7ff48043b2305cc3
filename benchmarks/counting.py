"""Counting the requests a server really served, across worker processes.

Every request is counted in a memory-mapped file per process, so the runner knows
exactly how many requests were served, including those still in flight when the load
generator stopped, even if a process dies without running ``atexit``. The count costs
the same fraction of a microsecond whatever tool is measured.
"""

from __future__ import annotations

import mmap
import os
import struct
from typing import Any

COUNT_DIR_ENV = "BENCH_COUNT_DIR"


class RequestCounter:
    """A request count that lives in the page cache, not in the process."""

    def __init__(self, directory: str) -> None:
        path = os.path.join(directory, f"{os.getpid()}.count")
        with open(path, "wb") as file:
            file.write(b"\0" * 8)
        with open(path, "r+b") as file:
            self._map = mmap.mmap(file.fileno(), 8)
        self.count = 0

    def add(self) -> None:
        self.count += 1
        struct.pack_into("<Q", self._map, 0, self.count)


def read_counts(directory: str) -> int:
    """The requests served by every process that counted into ``directory``."""
    total = 0
    for name in os.listdir(directory):
        if name.endswith(".count"):
            with open(os.path.join(directory, name), "rb") as file:
                total += struct.unpack("<Q", file.read(8))[0]
    return total


def counted(app: Any, kind: str, counter: RequestCounter) -> Any:
    if kind == "wsgi":

        def wsgi(environ: dict, start_response: Any) -> Any:
            counter.add()
            return app(environ, start_response)

        return wsgi

    async def asgi(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            counter.add()
        await app(scope, receive, send)

    return asgi
