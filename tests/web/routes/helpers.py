"""What the route tests share: the (method, route, status) each request's context recorded."""

from __future__ import annotations

import mona_middleware as mona


def routes_seen(memory) -> list[tuple[str, str, int]]:
    """Each context's method, route ("-" when none was recorded) and status, sorted."""
    assert mona.flush(5)
    return sorted(
        (f["http_method"], f.get("http_route", "-"), f["http_status_code"])
        for f in memory.contexts().values()
    )
