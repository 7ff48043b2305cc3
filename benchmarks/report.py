"""From ``results.json`` to ``RESULTS.md`` and ``added_us.png``: medians, paired deltas, targets.

Re-render without measuring again::

    python -m benchmarks.report benchmarks/results.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .chart import chart
from .common import FRAMEWORKS
from .labels import (
    LABELS,
    OTHERS,
    TARGET_ADDED_INSTRUCTIONS,
    TARGET_ADDED_RATIO,
    TARGET_BACKFILL_RATIO,
    TARGET_COLLECTION,
    TARGET_CONNECTIONS,
    TARGET_LIVE_CPU_RATIO,
    TARGET_MSGS_PER_POST,
    TARGET_OTEL_FACTOR,
    TARGET_P99_ADDED_US,
    TARGET_PER_MESSAGE,
    TARGET_PREPARE,
    TARGET_REQUEST_THREAD,
    TARGET_RPS_RATIO,
    TARGET_RPS_RATIO_UVICORN,
)
from .markdown import DASH, TIMES, Row, f, met, signed, table, text
from .sections import (
    section_backfill,
    section_exporter,
    section_inprocess,
    section_instructions,
    section_memory,
    section_profile,
    section_servers,
    section_split,
)
from .servers import SERVERS
from .summary import (
    backfill_summary,
    exporter_summary,
    instruction_parts,
    live_split,
    memory_summary,
    summarize_inprocess,
    summarize_servers,
)


def section_environment(results: Row) -> str:
    env, plan = results["environment"], results["plan"]
    packages = ", ".join(f"{k} {v}" for k, v in env["packages"].items() if v)
    missing = results.get("missing_tools") or []
    lines = [
        f"- Date: {results['started']} (run took {results['elapsed_s'] / 60:.1f} min, "
        f"mode `{plan['mode']}`, {plan['rounds']} rounds)",
        f"- Machine: {env['cores']} cores, {env['cpu_model']}, {env['memory_gb']} GB RAM, "
        f"{env['platform']}",
        f"- Python {env['python']} ({env['implementation']})",
        f"- Packages: {packages}",
        f"- mona_middleware at commit {env['mona_middleware_commit']}",
        f"- Load generator: {env['wrk'] or 'Python fallback (wrk not installed)'}",
    ]
    if missing:
        lines.append(f"- Not installed, so not measured: {', '.join(missing)}")
    others = [r for r in results.get("others_cpu") or () if r.get("cpu_s") is not None]
    if others:
        shares = ", ".join(f"{r['cpu_s'] / r['wall_s'] / env['cores']:.0%}" for r in others)
        lines.append(
            f"- CPU taken by processes outside the benchmark, per round (share of the "
            f"{env['cores']} cores): {shares}; anything above a few % skews the numbers"
        )
    return "\n".join(lines)


def section_headline(inproc: dict, servers: dict, exporter: list[Row], memory: list[Row]) -> str:
    rows = []
    for fw in FRAMEWORKS:
        bare = inproc.get((fw, "bare"))
        if not bare:
            continue
        row = [fw, f(bare["mean_us"])]
        row.append(
            f"{signed(_get(inproc, fw, 'ours', 'added_mean_us'))} / "
            f"{signed(_get(inproc, fw, 'ours', 'added_allin_us'))}"
        )
        for tool in ("otel", "sentry", "mona_sdk"):
            row.append(signed(_get(inproc, fw, tool, "added_allin_us")))
        rows.append(row)
    parts = [
        "In-process, µs per request (median of rounds; added = tool minus bare in the same "
        "round; *all-in* includes the final flush, amortized):",
        "",
        table(
            [
                "framework",
                "bare",
                "mona_middleware added: request / all-in",
                "OpenTelemetry added all-in",
                "Sentry added all-in",
                "mona_sdk added all-in",
            ],
            rows,
        ),
    ]
    if servers:
        srows = []
        for fw in FRAMEWORKS:
            if (fw, "bare") not in servers:
                continue
            bare = servers[(fw, "bare")]
            row = [f"{SERVERS[fw]} + {fw}", f(bare["rps"], 0)]
            for tool in OTHERS:
                s = servers.get((fw, tool))
                row.append(DASH if not s else _ratio_cell(s))
            srows.append(row)
        parts += [
            "",
            "Real servers, throughput relative to bare (p99 added):",
            "",
            table(
                ["server", "bare req/s", *(LABELS[t] for t in OTHERS)],
                srows,
            ),
        ]
    if exporter:
        ex = exporter_summary(exporter)
        parts += [
            "",
            f"Exporter alone: **{f(ex['msgs_per_s'], 0)} messages/s**, "
            f"{f(ex['msgs_per_post'], 0)} messages per POST, "
            f"{f(ex['connections_during_run'], 0)} new connection(s) during a run of "
            f"{ex['messages']:,} messages (all received: {ex['all_received']}).",
        ]
    if memory:
        off = memory_summary(memory, False)
        if off:
            parts += [
                "",
                f"Memory, backend down, {off['exports']:,} exports, spool off: RSS "
                f"{f(off['rss_before_mb'])} MB before → {f(off['rss_after_mb'])} MB after "
                f"(peak {f(off['rss_peak_mb'])} MB).",
            ]
    return "\n".join(parts)


def _ratio_cell(server: Row) -> str:
    p99 = server["p99_added_us"]
    p99_ms = None if p99 is None else p99 / 1000
    return f"{f(server['rps_ratio'], 2)}{TIMES} (p99 {signed(p99_ms, 2)} ms)"


def _get(table: dict, framework: str, tool: str, key: str) -> float | None:
    row = table.get((framework, tool))
    return None if row is None else row.get(key)


def _target_row(
    name: str, measured: float | None, target: float, higher_is_better: bool, shown: str,
    note: str = "",
) -> list[str]:  # fmt: skip
    """One targets row: what was measured, measured ÷ target, met or not."""
    if measured is None:
        return [name, DASH, DASH, met(None), note]
    ratio = measured / target if target else None
    ok = measured >= target if higher_is_better else measured <= target
    return [name, shown, f(ratio, 2), met(ok), note]


def section_targets(
    inproc: dict, servers: dict, exporter: list[Row], hotpath: list[Row],
    backfill: dict[str, Row] | None = None, split: dict[str, Row] | None = None,
    instructions: list[Row] | None = None,
) -> str:  # fmt: skip
    """Every target of the issue as measured ÷ target (≤ 1 is met for an upper bound,
    ≥ 1 for a lower bound), from this run."""
    rows = _instruction_targets(instructions or [])
    for fw, s in (split or {}).items():
        rows.append(
            _target_row(
                f"CPU per request, exporter live ÷ held back ≤ {TARGET_LIVE_CPU_RATIO:.2f}, {fw}",
                s["cpu_ratio"],
                TARGET_LIVE_CPU_RATIO,
                False,
                f"{f(s['cpu_ratio'], 3)} ({f(s['live_total_cpu_us'])} vs "
                f"{f(s['held_total_cpu_us'])} µs)",
                "see *The exporter held back and live* below",
            )
        )
    for fw, target, label in (
        ("flask", TARGET_RPS_RATIO, "gunicorn + Flask"),
        ("starlette", TARGET_RPS_RATIO_UVICORN, "uvicorn + Starlette"),
    ):
        server = servers.get((fw, "ours"))
        if not server:
            continue
        ratio = server["rps_ratio"]
        rows.append(
            _target_row(
                f"{label} ≥ {target}{TIMES} bare req/s",
                ratio,
                target,
                True,
                f"{f(ratio, 3)}{TIMES}",
                ""
                if ratio is None or ratio >= target
                else "each worker pays the all-in "
                "cost above per request, and the local sink shares the 2 cores",
            )
        )
        if fw == "flask":
            p99 = server["p99_added_us"]
            rows.append(
                _target_row(
                    f"gunicorn + Flask p99 added ≤ {TARGET_P99_ADDED_US / 1000:g} ms",
                    p99,
                    TARGET_P99_ADDED_US,
                    False,
                    f"{f(None if p99 is None else p99 / 1000, 2)} ms",
                    ""
                    if p99 is None or p99 <= TARGET_P99_ADDED_US
                    else "requests wait "
                    "for the GIL while the exporter's threads work; see OPTIMISATIONS.md",
                )
            )
    if exporter:
        ex = exporter_summary(exporter)
        rows.append(
            _target_row(
                f"≥ {TARGET_MSGS_PER_POST} messages per POST",
                ex["msgs_per_post"],
                TARGET_MSGS_PER_POST,
                True,
                f(ex["msgs_per_post"], 0),
            )
        )
        rows.append(
            _target_row(
                f"{TARGET_CONNECTIONS} connection per run (keep-alive)",
                ex["connections_during_run"],
                TARGET_CONNECTIONS,
                False,
                f"{f(ex['connections_during_run'], 0)} new during the run",
            )
        )
    realistic = (backfill or {}).get("realistic")
    if realistic:
        rows.append(
            _target_row(
                f"backfill loop ≥ {TARGET_BACKFILL_RATIO}{TIMES} the loop without us, "
                "everything delivered",
                realistic["ratio"] if realistic["delivered"] else 0.0,
                TARGET_BACKFILL_RATIO,
                True,
                f"{f(realistic['ratio'], 2)}{TIMES} ({f(realistic['ours_per_s'], 0)} vs "
                f"{f(realistic['bare_per_s'], 0)} contexts/s), delivered: "
                f"{realistic['delivered']}",
                "the realistic loop body (see *A backfill loop* below)",
            )
        )
    return table(["target", "measured", "measured ÷ target", "", "what is left"], rows)


def _instruction_targets(instructions: list[Row]) -> list[list[str]]:
    """Issue 24's targets, in instructions per request (valgrind; see its section)."""
    rows = []
    for row in instructions:
        fw, counts = row["framework"], row["tools"]
        bare, ours, otel = counts.get("bare"), counts.get("ours"), counts.get("otel")
        if not (bare and ours):
            continue
        added = ours - bare
        note = "no load can move it; see *Instructions per request* below"
        rows.append(
            _target_row(
                f"instructions added per request ≤ {TARGET_ADDED_INSTRUCTIONS:,}, {fw} "
                f"(÷ bare ≤ {TARGET_ADDED_RATIO[fw]:.2f})",
                added,
                TARGET_ADDED_INSTRUCTIONS,
                False,
                f"+{added:,.0f} ({added / bare:.2f}{TIMES} bare's {bare:,.0f})",
                note,
            )
        )
        if otel and added > 0:
            factor = (otel - bare) / added
            rows.append(
                _target_row(
                    f"≥ {TARGET_OTEL_FACTOR:.0f}{TIMES} fewer added instructions than "
                    f"OpenTelemetry, {fw}",
                    factor,
                    TARGET_OTEL_FACTOR,
                    True,
                    f"{factor:.1f}{TIMES} (+{otel - bare:,.0f} vs +{added:,.0f})",
                )
            )
        split = instruction_parts(row)
        if split is None:
            continue
        for key, target, label in (
            ("request", TARGET_REQUEST_THREAD, "the request's own thread"),
            ("prepare", TARGET_PREPARE, "preparing one context"),
            ("collection", TARGET_COLLECTION, "collector on minus off"),
            ("per_message", TARGET_PER_MESSAGE, "prepare, encode and POST a message"),
        ):
            rows.append(
                _target_row(
                    f"{label} ≤ {target:,} instructions, {fw}",
                    split[key],
                    target,
                    False,
                    f"{split[key]:+,.0f}",
                )
            )
    return rows


