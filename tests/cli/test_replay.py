"""``mona-middleware replay``: a spool directory or a JSONL file sent once, resumed after an
outage, damaged lines skipped, listed by number and counted, no line lost to a writer still
appending, a replaced file sent from its start."""

from __future__ import annotations

import contextlib
import fcntl
import io
import itertools
import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mona_middleware._cli import replay
from mona_middleware._cli.main import main

from ..helpers import files, make_spool, message, run_child
from ..servers import mona_env

CHILD_TIMEOUT = 60
FAST_RETRIES = {"MONA_MIDDLEWARE_RETRY_MAX_TIME": "0.5", "MONA_MIDDLEWARE_RETRY_MAX_BACKOFF": "0.1"}


CLAIM_AND_CRASH = """
    import os, sys
    from mona_middleware._util.stats import ExportStats
    from mona_middleware._export.spool import Spool
    assert Spool(sys.argv[1], 1 << 20, ExportStats()).claim() is not None
    os._exit(1)
"""


def _replay(server, path: Path, *options: str) -> subprocess.CompletedProcess:
    env = mona_env(server, **FAST_RETRIES)
    command = [sys.executable, "-m", "mona_middleware", "replay", str(path), *options]
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

    # 3, not 0: a line was skipped (the issue 20 contract; this said 0 when skips were silent)
    assert first.returncode == 3, first.stderr
    assert "skipped line 3: not UTF-8: byte 0xff" in first.stderr
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
    # the resume point is the line count (it was the marker's whole text), now with its offset
    point = json.loads((tmp_path / "m.jsonl.replayed").read_text())
    assert point["lines"] == 10
    assert point["offset"] == len(b"".join(path.read_bytes().splitlines(keepends=True)[:10]))
    mona_server.set_mode("accept")
    resumed = subprocess.run(replay, env=env, capture_output=True, text=True, timeout=60)
    assert resumed.returncode == 0, resumed.stderr
    assert sorted(int(m["contextId"]) for m in mona_server.messages()) == list(range(30))


# -- a file's resume point: a byte offset tied to the file, never past an unfinished line ----

_IDS = itertools.count()


def _line(ident: str, ending: bytes = b"\n") -> bytes:
    """A wire message whose id is ``ident``, as one line of the file transport."""
    fields = {"message": {"id": ident}, "arcClass": "C", "contextId": ident}
    return json.dumps(fields).encode() + ending


def _received(server, prefix: str = "") -> Counter:
    return Counter(
        m["contextId"] for m in server.messages() if str(m["contextId"]).startswith(prefix)
    )


def _replay_here(path: Path, *options: str) -> tuple[int, str, str]:
    """The command run in this process (fast enough for hypothesis): (status, out, err)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["replay", str(path), *options])
    return status, out.getvalue(), err.getvalue()


@pytest.fixture
def mona_here(mona_server, monkeypatch):
    """``mona_server`` with its settings in this process's environment, for ``_replay_here``."""
    for key, value in mona_env(mona_server, **FAST_RETRIES).items():
        monkeypatch.setenv(key, value)
    return mona_server


