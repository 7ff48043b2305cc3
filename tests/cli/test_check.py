"""``mona-middleware check`` against a real collector, a refusing one and nothing at all."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import mona_middleware as mona
from mona_middleware._cli import main as cli
from mona_middleware._export.exporter import BatchExporter
from mona_middleware.collector import Collector
from mona_middleware.config import MonaConfig
from mona_middleware.transports.rest import MonaRestTransport

from ..servers import free_port


@pytest.fixture
def collector() -> Iterator[Collector]:
    """A strict one: it takes only its own credentials (as off loopback)."""
    with Collector(strict=True) as running:
        yield running


def check(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], env: dict, *args: str
) -> tuple[int, str]:
    """Run ``check`` in this process with ``env`` set; (exit status, stdout + stderr)."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    status = cli.main(["check", "--timeout", "3", *args])
    captured = capsys.readouterr()
    return status, captured.out + captured.err


def test_collector_credentials_pass_and_stay_masked(monkeypatch, capsys, collector) -> None:
    status, out = check(monkeypatch, capsys, collector.env())

    assert status == 0, out
    assert "Transport: rest: Mona credentials found (AUTH_MODE=MONA)" in out
    assert f"ok     token endpoint {collector.token_url}: issued an access token" in out
    assert f"ok     export endpoint {collector.export_url}: HTTP 200" in out
    assert out.rstrip().endswith("OK: this configuration can export.")
    assert collector.secret not in out
    assert collector.api_key not in out
    assert f"{collector.api_key[:4]}...({len(collector.api_key)} chars)" in out
    assert f"***({len(collector.secret)} chars)" in out
    assert collector.store.message_count() == 0  # the probe's empty batch stores nothing


def test_json_output(monkeypatch, capsys, collector) -> None:
    status, out = check(monkeypatch, capsys, collector.env(), "--json")

    report = json.loads(out)
    assert status == 0 and report["ok"] is True and report["problem"] is None
    assert [probe["name"] for probe in report["checks"]] == ["token endpoint", "export endpoint"]
    assert all(probe["ok"] for probe in report["checks"])
    assert report["transport"]["name"] == "rest"
    assert report["sources"]["secret"] == "MONA_SDK_SECRET"
    assert report["config"]["rest_api_url"] == collector.export_url
    assert collector.secret not in out


def test_manual_token_is_masked_too(monkeypatch, capsys, collector) -> None:
    token = collector.access_token()
    env = {
        "AUTH_MODE": "MANUAL_TOKEN",
        "MONA_SDK_ACCESS_TOKEN": token,
        "MONA_SDK_OVERRIDE_REST_API_URL": collector.export_url,
    }
    status, out = check(monkeypatch, capsys, env)

    assert status == 0, out
    assert "ok     export endpoint" in out
    assert token not in out and token[:8] not in out


def test_no_auth_from_mona_sdks_switch(monkeypatch, capsys, collector) -> None:
    env = {
        "MONA_SDK_SHOULD_USE_AUTHENTICATION": "false",
        "MONA_SDK_USER_ID": collector.user_id,
        "MONA_SDK_OVERRIDE_REST_API_URL": collector.noauth_url,
    }
    status, out = check(monkeypatch, capsys, env)

    assert status == 0, out
    assert re.search(r"^  auth_mode\s+derived\s+NO_AUTH$", out, re.MULTILINE)
    assert f"ok     export endpoint {collector.noauth_url}: HTTP 200" in out


def test_wrong_secret_is_refused_by_the_token_endpoint(monkeypatch, capsys, collector) -> None:
    wrong = "not-the-collector-secret-0123456789"
    status, out = check(monkeypatch, capsys, {**collector.env(), "MONA_SDK_SECRET": wrong})

    assert status == 1
    assert "FAILED, this configuration cannot export: token endpoint" in out
    assert "refused the credentials: HTTP 401" in out
    assert wrong not in out


