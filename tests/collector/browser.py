"""Debian's headless Chromium, driven as the collector tests use it: ``--dump-dom`` once a
virtual time budget is spent (what the page's JavaScript built), ``--screenshot``, and
a small DOM tree of the dump to find drawn elements and their values."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

CHROMIUM = next(
    (
        found
        for name in ("chromium", "chromium-browser", "google-chrome")
        if (found := shutil.which(name))
    ),
    None,
)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary on PATH (Debian: apt-get install -y chromium)"
)
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}  # fmt: skip


class Node:
    """One element of the dumped DOM: tag, attributes, children, and its own text."""

    def __init__(self, tag: str, attrs: dict[str, str | None], parent: Node | None) -> None:
        self.tag = tag
        self.attrs = attrs
        self.parent = parent
        self.children: list[Node | str] = []

    @property
    def text(self) -> str:
        return "".join(child if isinstance(child, str) else child.text for child in self.children)

    @property
    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())

    def get(self, name: str) -> str | None:
        return self.attrs.get(name)

    def walk(self) -> Iterator[Node]:
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.walk()

    def find_all(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> list[Node]:
        """Descendants by tag, class and attribute values (``data_count`` is ``data-count``)."""
        wanted = {name.replace("_", "-"): value for name, value in attrs.items()}
        return [
            node
            for node in self.walk()
            if node is not self
            and (tag is None or node.tag == tag)
            and (cls is None or cls in node.classes)
            and all(node.attrs.get(name) == value for name, value in wanted.items())
        ]

    def find(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> Node:
        found = self.find_all(tag, cls, **attrs)
        assert found, f"no <{tag} class={cls} {attrs}> in <{self.tag} {self.attrs}>"
        return found[0]

    def by_id(self, element_id: str) -> Node:
        return self.find(id=element_id)

    @property
    def hidden(self) -> bool:
        return "hidden" in self.attrs

    def rows(self, table_id: str) -> list[list[str]]:
        """Cell texts of the body rows of the table with this id."""
        body = self.by_id(table_id).find("tbody")
        return [[cell.text for cell in row.find_all("td") if cell.parent is row]
                for row in body.find_all("tr")]  # fmt: skip


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {}, None)
        self.current = self.root

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, dict(attrs), self.current)
        self.current.children.append(node)
        if tag not in VOID:
            self.current = node

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.current.children.append(Node(tag, dict(attrs), self.current))

    def handle_endtag(self, tag: str) -> None:
        node: Node | None = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.current = node.parent

    def handle_data(self, data: str) -> None:
        self.current.children.append(data)


def _command(profile: Path, budget_ms: int, extra: list[str]) -> list[str]:
    assert CHROMIUM is not None
    return [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--hide-scrollbars", "--force-device-scale-factor=1",
        f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}", *extra,
    ]  # fmt: skip


def render(url: str, profile: Path, budget_ms: int = 5000, extra: list[str] = ()) -> Node:
    """The DOM the page built within ``budget_ms`` of virtual time."""
    command = [*_command(profile, budget_ms, list(extra)), "--dump-dom", url]
    result = subprocess.run(command, capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stderr[-2000:]
    builder = _TreeBuilder()
    builder.feed(result.stdout)
    return builder.root


def screenshot(url: str, path: Path, profile: Path, size: tuple[int, int] = (1200, 900)) -> Path:
    command = [
        *_command(profile, 5000, [f"--window-size={size[0]},{size[1]}"]),
        f"--screenshot={path}",
        url,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=90)
    assert result.returncode == 0 and path.is_file(), result.stderr[-2000:]
    return path


def png_pixels(path: Path) -> tuple[int, int, Callable[[int, int], tuple[int, int, int]]]:
    """(width, height, pixel(x, y) -> RGB) of an 8-bit RGB(A) PNG, decoded here (zlib and
    the five PNG row filters) so a test can look at what Chromium painted."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    offset, idat = 8, b""
    width = height = channels = 0
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        chunk = data[offset + 8 : offset + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", chunk[:10])
            assert depth == 8 and color in (2, 6), (depth, color)
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        offset += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytearray] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        if kind == 1:
            for i in range(channels, stride):
                line[i] = (line[i] + line[i - channels]) & 0xFF
        elif kind == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, previous, strict=True))
        elif kind == 3:
            for i in range(stride):
                left = line[i - channels] if i >= channels else 0
                line[i] = (line[i] + ((left + previous[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                a = line[i - channels] if i >= channels else 0
                b = previous[i]
                c = previous[i - channels] if i >= channels else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                near = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[i] = (line[i] + near) & 0xFF
        rows.append(line)
        previous = line

    def pixel(x: int, y: int) -> tuple[int, int, int]:
        at = x * channels
        return rows[y][at], rows[y][at + 1], rows[y][at + 2]

    return width, height, pixel
