"""The disk spool: what runs out of retries waits there, claims outlive their process,
damaged files, and the size cap.

Other processes are real subprocesses sharing the directory; the one thing simulated is
"a new process that got our PID", by renewing this process's token as a fork does.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import mona_middleware as mona
from mona_middleware._export import spool as spool_module
from mona_middleware._export.spool import CLAIM, Spool
from mona_middleware._runtime import process as _runtime
from mona_middleware._util.stats import ExportStats

from ..conftest import rest_options
from ..helpers import export_contexts, files, make_spool, message, run_child
from ..servers import mona_env

CHILD_TIMEOUT = 60








def committed_bytes(path: Path) -> int:
    total = 0
    with os.scandir(path) as entries:
        for entry in entries:
            if not entry.name.startswith("."):
                with contextlib.suppress(FileNotFoundError):
                    total += entry.stat().st_size
    return total




# -- claims ------------------------------------------------------------------------


def test_a_new_process_with_our_pid_takes_back_a_claim_left_by_a_crash(tmp_path):
    before, _ = make_spool(tmp_path)
    before.write([message(1)])
    assert before.claim() is not None  # then the process dies mid-resend...
    spool_module.forget_token()  # ...and the container restarts: same PID, new process

    after, _ = make_spool(tmp_path)
    item = after.claim()

    assert item is not None and after.load(item) == [message(1)]


def test_another_spool_object_in_this_process_leaves_a_live_claim_alone(tmp_path):
    first, _ = make_spool(tmp_path)
    first.write([message(1)])
    held = first.claim()

    second, _ = make_spool(tmp_path, claim_max_age=0)

    assert held is not None and second.claim() is None
    assert not second.has_pending()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_claims_under_a_token_of_its_own(tmp_path):
    spool, _ = make_spool(tmp_path)
    spool.write([message(1)])
    parent_token = spool_module.process_token()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: claim with the inherited Spool, say under what name, die
        item = spool.claim()
        os.write(write, item.path.name.encode() if item else b"")
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        claimed = pipe.read().decode()
    os.waitpid(pid, 0)

    host, child_pid, token, _ = claimed.rpartition(CLAIM)[2].split("-")
    assert host == spool_module.host_tag()
    assert int(child_pid) == pid and token != parent_token
    assert spool.claim() is not None  # and that child is gone: its claim comes back


CLAIM_AND_CRASH = """
    import os, sys
    from mona_middleware._util.stats import ExportStats
    from mona_middleware._export.spool import Spool
    assert Spool(sys.argv[1], 1 << 20, ExportStats()).claim() is not None
    os._exit(1)
"""


def test_a_claim_left_by_a_dead_process_is_given_back(tmp_path):
    spool, _ = make_spool(tmp_path)
    spool.write([message(1)])
    child = run_child(CLAIM_AND_CRASH, str(tmp_path))
    assert child.wait(CHILD_TIMEOUT) == 1
    assert CLAIM in files(tmp_path)[0]

    assert spool.has_pending()  # so a restarted app starts resending at once
    item = spool.claim()

    assert item is not None and spool.load(item) == [message(1)]


CLAIM_AND_HOLD = """
    import sys
    from mona_middleware._util.stats import ExportStats
    from mona_middleware._export.spool import Spool
    spool = Spool(sys.argv[1], 1 << 20, ExportStats())
    item = spool.claim()
    print("claimed" if item else "none", flush=True)
    sys.stdin.readline()
    spool.release(item)
