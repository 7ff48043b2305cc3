"""The ``mona-middleware`` command line: its subcommands, help, and what it imports."""

from __future__ import annotations

import argparse
import os
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


@pytest.mark.parametrize(
    ("argv", "usage", "error"),
    [
        (["collector", "--prot", "9000"], "usage: mona-middleware collector ",
         "unrecognized arguments: --prot 9000 (did you mean --port?)"),
        (["collector", "--port", "99999"], "usage: mona-middleware collector ",
         "argument --port: 99999 is not a port number (0 to 65535)"),
        (["collector", "--port", "http"], "usage: mona-middleware collector ",
         "argument --port: 'http' is not a port number"),
        (["demo", "--port", "-1"], "usage: mona-middleware demo ",
         "argument --port: -1 is not a port number (0 to 65535)"),
        (["demo", "--framework", "flsk"], "usage: mona-middleware demo ",
         "argument --framework: invalid choice: 'flsk'"),
        (["check", "--timeout", "0"], "usage: mona-middleware check ",
         "argument --timeout: 0 is not between 0 and 3600 seconds"),
        (["check", "--jsn"], "usage: mona-middleware check ",
         "unrecognized arguments: --jsn (did you mean --json?)"),
        (["replay"], "usage: mona-middleware replay ",
         "the following arguments are required: path"),
        (["colector"], "usage: mona-middleware [-h]", "invalid choice: 'colector'"),
    ],
)  # fmt: skip
def test_a_mistake_prints_its_subcommand_s_usage_and_exits_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], usage: str, error: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)

    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(usage), err
    assert error in err.splitlines()[-1], err
    assert "Traceback" not in err


def test_a_port_number_parses_the_whole_range() -> None:
    assert [cli.port_number(text) for text in ("0", "8765", "65535")] == [0, 8765, 65535]
    for bad in ("65536", "-1", "80.5", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            cli.port_number(bad)


def test_the_collector_command_line_takes_a_bad_port_without_a_traceback() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mona_middleware", "collector", "--port", "99999"],
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == (
        "mona-middleware collector: error: argument --port: 99999 is not a port number (0 to 65535)"
    )


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """``check --json | head``: the reader is gone before we write."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # as `head` does once it has its lines
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MONA_", "AUTH_MODE"))}
        result = subprocess.run(
            [sys.executable, "-m", "mona_middleware", "check", "--json", "--all"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            env=env,
            timeout=60,
        )
    finally:
        os.close(write_end)

    assert result.stderr == ""
    assert result.returncode == 141  # 128 + SIGPIPE, as a shell reports it
