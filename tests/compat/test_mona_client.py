"""``compat.mona_client``: mona-client 0.2.5's README examples, only the import changed,
against the real local Mona server, and its module API call by call."""

from __future__ import annotations

import json
import logging

import pytest

import mona_middleware as mona
from mona_middleware.compat import mona_client as client

from ..servers import mona_env, run_code

# mona-client 0.2.5's README, "Quick Start and Example", verbatim but the import line.
QUICK_START = """
from mona_middleware.compat import mona_client as client

# Only call once,
# Add parameteres (host, port, ...) on this call if not already set through env vars.
client.init_client()

...

# In this example, iterating over data from a pre-existing DB.
# However, in other cases you might send out the data from any place within your system.
for context_instance in my_data:
    with client.new_mona_context(arc_class="MY_COOL_ALGORITHM_NAME",
                                 context_id=context_instance.unique_id,
                                 export_timestamp=context_instance.timestamp_seconds):
        ...
        client.export(context_instance.relevant_monitoring_information,
                      export_timestamp=context_instance.timestamp_seconds)
        ...
"""

# "Concurrency", verbatim but the two import lines.
CONCURRENCY = """
from mona_middleware.compat import mona_client as client
from mona_middleware.compat.mona_thread import MonaThread

def threaded_function():
    print(client.get_full_context_id() == main_context)

with client.new_mona_context(arc_class="threaded_algorithm_name"):
    global main_context
    main_context = client.get_full_context_id()
    MonaThread(target=threaded_function).start()  # Prints "True"
"""

MY_DATA = """
from types import SimpleNamespace
my_data = [
    SimpleNamespace(unique_id="row-1", timestamp_seconds=1700000000,
                    relevant_monitoring_information={"score": 0.5, "MONA_x": 1}),
    SimpleNamespace(unique_id="row-2", timestamp_seconds=1700000060,
                    relevant_monitoring_information={"score": 0.7, "MONARCH_ID": 9}),
]
"""


def test_the_quick_start_stores_the_contexts_its_readme_promises(mona_server):
    # mona-client's own variables are set too, as a user moving over has them
    env = {"MONA_HOST": "10.0.0.1", "MONA_PORT": "24224", "MONA_USER_ID": mona_server.user_id}
    done = run_code(MY_DATA + QUICK_START, mona_env(mona_server, **env))

    assert mona_server.contexts() == {
        ("MY_COOL_ALGORITHM_NAME", "row-1"): {"score": 0.5, "MY_MONA_x": 1},
        ("MY_COOL_ALGORITHM_NAME", "row-2"): {"score": 0.7, "MONARCH_ID": 9},
    }
    stamps = {m["contextId"]: m["exportTimestamp"] for m in mona_server.messages()}
    assert stamps == {"row-1": 1700000000, "row-2": 1700000060}
    assert "MONA_HOST is set but does not apply" in done.stderr
    assert "field 'MONA_x' is sent as 'MY_MONA_x'" in done.stderr


def test_the_concurrency_example_prints_true_and_exports_to_the_same_context(mona_server):
    code = CONCURRENCY.replace(
        "print(client.get_full_context_id() == main_context)",
        "print(client.get_full_context_id() == main_context)\n    client.export({'in_thread': 1})",
    )
    done = run_code(code, mona_env(mona_server))
    assert done.stdout.split() == ["True"]
    ((key, fields),) = mona_server.contexts().items()
    assert key[0] == "threaded_algorithm_name" and fields == {"in_thread": 1}


@pytest.fixture
def fresh(memory, monkeypatch):
    """The memory exporter and mona-client's module state as a new process has it."""
    monkeypatch.setattr(client, "_inited", False)
    monkeypatch.setattr(client, "_global_message", {})
    monkeypatch.setattr(client, "_warned", set())
    yield memory
    client.reset()


