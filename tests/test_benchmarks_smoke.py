"""The benchmark harness still runs: one tiny round, end to end (no timing is asserted).

``python -m benchmarks --smoke`` starts the local sinks, drives every installed tool
in-process for each framework, runs gunicorn under wrk when wrk is installed, the
exporter and memory checks and the hot-path profile, then writes RESULTS.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("flask")
pytest.importorskip("django")
pytest.importorskip("starlette")


@pytest.mark.timeout(170)
def test_smoke_round_measures_every_installed_tool_and_writes_the_report(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=160,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    measured = {(row["framework"], row["tool"]) for row in results["inprocess"]}
    for framework in ("flask", "django", "starlette"):
        assert {(framework, "bare"), (framework, "ours")} <= measured
    ours = [row for row in results["inprocess"] if row["tool"] == "ours"]
    # Delivery is exact, not timing: every request's message reached the local Mona.
    assert all(row["non_200"] == 0 for row in results["inprocess"])
    assert all(
        row["received"] == row["expected"] == row["warmup"] + row["requests"] for row in ours
    )
    exporter = results["exporter"][0]
    assert exporter["received"] == exporter["messages"]
    assert {row["spool"] for row in results["memory"]} == {False, True}
    assert results["hotpath"][0]["layers"]
    report = (tmp_path / "RESULTS.md").read_text()
    for heading in ("## Headline", "## Targets", "## In-process cost per request"):
        assert heading in report


@pytest.mark.timeout(170)
def test_the_backfill_benchmark_delivers_every_context_and_every_batch_message():
    """``python -m benchmarks.backfill``: exits 0 only when all arrived, none dropped."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.backfill", "--contexts", "3000", "--queue-size",
         "50", "--export-batch"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=160,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert done.stdout.count("received 3,000 of 3,000, dropped 0") == 2, done.stdout


def test_the_instruction_counts_render_as_targets_and_a_split():
    """valgrind is too slow for the suite: the report's arithmetic on known counts."""
    from benchmarks.markdown import DASH, TIMES
    from benchmarks.report import section_targets
    from benchmarks.sections import section_instructions

    rows = [
        {
            "framework": "flask",
            "tools": {"bare": 400_000.0, "ours": 500_000.0, "otel": 1_400_000.0},
            "split": {"request": 450_000.0, "prepare": 480_000.0},
        }
    ]
    section = section_instructions(rows)
    assert f"500,000 (+100,000, 1.25{TIMES})" in section
    # A run without the collector-off counts (earlier runs): the split as they gave it,
    # added +100k = request thread +50k, prepare +30k, the rest +20k
    old_split = f"| flask | +100,000 | {DASH} | +50,000 | +30,000 | +20,000 | {DASH} | {DASH} |"
    assert old_split in section
    targets = section_targets({}, {}, [], [], instructions=rows)
    assert f"+100,000 (0.25{TIMES} bare's 400,000)" in targets  # issue 24: ≤ 55,000 added
    assert f"10.0{TIMES} (+1,000,000 vs +100,000)" in targets
    assert section_instructions([]).startswith("Not run")
    # With the collector off too: its share, and each part against its target.
    rows[0]["collector_off"] = {"bare": 399_000.0, "ours": 496_000.0}
    rows[0]["split"] = {"request": 420_000.0, "prepare": 430_000.0}
    section = section_instructions(rows)
    # on +100,000, off +97,000; request 420k-399k, prepare 10k, rest 66k, collection 3k
    assert "| flask | +100,000 | +97,000 | +21,000 | +10,000 | +66,000 | +3,000 | +76,000 |" in (
        section
    )
    targets = section_targets({}, {}, [], [], instructions=rows)
    assert "| collector on minus off ≤ 5,000 instructions, flask | +3,000 | 0.60 |" in targets
    assert "| preparing one context ≤ 8,000 instructions, flask | +10,000 | 1.25 |" in targets
