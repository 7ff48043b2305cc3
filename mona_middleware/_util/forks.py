"""One at-fork registry for the whole package: what a forked child must renew, in order.

Locks held by a parent's thread at fork time are held forever in the child, threads do
not survive, and random generators would repeat the parent's ids. Each module that owns
such state registers a renewal here (a registration, not a thread: safe at import); the
package makes one ``os.register_at_fork`` call, so the order is the registration order
(utilities first, the process runtime last) and a server that forks without running
Python's hooks (uWSGI without ``py-call-osafterfork``) can be caught up by
``renew_if_forked()``, which compares pids.
"""

from __future__ import annotations

import os
import threading
import traceback
from collections.abc import Callable

__all__ = ["after_fork_in_child", "forked", "renew_if_forked"]

_renewals: list[Callable[[], None]] = []
_pid = os.getpid()
# One lock per process: the parent's may have been held by one of its threads at fork.
_locks: dict[int, threading.Lock] = {}


def after_fork_in_child(renew: Callable[[], None]) -> Callable[[], None]:
    """Run ``renew`` in every forked child, after the renewals registered before it.

    Usable as a decorator; returns ``renew``.
    """
    _renewals.append(renew)
    return renew


def forked() -> bool:
    """True when this process is a child whose at-fork hooks have not run (yet)."""
    return os.getpid() != _pid


def renew_if_forked() -> bool:
    """Run the renewals now if this process was forked without them; True if they ran."""
    if os.getpid() == _pid:
        return False
    _run_renewals()
    return True


def _run_renewals() -> None:
    global _pid
    pid = os.getpid()
    with _locks.setdefault(pid, threading.Lock()):  # setdefault is atomic under the GIL
        if pid == _pid:
            return  # another thread of this child renewed first
        _pid = pid  # first: a renewal that looks again must not start over
        for renew in _renewals:
            try:
                renew()
            except Exception:  # one renewal failing must not keep the others from running
                traceback.print_exc()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_run_renewals)
