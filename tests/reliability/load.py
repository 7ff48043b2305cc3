"""Requests with unique ids, from a few threads, until told to stop: the test's own book
of which contexts the app answered (and by which process), and which it may have."""

from __future__ import annotations

import threading
import time

import requests


class Load:
    """``threads`` clients sending ``GET {url}/r/<n>`` with ``x-request-id: <prefix><k>-<n>``.

    ``answered`` maps each id the app answered 200 to the pid in the body; ``maybe``
    holds ids whose request failed on the way (a worker going away, refused): their
    context may or may not exist. ``pause`` spaces each client's requests, so the app
    is busy without starving the other processes of two cores.
    """

    def __init__(self, url: str, prefix: str, threads: int = 3, pause: float = 0.005) -> None:
        self.url = url
        self.prefix = prefix
        self.pause = pause
        self.answered: dict[str, int] = {}
        self.maybe: set[str] = set()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._client, args=(k,), name=f"load-{k}", daemon=True)
            for k in range(threads)
        ]

    def start(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout: float = 30) -> None:
        self._stop.set()
        for thread in self._threads:
            if thread.ident is not None:
                thread.join(timeout)

    def _client(self, k: int) -> None:
        with requests.Session() as session:
            n = 0
            while not self._stop.is_set():
                uid = f"{self.prefix}{k}-{n}"
                n += 1
                try:
                    answer = session.get(
                        f"{self.url}/r/{n}", headers={"x-request-id": uid}, timeout=15
                    )
                except requests.RequestException:
                    self.maybe.add(uid)
                    time.sleep(0.05)
                    continue
                if answer.status_code == 200 and answer.text.isdigit():
                    self.answered[uid] = int(answer.text)
                else:
                    self.maybe.add(uid)
                time.sleep(self.pause)