def test_a_user_id_the_endpoint_refuses(monkeypatch, capsys, collector) -> None:
    env = {
        "AUTH_MODE": "NO_AUTH",
        "MONA_SDK_USER_ID": "someone-else",
        "MONA_SDK_OVERRIDE_REST_API_URL": collector.noauth_url,
    }
    status, out = check(monkeypatch, capsys, env)

    assert status == 1
    assert "refused the request: HTTP 403" in out
    assert "someone-else" in out  # the collector's reason names the user id


def test_unreachable_token_endpoint(monkeypatch, capsys) -> None:
    port = free_port()  # nothing listens there
    env = {
        "MONA_SDK_API_KEY": "key-0123456789abcdef",
        "MONA_SDK_SECRET": "secret-0123456789abcdef",
        "MONA_SDK_AUTH_API_TOKEN_URL": f"http://127.0.0.1:{port}/token",
        "MONA_SDK_OVERRIDE_REST_API_URL": f"http://127.0.0.1:{port}/export",
    }
    status, out = check(monkeypatch, capsys, env)

    assert status == 1
    assert f"token endpoint http://127.0.0.1:{port}/token: unreachable" in out
    assert "Connection refused" in out
    assert "secret-0123456789abcdef" not in out


def test_unreachable_export_endpoint(monkeypatch, capsys) -> None:
    port = free_port()
    env = {
        "AUTH_MODE": "NO_AUTH",
        "MONA_SDK_USER_ID": "acme",
        "MONA_SDK_OVERRIDE_REST_API_URL": f"http://127.0.0.1:{port}/monaExport",
    }
    status, out = check(monkeypatch, capsys, env)

    assert status == 1
    assert "FAILED export endpoint" in out and "unreachable" in out


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"MONA_SDK_API_KEY": "only-a-key"}, "AUTH_MODE=MONA needs MONA_SDK_SECRET"),
        (
            {"MONA_SDK_SECRET": "a-secret-alone-42", "MONA_SDK_API_KEY": ""},
            "AUTH_MODE=MONA needs MONA_SDK_API_KEY",
        ),
        ({"AUTH_MODE": "NO_AUTH"}, "AUTH_MODE=NO_AUTH needs MONA_SDK_USER_ID"),
    ],
)
def test_what_keeps_the_data_from_mona_fails_with_the_reason(monkeypatch, capsys, env, reason):
    status, out = check(monkeypatch, capsys, env)

    assert status == 2
    assert "FAILED, this configuration cannot export: " + reason in out
    assert "instead of Mona" in out  # what the app does instead: the local file
    assert "Transport: file: the Mona credentials are incomplete" in out
    assert "a-secret-alone-42" not in out


# Each value the running app replaces by its default: (variable, value, the sentence).
REPLACED = {
    "MONA_MIDDLEWARE_BATCH_SIZE": ("abc", "=abc is not a whole number; using 500"),
    "MONA_SDK_SHOULD_USE_SSL": ("0", "=0 is not true or false as mona_sdk reads it"),
    "AUTH_MODE": ("FOO", "=FOO is not MONA, NO_AUTH or MANUAL_TOKEN"),
    "MONA_MIDDLEWARE_TRANSPORT": (
        "kafka",
        "=kafka is not one of auto, rest, file, memory; using auto",
    ),
    "MONA_MIDDLEWARE_FLUSH_INTERVAL": ("-1", "=-1 must be between 0.001 and 3600; using 1"),
}
REPLACED = {var: (value, var + sentence) for var, (value, sentence) in REPLACED.items()}


def test_values_the_app_replaces_are_warnings_and_the_app_agrees(monkeypatch, capsys, caplog):
    env = {var: value for var, (value, _) in REPLACED.items()}
    status, out = check(monkeypatch, capsys, env)

    assert status == 0, out
    warnings = [line.removeprefix("warning: ") for line in out.splitlines()]
    for _, sentence in REPLACED.values():  # every bad value, in words, not only the first
        assert any(line.startswith(sentence) for line in warnings), (sentence, out)
    assert "invalid literal" not in out
    assert out.rstrip().endswith(
        "OK: this configuration can export, with 5 value(s) replaced by the default"
        " (the warnings above say which)."
    )

    # The app, with the same environment (set by check() above), logs the same sentences
    # and exports every context.
    with mona.context("AGREE", context_id="c-1"):
        mona.export({"n": 1})
    assert mona.flush(5)
    for _, sentence in REPLACED.values():
        assert sentence in caplog.text
    lines = Path("mona-messages.jsonl").read_text().splitlines()
    assert [json.loads(line)["contextId"] for line in lines] == ["c-1"]


