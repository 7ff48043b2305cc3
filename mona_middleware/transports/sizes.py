"""Keeping one oversized message from costing its whole batch.

A backend refuses a request body over its limit as a whole (HTTP 413). A field of
several megabytes (a prompt, a document, an image in base64) must cost only itself: a
message whose JSON is larger than ``max_message_bytes`` loses its largest fields, each
logged by name, until it fits. The check costs one comparison per batch unless the
whole body is over the limit, which no batch of small messages is.
"""

from __future__ import annotations

import logging
from typing import Any

from .._util import jsonwire
from .._util.log import limited

__all__ = ["fit_messages"]


def fit_messages(messages: list[Any], limit: int) -> int:
    """Shrink, in place, each message whose JSON is over ``limit`` bytes; fields dropped.

    Messages are dicts or their JSON (bytes); a shrunk one is put back in the same form.
    Only the message's own fields are dropped, largest first; a message still too large
    without them (a huge context id) is left for the backend to refuse on its own.
    """
    dropped = 0
    for index, item in enumerate(messages):
        try:
            size = len(jsonwire.encoded(item))
        except ValueError:
            continue  # not JSON: the transport refuses it on its own, with the reason
        if size <= limit:
            continue
        message = jsonwire.decoded(item)
        fields = message.get("message") if isinstance(message, dict) else None
        if not isinstance(fields, dict):
            continue
        kept = dict(fields)
        for name, field_size in sorted(_sizes(fields), key=lambda pair: -pair[1]):
            if size <= limit:
                break
            del kept[name]
            size -= field_size
            dropped += 1
            limited(
                logging.ERROR,
                f"too large:{message.get('arcClass')}:{name}",
                "mona_middleware: field %r of a %s message is %d bytes as JSON, over "
                "max_message_bytes (%d); it was dropped and the rest of the message sent",
                name,
                message.get("arcClass"),
                field_size,
                limit,
            )
        shrunk = {**message, "message": kept}
        messages[index] = jsonwire.dumps(shrunk) if type(item) is bytes else shrunk
    return dropped


def _sizes(fields: dict[str, Any]) -> list[tuple[str, int]]:
    """Each field's share of the message's JSON: its key, its value, a colon and a comma."""
    sizes = []
    for name, value in fields.items():
        try:
            sizes.append((name, len(jsonwire.dumps(name)) + len(jsonwire.dumps(value)) + 2))
        except ValueError:
            sizes.append((name, 0))
    return sizes
