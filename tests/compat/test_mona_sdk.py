"""``compat.mona_sdk`` against the real local Mona server, side by side with the real
mona_sdk: the same user code, only the import changed, must store the same contexts."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import sys

import pytest

import mona_middleware as mona
from mona_middleware._runtime import process
from mona_middleware.compat import mona_sdk as compat
from mona_middleware.compat.mona_sdk import Client, MonaSingleMessage

from ..mona_server import MonaTestServer
from ..servers import free_port, mona_env, mona_settings, run_code

try:
    import mona_sdk as real_sdk
except ImportError:  # the core test environment: only what needs it is skipped
    real_sdk = None
needs_sdk = pytest.mark.skipif(real_sdk is None, reason="needs the real mona_sdk (test extra)")

# mona_sdk 0.0.58's README example, verbatim but for its two placeholders (filled from the
# environment) and the import line; my_data is defined before it.
README_EXAMPLE = """
from mona_sdk.client import Client, MonaSingleMessage
import time

api_key = os.environ["MONA_SDK_API_KEY"]
secret = os.environ["MONA_SDK_SECRET"]

my_mona_client = Client(api_key, secret)

# One can send a single message to Mona's servers by calling export() with a
# MonaSingleMessage object:
succeed_to_export = my_mona_client.export(MonaSingleMessage(
    message={'monitoring_information_1': '1', 'monitoring_information_2': '2'},
    contextClass='MY_CONTEXT_CLASS_NAME',
    contextId='CONTEXT_INSTANCE_UNIQUE_ID',
    exportTimestamp=time.time(),
    action="OVERWRITE"
))

# Another option is to send a batch of messages to Mona using export_batch:
messages_batch_to_mona = []
for context_instance in my_data:
    messages_batch_to_mona.append(
            MonaSingleMessage(
                message=context_instance.relevant_monitoring_information,
                contextClass="MY_CONTEXT_CLASS_NAME",
                contextId=context_instance.unique_id,
                exportTimestamp=context_instance.timestamp,
            )
        )

# Use dafault_action to select a default action for messages with no specified action.
export_result = my_mona_client.export_batch(
    messages_batch_to_mona,
    default_action="ADD",
    )
"""

PRELUDE = """
import json, os
from types import SimpleNamespace
my_data = [
    SimpleNamespace(relevant_monitoring_information={"score": 0.5, "MONA_x": 1, "MONARCH_ID": 3},
                    unique_id="CONTEXT_INSTANCE_UNIQUE_ID", timestamp=1700000000),
    SimpleNamespace(relevant_monitoring_information={"score": 0.7, "tags": ["a", "b"]},
                    unique_id="second", timestamp="2026-01-02T03:04:05Z"),
    SimpleNamespace(relevant_monitoring_information={"score": 0.9, "none": None},
                    unique_id="second", timestamp=1700000100),
]
"""

RESULT = "\nprint(json.dumps({'single': succeed_to_export, 'batch': export_result}))\n"

OURS = "from mona_middleware.compat.mona_sdk import Client, MonaSingleMessage"


def run_user_code(code: str, server: MonaTestServer, **env: str) -> dict:
    """Run ``code`` in a fresh interpreter as a user would; its last printed JSON line."""
    done = run_code(code, mona_env(server, MONA_SDK_NUM_OF_RETRIES_FOR_AUTHENTICATION="0", **env))
    return json.loads(done.stdout.strip().splitlines()[-1])


def side_by_side(code: str, old_import: str, **env: str) -> tuple[dict, dict, dict, dict]:
    """(mona_sdk's result, ours, mona_sdk's stored contexts, ours) for the same code."""
    assert old_import in code
    with MonaTestServer() as server:
        sdk_result = run_user_code(code, server, **env)
        sdk_contexts = server.contexts()
    with MonaTestServer() as server:
        our_result = run_user_code(code.replace(old_import, OURS), server, **env)
        our_contexts = server.contexts()
    return sdk_result, our_result, sdk_contexts, our_contexts


@needs_sdk
def test_the_readme_example_stores_what_mona_sdk_stores():
    code = PRELUDE + README_EXAMPLE + RESULT
    old_import = "from mona_sdk.client import Client, MonaSingleMessage"
    sdk_result, our_result, sdk_contexts, our_contexts = side_by_side(code, old_import)

    assert our_contexts == sdk_contexts
    assert our_contexts[("MY_CONTEXT_CLASS_NAME", "CONTEXT_INSTANCE_UNIQUE_ID")] == {
        "monitoring_information_1": "1",
        "monitoring_information_2": "2",
        "score": [0.5],
        "MY_MONA_x": [1],
        "MONARCH_ID": [3],
    }
    assert (
        our_result
        == sdk_result
        == {
            "single": True,
            "batch": {"total": 3, "sent": 3, "failed": 0, "failure_reasons": {}},
        }
    )


BAD_INPUT = """
from mona_sdk import Client, MonaSingleMessage

