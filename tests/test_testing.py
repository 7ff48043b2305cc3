"""The pytest plugin: ``mona_capture`` sees what the test exported, per context."""

from __future__ import annotations

import pytest

import mona_middleware as mona
from mona_middleware.transports import InMemoryTransport


def test_the_pytest_fixture_captures_per_context(mona_capture):
    with mona.context("FIXTURE", context_id="1"):
        mona.export({"a": 1})
    assert mona_capture.only("FIXTURE") == {"a": 1}
    assert mona_capture.contexts("OTHER") == {}
    mona_capture.clear()
    assert mona_capture.messages == []


def test_an_app_that_configures_itself_still_sends_to_the_capture(mona_capture, tmp_path):
    jsonl = tmp_path / "app.jsonl"
    config = mona.configure(transport="file", file_path=str(jsonl), flush_interval=30)
    assert isinstance(config.transport, InMemoryTransport)  # the capture's, kept
    with mona.context("APP", context_id="a-1"):
        mona.export({"score": 0.5})
        mona.export({"latency_ms": 12}, action="ADD")
    with mona.context("APP", context_id="a-2"):
        mona.export({"score": 0.7})
    assert mona_capture.contexts() == {
        ("APP", "a-1"): {"score": 0.5, "latency_ms": [12]},
        ("APP", "a-2"): {"score": 0.7},
    }
    assert {m["contextId"] for m in mona_capture.messages} == {"a-1", "a-2"}
    with pytest.raises(AssertionError, match="expected one 'APP' context, found 2"):
        mona_capture.only("APP")
    assert not jsonl.exists()


def test_a_flask_apps_requests_are_captured_as_the_docs_show(mona_capture):
    flask = pytest.importorskip("flask")
    from mona_middleware.flask import MonaFlask

    app = flask.Flask("captured")
    MonaFlask(app, context_class="PREDICT", handle_sigterm=False)

    @app.post("/predict")
    def predict():
        mona.export({"score": 0.9, "items": len(flask.request.json["items"])})
        return {"ok": True}

    assert app.test_client().post("/predict", json={"items": [1, 2, 3]}).json == {"ok": True}
    fields = mona_capture.only("PREDICT")
    assert (fields["score"], fields["items"], fields["http_status_code"]) == (0.9, 3, 200)
    assert fields["http_route"] == "/predict"


@pytest.mark.parametrize(("method", "status"), [("get", 404), ("post", 405)])
def test_a_flask_error_page_is_captured_without_reading_its_body(mona_capture, method, status):
    """Flask's test client never closes a body nobody reads; an error page's context is
    captured all the same, and later exports of the test land in no request's context."""
    flask = pytest.importorskip("flask")
    from mona_middleware.flask import MonaFlask

    app = flask.Flask("captured")
    MonaFlask(app, context_class="PAGES", handle_sigterm=False)
    app.add_url_rule("/only-get", "only_get", lambda: "ok")

    path = "/nowhere" if status == 404 else "/only-get"
    assert getattr(app.test_client(), method)(path).status_code == status
    assert mona.current_context() is None
    fields = mona_capture.only("PAGES")
    assert fields["http_status_code"] == status and fields["http_method"] == method.upper()
