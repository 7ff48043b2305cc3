"""The public API as users call it passes ``mypy --strict`` (``public_api.py``).

mypy checks the user's file only (``--follow-imports=silent``: the package's own modules
are CI's ``mypy`` run, with pyproject.toml's configuration), the package found in this
checkout (``tests`` is a package: mypy puts the repository root first on its path).
Skipped where mypy is not installed (tox's core envs) or a framework the file imports.
"""

from __future__ import annotations

from pathlib import Path

import pytest

api = pytest.importorskip("mypy.api")
pytest.importorskip("flask")
pytest.importorskip("django")

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
# Reused between runs (the frameworks' stubs take most of a first run), apart from the
# cache of CI's own mypy run, whose options differ.
CACHE = ROOT / ".mypy_cache" / "tests-typing"


def strict_mypy(name: str) -> tuple[str, int]:
    """mypy --strict on one file here: (its report, its exit status)."""
    stdout, stderr, status = api.run(
        [
            "--strict",
            "--follow-imports=silent",
            "--config-file=",  # not pyproject.toml's: the user's file, as a user checks it
            f"--cache-dir={CACHE}",
            "--no-error-summary",
            "--show-error-codes",
            str(HERE / name),
        ]
    )
    return stdout + stderr, status


@pytest.mark.timeout(600)  # a first run reads the frameworks' types: slow on a busy machine
def test_the_public_api_passes_strict_mypy() -> None:
    report, status = strict_mypy("public_api.py")
    assert status == 0, report
    assert report.strip() == "", report


@pytest.mark.timeout(600)
def test_a_wrong_use_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check is live: a wrong type in the same setting is an error (no Any swallows it)."""
    # Code given with -c has no file whose package mypy can follow up to this checkout,
    # and an editable install's import hook is nothing mypy reads: name the checkout.
    monkeypatch.setenv("MYPYPATH", str(ROOT))
    broken = HERE / "public_api.py"
    source = broken.read_text(encoding="utf-8")
    assert "assert_type(mona.flush(), bool)" in source
    stdout, _stderr, status = api.run(
        [
            "--strict",
            "--follow-imports=silent",
            "--config-file=",
            f"--cache-dir={CACHE}",
            "--no-error-summary",
            "-c",
            source.replace("assert_type(mona.flush(), bool)", "assert_type(mona.flush(), str)"),
        ]
    )
    assert status == 1
    assert '"bool", not "str"' in stdout, stdout


@pytest.mark.timeout(600)
@pytest.mark.xfail(
    strict=True,
    reason=(
        "MonaASGIMiddleware(app, **options): `app` may also be given by keyword, so "
        "Starlette's middleware factory protocol (app positional-only, then **kwargs) "
        "does not match; `def __init__(self, app: ASGIApp, /, **options: Any)` would, "
        "a change of the public signature (app= by keyword would then be refused)"
    ),
)
def test_starlette_and_fastapi_add_middleware() -> None:
    pytest.importorskip("starlette")
    report, status = strict_mypy("starlette_factory.py")
    assert status == 0, report
