"""``mona-middleware check``: will this environment's configuration reach Mona?

It resolves the configuration exactly as the exporter does, shows it with secrets
masked, says which transport that picks and why, then asks the endpoints themselves:
a token for the credentials and an empty batch to the export endpoint (or, for the file
transport, whether the file is writable). A deploy script can run it and stop on a
non-zero status before the app loses a day of data to a typo.

Exit status: 0 when it can work, 1 when an endpoint or the file says no, 2 when the
configuration itself is invalid.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests

from .._runtime import uwsgi_host
from .._util.options import Spec
from .._web.options import CELERY_OPTIONS, CeleryOptions, WebOptions
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
    """Everything ``check`` found; ``problem`` is why it cannot work, if it cannot."""

    config: dict[str, Any] | None = None
    sources: dict[str, str] = dataclasses.field(default_factory=dict)
    transport: dict[str, str] = dataclasses.field(default_factory=dict)
    probes: list[Probe] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)
    problem: str | None = None
    status: int = 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``check`` subcommand's options."""
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    parser.add_argument(
        "--all", action="store_true", help="list every option, not only the connection's"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        help="seconds to wait for each endpoint (default: %(default)s)",
    )


def run(args: argparse.Namespace) -> int:
    """Check the environment's configuration; the exit status as documented above."""
    report = check(os.environ, timeout=args.timeout)
    if args.json:
        print(json.dumps(_as_json(report), indent=2, default=str))
    else:
        print(render(report, show_all=args.all))
    return report.status


def check(env: Mapping[str, str], timeout: float = 5.0) -> Report:
    """Resolve ``env`` as the exporter would and probe where it sends."""
    report = Report()
    report.warnings += _unknown_variables(env)
    report.warnings += uwsgi_host.check_warnings(env)
    report.warnings += [
        f"{var} is set but does not apply: {why}" for var, why in not_applying(env).items()
    ]
    try:
        config = MonaConfig.resolve(env=env)
        web = WebOptions.resolve({}, env)
        CeleryOptions.resolve({}, env)  # MonaCelery's variables: a bad one is named here too
    except MonaConfigError as exc:
        report.problem, report.status = f"invalid configuration: {exc}", 2
        return report
    report.config = {**mask(config), **_web_values(web)}
    report.sources = _sources(env, config.auth_mode)
    name, reason = config.transport_choice()
    report.transport = {"name": name, "reason": reason}
    legacy = [var for var in MONA_CLIENT_DESTINATION if env.get(var, "").strip()]
    if name == "file" and legacy:
        report.problem = (
            f"mona-client's {', '.join(legacy)} say data should reach Mona, but with no Mona "
            f"credentials it goes to the local file {config.file_path}: set MONA_SDK_API_KEY "
            "and MONA_SDK_SECRET (or AUTH_MODE=NO_AUTH with MONA_SDK_USER_ID)"
        )
        report.status = 1
    if config.disable_all:
        report.warnings.append("MONA_DISABLE_ALL is on: requests pass through, nothing is exported")
    if name == "rest":
        report.probes = probe_rest(config, timeout)
    elif name == "file":
        report.probes = [probe_file(config.file_path)]
    else:
        report.warnings.append(f"transport {name!r} keeps messages in this process (for tests)")
    failed = [probe for probe in report.probes if not probe.ok]
    if failed and report.problem is None:
        report.problem = f"{failed[0].name} {failed[0].target}: {failed[0].detail}"
        report.status = 1
    return report


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


def _web_values(web: WebOptions) -> dict[str, Any]:
    """The adapters' options that come from the environment, as plain values."""
    values = {}
    for name in ENV_OPTIONS.keys() - OPTIONS.keys():
        value = getattr(web, name)
        if isinstance(value, tuple):  # excluded_urls: the patterns as written
            value = [getattr(item, "pattern", item) for item in value]
        values[name] = value
    return values


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
    unknown = sorted(
        var for var in env if var.startswith(("MONA_SDK_", "MONA_MIDDLEWARE_")) and var not in known
    )
    return [
        f"{var} is not read by mona_middleware (a typo, or a mona_sdk setting it has no use for)"
        for var in unknown
    ]


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
    body = {"userId": user_id, "messages": []}  # stores nothing, but is authenticated
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
        rows = [[name, report.sources[name], _shown(report.config[name])] for name in names]
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
    if report.problem:
        lines.append(f"FAILED, this configuration cannot export: {report.problem}")
    else:
        lines.append("OK: this configuration can export.")
    return "\n".join(lines)


def _shown(value: Any) -> str:
    if value is None:
        return "(not set)"
    return json.dumps(value) if isinstance(value, dict) else str(value)


def _as_json(report: Report) -> dict[str, Any]:
    return {
        "ok": report.problem is None,
        "status": report.status,
        "problem": report.problem,
        "config": report.config,
        "sources": report.sources,
        "transport": report.transport,
        "checks": [dataclasses.asdict(probe) for probe in report.probes],
        "warnings": report.warnings,
    }
