"""Diagnose an ``aidp`` connection: the checks behind the UI's Test button and ``doctor``.

A connection test must answer fast and say what is wrong. The hook's transport retries for
minutes by design (a run must survive a blip); here every request is ONE attempt with a short
timeout, and each failure is named: bad setting, no credentials, DNS, refused, TLS, timeout,
401 (which key), 403 (policy), 404 (instance, workspace or API surface - the other surface is
probed, so a wrong ``api_version`` is named as such).

Checks run in order and stop at the first failure; each message names the host it talked to.
Messages are built from field names, the host, HTTP statuses and the service's error text, never
from secret values.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_aidp.exceptions import AIDPApiError, AIDPConfigError
from airflow_provider_aidp.hooks.connection import AIDPConnectionConfig
from airflow_provider_aidp.hooks.settings import SURFACES

#: (connect, read) seconds of each probe: an unreachable host is reported within a few seconds.
PROBE_TIMEOUT = (3.0, 5.0)
#: How long a DNS lookup may take before it is reported as hanging.
DNS_TIMEOUT = 2.0


@dataclass(frozen=True)
class Check:
    """One step of the diagnosis: its name, whether it passed and what it found."""

    name: str
    ok: bool
    message: str

    def line(self) -> str:
        return f"{'✔' if self.ok else '✘'} {self.name}: {self.message}"


def summary(checks: list[Check]) -> tuple[bool, str]:
    """``(status, message)`` for Airflow's Test: the first failure, else the last success."""
    failed = [c for c in checks if not c.ok]
    return (False, failed[0].message) if failed else (True, checks[-1].message)


def diagnose(conn: Any, workspace_key: str | None = None) -> list[Check]:
    """Run every check on an Airflow connection; stop at the first failure."""
    checks: list[Check] = []
    try:
        config = AIDPConnectionConfig.from_connection(conn)
    except AIDPConfigError as exc:
        return [Check("settings", False, str(exc))]
    checks.append(Check("settings", True, _settings_text(config)))
    workspace = workspace_key or config.workspace_key
    if not workspace:
        checks.append(Check("workspace", False, "No workspace: set the connection extra 'workspace_key'."))
        return checks
    for step in (_credentials, _dns, _api):
        check = step(config, workspace)
        checks.append(check)
        if not check.ok:
            break
    return checks


def _settings_text(config: AIDPConnectionConfig) -> str:
    return (
        f"endpoint {config.endpoint}, api_version {config.api_version} (/{config.surface}/), "
        f"auth_type {config.auth_type}"
    )


def _credentials(config: AIDPConnectionConfig, workspace: str) -> Check:
    from airflow_provider_aidp.hooks import auth

    try:
        auth.get_signer(config)
    except AIDPConfigError as exc:
        return Check("credentials", False, str(exc))
    return Check("credentials", True, f"{config.auth_type} signer ready{_key_text(config)}")


def _key_text(config: AIDPConnectionConfig) -> str:
    if config.auth_type != "api_key":
        return ""
    if config.uses_inline_key:
        return f" (key fingerprint {config.fingerprint}, user {config.user})"
    return f" (profile [{config.profile}] of {config.config_file})"


def _host(config: AIDPConnectionConfig) -> tuple[str, int]:
    parts = urlsplit(config.endpoint)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


def _dns(config: AIDPConnectionConfig, workspace: str) -> Check:
    host, port = _host(config)
    result: list[Any] = []

    def lookup() -> None:
        try:
            result.append(socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP))
        except OSError as exc:
            result.append(exc)

    thread = threading.Thread(target=lookup, daemon=True, name="aidp-dns-check")
    thread.start()
    thread.join(DNS_TIMEOUT)
    if not result:
        return Check("DNS", False, f"DNS lookup of {host} did not answer within {DNS_TIMEOUT:g} s.")
    if isinstance(result[0], OSError):
        return Check(
            "DNS",
            False,
            f"DNS: cannot resolve {host} ({result[0]}). Check the region (or the Endpoint override) "
            "and the worker's DNS / proxy settings.",
        )
    addresses = sorted({info[4][0] for info in result[0]})
    return Check("DNS", True, f"{host} resolves to {', '.join(addresses[:3])}")


def _api(config: AIDPConnectionConfig, workspace: str) -> Check:
    host, _ = _host(config)
    try:
        _probe(config, workspace, config.api_version)
    except _Unreachable as exc:
        return Check("connect", False, str(exc))
    except AIDPApiError as exc:
        return Check("API", False, _explain(config, workspace, exc))
    return Check(
        "API",
        True,
        f"Connected to {host} ({config.surface}, api_version {config.api_version}): instance "
        f"{config.ai_data_platform_id}, workspace {workspace!r} answered and accepted the signature.",
    )


class _Unreachable(Exception):
    """The request got no HTTP answer (DNS, refused, TLS, timeout...)."""


