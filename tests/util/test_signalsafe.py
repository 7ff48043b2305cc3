"""Waking threads without a lock: from any thread, and from a signal handler that
interrupted a wake-up of its own thread."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from mona_middleware._util.signalsafe import WakeAll, Wakeup


def test_a_wakeup_wakes_its_waiter_and_folds_wakeups_that_came_meanwhile():
    wakeup = Wakeup()
    assert wakeup.wait(0.01) is False  # nothing yet: the timeout
    for _ in range(5):
        wakeup.set()
    assert wakeup.pending
    assert wakeup.wait(1) is True
    assert not wakeup.pending
    assert wakeup.wait(0.01) is False  # the five were one


def test_a_wakeup_from_another_thread_ends_the_wait():
    wakeup = Wakeup()
    timer = threading.Timer(0.05, wakeup.set)
    timer.start()
    started = time.monotonic()
    assert wakeup.wait(30) is True
    assert time.monotonic() - started < 20  # a bound, not a timing
    timer.join()


def test_wake_all_wakes_every_sleeper_and_changes_the_generation():
    waits = WakeAll()
    woken = []

    def sleeper():
        before = waits.generation
        waits.sleep(30)
        woken.append(waits.generation != before)

    threads = [threading.Thread(target=sleeper) for _ in range(3)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while len(waits._sleepers) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    waits.wake_all()
    for thread in threads:
        thread.join(20)
    assert woken == [True, True, True]


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs setitimer")
def test_a_signal_handler_may_wake_while_the_code_it_interrupted_was_waking():
    """What deadlocked with ``threading.Event``: the handler waited for its own thread."""
    code = textwrap.dedent(
        """
        import signal, time
        from mona_middleware._util.signalsafe import WakeAll, Wakeup
        wakeup, waits = Wakeup(), WakeAll()
        handled = 0
        def handler(signum, frame):
            global handled
            handled += 1
            wakeup.set()
            waits.wake_all()
        signal.signal(signal.SIGALRM, handler)
        signal.setitimer(signal.ITIMER_REAL, 0.0002, 0.0002)
        end = time.monotonic() + 1.5
        loops = 0
        while time.monotonic() < end:
            wakeup.set()
            waits.wake_all()
            wakeup.wait(0)
            loops += 1
        signal.setitimer(signal.ITIMER_REAL, 0)
        print(loops, handled)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    loops, handled = map(int, result.stdout.split())
    assert loops > 0 and handled > 0


def test_an_owned_lock_refuses_its_owner_at_once_and_others_within_their_timeout():
    from mona_middleware._util.signalsafe import OwnedLock

    lock = OwnedLock()
    assert lock.acquire(1)
    started = time.monotonic()
    assert lock.acquire(30) is False  # the owner again (a handler): no wait at all
    assert time.monotonic() - started < 5
    result = []
    other = threading.Thread(target=lambda: result.append(lock.acquire(0.05)))
    other.start()
    other.join(10)
    assert result == [False]  # another thread waited its timeout
    lock.release()
    other = threading.Thread(target=lambda: result.append(lock.acquire(1)))
    other.start()
    other.join(10)
    assert result == [False, True]
