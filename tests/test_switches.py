"""Kill switch, sampling, gzip, error_handler, self-metrics, logging and memory bounds."""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

import mona_middleware as mona
from mona_middleware._runtime import process as _runtime

from .conftest import rest_options
from .servers import free_port


def wait_until(predicate, timeout: float = 5.0) -> bool:
    """Poll a condition the code under test changes from another thread; bounded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_the_kill_switch_file_flips_both_ways_while_the_app_serves(memory, tmp_path, monkeypatch):
    flask = pytest.importorskip("flask")
    from mona_middleware.flask import MonaFlask

    switch = tmp_path / "mona.json"
    switch.write_text(json.dumps({"disable_all": False}))
    mona.configure(
        transport=memory, flush_interval=0.05, config_file=str(switch), config_poll_interval=0.02
    )
    app = flask.Flask("switch")
    MonaFlask(app, handle_sigterm=False)

    @app.get("/r/<int:n>")
    def view(n):
        return {"exported": mona.export({"n": n})}

    client = app.test_client()
    assert client.get("/r/1").json == {"exported": True}
    switch.write_text(json.dumps({"disable_all": True, "note": "incident 42"}))
    assert wait_until(_runtime.disabled)
    assert client.get("/r/2").json == {"exported": False}
    with mona.context("BATCH") as ctx:
        assert mona.export({"x": 1}) is False and ctx.disabled
    assert mona.export({"outside": 1}) is False  # and no "outside any context" warning
    switch.write_text(json.dumps({"disable_all": False}))
    assert wait_until(lambda: not _runtime.disabled())
    assert client.get("/r/3").json == {"exported": True}
    assert mona.flush(5)
    assert sorted(f["n"] for f in memory.contexts().values()) == [1, 3]
    assert mona.stats()["exports_outside_context"] == 0


def test_mona_disable_all_makes_middlewares_pass_through(memory, monkeypatch):
    flask = pytest.importorskip("flask")
    from mona_middleware.flask import MonaFlask

    monkeypatch.setenv("MONA_DISABLE_ALL", "1")
    mona.configure(transport=memory)
    app = flask.Flask("off")
    MonaFlask(app, handle_sigterm=False)
    app.get("/")(lambda: {"exported": mona.export({"a": 1})})
    assert app.test_client().get("/").json == {"exported": False}
    assert mona.flush(5) and memory.messages == []


def test_sampling_keeps_the_configured_share_and_agrees_with_mona_sdk(memory, monkeypatch):
    from mona_sdk.client_util import keep_message_after_sampling

    monkeypatch.setenv("MONA_SDK_DEFAULT_SAMPLING_FACTOR", "0.3")
    monkeypatch.setenv("MONA_SDK_SAMPLING_CONFIG", json.dumps({"ALWAYS": 1, "RARE": 0.05}))
    mona.configure(transport=memory, flush_interval=0.05, queue_size=100_000)
    n = 10_000
    ids = [str(uuid.uuid4()) for _ in range(n)]
    for context_id in ids:
        with mona.context("DEFAULT_RATE", context_id=context_id):
            assert mona.export({"v": 1}) is True  # a sampled-out export is not a failure
    for context_id in ids[:2000]:
        with mona.context("ALWAYS", context_id=context_id):
            mona.export({"v": 1})
        with mona.context("RARE", context_id=context_id):
            mona.export({"v": 1})
    assert mona.flush(20)
    kept = {
        cls: {cid for c, cid in memory.contexts() if c == cls}
        for cls in ("DEFAULT_RATE", "ALWAYS", "RARE")
    }
    sigma = math.sqrt(n * 0.3 * 0.7)
    assert abs(len(kept["DEFAULT_RATE"]) - 0.3 * n) < 4 * sigma
    assert len(kept["ALWAYS"]) == 2000
    assert abs(len(kept["RARE"]) - 100) < 4 * math.sqrt(2000 * 0.05 * 0.95)
    for context_id in ids:  # the very same decision as mona_sdk, id by id
        assert (context_id in kept["DEFAULT_RATE"]) == keep_message_after_sampling(context_id, 0.3)
    assert mona.stats()["contexts_sampled_out"] == (n - len(kept["DEFAULT_RATE"])) + (
        2000 - len(kept["RARE"])
    )


def test_sampled_out_requests_pass_through_quietly(memory, monkeypatch):
    flask = pytest.importorskip("flask")
    from mona_middleware.flask import MonaFlask

    monkeypatch.setenv("MONA_SDK_DEFAULT_SAMPLING_FACTOR", "0")
    mona.configure(transport=memory)
    app = flask.Flask("sampled")
    MonaFlask(app, handle_sigterm=False)
    app.get("/")(lambda: {"exported": mona.export({"a": 1})})
    assert app.test_client().get("/").json == {"exported": True}
    assert mona.flush(5) and memory.messages == []
    assert mona.stats()["exports_outside_context"] == 0


def test_gzip_bodies(mona_server):
    mona.configure(**rest_options(mona_server, gzip=True))
    with mona.context("Z", context_id="z1"):
        mona.export({"text": "x" * 1000})
    assert mona.flush(5)
    (request,) = mona_server.export_requests()
    assert request.header("Content-Encoding") == "gzip" and len(request.body) < 300
    assert mona_server.contexts() == {("Z", "z1"): {"text": "x" * 1000}}


def test_error_handler_hears_about_each_failed_batch(mona_server):
    results = []
    mona.configure(
        **rest_options(
            mona_server,
            error_handler=results.append,
            max_retries=1,
            retry_backoff=0.01,
            spool=False,
        )
    )
    mona_server.respond_with(400, body={"failed": 1, "failure_reasons": {"0": "bad x"}}, times=1)
    with mona.context("E", context_id="e1"):
        mona.export({"a": 1})
    with mona.context("E", context_id="e2"):
        mona.export({"a": 2})
    assert mona.flush(5)
    mona_server.respond_with(503, times=2)
    with mona.context("E", context_id="e3"):
        mona.export({"a": 3})
    assert mona.flush(5)
    assert results == [
        {
            "status": 400,
            "total": 2,
            "sent": 1,
            "failed": 1,
            "errors": {"bad x": 1},
            "retries": 0,
            "retryable": False,
        },
        {
            "status": 503,
            "total": 1,
            "sent": 0,
            "failed": 1,
            "errors": {"HTTP 503": 1},
            "retries": 1,
            "retryable": True,
        },
    ]


def test_a_failing_error_handler_is_contained(mona_server, caplog):
    mona.configure(
        **rest_options(mona_server, error_handler=lambda result: 1 / 0, spool=False, max_retries=0)
    )
    mona_server.respond_with(503, times=1)
    with mona.context("E"):
        mona.export({"a": 1})
    assert mona.flush(5)
    assert "error_handler raised" in caplog.text


def test_self_metrics_arrive_as_their_own_context_class(memory):
    mona.configure(transport=memory, flush_interval=0.02, self_metrics_interval=0.05)
    for n in range(5):
        with mona.context("APP"):
            mona.export({"n": n})
    assert wait_until(
        lambda: any(c == "MONA_MIDDLEWARE_SELF_METRICS" for c, _ in memory.contexts()), timeout=5
    )
    report = next(
        f for (c, _), f in memory.contexts().items() if c == "MONA_MIDDLEWARE_SELF_METRICS"
    )
    for field in (
        "queue_depth",
        "messages_sent",
        "messages_failed",
        "retries",
        "dropped_total",
        "send_latency_ms_mean",
        "send_latency_ms_max",
        "pid",
        "host",
    ):
        assert field in report


def test_the_kill_switch_silences_self_metrics_too(memory, tmp_path):
    switch = tmp_path / "mona.json"
    switch.write_text(json.dumps({"disable_all": False}))
    mona.configure(
        transport=memory,
        flush_interval=0.02,
        self_metrics_interval=0.05,
        config_file=str(switch),
        config_poll_interval=0.02,
    )

    def reports() -> int:
        assert mona.flush(5)
        return sum(m["arcClass"] == "MONA_MIDDLEWARE_SELF_METRICS" for m in memory.messages)

    with mona.context("APP"):
        mona.export({"n": 1})  # starts the exporter; its batcher reports every 50 ms
    assert wait_until(lambda: reports() > 0, timeout=5)
    switch.write_text(json.dumps({"disable_all": True}))
    assert wait_until(lambda: _runtime.disabled(), timeout=5)
    time.sleep(0.1)  # a report being made as the switch flipped
    silenced = reports()
    time.sleep(0.5)  # about ten intervals
    assert reports() == silenced
    switch.write_text(json.dumps({"disable_all": False}))
    assert wait_until(lambda: reports() > silenced, timeout=5)


def test_logger_name_and_level_follow_mona_sdk_variables(monkeypatch, caplog):
    monkeypatch.setenv("MONA_SDK_LOGGER_NAME", "my-mona")
    monkeypatch.setenv("MONA_SDK_LOGGING_LEVEL", "ERROR")
    mona.configure(transport="memory")
    try:
        assert logging.getLogger("my-mona").level == logging.ERROR
        caplog.set_level(logging.DEBUG, "my-mona")
        mona.export({"outside": True})
        assert [r.name for r in caplog.records] == ["my-mona"]
    finally:
        mona.configure(transport="memory", logger_name="mona_middleware")


def test_repeated_errors_are_rate_limited_and_counted(mona_server, caplog):
    mona.configure(**rest_options(mona_server, spool=False, batch_size=1, max_retries=0))
    mona_server.respond_with(503)
    for n in range(50):
        with mona.context("FLOOD", context_id=str(n)):
            mona.export({"n": n})
    assert mona.flush(10)
    lines = [r for r in caplog.records if "not accepted by rest" in r.getMessage()]
    assert len(lines) == 1
    assert mona.stats()["dropped"] == {"send failed: HTTP 503": 50}


def test_memory_stays_bounded_after_100k_exports_to_a_dead_backend(tmp_path):
    """RSS in a fresh process: the queue is bounded, the rest is counted or on disk."""
    dead = f"http://127.0.0.1:{free_port()}"
    script = textwrap.dedent(
        f"""
        import json, resource
        import mona_middleware as mona
        from mona_middleware._runtime import process as _runtime

        def rss_mb():
            with open("/proc/self/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024

        mona.configure(api_key="k", secret="s", auth_api_token_url="{dead}/token",
                       rest_api_url="{dead}/export", spool_dir={str(tmp_path)!r},
                       http_timeout=0.2, auth_retries=0, retry_max_backoff=0.05)
        with mona.context("WARM"):
            mona.export({{"a": 1}})
        before = rss_mb()
        for n in range(100_000):
            with mona.context("LOAD", context_id=str(n)):
                mona.export({{"n": n, "model": "v3", "score": 0.5}})
        after = rss_mb()
        exporter = _runtime.exporter()
        queued = exporter.snapshot()["queued"]
        mona.shutdown(10)
        stats = exporter.snapshot()
        print(json.dumps({{"before": before, "after": after, "queued": queued,
                          "dropped": stats["dropped"], "spooled": stats["messages_spooled"],
                          "sent": stats["messages_sent"]}}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    print("RSS MB before/after 100k exports to a dead backend:", figures)
    assert figures["after"] - figures["before"] < 80
    assert figures["queued"] <= 10_000
    # every one of the 100,001 messages is accounted for: on disk, or counted as dropped
    assert figures["sent"] + figures["spooled"] + sum(figures["dropped"].values()) == 100_001
