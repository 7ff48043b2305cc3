"""Terminal output for the command line tools: a progress bar and plain text tables.

Standard library only. The bar is redrawn in place only on a terminal: piped into a
file or a CI log, a line redrawn with ``\\r`` is noise, so there it prints nothing, or
with ``log_tenths`` one line per tenth done (long runs someone may tail, as replay's).
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
        self,
        total: int,
        unit: str,
        stream: TextIO | None = None,
        width: int = 30,
        *,
        done: int = 0,
        log_tenths: bool = False,
    ) -> None:
        self.total = max(total, 0)
        self.unit = unit
        self.done = done
        self.width = width
        self._stream = sys.stderr if stream is None else stream
        self._tty = _isatty(self._stream)
        self._log_tenths = log_tenths and not self._tty
        self._drawn_at = 0.0
        self._logged_tenth = -1
        if self._log_tenths:
            self._log()

    def advance(self, count: int = 1) -> None:
        """Count ``count`` more units done; redraw when enough time has passed."""
        self.done += count
        if self._log_tenths:
            self._log()
            return
        now = time.monotonic()
        if self._tty and (now - self._drawn_at >= 0.05 or self.done >= self.total):
            self._drawn_at = now
            self._draw()

    def finish(self) -> None:
        """Draw the final state and end the line, so later output starts on its own line."""
        if self._tty:
            self._draw()
            self._stream.write("\n")
            self._stream.flush()

    def _line(self) -> str:
        filled = int(self._share() * self.width)
        bar = "#" * filled + "." * (self.width - filled)
        return f"[{bar}] {self.done}/{self.total} {self.unit}"

    def _share(self) -> float:
        return min(self.done / self.total, 1.0) if self.total else 1.0

    def _draw(self) -> None:
        self._stream.write("\r" + self._line())
        self._stream.flush()

    def _log(self) -> None:
        tenth = int(self._share() * 10)
        if tenth != self._logged_tenth:
            self._logged_tenth = tenth
            self._stream.write(self._line() + "\n")
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