def _probe(config: AIDPConnectionConfig, workspace: str, api_version: str) -> None:
    """One signed ``GET .../jobs?limit=1`` on ``api_version``'s surface; no retry."""
    import requests

    from airflow_provider_aidp.hooks import auth
    from airflow_provider_aidp.hooks.transport import Call, parse_response, plan_request, prepare_sync

    target = config if api_version == config.api_version else _on_version(config, api_version)
    plan = plan_request(target, workspace, Call("GET", ("jobs",), query=(("limit", 1),)))
    url, request_id = plan.url, plan.request_id
    prepared = prepare_sync(auth.get_signer(config), plan)
    with requests.Session() as session:
        settings = session.merge_environment_settings(url, {}, None, config.ca_bundle or None, None)
        try:
            resp = session.send(prepared, timeout=PROBE_TIMEOUT, allow_redirects=False, **settings)
        except requests.RequestException as exc:
            raise _Unreachable(_failure_kind(_host(config)[0], exc)) from None
    parse_response(
        status=resp.status_code,
        headers=resp.headers,
        raw=resp.content,
        method="GET",
        path=urlsplit(url).path,
        request_id=request_id,
        expect_json=True,
        config=None,
    )


def _on_version(config: AIDPConnectionConfig, api_version: str) -> AIDPConnectionConfig:
    import dataclasses

    return dataclasses.replace(config, api_version=api_version)


def _failure_kind(host: str, exc: Exception) -> str:
    """Name what went wrong on the way to ``host`` from a ``requests`` exception chain."""
    import requests

    chain = _chain(exc)
    text = " ".join(str(e) for e in chain).lower()
    if isinstance(exc, requests.exceptions.SSLError) or "certificate" in text or "ssl" in text:
        return (
            f"TLS handshake with {host} failed ({_last(chain)}). If the endpoint uses a private CA or a "
            "self-signed certificate, set the connection extra 'ca_bundle' to its CA file."
        )
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return (
            f"Timed out connecting to {host} after {PROBE_TIMEOUT[0]:g} s: a firewall, proxy or wrong host."
        )
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return f"{host} accepted the connection but sent no answer within {PROBE_TIMEOUT[1]:g} s."
    if any(isinstance(e, socket.gaierror) for e in chain) or "name or service not known" in text:
        return f"DNS: cannot resolve {host}. Check the region or the Endpoint override."
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "refused" in text:
        return f"Connection to {host} refused: nothing listens on that port (wrong host or port?)."
    return f"Cannot reach {host}: {type(_last(chain)).__name__} ({_last(chain)})."


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or e in seen:
            continue
        seen.append(e)
        todo.extend([e.__cause__, e.__context__, *[a for a in e.args if isinstance(a, BaseException)]])
        reason = getattr(e, "reason", None)
        if isinstance(reason, BaseException):
            todo.append(reason)
    return seen


def _last(chain: list[BaseException]) -> BaseException:
    return chain[-1]


def _explain(config: AIDPConnectionConfig, workspace: str, exc: AIDPApiError) -> str:
    host, _ = _host(config)
    said = f"{exc.status} from {host}" + (f" [{exc.code}]" if exc.code else "") + f": {exc.message}"
    if exc.status == 401:
        return f"Authentication failed ({said}). {_auth_fix(config)}"
    if exc.status == 403:
        return (
            f"Not authorized ({said}). The signature was accepted but an IAM policy does not allow "
            "this user / principal to use AI Data Platform workflows in that instance."
        )
    if exc.status == 404:
        return _explain_404(config, workspace, said, exc)
    return f"The service answered {said}."


def _auth_fix(config: AIDPConnectionConfig) -> str:
    if config.auth_type == "security_token":
        return f"The session token was refused: run `oci session refresh --profile {config.profile}`."
    if config.auth_type != "api_key":
        return f"The {config.auth_type} credentials were refused; check the dynamic group and its policy."
    if config.uses_inline_key:
        return (
            f"The service does not accept key fingerprint {config.fingerprint} for user {config.user} "
            f"in tenancy {config.tenancy}: upload this key's public half to that user, or fix "
            "'fingerprint', 'user', 'tenancy' or the private key."
        )
    return (
        f"The key of profile [{config.profile}] in {config.config_file} was refused: check its "
        "fingerprint, user and tenancy, and that the public key is uploaded to that user."
    )


def _explain_404(config: AIDPConnectionConfig, workspace: str, said: str, exc: AIDPApiError) -> str:
    for other in SURFACES:
        if other == config.api_version:
            continue
        try:
            _probe(config, workspace, other)
        except Exception:  # best effort: any failure means "not there either"
            continue
        return (
            f"Not found ({said}) on api_version={config.api_version} (/{config.surface}/), but this "
            f"instance answers on api_version={other} (/{SURFACES[other]}/): set the connection extra "
            f"'api_version' to {other}."
        )
    text = f"{exc.code or ''} {exc.message}".lower()
    if "workspace" in text:
        return (
            f"Workspace {workspace!r} was not found ({said}). Check 'workspace_key' (the workspace's "
            "key, not its display name)."
        )
    if "instance" in text or "aidataplatform" in text or "datalake" in text:
        return (
            f"AI Data Platform instance {config.ai_data_platform_id} was not found ({said}). Check "
            "'ai_data_platform_id' and the region."
        )
    return (
        f"Not found ({said}) on every API version: the instance OCID "
        f"{config.ai_data_platform_id}, the workspace {workspace!r}, or the permission to see them "
        "is wrong (OCI answers 404 for all three). Check 'ai_data_platform_id' and 'workspace_key'."
    )
