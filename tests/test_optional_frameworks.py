"""The core and the WSGI adapter work without any web framework; the other adapters say
which extra to install.

Each check runs in a fresh interpreter in which the frameworks cannot be imported
(``sys.modules[name] = None`` makes ``import name`` fail), so it holds whatever this
environment has installed; tox's ``core`` env also runs it where none is installed.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

FRAMEWORKS = (
    "flask", "werkzeug", "django", "asgiref", "starlette", "fastapi", "celery", "aiohttp",
    "gevent",
)  # fmt: skip


def run_python(code: str, *, block_frameworks: bool) -> subprocess.CompletedProcess[str]:
    prelude = f"import sys\nFRAMEWORKS = {FRAMEWORKS!r}\n"
    if block_frameworks:
        prelude += "for name in FRAMEWORKS:\n    sys.modules[name] = None\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_importing_the_package_and_its_framework_free_adapters_imports_no_framework():
    result = run_python(
        """
        import mona_middleware, mona_middleware.wsgi, mona_middleware.asgi
        print(sorted({m.split(".")[0] for m in sys.modules} & set(FRAMEWORKS)))
        """,
        block_frameworks=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_contexts_and_the_wsgi_middleware_work_without_any_framework():
    result = run_python(
        """
        import mona_middleware as mona
        from mona_middleware.transports import InMemoryTransport
        from mona_middleware.wsgi import MonaWSGIMiddleware

        transport = InMemoryTransport()
        mona.configure(transport=transport)
        with mona.context("BATCH_JOB", context_id="job-1"):
            mona.export({"rows": 3})

        def app(environ, start_response):
            mona.export({"score": 0.5})
            start_response("201 Created", [("Content-Type", "text/plain")])
            return [b"ok"]

        wrapped = MonaWSGIMiddleware(app, context_class="PLAIN_WSGI", handle_sigterm=False)
        body = wrapped({"REQUEST_METHOD": "POST", "PATH_INFO": "/score"}, lambda *a: None)
        assert b"".join(body) == b"ok"
        if hasattr(body, "close"):  # as a server does (PEP 3333); a whole list has none
            body.close()
        assert mona.flush(5)
        contexts = transport.contexts()
        assert contexts[("BATCH_JOB", "job-1")] == {"rows": 3}, contexts
        [request] = [f for (cls, _), f in contexts.items() if cls == "PLAIN_WSGI"]
        assert request["score"] == 0.5 and request["http_status_code"] == 201, request
        mona.shutdown(5)
        print("ok")
        """,
        block_frameworks=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


@pytest.mark.parametrize(
    ("module", "extra"),
    [
        ("flask", "flask"),
        ("django", "django"),
        ("_web.starlette_routes", "starlette"),
        ("celery", "celery"),
        ("aiohttp", "aiohttp"),
        ("gevent", "gevent"),
    ],
)
def test_an_adapter_without_its_framework_names_the_extra_to_install(module, extra):
    result = run_python(f"import mona_middleware.{module}", block_frameworks=True)
    assert result.returncode != 0
    assert "ImportError" in result.stderr
    assert f"pip install 'mona_middleware[{extra}]'" in result.stderr, result.stderr