"""


def test_a_live_process_keeps_its_claim_until_it_gives_it_back(tmp_path):
    spool, _ = make_spool(tmp_path)
    spool.write([message(1)])
    with run_child(CLAIM_AND_HOLD, str(tmp_path)) as child:
        assert child.stdout.readline().strip() == "claimed"
        assert spool.claim() is None
        assert not spool.has_pending()
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.wait(CHILD_TIMEOUT) == 0

    assert spool.claim() is not None


def _foreign_claim(directory: Path, claim_tail: str) -> Path:
    spool, _ = make_spool(directory)
    spool.write([message(7)])
    (waiting,) = files(directory)
    claimed = directory / f"{waiting}{CLAIM}{claim_tail}"
    os.rename(directory / waiting, claimed)
    return claimed


@pytest.mark.parametrize("age", [5.0, 700.0])
def test_a_claim_whose_owner_cannot_be_verified_is_given_back_only_when_old(tmp_path, age):
    claimed_ms = int((time.time() - age) * 1000)
    _foreign_claim(tmp_path, f"0ther0st-{os.getpid()}-feedc0ffee00-{claimed_ms}")
    spool, _ = make_spool(tmp_path, claim_max_age=600)

    item = spool.claim()

    if age < 600:
        assert item is None  # another host's PID: it may well be resending right now
    else:
        assert item is not None and spool.load(item) == [message(7)]


def test_a_claim_by_a_running_unrelated_pid_is_given_back_when_old(tmp_path):
    # PID 1 runs here, but a claim naming it may be another namespace's PID 1.
    host = spool_module.host_tag()
    _foreign_claim(tmp_path, f"{host}-1-feedc0ffee00-{int((time.time() - 700) * 1000)}")
    spool, _ = make_spool(tmp_path, claim_max_age=600)

    assert spool.claim() is not None


def test_an_older_versions_claim_by_a_dead_pid_is_given_back(tmp_path):
    child = run_child("pass")
    child.wait(CHILD_TIMEOUT)
    _foreign_claim(tmp_path, str(child.pid))  # the old format: .claimed-<pid>
    spool, _ = make_spool(tmp_path)

    assert spool.claim() is not None


CLAIM_ALL = """
    import json, sys
    from mona_middleware._util.stats import ExportStats
    from mona_middleware._export.spool import Spool
    spool = Spool(sys.argv[1], 1 << 30, ExportStats())
    print("ready", flush=True)
    sys.stdin.readline()
    taken = []
    while (item := spool.claim()) is not None:
        taken.extend(m["contextId"] for m in spool.load(item))
        spool.done(item)
    print(json.dumps(taken), flush=True)