def test_context_ids_nest_and_close_as_in_mona_client(fresh):
    with client.new_mona_context(arc_class="ALG", context_id="main") as full_id:
        assert full_id == client.get_full_context_id() == "main"
        client.export({"a": 1})
        with client.new_mona_sub_context(arc_class="STEP", sub_context_id="s1") as sub_id:
            assert sub_id == "s1" and client.get_full_context_id() == "main.s1"
            client.export({"b": 2})
            assert client.close_sub_context("s1") == "main.s1"  # a with's: not closed
        assert client.get_full_context_id() == "main"
        assert client.init_sub_context(sub_context_id="s2") == "s2"
        client.export({"c": 3})
        assert client.close_sub_context() == "main"
        assert client.close_sub_context("nope") == "main"  # not open: logged
        assert client.init("OTHER") == "main"  # inside a with: keeps the context
    assert client.get_full_context_id() == ""
    assert mona.flush(5)
    assert fresh.contexts() == {
        ("ALG", "main"): {"a": 1},
        ("STEP", "main.s1"): {"b": 2},
        ("ALG", "main.s2"): {"c": 3},  # a sub-context without arc_class keeps its parent's
    }


def test_the_advanced_api_init_reset_and_sub_context_ids_with_dots(fresh):
    full_id = client.init("JOB", context_id="j.k")
    assert full_id == "j.k" == client.get_full_context_id()
    client.export({"x": 1}, export_timestamp=1700000000)
    client.init_sub_context("PART", "p")
    client.export({"y": 2})
    assert client.close_sub_context("k") == "j.k.p"  # a piece of the main context: logged
    client.reset()
    assert client.get_full_context_id() == ""
    assert mona.flush(5)
    assert fresh.contexts() == {("JOB", "j.k"): {"x": 1}, ("PART", "j.k.p"): {"y": 2}}


def test_export_batch_and_the_global_init_message(fresh, caplog):
    client.set_global_init_message({"env": "staging"})
    client.set_global_init_message("not a dict")  # logged, the first one kept
    client.export_batch(
        [
            {"arc_class": "B", "context_id": "1", "export_timestamp": 1700000000,
             "message": {"v": 1}},
            {"arc_class": "B", "context_id": "2", "message": {"v": 2}},
            {"arc_class": "B", "context_id": "3"},  # no message: skipped, logged
        ]
    )  # fmt: skip
    with client.new_mona_context("MAIN", "m"):
        client.export({"w": 1})
    assert mona.flush(5)
    assert fresh.contexts() == {
        ("B", "1"): {"env": "staging", "v": 1},
        ("B", "2"): {"env": "staging", "v": 2},
        ("MAIN", "m"): {"env": "staging", "w": 1},
    }
    assert "export_batch event 2 has no 'message'" in caplog.text
    assert "set_global_init_message() takes a dict, got str" in caplog.text


def test_bad_input_is_logged_and_the_rest_is_sent(fresh, caplog):
    assert client.export({"outside": 1}) is False
    assert client.init_sub_context("S") == ""  # no context yet
    with client.new_mona_context("C", "bad"):
        assert client.export(["not", "a", "dict"]) is False
        assert client.export({"ts": 1}, export_timestamp="yesterday")
        assert client.export({"obj": object(), "fine": 2})
    assert mona.flush(5)
    assert fresh.contexts() == {("C", "bad"): {"ts": 1, "fine": 2}}
    text = caplog.text
    assert "Tried to export out of context" in text
    assert "Tried to create subcontext before init" in text
    assert "export() got list" in text
    assert "invalid exportTimestamp 'yesterday'" in text
    assert "dropped field 'obj'" in text


def test_mona_should_raise_exceptions_makes_bad_calls_raise(monkeypatch, memory):
    monkeypatch.setenv("MONA_SHOULD_RAISE_EXCEPTIONS", "true")
    mona.configure(transport=memory)
    with pytest.raises(client.MonaExportException, match="out of context"):
        client.export({"a": 1})
    with pytest.raises(client.MonaBatchMissingKeyException):
        client.export_batch([{"arc_class": "B"}])
    with client.new_mona_context("C", "1"), pytest.raises(client.MonaExportException):
        client.export("text")


