"""``mona-middleware check``: will this environment's configuration reach Mona?

It resolves the configuration through the very code an app runs on its first export
(``MonaConfig.examine``, the lazy path), so both reach the same verdict: a value the app
replaces by its default is a warning here, naming the default; only what keeps the data
from Mona (missing credentials, an endpoint that refuses, an adapter that will not
start) is FAILED, and every such value is reported, not only the first. It shows the
result with secrets masked and defaults as what they resolve to (the spool's real
directory), says which transport that picks and why, then asks the endpoints
themselves: a token for the credentials and an empty batch to the export endpoint (or,
for the file transport, whether the file is writable). With a kill switch on
(``MONA_DISABLE_ALL``, the config file's ``disable_all``) the verdict is "switched off".
A deploy script can run it and stop on a non-zero status before the app loses a day of
data to a typo.

Exit status: 0 when it can work (or is switched off on purpose), 1 when an endpoint or
the file says no, 2 when the configuration keeps the data from Mona.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests

from .._export.spool import default_spool_dir
from .._runtime import uwsgi_host
from .._runtime.killswitch import ConfigFileWatcher
from .._util.log import logger
from .._util.options import Spec, closest, resolve
from .._web.options import CELERY_OPTIONS
from .._web.options import OPTIONS as WEB_OPTIONS
from ..config import (
    FALLBACK_VARIABLES,
    MONA_CLIENT_DESTINATION,
    NOT_APPLYING,
    OPTIONS,
    OTHER_VARIABLES,
    SECRET_OPTIONS,
    MonaConfig,
    not_applying,
)
from ..errors import MonaConfigError
from ..transports.auth import AuthError, MonaTokenAuth, tenant_of
from ..transports.rest import MonaRestTransport, parse_response
from .terminal import table

# What a connection depends on; shown always, the rest only when set in the environment.
SHOWN_OPTIONS = (
    "api_key",
    "secret",
    "access_token",
    "user_id",
    "auth_mode",
    "auth_api_token_url",
    "refresh_token_url",
    "rest_api_host",
    "rest_api_url",
    "use_ssl",
    "transport",
    "file_path",
    "spool",
    "spool_dir",
    "disable_all",
)
# Every option that can come from the environment: the exporter's, then the adapters'.
ENV_OPTIONS: dict[str, Spec] = {
    **OPTIONS,
    **{name: spec for name, spec in WEB_OPTIONS.items() if spec.env},
}


@dataclass
class Probe:
    """One thing asked of the outside world, and its answer."""

    name: str
    target: str
    ok: bool
    detail: str


@dataclass
class Report:
    """Everything ``check`` found; ``problems`` are why it cannot export, if it cannot."""

    config: dict[str, Any] | None = None
    sources: dict[str, str] = dataclasses.field(default_factory=dict)
    transport: dict[str, str] = dataclasses.field(default_factory=dict)
    probes: list[Probe] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)
    replaced: int = 0  # how many of the warnings are values replaced by their default
    problems: list[str] = dataclasses.field(default_factory=list)
    switched_off: str | None = None  # which kill switch is on, if one is
    status: int = 0

    @property
    def problem(self) -> str | None:
        return self.problems[0] if self.problems else None

    def fail(self, problem: str, status: int) -> None:
        self.problems.append(problem)
        self.status = max(self.status, status)

    @property
    def verdict(self) -> str:
        if self.switched_off:
            return "switched off"
        return "failed" if self.problems else "ok"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``check`` subcommand's options."""
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    parser.add_argument(
        "--all", action="store_true", help="list every option, not only the connection's"
    )
    parser.add_argument(
        "--timeout",
        type=seconds,
        default=5.0,
        help="seconds to wait for each endpoint (default: %(default)s)",
    )


def seconds(text: str) -> float:
    """An argparse type: a positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 3600 seconds")
    return value


def run(args: argparse.Namespace) -> int:
    """Check the environment's configuration; the exit status as documented above."""
    report = check(os.environ, timeout=args.timeout)
    if args.json:
        print(json.dumps(_as_json(report), indent=2, default=str))
    else:
        print(render(report, show_all=args.all))
    return report.status