"""


def test_processes_racing_for_claims_never_take_one_batch_twice(tmp_path):
    spool, _ = make_spool(tmp_path, 1 << 30)
    for n in range(200):
        spool.write([message(n)])
    children = [run_child(CLAIM_ALL, str(tmp_path)) for _ in range(4)]
    for child in children:
        assert child.stdout.readline().strip() == "ready"
    for child in children:  # all start at once
        child.stdin.write("\n")
        child.stdin.flush()

    taken = []
    for child in children:
        out, _ = child.communicate(timeout=CHILD_TIMEOUT)
        taken.extend(json.loads(out.strip().splitlines()[-1]))

    assert sorted(taken) == sorted(f"c{n}" for n in range(200))  # each exactly once
    assert files(tmp_path) == []


# -- reading -----------------------------------------------------------------------


def test_text_is_written_and_read_back_as_utf8(tmp_path):
    spool, stats = make_spool(tmp_path)
    text = "naïve \u2013 日本 \U0001f600 \u2028 \u2029 \x85 end"  # U+2028 is not a line break
    spool.write([message(1, text), message(2, text)])

    item = spool.claim()

    assert spool.load(item) == [message(1, text), message(2, text)]
    assert stats.snapshot()["dropped"] == {}


def test_a_corrupt_file_is_dropped_by_its_message_count_and_removed(tmp_path, caplog):
    spool, stats = make_spool(tmp_path)
    spool.write([message(n) for n in range(5)])
    (name,) = files(tmp_path)
    (tmp_path / name).write_bytes(b"\x00\xff garbage \xfe\n" * 3)

    item = spool.claim()

    assert spool.load(item) == []
    assert stats.snapshot()["dropped"] == {"spool line unreadable": 5}
    assert files(tmp_path) == []
    assert "5 message(s)" in caplog.text and name in caplog.text


def test_a_partly_corrupt_file_keeps_its_good_lines(tmp_path):
    spool, stats = make_spool(tmp_path)
    spool.write([message(n) for n in range(4)])
    (name,) = files(tmp_path)
    lines = (tmp_path / name).read_bytes().split(b"\n")
    lines[1] = b"\xff" * len(lines[1])  # one line damaged in place: not UTF-8
    lines[2] = lines[2][:-3]  # and one cut short
    (tmp_path / name).write_bytes(b"\n".join(lines))

    item = spool.claim()

    assert spool.load(item) == [message(0), message(3)]
    assert stats.snapshot()["dropped"] == {"spool line unreadable": 2}


def test_an_unreadable_file_is_counted_and_never_stuck(tmp_path, caplog):
    spool, stats = make_spool(tmp_path)
    (tmp_path / f"{time.time_ns():020d}-1-dead00000000-1-6.jsonl").mkdir()  # read() fails

    item = spool.claim()

    assert spool.load(item) == []
    assert stats.snapshot()["dropped"] == {"spool file unreadable": 6}
    assert "spool file unreadable" in caplog.text
    assert files(tmp_path) == [] and spool.pending() == (0, 0)
    assert spool.claim() is None


def test_a_file_taken_back_by_another_process_is_not_counted(tmp_path):
    spool, stats = make_spool(tmp_path)
    spool.write([message(1)])
    item = spool.claim()
    os.rename(item.path, item.original)  # what a process judging the claim stale does

    assert spool.load(item) == []
    assert stats.snapshot()["dropped"] == {}
    assert spool.pending() == (1, 1)


def test_the_exporter_resends_the_readable_part_of_a_damaged_file(mona_server, tmp_path):
    spool_dir = tmp_path / "spool"
    spool, _ = make_spool(spool_dir)
    spool.write([message(n) for n in range(3)])
    (name,) = files(spool_dir)
    lines = (spool_dir / name).read_bytes().split(b"\n")
    lines[1] = b"{" + b"x" * (len(lines[1]) - 1)
    (spool_dir / name).write_bytes(b"\n".join(lines))
    mona.configure(**rest_options(mona_server, spool_dir=str(spool_dir)))

    assert _runtime.resume_spool()
    assert mona_server.wait_for_messages(2, timeout=10)
    deadline = time.monotonic() + 10
    while mona.stats()["spool"]["batches"] and time.monotonic() < deadline:
        time.sleep(0.01)

    stats = mona.stats()
    assert stats["spool"]["batches"] == 0 and stats["messages_resent_from_spool"] == 2
    assert stats["dropped"] == {"spool line unreadable": 1}
    assert sorted(m["contextId"] for m in mona_server.messages()) == ["c0", "c2"]


# -- the cap -----------------------------------------------------------------------


def _batch_bytes() -> int:
    return len(json.dumps(message(0, "x" * 200), separators=(",", ":"))) + 1


def test_threads_writing_at_once_never_pass_the_cap(tmp_path):
    cap = 10 * _batch_bytes()
    spool, stats = make_spool(tmp_path, cap)
    spool.usable()
    peak = [0]
    writing = threading.Event()
    writing.set()

    def watch():
        while writing.is_set():
            peak[0] = max(peak[0], committed_bytes(tmp_path))

    def write(worker: int):
        for n in range(60):
            assert spool.write([message(worker * 1000 + n, "x" * 200)])

    watcher = threading.Thread(target=watch)
    writers = [threading.Thread(target=write, args=(worker,)) for worker in range(8)]
    watcher.start()
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join(CHILD_TIMEOUT)
    writing.clear()
    watcher.join(CHILD_TIMEOUT)

    snapshot = stats.snapshot()
    kept = spool.pending()[1]
    assert peak[0] <= cap and committed_bytes(tmp_path) <= cap
    assert snapshot["messages_spooled"] == 8 * 60
    assert snapshot["dropped"] == {"spool full (oldest dropped)": 8 * 60 - kept}


def test_claimed_batches_count_against_the_cap_and_are_not_dropped(tmp_path):
    cap = 4 * _batch_bytes()
    spool, stats = make_spool(tmp_path, cap)
    for n in range(4):
        spool.write([message(n, "x" * 200)])
    held = spool.claim()  # the oldest, being resent

    for n in range(4, 8):
        spool.write([message(n, "x" * 200)])

    assert committed_bytes(tmp_path) <= cap
    assert held.path.exists()
    assert spool.pending() == (4, 4)
    assert stats.snapshot()["dropped"] == {"spool full (oldest dropped)": 4}
    spool.release(held)
    assert spool.load(spool.claim()) == [message(0, "x" * 200)]


def test_a_spool_full_of_batches_being_resent_drops_the_new_one(tmp_path):
    cap = 2 * _batch_bytes()
    spool, stats = make_spool(tmp_path, cap)
    spool.write([message(0, "x" * 200)])
    spool.write([message(1, "x" * 200)])
    held = [spool.claim(), spool.claim()]

    assert spool.write([message(2, "x" * 200)])  # taken care of: counted, not spooled

    assert stats.snapshot()["dropped"] == {"spool full": 1}
    assert all(item.path.exists() for item in held) and spool.pending() == (2, 2)


WRITE_MANY = """
    import json, sys
    from mona_middleware._util.stats import ExportStats
    from mona_middleware._export.spool import Spool
    stats = ExportStats()
    spool = Spool(sys.argv[1], int(sys.argv[2]), stats)
    spool.usable()
    print("ready", flush=True)
    sys.stdin.readline()
    for n in range(80):
        message = {"message": {"n": n, "text": "x" * 200}, "arcClass": "C", "contextId": "c"}
        assert spool.write([message])
    print(json.dumps(stats.snapshot()), flush=True)
