"""Fault injection: outages, 429/503 with Retry-After, refusals, spool, kill switch, sampling."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

import mona_middleware as mona
from mona_middleware._export.spool import Spool
from mona_middleware._util.stats import ExportStats

from .conftest import rest_options
from .mona_server import MonaTestServer, retry_after_date
from .servers import ROOT, gunicorn, mona_env

FAST_RETRIES = {"retry_backoff": 0.05, "retry_max_backoff": 0.5}


def export_contexts(n: int, cls: str = "REQ", prefix: str = "r") -> None:
    for i in range(n):
        with mona.context(cls, context_id=f"{prefix}{i}"):
            mona.export({"i": i})


def export_arrivals(server: MonaTestServer) -> list[float]:
    return [r.arrived for r in server.export_requests()]


def test_a_30_second_outage_loses_nothing_and_sends_nothing_twice(mona_server, tmp_path):
    mona.configure(
        **rest_options(
            mona_server, retry_max_backoff=2.0, retry_max_time=20, spool_dir=str(tmp_path / "spool")
        )
    )
    export_contexts(1, prefix="warmup")
    assert mona.flush(5)
    mona_server.stop_listening()
    outage_ends = time.monotonic() + 30
    sent = 0
    while time.monotonic() < outage_ends:  # a steady trickle of requests through the outage
        export_contexts(10, prefix=f"o{sent}-")
        sent += 10
        time.sleep(0.25)
    mona_server.start_listening()
    export_contexts(1, prefix="after")  # fresh traffic after the outage
    assert mona.flush(30)
    assert mona_server.wait_for_messages(sent + 2, timeout=60)
    ids = [m["contextId"] for m in mona_server.messages()]
    assert len(ids) == len(set(ids)) == sent + 2  # every context once, none twice
    stats = mona.stats()
    assert stats["dropped"] == {} and stats["retries"] > 0


@pytest.mark.parametrize("header", ["2", "date"])
def test_retry_after_is_honoured_even_by_flush(mona_server, header):
    mona.configure(**rest_options(mona_server, **FAST_RETRIES))
    value = "2" if header == "2" else retry_after_date(2.5)
    mona_server.respond_with(503, headers={"Retry-After": value}, times=1)
    export_contexts(1)
    assert mona.flush(10)  # flush wakes backoffs, but must not cut a Retry-After short
    first, second = export_arrivals(mona_server)
    assert second - first >= (2.0 if header == "2" else 1.0)
    assert len(mona_server.messages()) == 1


def test_retry_after_holds_back_every_batch_not_only_the_refused_one(mona_server):
    mona.configure(**rest_options(mona_server, batch_size=1, sender_threads=2, **FAST_RETRIES))
    mona_server.respond_with(429, headers={"Retry-After": "2"}, times=1)
    export_contexts(1, prefix="first")
    deadline = time.monotonic() + 5
    while mona.stats()["retries"] < 1 and time.monotonic() < deadline:  # the 429 is read
        time.sleep(0.01)
    refused_at = export_arrivals(mona_server)[0]
    export_contexts(5, prefix="more")  # other batches, for the other sender too
    assert mona.flush(15)
    # With both senders waiting, a batch may go to the spool, resent right after.
    assert mona_server.wait_for_messages(6, timeout=10)
    later = export_arrivals(mona_server)[1:]
    assert later and min(later) - refused_at >= 2.0  # no request of any batch before 2 s
    assert sorted(m["contextId"] for m in mona_server.messages()) == sorted(
        ["first0"] + [f"more{i}" for i in range(5)]
    )


@pytest.mark.parametrize("value", ["nan", "inf", "-5", "soon"])
def test_an_unusable_retry_after_falls_back_to_backoff(mona_server, value):
    mona.configure(**rest_options(mona_server, **FAST_RETRIES))
    mona_server.respond_with(503, headers={"Retry-After": value}, times=2)
    export_contexts(1)
    started = time.process_time()
    assert mona.flush(10)
    assert time.process_time() - started < 1.0  # a wait of nan seconds would spin the CPU
    assert len(mona_server.messages()) == 1 and mona.stats()["retries"] == 2


@pytest.mark.parametrize(
    "status,body",
    [
        (429, {"topLevelError": "slow down"}),
        (503, {"topLevelError": "maintenance"}),
        (503, {"failed": 1, "failure_reasons": {"0": "unavailable"}}),
    ],
)
def test_a_retryable_status_is_retried_whatever_its_json_says(mona_server, status, body):
    mona.configure(**rest_options(mona_server, **FAST_RETRIES))
    mona_server.respond_with(status, body=body, times=1)
    export_contexts(1)
    assert mona.flush(10)
    assert len(mona_server.messages()) == 1
    assert mona.stats()["retries"] == 1 and mona.stats()["dropped"] == {}


def test_429_and_5xx_are_retried_other_4xx_are_not(mona_server):
    mona.configure(**rest_options(mona_server, **FAST_RETRIES))
    for status in (429, 500, 502, 408):
        mona_server.respond_with(status, times=1)
        export_contexts(1, prefix=f"s{status}-")
        assert mona.flush(10)
    assert len(mona_server.messages()) == 4
    mona_server.respond_with(422, body={"errors": ["schema mismatch"]}, times=1)
    export_contexts(1, prefix="bad")
    assert mona.flush(10)
    stats = mona.stats()
    assert stats["retries"] == 4
    assert stats["dropped"] == {"rejected by the backend": 1}
    assert stats["failure_reasons"] == {'HTTP 422: ["schema mismatch"]': 1}  # the server's reason
    assert len(mona_server.export_requests()) == 4 * 2 + 1


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


def test_sigterm_during_an_outage_spools_and_a_restart_delivers_exactly_once(mona_server, tmp_path):
    spool_dir = str(tmp_path / "spool")
    env = mona_env(
        mona_server,
        MONA_MIDDLEWARE_SPOOL_DIR=spool_dir,
        MONA_MIDDLEWARE_FLUSH_INTERVAL="0.2",
        MONA_MIDDLEWARE_RETRY_MAX_BACKOFF="0.5",
    )
    args = ["-c", str(ROOT / "example_apps" / "gunicorn.conf.py")]
    import requests

    with gunicorn("example_apps.flask_app:app", env, *args) as app:
        app.wait_ready("/health")
        mona_server.stop_listening()  # the outage starts after the app is up
        for n in range(30):
            assert requests.get(f"{app.url}/items/{n}", timeout=10).status_code == 200
        assert app.stop(signal.SIGTERM) == 0, app.output
    assert mona_server.messages() == []
    assert Spool(spool_dir, 1 << 30, ExportStats()).pending()[1] == 30
    mona_server.start_listening()
    with gunicorn("example_apps.flask_app:app", env, *args) as app:  # a new deploy, no traffic
        app.wait_ready("/health")
        assert mona_server.wait_for_messages(30, timeout=30), app.output
        assert app.stop(signal.SIGTERM) == 0
    item_ids = sorted(m["message"]["item_id"] for m in mona_server.messages())
    assert item_ids == list(range(30))


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
