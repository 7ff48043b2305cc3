"""Hypothesis strategies several property tests share: the fields users export, hostile
values among them, and the fields the package records itself."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal

from hypothesis import strategies as st


class Color(enum.Enum):
    RED = "red"


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["null", "nullable", "MONA_x", "\u2028", "\ud800"]),
    st.just(Decimal("1.5")),
    st.just(dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.timezone.utc)),
    st.just(Color.RED),
    st.just({1, 2}),
    st.just(b"bytes"),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.tuples(inner, inner),
        st.dictionaries(st.one_of(st.text(max_size=6), st.integers(0, 9)), inner, max_size=3),
    ),
    max_leaves=8,
)
keys = st.one_of(
    st.text(max_size=10),
    st.sampled_from(["MONA_score", "MONARCH_ID", "null", "a"]),
    st.sampled_from([1, None, ("t", 1), 2.5]),  # not a str: converted or dropped
)
fields = st.dictionaries(keys, values, max_size=6)
# What a request records of itself (status, duration), or nothing.
own_fields = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {"http_status_code": st.sampled_from([200, 404]), "duration_ms": st.floats(0, 10)}
    ),
)
