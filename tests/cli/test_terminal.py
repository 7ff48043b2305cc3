"""The progress bar: drawn on a terminal, one line per tenth (or nothing) off one."""

from __future__ import annotations

import io

from mona_middleware._cli.terminal import ProgressBar


def test_progress_bar_draws_only_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    piped, terminal = io.StringIO(), Terminal()
    for stream in (piped, terminal):
        bar = ProgressBar(4, "requests", stream=stream, width=4)
        for _ in range(4):
            bar.advance()
        bar.finish()

    assert piped.getvalue() == ""
    assert terminal.getvalue().endswith("\r[####] 4/4 requests\n")


def test_progress_bar_off_a_terminal_can_log_one_line_per_tenth() -> None:
    log = io.StringIO()  # what replay shows in a CI log: resumed at 40 of 100
    bar = ProgressBar(100, "messages", stream=log, width=10, done=40, log_tenths=True)
    for _ in range(60):
        bar.advance()
    bar.finish()
    lines = log.getvalue().splitlines()
    assert lines[0] == "[####......] 40/100 messages"
    assert lines[-1] == "[##########] 100/100 messages"
    assert len(lines) == 7  # 40%, 50%, ... 100%: one line each, no redraws
