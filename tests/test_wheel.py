"""The package as a user installs it: the wheel and sdist ``python -m build`` makes, the
wheel installed in a fresh venv (no checkout on the path), and the command line run from
there: ``check``, ``collector`` (its page and static files) and ``demo``.

The build runs without isolation (the test extra brings ``build``, ``setuptools`` and
``wheel``), so it downloads nothing; installing the wheel's dependencies into the fresh
venv uses pip as a user would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from mona_middleware import __version__

from .servers import free_port

pytestmark = pytest.mark.processes

ROOT = Path(__file__).resolve().parents[1]
WHEEL = f"mona_middleware-{__version__}-py3-none-any.whl"


def run(*command: str, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)
    assert result.returncode == 0, f"{command}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def user_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell: no Mona settings, no PYTHONPATH to the checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONA_", "AUTH_MODE"))}
    env.pop("PYTHONPATH", None)
    env["NO_PROXY"] = "127.0.0.1,localhost"
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("build")
    out = tmp_path_factory.mktemp("dist")
    source = tmp_path_factory.mktemp("source") / "mona_middleware"
    # A clean copy of the tracked files, as a fresh clone has them (no .venv, no build/).
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    if listed.returncode != 0:
        pytest.skip(f"not a git checkout: {listed.stderr.strip()}")
    files = listed.stdout.split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / name).write_bytes((ROOT / name).read_bytes())
    run(sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(source))
    return out


@pytest.fixture(scope="module")
def venv(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh venv with the wheel and its [flask,celery] extras installed."""
    home = tmp_path_factory.mktemp("venv") / "fresh"
    run(sys.executable, "-m", "venv", str(home))
    pip = [str(home / "bin" / "python"), "-m", "pip", "install", "-q"]
    run(*pip, f"{dist / WHEEL}[flask,celery]", timeout=600, env=user_env())
    yield home


def test_the_build_makes_a_wheel_and_an_sdist_with_everything_in_them(dist: Path) -> None:
    sdist = dist / f"mona_middleware-{__version__}.tar.gz"
    assert sorted(path.name for path in dist.iterdir()) == sorted([WHEEL, sdist.name])
    with zipfile.ZipFile(dist / WHEEL) as wheel:
        names = set(wheel.namelist())
        metadata = wheel.read(f"mona_middleware-{__version__}.dist-info/METADATA").decode()
    for static in ("index.html", "app.js", "style.css"):
        assert f"mona_middleware/collector/static/{static}" in names
    assert "mona_middleware/_cli/demo_apps.py" in names  # the demo runs from any install
    assert "mona_middleware/py.typed" in names
    assert not any(name.startswith(("tests/", "example_apps/", "benchmarks/")) for name in names)
    assert 'Requires-Dist: celery[redis]>=5.3; extra == "celery"' in metadata
    assert f"dist/{WHEEL}[flask]" in (ROOT / "README.md").read_text()  # the Install section
    with tarfile.open(sdist) as archive:
        members = {Path(name).relative_to(f"mona_middleware-{__version__}").as_posix()
                   for name in archive.getnames() if "/" in name}  # fmt: skip
    assert {"README.md", "pyproject.toml", "mona_middleware/collector/static/app.js"} <= members


def test_check_runs_from_the_installed_wheel(venv: Path, tmp_path: Path) -> None:
    result = run(str(venv / "bin" / "mona-middleware"), "check", cwd=tmp_path, env=user_env())

    assert "Transport: file: no Mona credentials are set" in result.stdout
    assert result.stdout.rstrip().endswith("OK: this configuration can export.")
    code = "import mona_middleware; print(mona_middleware.__file__)"
    imported = run(str(venv / "bin" / "python"), "-c", code, cwd=tmp_path, env=user_env())
    assert str(venv) in imported.stdout  # the wheel's copy, not the checkout's


def test_the_celery_extra_brings_the_broker_client_its_snippet_needs(venv: Path, tmp_path) -> None:
    code = (
        "from celery import Celery\n"
        "from mona_middleware.celery import MonaCelery\n"
        "app = Celery('shop', broker='redis://localhost')\n"
        "MonaCelery(app)\n"
        "print(type(app.connection_for_write().transport).__module__)\n"
    )
    result = run(str(venv / "bin" / "python"), "-c", code, cwd=tmp_path, env=user_env())

    assert result.stdout.strip() == "kombu.transport.redis"


def test_the_collector_serves_its_page_from_the_installed_wheel(venv: Path, tmp_path) -> None:
    port = free_port()
    collector = subprocess.Popen(
        [str(venv / "bin" / "mona-middleware"), "collector", "--port", str(port)],
        cwd=tmp_path, env=user_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        banner = ""
        while "Press Ctrl-C to stop." not in banner:
            line = collector.stdout.readline()
            assert line, banner
            banner += line
        page = requests.get(f"http://127.0.0.1:{port}/", timeout=10)
        assert page.status_code == 200 and "<html" in page.text.lower()
        for static in ("app.js", "style.css"):
            answer = requests.get(f"http://127.0.0.1:{port}/static/{static}", timeout=10)
            assert answer.status_code == 200 and answer.text
        assert f"export MONA_SDK_OVERRIDE_REST_API_URL=http://127.0.0.1:{port}/export" in banner
    finally:
        collector.send_signal(signal.SIGINT)
        out, _ = collector.communicate(timeout=20)
    assert collector.returncode == 0 and "Mona collector stopped." in out


def test_the_demo_runs_from_the_installed_wheel(venv: Path, tmp_path: Path) -> None:
    result = run(
        str(venv / "bin" / "mona-middleware"), "demo", "--requests", "20",
        cwd=tmp_path, env=user_env(), timeout=120,
    )  # fmt: skip

    assert "Sent 20 requests to the flask example" in result.stdout
    assert "The collector stored 20 contexts" in result.stdout
    assert "Next, your own app:" in result.stdout
    assert not list(tmp_path.iterdir())