def check(env: Mapping[str, str], timeout: float = 5.0) -> Report:
    """Resolve ``env`` as the app would and probe where it sends."""
    report = Report()
    report.warnings += _unknown_variables(env)
    report.warnings += uwsgi_host.check_warnings(env)
    report.warnings += [
        f"{var} is set but does not apply: {why}" for var, why in not_applying(env).items()
    ]
    try:
        config, problems = MonaConfig.examine(env=env)  # what the app's first export does
    except MonaConfigError as exc:  # pragma: no cover - only options can raise, none here
        report.fail(f"invalid configuration: {exc}", 2)
        return report
    for problem in problems:
        if problem.fatal:
            report.fail(str(problem), 2)
        else:
            report.warnings.append(str(problem))
            report.replaced += problem.instead is not None
    web = _adapter_values(env, report)
    name, reason = config.transport_choice()
    if any(problem.fatal for problem in problems):  # the credentials: examine() chose the file
        reason = "the Mona credentials are incomplete (see below), so the app writes to a file"
    report.config = {**mask(config), **web}
    report.config["spool_dir"] = _spool_dir(config, name)
    report.config["file_path"] = os.path.abspath(os.path.expanduser(config.file_path))
    report.sources = _sources(env, config.auth_mode)
    report.transport = {"name": name, "reason": reason}
    legacy = [var for var in MONA_CLIENT_DESTINATION if env.get(var, "").strip()]
    if name == "file" and legacy:
        report.fail(
            f"mona-client's {', '.join(legacy)} say data should reach Mona, but with no Mona "
            f"credentials it goes to the local file {config.file_path}: set MONA_SDK_API_KEY "
            "and MONA_SDK_SECRET (or AUTH_MODE=NO_AUTH with MONA_SDK_USER_ID)",
            1,
        )
    report.switched_off = _kill_switch(config, env)
    if name == "rest":
        report.probes = probe_rest(config, timeout)
    elif name == "file":
        report.probes = [probe_file(config.file_path)]
    else:
        report.warnings.append(f"transport {name!r} keeps messages in this process (for tests)")
    for probe in report.probes:
        if not probe.ok:
            report.fail(f"{probe.name} {probe.target}: {probe.detail}", 1)
    return report


def _adapter_values(env: Mapping[str, str], report: Report) -> dict[str, Any]:
    """The adapters' options from the environment, as plain values.

    The adapters resolve their variables strictly when they are built: a bad one makes
    ``MonaFlask``, the middlewares or ``MonaCelery`` raise ``MonaConfigError`` and the
    app does not start, so each is a failure here, every one named.
    """
    values = {}
    adapters = ((WEB_OPTIONS, "the web adapters refuse"), (CELERY_OPTIONS, "MonaCelery refuses"))
    for declared, who in adapters:
        for name, spec in declared.items():
            if not spec.env:
                continue
            try:
                value = resolve(spec, [], env, True)
            except MonaConfigError as exc:
                report.fail(f"{exc}: {who} to start with it (MonaConfigError)", 2)
                value = spec.default
            if declared is WEB_OPTIONS:
                if isinstance(value, tuple):  # excluded_urls: the patterns as written
                    value = [getattr(item, "pattern", item) for item in value]
                values[name] = value
    return values


def _spool_dir(config: MonaConfig, transport: str) -> str:
    """The directory the exporter will spool to, or why it keeps none."""
    if not config.spool:
        return "(off: MONA_MIDDLEWARE_SPOOL is false)"
    if transport != "rest":
        return f"(none: the {transport} transport keeps no spool)"
    if config.spool_dir:
        return os.path.abspath(os.path.expanduser(config.spool_dir))
    return default_spool_dir(MonaRestTransport(config).spool_key())


def _kill_switch(config: MonaConfig, env: Mapping[str, str]) -> str | None:
    """Which kill switch is on: ``MONA_DISABLE_ALL``, or ``disable_all`` in the config file
    (read by the app's own watcher, once)."""
    if config.disable_all:
        return f"MONA_DISABLE_ALL={env.get('MONA_DISABLE_ALL', '').strip()}"
    if config.config_file:
        watcher = ConfigFileWatcher(config.config_file, config.config_poll_interval)
        level = logger.level
        logger.setLevel(
            max(level, logging.ERROR)
        )  # its "disable_all is now ON" is said below instead
        try:
            watcher.poll()
        finally:
            logger.setLevel(level)
        if watcher.disabled:
            return f'{{"disable_all": true}} in {watcher.path}'
    return None


