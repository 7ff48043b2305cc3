"""Small Markdown helpers for the report: numbers, signed deltas, tables, prose files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

Row = dict[str, Any]


DASH = "\u2013"  # an en dash: "not measured" in a table cell
TIMES = "\u00d7"  # the multiplication sign of "0.95x"
TEXT = Path(__file__).resolve().parent / "text"


def text(name: str) -> str:
    """Prose kept as Markdown next to the code (tables too wide for Python lines)."""
    return (TEXT / name).read_text()


def f(value: float | None, digits: int = 1, suffix: str = "") -> str:
    if value is None:
        return DASH
    return f"{value:,.{digits}f}{suffix}"


def signed(value: float | None, digits: int = 1) -> str:
    return DASH if value is None else f"{value:+,.{digits}f}"


def delivered(row: Row | None) -> str:
    if not row or row.get("expected") is None:
        return DASH
    expected, received = row["expected"], row["received"]
    share = f" ({received / expected:.0%})" if expected and received != expected else ""
    return f"{received:,} / {expected:,} {row.get('unit') or ''}{share}"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def met(ok: bool | None) -> str:
    return DASH if ok is None else ("**met**" if ok else "**not met**")
