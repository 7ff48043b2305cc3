"""Terminal output for the command line tools: a progress bar and plain text tables.

Standard library only. The bar draws only on a terminal: piped into a file or a CI log,
a line redrawn with ``\\r`` is noise, so there it prints nothing at all.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import TextIO


class ProgressBar:
    """``[##########..........] 100/200 requests``, redrawn in place at most 20 times a second.

    >>> bar = ProgressBar(200, "requests")
    >>> for _ in range(200):
    ...     bar.advance()
    >>> bar.finish()
    """

    def __init__(
        self, total: int, unit: str, stream: TextIO | None = None, width: int = 30
    ) -> None:
        self.total = max(total, 0)
        self.unit = unit
        self.done = 0
        self.width = width
        self._stream = sys.stderr if stream is None else stream
        self._enabled = _isatty(self._stream)
        self._drawn_at = 0.0

    def advance(self, count: int = 1) -> None:
        """Count ``count`` more units done; redraw when enough time has passed."""
        self.done += count
        now = time.monotonic()
        if self._enabled and (now - self._drawn_at >= 0.05 or self.done >= self.total):
            self._drawn_at = now
            self._draw()

    def finish(self) -> None:
        """Draw the final state and end the line, so later output starts on its own line."""
        if self._enabled:
            self._draw()
            self._stream.write("\n")
            self._stream.flush()

    def _draw(self) -> None:
        share = min(self.done / self.total, 1.0) if self.total else 1.0
        filled = int(share * self.width)
        bar = "#" * filled + "." * (self.width - filled)
        self._stream.write(f"\r[{bar}] {self.done}/{self.total} {self.unit}")
        self._stream.flush()


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, ending in ``...`` when it was cut."""
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or already closed
        return False


def table(
    headers: Sequence[str], rows: Sequence[Sequence[object]], align: str = "", indent: str = "  "
) -> str:
    """Columns padded to their widest cell; ``align`` has an ``l`` or ``r`` per column.

    >>> print(table(["class", "contexts"], [["A", 3]], align="lr"))
      class  contexts
      A             3
    """
    cells = [[str(cell) for cell in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    align = align.ljust(len(headers), "l")[: len(headers)]
    lines = []
    for row in cells:
        padded = [
            cell.rjust(width) if side == "r" else cell.ljust(width)
            for cell, width, side in zip(row, widths, align, strict=True)
        ]
        lines.append((indent + "  ".join(padded)).rstrip())
    return "\n".join(lines)


def number(value: float) -> str:
    """A number short enough for a table cell: ``1234``, ``0.457``, ``12.5``."""
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return f"{value:.3f}".rstrip("0").rstrip(".")
