"""The README's option tables are generated from the option declarations, never by hand.

Run ``UPDATE_README=1 pytest tests/test_readme.py`` after changing an option to
rewrite them; without it, a table that no longer matches fails here.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from mona_middleware._util.options import markdown_table
from mona_middleware._web.options import CELERY_OPTIONS
from mona_middleware._web.options import OPTIONS as WEB_OPTIONS
from mona_middleware.config import OPTIONS

README = Path(__file__).resolve().parents[1] / "README.md"
TABLES = {
    "adapters": lambda: markdown_table(WEB_OPTIONS, env_column=False),
    "exporter": lambda: markdown_table(OPTIONS, env_column=True),
    "celery": lambda: markdown_table(CELERY_OPTIONS, env_column=False),
}
BLOCK = re.compile(r"(<!-- options: (\w+) -->\n)(.*?)(<!-- /options -->)", re.DOTALL)


def test_the_option_tables_are_the_declarations():
    text = README.read_text(encoding="utf-8")
    found = {match.group(2) for match in BLOCK.finditer(text)}
    assert found == set(TABLES), f"README has tables {sorted(found)}, expected {sorted(TABLES)}"

    def render(match: re.Match[str]) -> str:
        return f"{match.group(1)}{TABLES[match.group(2)]()}\n{match.group(4)}"

    expected = BLOCK.sub(render, text)
    if os.environ.get("UPDATE_README") and expected != text:
        README.write_text(expected, encoding="utf-8")
        text = expected
    assert text == expected, "README option tables are stale: UPDATE_README=1 pytest " + __file__


def test_every_option_named_in_the_readme_exists():
    text = README.read_text(encoding="utf-8")
    declared = set(OPTIONS) | set(WEB_OPTIONS) | set(CELERY_OPTIONS)
    for match in BLOCK.finditer(text):
        for name in re.findall(r"^\| `(\w+)` \|", match.group(3), re.MULTILINE):
            assert name in declared, name