client = Client()
result = client.export_batch([
    MonaSingleMessage(message={"ok": 1}, contextClass="C", contextId="good"),
    MonaSingleMessage(message="not a dict", contextClass="C", contextId="bad1"),
    MonaSingleMessage(message={"a": 1}, contextClass=None, contextId="bad2"),
    MonaSingleMessage(message={"MONA_n": 2, "b": None}, contextClass="C", contextId="good",
                      action="ADD"),
    MonaSingleMessage(message={"x": 1}, contextClass="C", contextId="bad3", action="MERGE"),
])
single = client.export(MonaSingleMessage(message={"s": 1}, contextClass="C", contextId="one",
                                         sendTimestamp=1700000000))
not_a_batch = client.export_batch(None)
print(json.dumps({"result": result, "single": single, "not_a_batch": not_a_batch}))
"""


@needs_sdk
def test_bad_input_stores_the_good_messages_as_mona_sdk_does():
    code = "import json\n" + BAD_INPUT
    sdk, ours, sdk_contexts, our_contexts = side_by_side(code, "from mona_sdk import Client")

    assert (
        our_contexts
        == sdk_contexts
        == {
            ("C", "good"): {"ok": 1, "MY_MONA_n": [2], "b": [None]},
            ("C", "one"): {"s": 1},
        }
    )
    for result in (sdk, ours):
        assert result["single"] is True
        assert result["not_a_batch"] is False
        batch = result["result"]
        assert (batch["total"], batch["sent"], batch["failed"]) == (5, 2, 3)
    # mona_sdk learns the reasons from Mona's answer; we refuse them before queueing
    assert sorted(ours["result"]["failure_reasons"]) == ["1", "2", "4"]
    reasons = ours["result"]["failure_reasons"]
    assert "'message' must be a dict" in reasons["1"] and "contextClass" in reasons["2"]


@needs_sdk
def test_filter_none_fields_per_call_and_per_client():
    code = """
import json
from mona_sdk import Client, MonaSingleMessage
client = Client(filter_none_fields_on_export=True)
client.export(MonaSingleMessage(message={"a": None, "b": 1}, contextClass="C", contextId="1"))
client.export(MonaSingleMessage(message={"a": None, "b": 2}, contextClass="C", contextId="2"),
              filter_none_fields=False)