def test_every_fatal_value_is_named(monkeypatch, capsys):
    env = {"MONA_MIDDLEWARE_WEBSOCKETS": "maybe", "MONA_MIDDLEWARE_CONTINUE_CONTEXT": "x"}
    status, out = check(monkeypatch, capsys, env)

    assert status == 2
    assert (
        "FAILED, this configuration cannot export: MONA_MIDDLEWARE_WEBSOCKETS=maybe is not true"
        " or false" in out
    )
    assert "the web adapters refuse to start with it" in out
    assert "  and: MONA_MIDDLEWARE_CONTINUE_CONTEXT=x is not true or false" in out
    assert "MonaCelery refuses to start with it" in out


@pytest.mark.parametrize("value", ["1", "true", "yes"])
def test_a_kill_switch_is_the_verdict(monkeypatch, capsys, value) -> None:
    status, out = check(monkeypatch, capsys, {"MONA_DISABLE_ALL": value})

    assert status == 0
    assert "OK" not in out
    assert out.rstrip().endswith(
        f"SWITCHED OFF: MONA_DISABLE_ALL={value} switches monitoring off: requests pass"
        " through and nothing is exported."
    )
    status, out = check(monkeypatch, capsys, {"MONA_DISABLE_ALL": value}, "--json")
    report = json.loads(out)
    assert (report["verdict"], report["ok"], report["switched_off"]) == (
        "switched off",
        False,
        f"MONA_DISABLE_ALL={value}",
    )


def test_the_kill_switch_file_is_read_as_the_app_reads_it(monkeypatch, capsys, tmp_path):
    switch = tmp_path / "mona.json"
    switch.write_text('{"disable_all": true}')
    env = {"MONA_MIDDLEWARE_CONFIG_FILE": str(switch), "MONA_SDK_API_KEY": "only-a-key"}
    status, out = check(monkeypatch, capsys, env)

    assert f'SWITCHED OFF: {{"disable_all": true}} in {switch} switches monitoring off' in out
    assert "Switched on, it would fail: this configuration cannot export: AUTH_MODE=MONA" in out
    assert status == 2
    switch.write_text('{"disable_all": false}')
    monkeypatch.delenv("MONA_SDK_API_KEY")
    status, out = check(monkeypatch, capsys, {"MONA_MIDDLEWARE_CONFIG_FILE": str(switch)})
    assert status == 0 and "SWITCHED OFF" not in out and "OK: this" in out


def test_the_spool_directory_is_shown_as_the_exporter_resolves_it(
    monkeypatch, capsys, collector, tmp_path
) -> None:
    status, out = check(monkeypatch, capsys, collector.env())

    assert status == 0, out
    spool = re.search(r"^  spool_dir\s+default\s+(\S+)$", out, re.MULTILINE)
    assert spool, out
    assert spool.group(1).startswith(str(tmp_path / "cache" / "mona_middleware" / "spool"))
    assert "(not set)" not in out
    config = MonaConfig.resolve(env=collector.env())
    exporter = BatchExporter(config, MonaRestTransport(config), lambda: False)
    assert exporter.spool is not None and str(exporter.spool.directory) == spool.group(1)

    status, out = check(monkeypatch, capsys, {"MONA_MIDDLEWARE_SPOOL": "false"})
    assert re.search(
        r"^  spool_dir\s+default\s+\(off: MONA_MIDDLEWARE_SPOOL is false\)$", out, re.M
    )


