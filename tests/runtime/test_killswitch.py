"""The kill switches: ``disable_all`` in the config file, re-read while the app serves, and
``MONA_DISABLE_ALL``."""

from __future__ import annotations

import json
import time

import pytest

import mona_middleware as mona
from mona_middleware._runtime import process as _runtime
from mona_middleware._runtime.killswitch import ConfigFileWatcher


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
    assert wait_until(_runtime.file_switched_off)
    assert client.get("/r/2").json == {"exported": False}
    with mona.context("BATCH") as ctx:
        assert mona.export({"x": 1}) is False and ctx.disabled
    assert mona.export({"outside": 1}) is False  # and no "outside any context" warning
    switch.write_text(json.dumps({"disable_all": False}))
    assert wait_until(lambda: not _runtime.file_switched_off())
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


def test_the_watcher_follows_the_file_and_keeps_its_state_through_a_broken_edit(tmp_path, caplog):
    path = tmp_path / "mona.json"
    watcher = ConfigFileWatcher(str(path), interval=60)  # polled by hand here, never started
    states = []
    for content in (
        None,  # no file: recording is on
        json.dumps({"disable_all": True}),
        "{not json",  # a half-written edit: the switch stays as it was
        json.dumps(["disable_all"]),  # JSON, but not an object: off
        json.dumps({"disable_all": True, "note": "incident 7"}),
        None,  # the file removed: on again
    ):
        if content is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(content)
        watcher.poll()
        states.append(watcher.disabled)
    assert states == [False, True, True, False, True, False]
    assert "is not a JSON object" in caplog.text and "keeping disable_all=True" in caplog.text
    assert caplog.text.count("disable_all is now ON") == 2


def test_mona_client_config_file_is_the_live_switch_when_ours_is_not_set(
    memory, tmp_path, monkeypatch
):
    switch = tmp_path / "mona_client_config.json"
    switch.write_text(json.dumps({"disable_all": True}))
    monkeypatch.setenv("MONA_CLIENT_CONFIG_FILE", str(switch))
    mona.configure(transport=memory, config_poll_interval=0.02)
    assert _runtime.file_switched_off()
    with mona.context("C", context_id="off"):
        assert mona.export({"x": 1}) is False
    switch.write_text(json.dumps({"disable_all": False}))  # the operator flips it back
    assert wait_until(lambda: not _runtime.file_switched_off())
    with mona.context("C", context_id="on"):
        assert mona.export({"x": 2}) is True
    assert mona.flush(5)
    assert memory.contexts() == {("C", "on"): {"x": 2}}
