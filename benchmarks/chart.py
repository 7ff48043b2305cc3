"""The chart: added all-in µs per request, per framework and tool, on a log scale."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .common import FRAMEWORKS
from .labels import LABELS, OTHERS
from .markdown import DASH
from .summary import summarize_inprocess


def chart(results: dict[str, Any], path: Path) -> bool:
    """Added all-in µs per framework per tool (log scale); False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    inproc = summarize_inprocess(results["inprocess"])
    frameworks = [fw for fw in FRAMEWORKS if (fw, "bare") in inproc]
    tools = [t for t in OTHERS if any((fw, t) in inproc for fw in frameworks)]
    figure, axes = plt.subplots(figsize=(9, 4.8), dpi=110)
    width = 0.8 / max(len(tools), 1)
    for index, tool in enumerate(tools):
        values = [inproc.get((fw, tool), {}).get("added_allin_us") for fw in frameworks]
        xs = [n + (index - (len(tools) - 1) / 2) * width for n in range(len(frameworks))]
        heights = [max(v or 0.0, 0.5) for v in values]
        bars = axes.bar(xs, heights, width * 0.92, label=LABELS[tool])
        for bar, value in zip(bars, values, strict=True):
            axes.annotate(
                DASH if value is None else f"{value:,.0f}",
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=8,
            )
    axes.set_yscale("log")
    axes.set_ylim(bottom=5)
    axes.set_xticks(range(len(frameworks)), frameworks)
    axes.set_ylabel("added µs per request vs bare (all-in, log scale)")
    axes.set_title("Per-request cost added by each tool, incl. its final flush (median of rounds)")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return True
