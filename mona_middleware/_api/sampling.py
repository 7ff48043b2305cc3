"""Client-side sampling exactly as mona_sdk decides it, so every process agrees.

A context is kept when ``int(sha224(context_id).hexdigest(), 16) % 10**7 / 10**7 <= rate``:
all messages of one context are kept or dropped together, in every process and by
mona_sdk itself. The decision is made once, when the context opens.
"""

from __future__ import annotations

import hashlib
import random

from ..config import MonaConfig

__all__ = ["keep", "rate_for"]

_PRECISION = 10**7


def rate_for(config: MonaConfig, context_class: str) -> float:
    """The class's own rate (``MONA_SDK_SAMPLING_CONFIG``), else the default rate."""
    return config.sampling_rates.get(context_class, config.sampling_rate)


def keep(context_id: str | None, rate: float) -> bool:
    """mona_sdk's decision: by the id's sha224 when there is an id, else at random."""
    if rate >= 1:
        return True
    if not context_id:
        return random.random() <= rate
    # mona_sdk encodes ids as ASCII (and raises for any other): UTF-8 is the same bytes
    # for those, and "surrogatepass" lets a lone surrogate hash instead of raising.
    digest = hashlib.sha224(context_id.encode("utf-8", "surrogatepass")).hexdigest()
    return int(digest, 16) % _PRECISION / _PRECISION <= rate