class Writer:
    """Appends lines as a writer may be caught doing: whole lines, or a few bytes of one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.prefix = f"w{next(_IDS)}-"
        self.lines: list[tuple[str, bytes]] = []  # (id, the whole line)
        self.written = 0  # bytes of the last line written so far
        path.touch()

    def part(self, size: int, crlf: bool) -> None:
        """``size`` more bytes of the last line, starting a new one when it is whole."""
        if not self.lines or self.written == len(self.lines[-1][1]):
            ident = f"{self.prefix}{len(self.lines)}"
            self.lines.append((ident, _line(ident, b"\r\n" if crlf else b"\n")))
            self.written = 0
        data = self.lines[-1][1][self.written : self.written + size]
        with open(self.path, "ab") as out:
            out.write(data)
        self.written += len(data)

    def finish(self) -> None:
        if self.lines and self.written < len(self.lines[-1][1]):
            self.part(len(self.lines[-1][1]), crlf=False)

    def whole(self, count: int, crlf: bool) -> None:
        self.finish()
        for _ in range(count):
            self.part(1 << 20, crlf)

    def complete(self) -> list[str]:
        """Ids a replay must have sent: the JSON and the first byte of a line end written."""
        done = [ident for ident, _ in self.lines[:-1]]
        if self.lines and self.written > len(self.lines[-1][1].rstrip(b"\r\n")):
            done.append(self.lines[-1][0])
        return done


STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("whole"), st.integers(1, 6), st.booleans()),
        st.tuples(st.just("part"), st.integers(1, 90), st.booleans()),
        st.tuples(st.just("replay"), st.integers(1, 4), st.booleans()),
    ),
    max_size=12,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=STEPS)
def test_replay_sends_every_whole_line_once_between_a_writers_appends(mona_here, tmp_path, steps):
    writer = Writer(tmp_path / f"{next(_IDS)}.jsonl")  # tmp_path is the same for every example
    for step, n, crlf in [*steps, ("finish", 0, False), ("replay", 3, False)]:
        if step == "whole":
            writer.whole(n, crlf)
        elif step == "part":
            writer.part(n, crlf)
        elif step == "finish":
            writer.finish()
        else:
            status, out, err = _replay_here(writer.path, "--batch-size", str(n))
            assert status == 0, err
            complete = writer.complete()
            assert _received(mona_here, writer.prefix) == Counter(complete)  # each once
            unfinished = len(complete) < len(writer.lines)
            assert ("has no line end yet" in err) == unfinished, err
            assert "skipped" not in err + out  # a half line is not a bad line


def test_replay_loses_no_line_while_a_writer_appends(mona_server, tmp_path):
    """Each replay runs while this test appends, every line in two writes with a pause
    between them, so replays start, scan and send with half a line at the end."""
    path = tmp_path / "mona-messages.jsonl"
    path.touch()
    total, cuts, written = 4000, random.Random(20), 0
    command = [sys.executable, "-m", "mona_middleware", "replay", str(path), "--batch-size", "100"]
    env = mona_env(mona_server, **FAST_RETRIES)
    runs = []
    with open(path, "ab", buffering=0) as out:
        for _ in range(12):
            replaying = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
            while replaying.poll() is None and written < total:
                data = _line(f"l{written}", b"\r\n" if written % 3 == 0 else b"\n")
                cut = cuts.randrange(1, len(data))
                out.write(data[:cut])
                time.sleep(0.0005)  # pacing only: the replay may look now
                out.write(data[cut:])
                written += 1
            runs.append(replaying.wait(CHILD_TIMEOUT))
        while written < total:
            out.write(_line(f"l{written}", b"\n"))
            written += 1
    runs.append(_replay(mona_server, path, "--batch-size", "100").returncode)

    assert runs == [0] * len(runs)
    assert _received(mona_server) == Counter(f"l{n}" for n in range(total))


@pytest.mark.parametrize(
    "how", ["replaced", "truncated and rewritten", "rewritten longer", "removed and made again"]
)
def test_replay_sends_a_replaced_file_from_its_start(mona_server, tmp_path, how):
    path = tmp_path / "mona-messages.jsonl"
    path.write_bytes(b"".join(_line(f"old{n}") for n in range(50)))
    first = _replay(mona_server, path)
    count = 80 if how == "rewritten longer" else 20
    new = b"".join(_line(f"new{n}") for n in range(count))
    if how == "replaced":
        (tmp_path / "next.jsonl").write_bytes(new)
        os.replace(tmp_path / "next.jsonl", path)
    elif how == "removed and made again":  # the inode may well be the old one again
        path.unlink()
        path.write_bytes(new)
    else:
        with open(path, "r+b") as out:  # the same inode
            out.truncate(0)
            out.write(new)

    again = _replay(mona_server, path)

    assert first.returncode == 0 and again.returncode == 0, again.stderr
    assert "replaying it from its start" in again.stderr
    expected = [f"old{n}" for n in range(50)] + [f"new{n}" for n in range(count)]
    assert _received(mona_server) == Counter(expected)


def test_replay_lists_each_kind_of_bad_line_by_number_counts_it_and_says_so(mona_server, tmp_path):
    path = tmp_path / "m.jsonl"
    lines = [
        _line("g1"),
        b'{"message": {"n": 1}, "arcClass": "C", "contextId": "cut sh\n',  # truncated
        _line("g2"),
        b'{"message": nope}\n',  # invalid JSON
        b"\x00\x01\x02\xff\xfe\n",  # binary
        b'{"message": {"n": "\xff"}, "arcClass": "C"}\n',  # not UTF-8
        b"[1, 2]\n",  # JSON, not an object
        b'{"message": {"n": 1}, "contextClass": "C", "contextId": "s"}\n',  # the SDK's spelling
        b'{"arcClass": "C", "message": "text"}\n',  # fields that are not an object
        b'{"arcClass": "C", "message": {"n": 1}, "action": "DELETE"}\n',  # no such action
        b"\n",  # blank: nothing to send, nothing wrong
        _line("g3"),
        _line("g4")[:20],  # unfinished: waits for its line end, not a bad line
    ]
    path.write_bytes(b"".join(lines))

    first = _replay(mona_server, path)
    with open(path, "ab") as out:
        out.write(_line("g4")[20:])
    second = _replay(mona_server, path)

    assert first.returncode == 3, first.stderr
    for entry in [
        "line 2: truncated: the JSON ends early",
        "line 4: not JSON: Expecting value at column 13",
        "line 5: binary: a NUL byte at column 1",
        "line 6: not UTF-8: byte 0xff at column 20",
        "line 7: not a Mona message: a JSON list, not an object",
        "line 8: not a Mona message: arcClass must be a non-empty string (mona_sdk's contextClass",
        "line 9: not a Mona message: message must be a non-empty object",
        "line 10: not a Mona message: action must be one of ADD, NEW, OVERWRITE or null",
    ]:
        assert f"skipped {entry}" in first.stderr
    assert "skipped 8 line(s): 4 not a Mona message, 1 truncated" in first.stderr
    assert "line 13 has no line end yet" in first.stderr
    assert "sent 3, rejected by Mona 0, skipped 8" in first.stdout
    assert "12/12 messages" in first.stderr
    assert second.returncode == 0, second.stderr
    assert "skipped" not in second.stderr and "resuming after 12 lines" in second.stderr
    assert _received(mona_server) == Counter(["g1", "g2", "g3", "g4"])


def test_replay_of_a_binary_file_lists_the_first_lines_and_counts_the_rest(mona_server, tmp_path):
    path = tmp_path / "image.jsonl"
    data = random.Random(1587).randbytes(1 << 16)
    path.write_bytes(data)
    end = max(data.rfind(b"\n"), data.rfind(b"\r")) + 1
    bad = sum(1 for line in data[:end].splitlines() if line.strip())

    result = _replay(mona_server, path)

    assert result.returncode == 3, result.stderr
    assert result.stderr.count("replay: skipped line ") == replay.LISTED
    assert f"skipped {bad} line(s): " in result.stderr
    assert f"(the first {replay.LISTED} listed above)" in result.stderr
    assert f"sent 0, rejected by Mona 0, skipped {bad}" in result.stdout
    assert mona_server.messages() == []


def test_replay_stopped_by_the_backend_resumes_exactly_and_reports_each_bad_line_once(
    mona_server, tmp_path
):
    path = tmp_path / "m.jsonl"
    lines = [_line(f"i{n}") for n in range(34)]
    lines.insert(4, b"{oops\n")  # line 5, in the first batch
    lines.insert(27, b"\xff\n")  # line 28, after the outage
    lines.append(_line("late")[:9])
    path.write_bytes(b"".join(lines))
    mona_server.respond_with(503, after=1)  # the second batch finds the backend gone

    stopped = _replay(mona_server, path, "--batch-size", "10")
    point = json.loads((tmp_path / "m.jsonl.replayed").read_text())
    mona_server.set_mode("accept")
    resumed = _replay(mona_server, path, "--batch-size", "10")

    assert stopped.returncode == 1 and "run again to resume" in stopped.stdout
    assert "skipped line 5: not JSON" in stopped.stderr and "line 28" not in stopped.stderr
    assert point["lines"] == 11 and point["offset"] == len(b"".join(lines[:11]))
    assert resumed.returncode == 3, resumed.stderr
    assert "resuming after 11 lines" in resumed.stderr
    assert "skipped line 28: not UTF-8" in resumed.stderr and "line 5:" not in resumed.stderr
    assert "skipped 1 line(s)" in resumed.stderr and "line 37 has no line end" in resumed.stderr
    assert _received(mona_server) == Counter(f"i{n}" for n in range(34))


@pytest.mark.parametrize(
    ("marker", "unfinished", "sent", "said"),
    [
        ("10", False, range(10, 30), "read its older marker as 10 lines sent"),
        ("0", False, range(30), None),
        ("", False, range(30), None),
        ("40", False, range(30), "its older marker counts 40 lines sent but the file has 30"),
        ("31", True, range(30, 31), "the last it counted is unfinished: it waits for its line"),
    ],
)
def test_replay_reads_the_older_line_count_marker_when_it_fits_the_file(
    mona_server, tmp_path, marker, unfinished, sent, said
):
    path = tmp_path / "m.jsonl"
    path.write_bytes(b"".join(_line(f"o{n}") for n in range(30)))
    if unfinished:  # what an older replay counted as sent, half-written
        with open(path, "ab") as out:
            out.write(_line("o30")[:15])
    (tmp_path / "m.jsonl.replayed").write_text(marker)

    first = _replay(mona_server, path)
    if unfinished:
        with open(path, "ab") as out:
            out.write(_line("o30")[15:])
    second = _replay(mona_server, path)

    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    if said is not None:
        assert said in first.stderr
    if said and "counts 40" in said:
        assert "replaying it from its start" in first.stderr
    point = json.loads((tmp_path / "m.jsonl.replayed").read_text())
    assert point["lines"] == 31 if unfinished else 30
    assert _received(mona_server) == Counter(f"o{n}" for n in sent)


def test_replay_of_a_damaged_resume_point_starts_over_and_says_why(mona_server, tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_bytes(b"".join(_line(f"d{n}") for n in range(5)))
    (tmp_path / "m.jsonl.replayed").write_text('{"offset": -3}')

    result = _replay(mona_server, path)

    assert result.returncode == 0, result.stderr
    assert "m.jsonl.replayed is not a resume point this version reads" in result.stderr
    assert _received(mona_server) == Counter(f"d{n}" for n in range(5))


def test_replay_refuses_to_run_beside_another_replay_of_the_same_file(mona_server, tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_bytes(_line("x"))
    with open(path, "rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)  # what a running replay holds
        result = _replay(mona_server, path)

    assert result.returncode == 2
    assert "another replay of" in result.stderr and "nothing sent" in result.stderr
    assert mona_server.messages() == []


LINE_ENDS = st.lists(st.sampled_from([b"\r", b"\n", b"\r\n", b"x", b"{}"]), max_size=60)


@settings(max_examples=300, deadline=None)
@given(data=LINE_ENDS.map(b"".join), chunk=st.integers(1, 5))
def test_the_streamed_lines_are_the_lines_splitlines_finds(data, chunk):
    saved, replay.CHUNK = replay.CHUNK, chunk  # line ends meet the chunks' edges
    try:
        handle = io.BytesIO(data)
        lines, end, size = replay._scan(handle, 0)
        streamed = list(replay._lines(handle, 0, end))
    finally:
        replay.CHUNK = saved
    whole = data[:end].splitlines()
    assert [line for line, _ in streamed] == whole and lines == len(whole)
    assert size == len(data) and data[end:].count(b"\n") + data[end:].count(b"\r") == 0
    assert [after for _, after in streamed] == list(
        itertools.accumulate(len(line) for line in data[:end].splitlines(keepends=True))
    )


@given(line=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_a_hostile_line_is_a_message_or_a_reason_never_an_error(line):
    message, reason = replay.read_message(line)
    assert (message is None) == bool(reason)
    assert message is None or (isinstance(message, dict) and message.get("arcClass"))


def test_lines_python_cannot_read_are_a_reason_not_a_crash():
    assert replay.read_message(b"[" * 100_000)[1] == "not JSON: nested too deeply"
    huge = b'{"arcClass": "C", "message": {"n": ' + b"7" * 5000 + b"}}"
    assert replay.read_message(huge)[1].startswith("unreadable JSON: Exceeds the limit")