def test_no_credentials_means_the_file_transport(monkeypatch, capsys, tmp_path: Path) -> None:
    status, out = check(monkeypatch, capsys, {})

    assert status == 0, out
    assert "Transport: file: no Mona credentials are set" in out
    assert f"ok     file {tmp_path / 'mona-messages.jsonl'}: will be created" in out
    assert "batch_size" not in out  # the connection's options only, unless --all

    status, out = check(monkeypatch, capsys, {}, "--all")
    assert status == 0 and re.search(r"^  batch_size\s+default\s+500$", out, re.MULTILINE)


def test_a_file_path_that_cannot_be_created(monkeypatch, capsys, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    status, out = check(
        monkeypatch, capsys, {"MONA_MIDDLEWARE_FILE_PATH": str(blocker / "m.jsonl")}
    )

    assert status == 1
    assert f"{blocker} is not a directory" in out


def test_a_misspelt_variable_is_pointed_out(monkeypatch, capsys) -> None:
    status, out = check(monkeypatch, capsys, {"MONA_SDK_APIKEY": "x", "MONA_MIDDLEWARE_QWXJ": "1"})

    assert status == 0
    assert (
        "warning: MONA_SDK_APIKEY is not read by mona_middleware (did you mean MONA_SDK_API_KEY?)"
        in out
    )
    assert "warning: MONA_MIDDLEWARE_QWXJ is not read by mona_middleware (a typo" in out


def test_the_command_line_as_a_user_runs_it(collector: Collector, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONA_", "AUTH_MODE"))}
    result = subprocess.run(
        [sys.executable, "-m", "mona_middleware", "check"],
        env={**env, **collector.env()},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK: this configuration can export." in result.stdout
    assert collector.secret not in result.stdout + result.stderr


def test_mona_client_settings_with_a_local_file_are_not_ok(monkeypatch, capsys) -> None:
    env = {"MONA_HOST": "10.0.0.5", "MONA_PORT": "24224", "MONA_USER_ID": "acc"}
    status, out = check(monkeypatch, capsys, env)

    assert status == 1, out
    assert "OK" not in out
    assert "mona-client's MONA_HOST, MONA_PORT, MONA_USER_ID say data should reach Mona" in out
    assert "goes to the local file" in out
    assert "warning: MONA_HOST is set but does not apply: mona_middleware speaks Mona's REST" in out
    assert re.search(r"^  user_id\s+MONA_USER_ID\s+acc$", out, re.MULTILINE)


def test_mona_client_settings_with_credentials_reach_the_collector(
    monkeypatch, capsys, collector
) -> None:
    env = {**collector.env(), "MONA_HOST": "10.0.0.5", "MONA_PORT": "24224"}
    status, out = check(monkeypatch, capsys, env)

    assert status == 0, out
    assert "Transport: rest" in out and "OK: this configuration can export." in out
    assert "warning: MONA_PORT is set but does not apply" in out


@pytest.mark.parametrize(
    "var",
    [
        "MONA_QUEUE_SIZE",
        "MONA_QUEUE_CIRCULAR",
        "MONA_BLOCKING",
        "MONA_SDK_USE_SEND_EVENT_ENDPOINT",
        "MONA_SDK_USE_SEND_TIMESTAMP_FIELD",
        "MONA_SDK_ENABLE_DEPRECATION_WARNINGS_ON_EXPORT_TIMESTAMP",
        "MONA_SDK_OVERRIDE_APP_SERVER_HOST",
        "MONA_SDK_OVERRIDE_APP_SERVER_URL",
        "MONA_SDK_REFRESH_TOKEN_SAFETY_MARGIN",
        "MONA_SDK_OIDC_CLIENT_ID",
        "MONA_SDK_OIDC_CLIENT_SECRET",
        "MONA_SDK_OIDC_SCOPE",
        "SAMPLING_CONFIG_NAME",
        "SAMPLING_FACTORS_MAX_AGE_SECONDS",
    ],
)
def test_each_seed_variable_with_no_use_here_is_reported(monkeypatch, capsys, var) -> None:
    status, out = check(monkeypatch, capsys, {var: "1"})

    assert status == 0
    assert f"warning: {var} is set but does not apply: " in out
    assert "is not read by mona_middleware" not in out
