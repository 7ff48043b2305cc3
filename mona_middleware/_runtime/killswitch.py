"""The "Big Red Button" of mona-client: ``disable_all`` in a JSON file, re-read while running.

    MONA_MIDDLEWARE_CONFIG_FILE=/etc/myapp/mona.json   # {"disable_all": true}

A daemon thread polls the file's modification time (no extra dependency) and flips one
flag the request path reads; when on, middlewares pass requests through and ``export()``
returns False.
"""

from __future__ import annotations

import json
import logging
import os
import threading

from .._util.log import limited, logger

__all__ = ["ConfigFileWatcher"]


class ConfigFileWatcher:
    """Polls ``path`` every ``interval`` seconds; ``disabled`` mirrors its ``disable_all``."""

    def __init__(self, path: str, interval: float) -> None:
        self.path = os.path.abspath(os.path.expanduser(path))
        self.interval = interval
        self.disabled = False
        self._seen: tuple[float, int] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> ConfigFileWatcher:
        self.poll()  # take effect at once, not one interval later
        self._thread = threading.Thread(target=self._run, name="mona-config-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()

    def poll(self) -> None:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            self._apply(False, "missing")
            return
        except OSError as exc:
            limited(
                logging.WARNING,
                "killswitch:stat",
                "mona_middleware: cannot read %s: %s",
                self.path,
                exc,
            )
            return
        signature = (stat.st_mtime, stat.st_size)
        if signature == self._seen:
            return
        self._seen = signature
        try:
            with open(self.path, encoding="utf-8") as file:
                data = json.load(file)
            disable = bool(data.get("disable_all", False)) if isinstance(data, dict) else False
        except (OSError, ValueError) as exc:
            limited(
                logging.ERROR,
                "killswitch:parse",
                "mona_middleware: %s is not a JSON object (%s); keeping disable_all=%s",
                self.path,
                exc,
                self.disabled,
            )
            return
        self._apply(disable, "changed")

    def _apply(self, disable: bool, why: str) -> None:
        if disable != self.disabled:
            self.disabled = disable
            logger.warning(
                "mona_middleware: disable_all is now %s (%s %s)",
                "ON: nothing is recorded" if disable else "off",
                self.path,
                why,
            )