"""


def test_processes_writing_at_once_pass_the_cap_by_at_most_p_minus_1_batches(tmp_path):
    batch, processes = _batch_bytes(), 3
    cap = 8 * batch
    make_spool(tmp_path)[0].usable()
    children = [run_child(WRITE_MANY, str(tmp_path), str(cap)) for _ in range(processes)]
    for child in children:
        assert child.stdout.readline().strip() == "ready"
    peak = 0
    for child in children:
        child.stdin.write("\n")
        child.stdin.flush()
    while any(child.poll() is None for child in children):
        peak = max(peak, committed_bytes(tmp_path))

    snapshots = [json.loads(child.communicate(timeout=CHILD_TIMEOUT)[0]) for child in children]

    assert peak <= cap + (processes - 1) * batch
    spooled = sum(s["messages_spooled"] for s in snapshots)
    full = sum(s["dropped"].get("spool full", 0) for s in snapshots)  # rare: see _make_room
    oldest = sum(s["dropped"].get("spool full (oldest dropped)", 0) for s in snapshots)
    assert spooled + full == processes * 80
    assert spooled - oldest == Spool(str(tmp_path), cap, ExportStats()).pending()[1]


# -- the exporter and its spool ----------------------------------------------------


FAST_RETRIES = {"retry_backoff": 0.05, "retry_max_backoff": 0.5}




def test_retries_run_out_into_the_spool_and_go_out_when_the_backend_answers(mona_server, tmp_path):
    spool_dir = tmp_path / "spool"
    mona.configure(
        **rest_options(mona_server, max_retries=2, spool_dir=str(spool_dir), **FAST_RETRIES)
    )
    mona_server.respond_with(503)
    export_contexts(5, prefix="a")
    assert mona.flush(10)
    stats = mona.stats()
    assert stats["messages_spooled"] == 5 and stats["spool"]["messages"] == 5
    mona_server.set_mode("accept")
    export_contexts(1, prefix="b")  # a success shows the backend is back: the spool follows
    assert mona.flush(10)
    assert mona_server.wait_for_messages(6, timeout=10)
    deadline = time.monotonic() + 10
    while mona.stats()["spool"]["messages"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert mona.stats()["spool"]["messages"] == 0
    assert sorted(m["contextId"] for m in mona_server.messages()) == [
        "a0",
        "a1",
        "a2",
        "a3",
        "a4",
        "b0",
    ]


def test_the_next_process_resends_what_the_last_one_spooled(mona_server, tmp_path):
    spool_dir = str(tmp_path / "spool")
    mona.configure(**rest_options(mona_server, spool_dir=spool_dir, **FAST_RETRIES))
    mona_server.stop_listening()
    export_contexts(4)
    assert mona.shutdown(1) is False  # the backend is down: the spool keeps them
    assert Spool(spool_dir, 1 << 30, ExportStats()).pending()[1] == 4
    mona_server.start_listening()
    env = mona_env(mona_server, MONA_MIDDLEWARE_SPOOL_DIR=spool_dir)
    code = (
        "from mona_middleware._runtime import process as _runtime\n"
        "assert _runtime.resume_spool()\n"
        "import mona_middleware as m; assert m.flush(10)\n"
    )
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    assert mona_server.wait_for_messages(4, timeout=10)
    assert sorted(m["contextId"] for m in mona_server.messages()) == ["r0", "r1", "r2", "r3"]


def test_a_full_spool_drops_its_oldest_batches_with_a_count(tmp_path):
    stats = ExportStats()
    spool = Spool(str(tmp_path), 600, stats)
    message = {"message": {"x": "y" * 80}, "arcClass": "C", "contextId": "1"}
    for _ in range(10):
        assert spool.write([message, message])
    batches, messages = spool.pending()
    assert batches < 10 and messages == 2 * batches
    assert stats.snapshot()["dropped"] == {"spool full (oldest dropped)": 20 - messages}


def test_an_unwritable_spool_warns_once_and_the_exporter_goes_on(mona_server, tmp_path, caplog):
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    mona.configure(**rest_options(mona_server, spool_dir=str(blocked / "spool"), max_retries=0))
    mona_server.respond_with(503)
    export_contexts(3)
    assert mona.flush(5)
    export_contexts(2, prefix="again")
    assert mona.flush(5)
    assert caplog.text.count("cannot be written") == 1
    assert mona.stats()["dropped"] == {"send failed: HTTP 503": 5}
