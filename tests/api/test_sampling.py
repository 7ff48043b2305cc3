"""Sampling decides by the context id's hash, as mona_sdk does, for every id it is given."""

from __future__ import annotations

import hashlib
import json
import math
import random
import string
import uuid

import pytest
from mona_sdk.client_util import _calculate_normalized_hash, keep_message_after_sampling

import mona_middleware as mona
from mona_middleware._api.sampling import keep

RATES = [0.0, 0.001, 0.1, 0.5, 0.9, 0.999999]


def ascii_ids(n: int) -> list[str]:
    rng = random.Random(7)
    return ["".join(rng.choices(string.printable, k=rng.randint(1, 40))) for _ in range(n)]


def test_every_id_mona_sdk_can_hash_gets_its_decision():
    for context_id in ascii_ids(3000):
        for rate in RATES:
            assert keep(context_id, rate) == keep_message_after_sampling(context_id, rate)


@pytest.mark.parametrize("context_id", ["a\ud800b", "\udfff", "x\udc80\ud83d", "naïve", "日本"])
def test_ids_mona_sdk_cannot_encode_are_still_decided_by_their_hash(context_id):
    with pytest.raises(UnicodeEncodeError):
        _calculate_normalized_hash(context_id)  # mona_sdk encodes ids as ASCII
    raw = context_id.encode("utf-8", "surrogatepass")
    fraction = int(hashlib.sha224(raw).hexdigest(), 16) % 10**7 / 10**7
    for rate in RATES:
        assert keep(context_id, rate) == (fraction <= rate)


def test_a_lone_surrogate_id_does_not_break_sampled_contexts_or_batches(memory):
    mona.configure(transport=memory, flush_interval=0.05, sampling_rate=0.5)
    context_id = "a\ud800b"
    with mona.context("SAMPLED", context_id=context_id) as ctx:
        mona.export({"x": 1})
    assert ctx.sampled_out is not keep(context_id, 0.5)
    batch = [{"message": {"y": 2}, "contextClass": "SAMPLED", "contextId": context_id}]
    assert mona.export_batch(batch) == int(keep(context_id, 0.5))
    assert mona.flush(5)
    assert mona.stats()["exports_refused"] == 0


def test_sampling_keeps_the_configured_share_and_agrees_with_mona_sdk(memory, monkeypatch):
    from mona_sdk.client_util import keep_message_after_sampling

    monkeypatch.setenv("MONA_SDK_DEFAULT_SAMPLING_FACTOR", "0.3")
    monkeypatch.setenv("MONA_SDK_SAMPLING_CONFIG", json.dumps({"ALWAYS": 1, "RARE": 0.05}))
    mona.configure(transport=memory, flush_interval=0.05, queue_size=100_000)
    n = 10_000
    ids = [str(uuid.uuid4()) for _ in range(n)]
    for context_id in ids:
        with mona.context("DEFAULT_RATE", context_id=context_id):
            assert mona.export({"v": 1}) is True  # a sampled-out export is not a failure
    for context_id in ids[:2000]:
        with mona.context("ALWAYS", context_id=context_id):
            mona.export({"v": 1})
        with mona.context("RARE", context_id=context_id):
            mona.export({"v": 1})
    assert mona.flush(20)
    kept = {
        cls: {cid for c, cid in memory.contexts() if c == cls}
        for cls in ("DEFAULT_RATE", "ALWAYS", "RARE")
    }
    sigma = math.sqrt(n * 0.3 * 0.7)
    assert abs(len(kept["DEFAULT_RATE"]) - 0.3 * n) < 4 * sigma
    assert len(kept["ALWAYS"]) == 2000
    assert abs(len(kept["RARE"]) - 100) < 4 * math.sqrt(2000 * 0.05 * 0.95)
    for context_id in ids:  # the very same decision as mona_sdk, id by id
        assert (context_id in kept["DEFAULT_RATE"]) == keep_message_after_sampling(context_id, 0.3)
    assert mona.stats()["contexts_sampled_out"] == (n - len(kept["DEFAULT_RATE"])) + (
        2000 - len(kept["RARE"])
    )


def test_sampled_out_requests_pass_through_quietly(memory, monkeypatch):
    flask = pytest.importorskip("flask")
    from mona_middleware.flask import MonaFlask

    monkeypatch.setenv("MONA_SDK_DEFAULT_SAMPLING_FACTOR", "0")
    mona.configure(transport=memory)
    app = flask.Flask("sampled")
    MonaFlask(app, handle_sigterm=False)
    app.get("/")(lambda: {"exported": mona.export({"a": 1})})
    assert app.test_client().get("/").json == {"exported": True}
    assert mona.flush(5) and memory.messages == []
    assert mona.stats()["exports_outside_context"] == 0
