"""``python -m tests.reliability.drain``: the last process of a run, as the next deploy
would be. It resends what the processes under test left in the shared spool, waits
(bounded) until the spool is empty, and writes its own final stats like the others."""

from __future__ import annotations

import json
import os
import time

import mona_middleware as mona
from mona_middleware._runtime import process

from . import exit_stats


def main() -> None:
    deadline = time.monotonic() + float(os.environ.get("RELIABILITY_DRAIN_SECONDS", "20"))
    started = process.resume_spool()
    exit_stats.track()
    left = None
    while time.monotonic() < deadline:
        spool = mona.stats()["spool"] or {}
        left = spool.get("messages", 0)
        if not left:
            break
        time.sleep(0.05)
    exit_stats.write_final("drain")
    print(json.dumps({"started": started, "left": left}))


if __name__ == "__main__":
    main()
