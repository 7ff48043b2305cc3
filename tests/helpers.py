"""Small helpers several test modules share (fixtures live in the conftest files)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import mona_middleware as mona
from mona_middleware._export.spool import Spool
from mona_middleware._util.stats import ExportStats

ROOT = Path(__file__).resolve().parents[1]


def export_contexts(n: int, cls: str = "REQ", prefix: str = "r", **fields) -> None:
    """``n`` contexts of class ``cls``, ids ``<prefix><i>``, exporting ``{"i": i, **fields}``."""
    for i in range(n):
        with mona.context(cls, context_id=f"{prefix}{i}"):
            mona.export({"i": i, **fields})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def message(n: int, text: str = "") -> dict:
    """A wire message of class ``C``, id ``c<n>``."""
    return {"message": {"n": n, "text": text}, "arcClass": "C", "contextId": f"c{n}"}


def make_spool(path: Path, max_bytes: int = 1 << 20, **options) -> tuple[Spool, ExportStats]:
    stats = ExportStats()
    return Spool(str(path), max_bytes, stats, **options), stats


def files(path: Path) -> list[str]:
    """The spool's batches (and claims), hidden files left out."""
    return sorted(name for name in os.listdir(path) if not name.startswith("."))


def run_child(code: str, *args: str, **options) -> subprocess.Popen:
    """``code`` in a fresh interpreter with this checkout on its path, stdin/stdout piped."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        **options,
    )
