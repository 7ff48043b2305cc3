"""The at-fork registry: renewals run in a forked child, in the order they were registered,
and ``renew_if_forked()`` catches up a child whose hooks never ran."""

from __future__ import annotations

import json
import os

import pytest

from mona_middleware._util import forks


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_runs_the_renewals_in_the_order_they_were_registered():
    ran: list[str] = []
    first = forks.after_fork_in_child(lambda: ran.append("first"))
    second = forks.after_fork_in_child(lambda: ran.append("second"))
    try:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report what ran and leave without the parent's atexit
            report = {"ran": ran, "forked": forks.forked(), "again": forks.renew_if_forked()}
            os.write(write, json.dumps(report).encode())
            os._exit(0)
        os.close(write)
        with os.fdopen(read) as pipe:
            child = json.loads(pipe.read())
        _, status = os.waitpid(pid, 0)
    finally:
        forks._renewals.remove(first)
        forks._renewals.remove(second)
    assert os.waitstatus_to_exitcode(status) == 0
    assert child == {"ran": ["first", "second"], "forked": False, "again": False}
    assert ran == []  # the parent renews nothing
    assert forks.forked() is False and forks.renew_if_forked() is False


def test_renew_if_forked_catches_up_once_and_a_failing_renewal_stops_no_other(monkeypatch, capsys):
    ran: list[str] = []

    def broken() -> None:
        raise RuntimeError("a renewal with a bug")

    # Only these renewals: the package's own would renew this very process's exporter.
    monkeypatch.setattr(forks, "_renewals", [broken, lambda: ran.append("after the bug")])
    monkeypatch.setattr(forks, "_pid", os.getpid() + 1)  # as after a fork without hooks
    assert forks.forked() is True

    assert forks.renew_if_forked() is True
    assert forks.renew_if_forked() is False  # caught up: not twice

    assert ran == ["after the bug"]
    assert forks.forked() is False
    assert "a renewal with a bug" in capsys.readouterr().err
