"""Context ids: unique UUID4s, not repeated by forked children or the app's random seed."""

from __future__ import annotations

import os
import uuid

import pytest

import mona_middleware as mona
from mona_middleware._api.ids import new_context_id


def test_generated_ids_are_unique_uuids(memory):
    ids = []
    for _ in range(3):
        with mona.context("MODEL") as ctx:
            mona.export({"n": 1})
            ids.append(ctx.context_id)
    assert len(set(ids)) == 3 and all(len(i) == 36 for i in ids)
    assert mona.flush(5)
    assert {key[1] for key in memory.contexts()} == set(ids)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_children_make_their_own_ids():
    parent = [new_context_id() for _ in range(3)]
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its ids and leave without running the parent's atexit
        os.close(read)
        os.write(write, ",".join(new_context_id() for _ in range(3)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = pipe.read().split(",")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    after = [new_context_id() for _ in range(3)]
    assert len(set(parent + child + after)) == 9
    assert all(uuid.UUID(i).version == 4 for i in parent + child)


def test_ids_do_not_follow_the_apps_random_seed():
    import random

    random.seed(42)
    first = new_context_id()
    random.seed(42)
    assert new_context_id() != first
