"""The demo's apps, each through its framework's own test client (Django: served for real
by ``test_demo.py``, as Django's settings are process-wide)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mona_middleware._cli import demo_apps

COMMON = {"http_method", "http_route", "http_status_code", "duration_ms"}


def client(framework: str):
    if framework == "flask":
        pytest.importorskip("flask")
        app = demo_apps.flask_app()
        app.testing = False  # a view's exception becomes the 500 a server would send
        return app.test_client()
    pytest.importorskip(framework)
    from starlette.testclient import TestClient

    return TestClient(getattr(demo_apps, f"{framework}_app")(), raise_server_exceptions=False)


@pytest.mark.parametrize("framework", ["flask", "starlette", "fastapi"])
def test_each_route_is_a_context_with_what_the_view_exported(framework, memory) -> None:
    def ask(answer):
        text = answer.text
        answer.close()  # as a server does: Flask closes a 404's context only then
        return answer.status_code, text

    with client(framework) as http:
        assert ask(http.post("/predict", json={"items": [10, 30], "segment": "vip"}))[0] == 200
        assert ask(http.get("/items/7"))[0] == 200
        assert ask(http.get("/stream")) == (200, "row 0\nrow 1\nrow 2\n")
        assert ask(http.get("/fail"))[0] == 500
        assert ask(http.get("/no-such-page"))[0] == 404
        assert ask(http.get("/health")) == (200, "ok")
    demo_apps.mona.flush(5)

    by_route = {fields["http_route"]: (key[0], fields) for key, fields in memory.contexts().items()
                if "http_route" in fields}  # fmt: skip
    assert len(memory.contexts()) == 5  # /health is excluded
    cls, predict = by_route["/predict"]
    assert cls == ("PREDICTIONS" if framework == "fastapi" else "RECOMMENDATIONS")
    assert predict["model_version"] == demo_apps.MODEL_VERSION
    assert (predict["item_count"], predict["user_segment"], predict["score"]) == (2, "vip", 0.2)
    assert set(predict) >= COMMON
    items = next(fields for route, (_, fields) in by_route.items() if route.startswith("/items/"))
    assert items["item_id"] == 7
    assert by_route["/stream"][1]["rows_streamed"] == 3
    assert by_route["/fail"][1]["exception_type"] == "RuntimeError"
    assert by_route["/fail"][1]["http_status_code"] == 500
    not_found = [f for key, f in memory.contexts().items() if f["http_status_code"] == 404]
    assert len(not_found) == 1 and "http_route" not in not_found[0]


def test_starlette_s_mount_template_is_the_route(memory) -> None:
    with client("starlette") as http:
        assert http.get("/tenants/acme/model").json() == {"tenant": "acme"}
    demo_apps.mona.flush(5)

    [fields] = memory.contexts().values()
    assert (fields["http_route"], fields["tenant"]) == ("/tenants/{tenant}/model", "acme")


def test_the_module_says_how_to_run_it() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mona_middleware._cli.demo_apps", "bottle"],
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 2
    assert result.stderr.strip() == (
        "usage: python -m mona_middleware._cli.demo_apps flask|django|starlette|fastapi"
    )