def test_init_client_logs_what_no_longer_applies_once(fresh, caplog):
    caplog.set_level(logging.WARNING)
    client.init_client("10.0.0.1", 24224, "acc", queue_maxsize=10, blocking=False)
    client.init_client("10.0.0.1")
    text = caplog.text
    assert text.count("init_client(mona_host=...) does not apply") == 1
    assert "init_client(mona_port=...) does not apply" in text
    assert "init_client(queue_maxsize=...) does not apply: set MONA_MIDDLEWARE_QUEUE_SIZE" in text
    assert "init_client(blocking=...) does not apply" in text
    assert "already inited client" in text
    assert mona.configure(transport=fresh).user_id is None  # the env had none
    client.reset()


def test_switched_off_everything_is_a_no_op(monkeypatch, memory):
    monkeypatch.setenv("MONA_DISABLE_ALL", "true")
    mona.configure(transport=memory)
    with client.new_mona_context("C", "x") as full_id:
        assert full_id == "" and client.get_full_context_id() == ""
        assert client.export({"a": 1}) is None
    assert client.init("C") == ""
    assert mona.flush(5) and memory.messages == []


def test_the_big_red_button_file_of_mona_client(memory, monkeypatch, tmp_path):
    switch = tmp_path / "mona_client_config.json"
    switch.write_text(json.dumps({"disable_all": True}))
    monkeypatch.setenv("MONA_CLIENT_CONFIG_FILE", str(switch))
    mona.configure(transport=memory)
    with client.new_mona_context("C", "x") as full_id:
        assert full_id == ""
    assert mona.flush(5) and memory.messages == []


def test_a_context_opened_by_init_is_sent_at_exit(mona_server):
    code = """
from mona_middleware.compat import mona_client as client
client.init("JOB", context_id="nightly-7")
client.export({"rows": 10})
client.init_sub_context("STEP", "load")
client.export({"ok": True})
"""
    run_code(code, mona_env(mona_server))
    assert mona_server.contexts() == {
        ("JOB", "nightly-7"): {"rows": 10},
        ("STEP", "nightly-7.load"): {"ok": True},
    }


# mona-client 0.1.11's README examples (its quick start spells the keyword ARC_class),
# verbatim but the import line and the "..." placeholders.
V01_QUICK_START = """
from mona_middleware.compat import mona_client as client

with client.new_mona_context(ARC_class="MY_COOL_ALGORITHM_NAME"):
    client.export({"foo": "bar"})
    with client.new_mona_sub_context(arc_class="MY_COOL_SUB_COMPONENT_NAME"):
        client.export({"step": 1})
"""


def test_the_0_1_quick_start_and_sub_context_examples(mona_server):
    run_code(V01_QUICK_START, mona_env(mona_server))
    contexts = mona_server.contexts()
    (main,) = [key for key in contexts if key[0] == "MY_COOL_ALGORITHM_NAME"]
    (sub,) = [key for key in contexts if key[0] == "MY_COOL_SUB_COMPONENT_NAME"]
    assert contexts[main] == {"foo": "bar"} and contexts[sub] == {"step": 1}
    assert sub[1].startswith(main[1] + ".")  # <main id>.<sub id>, as mona-client named it


def test_inside_one_of_our_own_contexts_the_old_calls_use_it(fresh):
    with mona.context("REQUEST", context_id="req-1"):
        assert client.get_full_context_id() == "req-1"
        assert client.export({"legacy_field": 1})
    assert client.get_full_context_id() == ""
    assert mona.flush(5)
    assert fresh.contexts() == {("REQUEST", "req-1"): {"legacy_field": 1}}
