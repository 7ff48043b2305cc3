"""Mona's REST protocol as data: the actions, the wire message, the numbers JSON carries.

The one place these facts live (../shared/docs/mona-rest-protocol.md), so the exporter,
the local aggregation and the collector cannot disagree about them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ACTIONS", "ADD", "INT_RANGE", "NEW", "OVERWRITE", "check_action", "wire_message"]

OVERWRITE = "OVERWRITE"
ADD = "ADD"
NEW = "NEW"
ACTIONS = frozenset((OVERWRITE, ADD, NEW))
# Beyond 64 bits an integer is a float to every JSON reader Mona has (and orjson refuses
# it); far beyond, Python cannot even print it (sys.get_int_max_str_digits).
INT_RANGE = (-(2**63), 2**64 - 1)


def check_action(action: Any) -> str | None:
    """The action in Mona's spelling, or raise ValueError naming the bad value.

    >>> check_action("add")
    'ADD'
    """
    if action is None:
        return None
    if isinstance(action, str) and action.upper() in ACTIONS:
        return action.upper()
    raise ValueError(f"action must be one of OVERWRITE, ADD, NEW; got {action!r}")


def wire_message(
    context_class: str,
    context_id: str | None,
    fields: dict[str, Any],
    timestamp: Any,
    action: str | None,
) -> dict[str, Any]:
    """The message as mona_sdk puts it on the wire: the same keys, in the same order."""
    return {
        "message": fields,
        "contextId": context_id,
        "action": action,
        "sampleConfigName": None,
        "exportTimestamp": timestamp,
        "sendTimestamp": None,  # mona_sdk 0.0.58 sends it too, as null, next to exportTimestamp
        "arcClass": context_class,
    }
