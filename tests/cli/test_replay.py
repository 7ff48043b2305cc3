"""``mona-middleware replay``: a spool directory or a JSONL file sent once, resumed after an
outage, damaged lines skipped."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ..helpers import files, make_spool, message, run_child
from ..servers import mona_env

CHILD_TIMEOUT = 60










CLAIM_AND_CRASH = """
    import os, sys
    from mona_middleware._util.stats import ExportStats
    from mona_middleware._export.spool import Spool
    assert Spool(sys.argv[1], 1 << 20, ExportStats()).claim() is not None
    os._exit(1)
"""


def _replay(server, path: Path) -> subprocess.CompletedProcess:
    env = mona_env(
        server, MONA_MIDDLEWARE_RETRY_MAX_TIME="0.5", MONA_MIDDLEWARE_RETRY_MAX_BACKOFF="0.1"
    )
    command = [sys.executable, "-m", "mona_middleware", "replay", str(path)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def test_replay_takes_back_a_dead_claim_skips_damage_and_resumes(mona_server, tmp_path):
    spool, _ = make_spool(tmp_path)
    for batch in range(3):
        spool.write([message(batch * 4 + n, "\u2028 ✓") for n in range(4)])
    child = run_child(CLAIM_AND_CRASH, str(tmp_path))  # an app died resending the oldest
    assert child.wait(CHILD_TIMEOUT) == 1
    newest = tmp_path / files(tmp_path)[-1]
    lines = newest.read_bytes().split(b"\n")
    lines[0] = b"\xff" * len(lines[0])
    newest.write_bytes(b"\n".join(lines))
    mona_server.respond_with(503, after=1)  # the backend goes away after one batch

    stopped = _replay(mona_server, tmp_path)
    mona_server.set_mode("accept")
    resumed = _replay(mona_server, tmp_path)

    assert stopped.returncode == 1 and "run again to resume" in stopped.stdout
    assert resumed.returncode == 0, resumed.stderr
    received = sorted(int(m["contextId"][1:]) for m in mona_server.messages())
    assert received == [n for n in range(12) if n != 8]  # each once; c8's line was damaged
    assert {m["message"]["text"] for m in mona_server.messages()} == {"\u2028 ✓"}
    assert files(tmp_path) == []


def test_replay_reads_a_jsonl_file_as_utf8_lines(mona_server, tmp_path):
    path = tmp_path / "messages.jsonl"
    good = [message(n, "naïve \u2028 \u2029 \x85 end") for n in range(4)]
    lines = [json.dumps(m, ensure_ascii=False).encode("utf-8") for m in good]  # as orjson does
    lines.insert(2, b'{"message": {"n": "\xff"}}')
    path.write_bytes(b"\n".join(lines) + b"\n")

    first = _replay(mona_server, path)
    again = _replay(mona_server, path)

    assert first.returncode == 0, first.stderr
    assert "5/5 messages" in first.stderr and "sent 4" in first.stdout
    assert again.returncode == 0 and "resuming after 5" in again.stderr
    received = {m["contextId"]: m["message"] for m in mona_server.messages()}
    assert received == {m["contextId"]: m["message"] for m in good}


def test_replay_ships_a_spool_or_a_jsonl_file_once_and_resumes(mona_server, tmp_path):
    lines = [
        json.dumps(
            {
                "message": {"n": n},
                "arcClass": "OFFLINE",
                "contextId": f"f{n}",
                "action": "OVERWRITE",
                "exportTimestamp": 1700000000,
            }
        )
        for n in range(25)
    ]
    path = tmp_path / "messages.jsonl"
    path.write_text("\n".join(lines) + "\n")
    env = mona_env(
        mona_server, MONA_MIDDLEWARE_RETRY_MAX_TIME="1", MONA_MIDDLEWARE_RETRY_MAX_BACKOFF="0.1"
    )
    replay = [sys.executable, "-m", "mona_middleware", "replay", str(path), "--batch-size", "10"]
    mona_server.respond_with(503, times=1)  # retried within the replay
    first = subprocess.run(replay, env=env, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    assert "25/25 messages" in first.stderr
    again = subprocess.run(replay, env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "resuming after 25" in again.stderr
    expected = sorted(f"f{n}" for n in range(25))
    assert sorted(m["contextId"] for m in mona_server.messages()) == expected


def test_replay_stops_on_an_outage_and_resumes_where_it_stopped(mona_server, tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text(
        "".join(
            json.dumps({"message": {"n": n}, "arcClass": "C", "contextId": str(n)}) + "\n"
            for n in range(30)
        )
    )
    env = mona_env(
        mona_server, MONA_MIDDLEWARE_RETRY_MAX_TIME="0.5", MONA_MIDDLEWARE_RETRY_MAX_BACKOFF="0.1"
    )
    replay = [sys.executable, "-m", "mona_middleware", "replay", str(path), "--batch-size", "10"]
    mona_server.respond_with(503, after=1)  # the backend goes away after the first batch
    failed = subprocess.run(replay, env=env, capture_output=True, text=True, timeout=60)
    assert failed.returncode == 1 and "run again to resume" in failed.stdout
    assert (tmp_path / "m.jsonl.replayed").read_text() == "10"
    mona_server.set_mode("accept")
    resumed = subprocess.run(replay, env=env, capture_output=True, text=True, timeout=60)
    assert resumed.returncode == 0, resumed.stderr
    assert sorted(int(m["contextId"]) for m in mona_server.messages()) == list(range(30))