print(json.dumps({}))
"""
    _, _, sdk_contexts, our_contexts = side_by_side(code, "from mona_sdk import Client")
    assert our_contexts == sdk_contexts == {("C", "1"): {"b": 1}, ("C", "2"): {"a": None, "b": 2}}


def client_for(server: MonaTestServer, **extra) -> Client:
    options = {
        "api_key": server.api_key,
        "secret": server.secret,
        "auth_api_token_url": server.token_url,
        "refresh_token_url": server.refresh_url,
        "override_rest_api_full_url": server.export_url,
        "num_of_retries_for_authentication": 0,
    }
    return Client(**{**options, **extra})


def test_flush_returns_the_real_delivery_result(mona_server):
    client = client_for(mona_server)
    assert client.export(MonaSingleMessage(message={"a": 1}, contextClass="C", contextId="1"))
    assert client.flush(5) == {
        "delivered": True,
        "sent": 1,
        "failed": 0,
        "dropped": 0,
        "spooled": 0,
        "pending": 0,
        "failure_reasons": {},
    }
    mona_server.respond_with(400, {"failed": 1, "failure_reasons": {"0": "bad field"}}, times=1)
    queued = client.export_batch(
        [MonaSingleMessage(message={"a": 2}, contextClass="C", contextId="2")]
    )
    assert queued == {"total": 1, "sent": 1, "failed": 0, "failure_reasons": {}}  # queued
    result = client.flush(5)
    assert (result["sent"], result["failed"], result["dropped"]) == (0, 1, 1)
    assert result["failure_reasons"] == {"bad field": 1}
    assert mona_server.contexts() == {("C", "1"): {"a": 1}}


def test_refused_credentials_raise_when_asked(mona_server, caplog):
    with pytest.raises(compat.MonaAuthenticationException, match="refused the credentials"):
        client_for(mona_server, secret="wrong-secret", raise_authentication_exceptions=True)
    client = client_for(mona_server, secret="another-wrong-secret")
    assert client.is_active() is False
    message = MonaSingleMessage(message={"a": 1}, contextClass="C")
    assert client.export(message) is False
    assert "refused the credentials" in caplog.text


def test_raise_export_exceptions_raises_mona_sdks_exception(mona_server):
    client = client_for(mona_server, raise_export_exceptions=True)
    with pytest.raises(compat.MonaExportException, match="didn't pass validation"):
        client.export(MonaSingleMessage(message="x", contextClass="C"))
    with pytest.raises(mona.MonaExportError):  # ours too: it is a MonaExportError
        client.export_batch(42)


@needs_sdk
def test_the_client_takes_every_argument_of_mona_sdks_client():
    ours = list(inspect.signature(Client.__init__).parameters)
    theirs = list(inspect.signature(real_sdk.Client.__init__).parameters)
    from importlib.metadata import version

    if version("mona_sdk") == "0.0.58":  # the release compat.mona_sdk follows
        assert ours == theirs  # the same names in the same order: positional calls too
    else:
        assert set(theirs) - set(ours) == set(), "a newer mona_sdk argument to add"
    assert [f.name for f in dataclasses.fields(MonaSingleMessage)] == [
        f.name for f in dataclasses.fields(real_sdk.MonaSingleMessage)
    ]
    services = {
        name
        for name, _ in inspect.getmembers(real_sdk.Client, inspect.isfunction)
        if not name.startswith("_")
    }
    assert services <= set(dir(Client))  # every public mona_sdk method exists here


def test_sampling_config_name_and_both_sampling_methods():
    with pytest.raises(compat.MonaInitializationException, match="Only one sampling method"):
        Client(sampling_config_name="cfg", context_class_to_sampling_rate={"C": 0.5})


@needs_sdk
def test_services_are_passed_to_the_real_mona_sdk(mona_server):
    nowhere = f"http://127.0.0.1:{free_port()}"  # no app server here: mona_sdk says so
    client = client_for(mona_server, override_app_server_full_url=nowhere)
    result = client.get_config()
    assert result["success"] is False and result["data"] is None
    assert result["error_message"] == "Could not get server response for the wanted service."


def test_services_without_mona_sdk_say_to_keep_it(mona_server, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "mona_sdk", None)  # as if it were not installed
    client = client_for(mona_server)
    result = client.upload_config({"C": {}}, "commit")
    assert result["success"] is False and "keep mona_sdk installed" in result["error_message"]
    assert "upload_config() is mona_sdk's services API" in caplog.text
    raising = client_for(mona_server, raise_service_exceptions=True)
    with pytest.raises(compat.MonaServiceException, match="keep mona_sdk"):
        raising.get_insights("C", "2026-01-01", "2026-01-02")


def test_async_client(mona_server):
    async def main() -> tuple:
        client = compat.AsyncClient(
            api_key=mona_server.api_key,
            secret=mona_server.secret,
            auth_api_token_url=mona_server.token_url,
            override_rest_api_full_url=mona_server.export_url,
        )
        single = await client.export_async(
            MonaSingleMessage(message={"a": 1}, contextClass="C", contextId="1")
        )
        batch = await client.export_batch_async(
            [MonaSingleMessage(message={"b": 2}, contextClass="C", contextId="1", action="ADD")]
        )
        return single, batch, await client.is_active_async(), await client.flush_async(5)

    single, batch, active, flushed = asyncio.run(main())
    assert single is True and batch["sent"] == 1 and active is True
    assert flushed["delivered"] is True and flushed["sent"] == 2
    assert mona_server.contexts() == {("C", "1"): {"a": 1, "b": [2]}}


def test_a_client_per_call_without_arguments_restarts_nothing(mona_server, monkeypatch):
    for name, value in mona_settings(mona_server).items():
        monkeypatch.setenv(name, value)
    Client().export(MonaSingleMessage(message={"n": 0}, contextClass="C", contextId="0"))
    first = process.current_exporter()
    for n in range(1, 5):
        Client().export(MonaSingleMessage(message={"n": n}, contextClass="C", contextId=str(n)))
    assert first is not None and process.current_exporter() is first
    assert mona.flush(5) and len(mona_server.contexts()) == 5


def test_the_exception_variables_are_read_from_the_environment(mona_server, monkeypatch):
    monkeypatch.setenv("MONA_SDK_RAISE_AUTHENTICATION_EXCEPTIONS", "true")
    with pytest.raises(compat.MonaAuthenticationException):
        client_for(mona_server, secret="wrong-secret-from-env-test")
    monkeypatch.setenv("MONA_SDK_RAISE_AUTHENTICATION_EXCEPTIONS", "false")
    monkeypatch.setenv("MONA_SDK_RAISE_SERVICE_EXCEPTIONS", "true")
    monkeypatch.setitem(sys.modules, "mona_sdk", None)
    with pytest.raises(compat.MonaServiceException):
        client_for(mona_server).get_config()
    monkeypatch.setenv("MONA_SDK_RAISE_EXPORT_EXCEPTIONS", "true")
    with pytest.raises(compat.MonaExportException):
        client_for(mona_server).export(MonaSingleMessage(message=None, contextClass="C"))


def test_an_unreachable_token_endpoint_leaves_the_client_active(caplog):
    nowhere = f"http://127.0.0.1:{free_port()}"
    client = Client(
        api_key="k",
        secret="s",
        auth_api_token_url=nowhere + "/token",
        override_rest_api_full_url=nowhere + "/export",
        num_of_retries_for_authentication=0,
        raise_authentication_exceptions=True,  # refused credentials only, not an outage
    )
    assert client.is_active() is True
    assert client.export(MonaSingleMessage(message={"a": 1}, contextClass="C")) is True
    assert "token endpoint unreachable" in caplog.text


def test_switched_off_or_sampled_out_exports_are_quiet(mona_server, monkeypatch, caplog):
    client = client_for(mona_server, default_sampling_rate=0.0)
    message = MonaSingleMessage(message={"a": 1}, contextClass="C", contextId="x")
    assert client.export(message) is True  # left out on purpose, as mona_sdk answers
    assert client.export_batch([message]) == {
        "total": 0, "sent": 0, "failed": 0, "failure_reasons": {}
    }  # fmt: skip
    monkeypatch.setenv("MONA_DISABLE_ALL", "true")
    off = client_for(mona_server)
    assert off.is_active() is False and off.export(message) is False
    assert "ERROR" not in caplog.text
    assert mona.flush(5) and mona_server.messages() == []


def test_a_bad_timestamp_is_logged_and_the_message_still_sent(mona_server, caplog):
    client = client_for(mona_server)
    message = MonaSingleMessage(
        message={"a": 1}, contextClass="C", contextId="t", exportTimestamp="yesterday"
    )
    assert client.export(message) is True
    assert client.flush(5)["sent"] == 1
    assert mona_server.contexts() == {("C", "t"): {"a": 1}}
    assert "invalid exportTimestamp 'yesterday' for context class 'C'" in caplog.text