def mask(config: MonaConfig) -> dict[str, Any]:
    """``config.masked()``, with secrets shown only by their length.

    The api key keeps its first four characters (it names which key is in use); a
    secret or token shows none.
    """
    shown = config.masked()
    for name in SECRET_OPTIONS:
        value = getattr(config, name)
        if not value:
            continue
        keep = 4 if name == "api_key" and len(value) >= 16 else 0
        shown[name] = (
            f"{value[:keep] if keep else '***'}{'...' if keep else ''}({len(value)} chars)"
        )
    return shown


def _sources(env: Mapping[str, str], auth_mode: str) -> dict[str, str]:
    sources = {}
    stands_in = {primary: fallback for fallback, primary in FALLBACK_VARIABLES.items()}
    for name, spec in ENV_OPTIONS.items():
        var = spec.env
        sources[name] = var if var and env.get(var, "").strip() else "default"
        if sources[name] == "default" and var in stands_in and env.get(stands_in[var], "").strip():
            sources[name] = stands_in[var]  # mona_sdk's or mona-client's name for it
    if sources["auth_mode"] == "default" and auth_mode != "MONA":
        # picked as mona_sdk picks it: MONA_SDK_SHOULD_USE_AUTHENTICATION, or a token
        sources["auth_mode"] = "derived"
    return sources


def _unknown_variables(env: Mapping[str, str]) -> list[str]:
    known = {spec.env for spec in (*ENV_OPTIONS.values(), *CELERY_OPTIONS.values())}
    known |= OTHER_VARIABLES | NOT_APPLYING.keys()
    known.discard(None)
    unknown = sorted(
        var for var in env if var.startswith(("MONA_SDK_", "MONA_MIDDLEWARE_")) and var not in known
    )
    warnings = []
    for var in unknown:
        match = closest(var, known)  # type: ignore[arg-type]  # None discarded above
        hint = f"did you mean {match}?" if match else "a typo, or a mona_sdk setting"
        warnings.append(f"{var} is not read by mona_middleware ({hint})")
    return warnings


def probe_rest(config: MonaConfig, timeout: float) -> list[Probe]:
    """Ask for a token (AUTH_MODE=MONA), then POST an empty batch to the export URL.

    The token goes through the exporter's own auth code, with no retries: what this
    reports is what the exporter will meet.
    """
    config = dataclasses.replace(config, auth_retries=0, http_timeout=timeout)
    probes = []
    headers: dict[str, str] = {}
    user_id = config.user_id
    with requests.Session() as session:
        if config.auth_mode == "MONA":
            auth = MonaTokenAuth(config, wait=lambda seconds: True)
            try:
                headers = auth.headers(session)
            except AuthError as exc:
                detail = str(exc).removeprefix("token endpoint ")
                if isinstance(exc.__context__, requests.RequestException):
                    detail = f"unreachable: {_why(exc.__context__)}"
                return [Probe("token endpoint", config.auth_api_token_url, False, detail)]
            user_id = auth.user_id()
            detail = "issued an access token" + (f" for user id {user_id}" if user_id else "")
            probes.append(Probe("token endpoint", config.auth_api_token_url, True, detail))
        elif config.auth_mode == "MANUAL_TOKEN":
            headers = {"Authorization": f"Bearer {config.access_token}"}
            user_id = user_id or tenant_of(config.access_token)
        transport = MonaRestTransport(dataclasses.replace(config, user_id=user_id))
        url = transport.export_url()
        transport.close()
        if url is None:
            detail = "no Mona user id: set MONA_SDK_USER_ID or MONA_SDK_OVERRIDE_REST_API_URL"
            return [*probes, Probe("export endpoint", "(unknown)", False, detail)]
        probes.append(_probe_export(session, url, user_id, headers, timeout))
    return probes


