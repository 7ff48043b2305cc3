"""The ``mona-middleware`` command line: its subcommands, help, and what it imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mona_middleware import __version__
from mona_middleware._cli import main as cli


def test_help_lists_the_collector_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--help"])

    assert exited.value.code == 0
    assert "collector" in capsys.readouterr().out


def test_no_subcommand_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_console_script_runs() -> None:
    script = Path(sys.executable).with_name("mona-middleware")
    if not script.exists():
        pytest.skip("the package is not installed with its console script in this venv")

    result = subprocess.run(
        [str(script), "collector", "--help"], capture_output=True, text=True, timeout=30
    )

    assert result.returncode == 0
    assert "--db" in result.stdout


def test_cli_imports_no_web_framework() -> None:
    code = (
        "import sys, mona_middleware._cli.main as c; c.build_parser(); "
        "print(sorted(m for m in sys.modules "
        "if m.split('.')[0] in {'flask', 'django', 'starlette', 'fastapi', 'werkzeug'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_python_dash_m_runs_the_same_command_line() -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "mona_middleware", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=30)

    version = run("--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"mona-middleware {__version__}"
    bare = run()  # no command: the help, and a failing status (as main([]) returns)
    assert bare.returncode == 2
    for name in ("check", "collector", "demo", "replay"):
        assert name in bare.stdout