def _allin_gap(inproc: dict, framework: str, layers: dict[str, Row] | None) -> str:
    """Where the all-in cost over the target comes from, in words."""
    allin = _get(inproc, framework, "ours", "added_allin_us")
    in_loop = _get(inproc, framework, "ours", "added_mean_us")
    text = (
        f"In this run {f(in_loop)} µs landed inside the request loop and "
        f"{f(allin - in_loop)} µs in the final flush"
    )
    if layers:
        text += (
            ". Split by who pays (exporter held back): "
            + _layer_gap(framework, layers)
            + "; the exporter's work shows in the loop because its threads take the GIL "
            "between requests"
        )
    return text


def _layer_gap(framework: str, layers: dict[str, Row]) -> str:
    names = list(layers)
    bare = layers[names[0]]["request_us"]
    parts = []
    previous = bare
    for name in names[1:]:
        now = layers[name]["request_us"]
        parts.append(f"{name} {now - previous:+.1f} µs")
        previous = now
    background = layers[names[-1]]["background_cpu_us"]
    total = previous - bare
    return (
        f"the request thread {total:+.1f} µs ("
        + ", ".join(parts)
        + f"), the exporter's threads {background:.1f} µs CPU per request"
    )


def render(results: Row) -> str:
    inproc = summarize_inprocess(results["inprocess"])
    servers = summarize_servers(results["servers"], inproc)
    exporter, memory, hotpath = results["exporter"], results["memory"], results["hotpath"]
    backfill = backfill_summary(results.get("backfill") or [])
    split = live_split(hotpath, results.get("hotpath_live") or [])
    parts = [
        "# Benchmarks: mona_middleware against bare apps, OpenTelemetry, Sentry and mona_sdk",
        "",
        "Generated by `python -m benchmarks` (from the repository root; `--quick` for a "
        "shorter run). Do not edit by hand: rerun it. Raw numbers: `results.json`. "
        "Optimisation notes: [`OPTIMISATIONS.md`](OPTIMISATIONS.md).",
        "",
        "## Machine and versions",
        "",
        section_environment(results),
        "",
        "## Headline",
        "",
        section_headline(inproc, servers, exporter, memory),
        "",
        "![added µs per request](added_us.png)",
        "",
        "## Targets",
        "",
        section_targets(
            inproc, servers, exporter, hotpath, backfill, split, results.get("instructions")
        ),
        "",
        "## Setup of each tool",
        "",
        text("setup.md"),
        "## In-process cost per request",
        "",
        section_inprocess(inproc),
        "## Real servers",
        "",
        section_servers(servers, results) if servers else "Not run.",
        "",
        "## The exporter alone",
        "",
        section_exporter(exporter) if exporter else "Not run.",
        "",
        "## Memory with the backend down",
        "",
        section_memory(memory) if memory else "Not run.",
        "",
        "## A backfill loop",
        "",
        section_backfill(backfill) if backfill else "Not run.",
        "",
        "## The exporter held back and live",
        "",
        section_split(split) if split else "Not run.",
        "",
        "## Instructions per request",
        "",
        section_instructions(results.get("instructions") or []),
        "",
        "## Where our time goes",
        "",
        section_profile(hotpath),
        "",
        "## Method",
        "",
        text("method.md"),
    ]
    return "\n".join(parts)


def write_report(results: Row, out: Path) -> None:
    markdown = render(results)
    if not chart(results, out / "added_us.png"):
        markdown = markdown.replace(
            "![added µs per request](added_us.png)", "(chart skipped: matplotlib not installed)"
        )
    (out / "RESULTS.md").write_text(markdown)


def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "results.json"
    write_report(json.loads(source.read_text()), source.parent)


if __name__ == "__main__":
    main()