def _probe_export(
    session: Any, url: str, user_id: str | None, headers: dict[str, str], timeout: float
) -> Probe:
    # stores nothing, but is authenticated
    body: dict[str, Any] = {"userId": user_id, "messages": []}
    try:
        response = session.post(url, json=body, headers=headers, timeout=timeout)
    except requests.RequestException as exc:
        return Probe("export endpoint", url, False, f"unreachable: {_why(exc)}")
    status = response.status_code
    if 200 <= status < 300:
        return Probe("export endpoint", url, True, f"HTTP {status}, accepted an empty batch")
    reason = parse_response(response, 0).error or f"HTTP {status}"
    if status == 400:  # it answered and let us in; an empty batch may just not be to its taste
        return Probe(
            "export endpoint", url, True, f"answers (HTTP 400 to an empty batch: {reason})"
        )
    refused = "refused the request" if status in (401, 403) else "answered"
    return Probe("export endpoint", url, False, f"{refused}: HTTP {status} ({reason})")


def _why(exc: Exception) -> str:
    """``ConnectionError ([Errno 111] Connection refused)`` rather than urllib3's paragraph."""
    found = re.search(r"\[Errno -?\d+\] [^'\")]+", str(exc))
    return type(exc).__name__ + (f" ({found.group(0)})" if found else "")


def probe_file(path: str) -> Probe:
    """Whether the file transport can append to ``path`` (creating it and its directory)."""
    path = os.path.abspath(os.path.expanduser(path))
    if os.path.isdir(path):
        return Probe("file", path, False, "is a directory")
    if os.path.exists(path):
        if os.access(path, os.W_OK):
            return Probe("file", path, True, f"writable, {os.path.getsize(path)} bytes so far")
        return Probe("file", path, False, "exists but is not writable")
    parent = os.path.dirname(path)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        return Probe("file", path, False, f"cannot be created: {parent} is not a directory")
    if os.access(parent, os.W_OK | os.X_OK):
        return Probe("file", path, True, "will be created on the first export")
    return Probe("file", path, False, f"cannot be created: {parent} is not writable")


def render(report: Report, show_all: bool = False) -> str:
    """The report as text for a terminal."""
    lines = []
    if report.config is not None:
        names = [
            name
            for name in ENV_OPTIONS
            if (show_all and name in report.config)
            or name in SHOWN_OPTIONS
            or report.sources[name] != "default"
        ]
        rows = [[name, report.sources[name], _shown(report.config[name], name)] for name in names]
        lines += [
            "Configuration (from the environment; options given in code or in the app's"
            " config are not visible here):",
            table(["option", "from", "value"], rows),
            "",
            f"Transport: {report.transport['name']}: {report.transport['reason']}",
        ]
    lines += [
        f"  {'ok' if p.ok else 'FAILED':6} {p.name} {p.target}: {p.detail}" for p in report.probes
    ]
    lines += [f"warning: {warning}" for warning in report.warnings]
    failed = ""
    if report.problems:
        failed = f"this configuration cannot export: {report.problems[0]}"
        failed += "".join(f"\n  and: {problem}" for problem in report.problems[1:])
    if report.switched_off:
        lines.append(
            f"SWITCHED OFF: {report.switched_off} switches monitoring off: requests pass"
            " through and nothing is exported."
        )
        if failed:
            lines.append(f"Switched on, it would fail: {failed}")
    elif failed:
        lines.append(f"FAILED, {failed}")
    elif report.replaced:
        lines.append(
            f"OK: this configuration can export, with {report.replaced} value(s) replaced by"
            " the default (the warnings above say which)."
        )
    else:
        lines.append("OK: this configuration can export.")
    return "\n".join(lines)


def _shown(value: Any, name: str) -> str:
    if value is None:  # the default: say what it means rather than "not set"
        spec = ENV_OPTIONS[name]
        return f"(default: {spec.default_text().replace('`', '')})"
    return json.dumps(value) if isinstance(value, dict) else str(value)


def _as_json(report: Report) -> dict[str, Any]:
    return {
        "ok": not report.problems and not report.switched_off,
        "verdict": report.verdict,
        "switched_off": report.switched_off,
        "status": report.status,
        "problem": report.problem,
        "problems": report.problems,
        "config": report.config,
        "sources": report.sources,
        "transport": report.transport,
        "checks": [dataclasses.asdict(probe) for probe in report.probes],
        "warnings": report.warnings,
    }
