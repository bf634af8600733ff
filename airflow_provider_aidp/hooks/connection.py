"""The ``aidp`` Airflow connection, parsed and validated into plain, immutable settings.

Everything a hook needs from a connection is checked here, before any request is sent, so a
mistake fails with a message that names the field and the fix instead of an HTTP 401/404 later.
This module is also the ONE place that builds API URLs (:meth:`AIDPConnectionConfig.url`).
It imports neither ``oci`` nor ``aiohttp``.
"""

from __future__ import annotations

import logging
import math
import os
import string
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from airflow_provider_aidp import compat
from airflow_provider_aidp.exceptions import AIDPConfigError
from airflow_provider_aidp.hooks.endpoint import resolve_endpoint
from airflow_provider_aidp.hooks.settings import (
    ALIASES,
    AUTH_TYPE_ALIASES,
    BY_NAME,
    DEFAULT_API_VERSION,
    DEFAULT_CONSOLE_URL_TEMPLATE,
    DEPENDS_ON_FORMATS,
    INLINE_KEY_FIELDS,
    SECRET_FIELDS,
    SURFACES,
    Setting,
)
from airflow_provider_aidp.models.runs import param_text

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

log = logging.getLogger(__name__)

CONN_TYPE = "aidp"
DEFAULT_CONN_ID = "aidp_default"

DEFAULT_CONFIG_FILE = str(BY_NAME["config_file"].default)
DEFAULT_PROFILE = str(BY_NAME["profile"].default)
DEFAULT_MAX_RETRIES = int(BY_NAME["max_retries"].default or 0)
DEFAULT_RETRY_WAIT_MAX = float(BY_NAME["retry_wait_max"].default or 0)
DEFAULT_TIMEOUT = float(BY_NAME["timeout"].default or 0)
DEFAULT_MAX_REQUESTS_PER_SECOND = float(BY_NAME["max_requests_per_second"].default or 0)

CONSOLE_PLACEHOLDERS = frozenset(
    {"region", "ai_data_platform_id", "workspace_key", "job_key", "run_key", "endpoint"}
)

#: Deprecated names already warned about in this process (warn once per name).
_WARNED_ALIASES: set[str] = set()


def quote_segment(value: str) -> str:
    """Percent-encode one path segment: ``/``, ``?``, ``#``, ``%`` and ``..`` stay inside it."""
    encoded = quote(value, safe="")
    # "." and ".." are dot-segments that URL normalisers collapse; encode them so they cannot.
    if encoded in (".", ".."):
        encoded = encoded.replace(".", "%2E")
    return encoded


def _raw(extra: Mapping[str, Any], name: str) -> Any:
    """An extra by its plain name or the legacy ``extra__aidp__<name>`` form the UI once wrote."""
    value = extra.get(name)
    if value in (None, ""):
        value = extra.get(f"extra__{CONN_TYPE}__{name}")
    return value


def _extra_getter(extra: Mapping[str, Any]) -> Any:
    """Read a setting by its name, else by a deprecated alias (warned once per process)."""

    def get(name: str) -> Any:
        value = _raw(extra, name)
        if value in (None, ""):
            for alias in BY_NAME[name].aliases:
                value = _raw(extra, alias)
                if value not in (None, ""):
                    _warn_alias(alias)
                    break
        if isinstance(value, str):
            value = value.strip() if name not in SECRET_FIELDS else value
            if value == "":
                return None
        return value

    return get


def _warn_alias(alias: str) -> None:
    if alias not in _WARNED_ALIASES:
        _WARNED_ALIASES.add(alias)
        log.warning(
            "Connection extra %r is deprecated; rename it to %r (same meaning).", alias, ALIASES[alias]
        )


def parse_number(setting: Setting, raw: Any) -> Any:
    """Parse a numeric setting; ``None`` gives its default. Booleans, NaN and infinity are refused."""
    integer = setting.kind == "integer"
    if raw is None or raw == "":
        default = setting.default or 0
        return int(default) if integer else float(default)
    try:
        value = math.nan if isinstance(raw, bool) else (int(raw) if integer else float(raw))
    except (TypeError, ValueError):
        value = math.nan
    low_ok = value >= 0 if setting.allow_zero else value > 0
    if not (low_ok and value < math.inf):
        kind = "a whole number" if integer else "a number"
        bound = "0 or more" if setting.allow_zero else "greater than 0"
        raise AIDPConfigError(
            f"Connection extra '{setting.name}' must be {kind}, {bound} ({setting.help}), got {raw!r}.",
            field=setting.name,
        )
    return value


def _choice(name: str, value: Any) -> str:
    """A setting with fixed choices: the value, or an error listing the choices and their meaning."""
    setting = BY_NAME[name]
    value = str(value)
    if value not in setting.choices:
        raise AIDPConfigError(
            f"Connection extra '{name}' must be one of {list(setting.choices)} ({setting.help}), "
            f"got {value!r}.",
            field=name,
        )
    return value


def _check_ocid(value: str, name: str) -> None:
    if not value.startswith("ocid1."):
        raise AIDPConfigError(
            f"Connection extra '{name}' must be an OCID starting with 'ocid1.', got {value!r}. "
            "Copy it from the OCI console.",
            field=name,
        )


@dataclass(frozen=True)
class AIDPConnectionConfig:
    """Validated settings of one ``aidp`` connection. Secrets are kept out of ``repr``."""

    conn_id: str
    endpoint: str
    ai_data_platform_id: str
    region: str | None = None
    workspace_key: str | None = None
    api_version: str = DEFAULT_API_VERSION
    auth_type: str = "api_key"
    config_file: str = DEFAULT_CONFIG_FILE
    profile: str = DEFAULT_PROFILE
    tenancy: str | None = None
    user: str | None = None
    fingerprint: str | None = None
    private_key: str | None = field(default=None, repr=False)
    key_file: str | None = None
    passphrase: str | None = field(default=None, repr=False)
    max_retries: int = DEFAULT_MAX_RETRIES
    retry_wait_max: float = DEFAULT_RETRY_WAIT_MAX
    timeout: float = DEFAULT_TIMEOUT
    max_requests_per_second: float = DEFAULT_MAX_REQUESTS_PER_SECOND
    console_url_template: str = DEFAULT_CONSOLE_URL_TEMPLATE
    depends_on_format: str = "objects"
    status_sweep: str = "on"  # "on": triggers share one listing per cycle (triggers/sweep.py)
    ca_bundle: str | None = None  # PEM file of CAs to trust instead of the system's (not a secret)

    # --- derived --------------------------------------------------------------------------

    @property
    def surface(self) -> str:
        """``aiDataPlatforms`` (GA, 20260430) or ``dataLakes`` (LA, 20240831)."""
        return SURFACES[self.api_version]

    @property
    def uses_inline_key(self) -> bool:
        return self.auth_type == "api_key" and bool(self.private_key or self.key_file)

    def workspace_base_url(self, workspace_key: str) -> str:
        """``{endpoint}/{api_version}/{surface}/{id}/workspaces/{ws}`` with every key percent-encoded."""
        if not workspace_key:
            raise AIDPConfigError(
                "No workspace: set the connection extra 'workspace_key' or pass workspace_key.",
                field="workspace_key",
            )
        return (
            f"{self.endpoint}/{self.api_version}/{self.surface}/{quote_segment(self.ai_data_platform_id)}"
            f"/workspaces/{quote_segment(workspace_key)}"
        )

    def url(
        self,
        workspace_key: str,
        *segments: str,
        query: Sequence[tuple[str, Any]] | None = None,
    ) -> str:
        """The ONE URL builder: workspace base + percent-encoded resource segments + query string.

        ``segments`` are literal path parts (``"jobRuns"``, a run key, ``"actions"``...); each is
        encoded as a single segment, so a hostile key cannot leave its segment. An empty or missing
        key is refused: ``/jobRuns/`` would address the collection, not the run.
        """
        if any(s is None or str(s) == "" for s in segments):
            raise AIDPConfigError(
                "A key in the request path is empty or None: pass the job, run or task-run key "
                "(the opaque string AIDP returned, e.g. from XCom 'run_key').",
                field="key",
            )
        path = "/".join(quote_segment(str(s)) for s in segments)
        url = (
            f"{self.workspace_base_url(workspace_key)}/{path}"
            if path
            else self.workspace_base_url(workspace_key)
        )
        items = [(k, v) for k, v in (query or ()) if v is not None]
        if items:
            url += "?" + urlencode([(k, param_text(v)) for k, v in items], quote_via=quote)
        return url

    def console_url(self, *, workspace_key: str | None, run_key: str, job_key: str | None) -> str:
        return self.console_url_template.format(
            region=self.region or "",
            ai_data_platform_id=self.ai_data_platform_id,
            workspace_key=quote_segment(workspace_key or self.workspace_key or ""),
            job_key=quote_segment(job_key or ""),
            run_key=quote_segment(run_key),
            endpoint=self.endpoint,
        )

    def secret_values(self) -> list[str]:
        return [v for v in (self.private_key, self.passphrase) if v]

    def register_secrets(self) -> None:
        """Tell Airflow's secrets masker about every secret value held by this config."""
        for value in self.secret_values():
            compat.mask_secret(value)

    async def aregister_secrets(self) -> None:
        """Async form for event loops (the triggerer): uses ``amask_secret``, never a blocking send."""
        for value in self.secret_values():
            await compat.amask_secret(value)

    # --- construction ---------------------------------------------------------------------

    @classmethod
    def from_connection(cls, conn: Any, *, register_secrets: bool = True) -> AIDPConnectionConfig:
        """Build from an Airflow ``Connection`` (or anything with ``conn_id``/``host``/``extra_dejson``)."""
        extra = getattr(conn, "extra_dejson", None) or {}
        if not isinstance(extra, dict):
            raise AIDPConfigError("Connection extra must be a JSON object.", field="extra")
        return cls.from_fields(
            conn_id=getattr(conn, "conn_id", None) or DEFAULT_CONN_ID,
            host=getattr(conn, "host", None),
            schema=getattr(conn, "schema", None),
            port=getattr(conn, "port", None),
            extra=extra,
            register_secrets=register_secrets,
        )

    @classmethod
    def from_fields(
        cls,
        *,
        conn_id: str = DEFAULT_CONN_ID,
        host: str | None = None,
        schema: str | None = None,
        port: int | None = None,
        extra: Mapping[str, Any] | None = None,
        register_secrets: bool = True,
    ) -> AIDPConnectionConfig:
        """Validate and build. ``register_secrets=False`` leaves masking to the caller (async code
        calls :meth:`aregister_secrets`); validation messages never contain secret values anyway."""
        get = _extra_getter(extra or {})
        if register_secrets:
            # First: a validation error below must not be the first place the values appear.
            for name in SECRET_FIELDS:
                value = _raw(extra or {}, name)
                if isinstance(value, str):
                    compat.mask_secret(value)

        api_version = _choice("api_version", get("api_version") or DEFAULT_API_VERSION)
        region = get("region")
        endpoint = resolve_endpoint(host, schema, port, region, api_version)

        ai_data_platform_id = get("ai_data_platform_id")
        if not ai_data_platform_id:
            raise AIDPConfigError(
                "Connection extra 'ai_data_platform_id' is required: the OCID of the AI Data Platform "
                "instance (ocid1.aidataplatform...).",
                field="ai_data_platform_id",
            )
        _check_ocid(str(ai_data_platform_id), "ai_data_platform_id")

        auth_type = str(get("auth_type") or BY_NAME["auth_type"].default).lower()
        auth_type = _choice("auth_type", AUTH_TYPE_ALIASES.get(auth_type, auth_type))
        inline = {name: get(name) for name in INLINE_KEY_FIELDS}
        _check_auth_fields(auth_type, inline)

        depends_on_format = _choice(
            "depends_on_format", get("depends_on_format") or DEPENDS_ON_FORMATS[api_version]
        )
        template = str(get("console_url_template") or DEFAULT_CONSOLE_URL_TEMPLATE)
        _check_template(template)

        config = cls(
            conn_id=conn_id,
            endpoint=endpoint,
            ai_data_platform_id=str(ai_data_platform_id),
            region=region,
            workspace_key=get("workspace_key"),
            api_version=api_version,
            auth_type=auth_type,
            config_file=str(get("config_file") or DEFAULT_CONFIG_FILE),
            profile=str(get("profile") or DEFAULT_PROFILE),
            tenancy=inline["tenancy"],
            user=inline["user"],
            fingerprint=inline["fingerprint"],
            private_key=_normalise_pem(inline["private_key"]),
            key_file=inline["key_file"],
            passphrase=inline["passphrase"],
            max_retries=parse_number(BY_NAME["max_retries"], get("max_retries")),
            retry_wait_max=parse_number(BY_NAME["retry_wait_max"], get("retry_wait_max")),
            timeout=parse_number(BY_NAME["timeout"], get("timeout")),
            max_requests_per_second=parse_number(
                BY_NAME["max_requests_per_second"], get("max_requests_per_second")
            ),
            console_url_template=template,
            depends_on_format=depends_on_format,
            status_sweep=_switch("status_sweep", get("status_sweep")),
            ca_bundle=_ca_bundle(get("ca_bundle")),
        )
        if register_secrets:
            config.register_secrets()
        return config


def _switch(name: str, value: Any) -> str:
    """An ``on``/``off`` setting (JSON booleans read as on/off); absent -> the table's default."""
    if isinstance(value, bool):
        value = "on" if value else "off"
    return _choice(name, BY_NAME[name].default if value in (None, "") else str(value).strip().lower())


def _normalise_pem(value: str | None) -> str | None:
    """Accept a PEM pasted into a one-line field with literal ``\\n`` sequences."""
    if value and "\\n" in value and "\n" not in value:
        value = value.replace("\\n", "\n")
    return value


def _check_auth_fields(auth_type: str, inline: Mapping[str, Any]) -> None:
    given = [name for name, value in inline.items() if value]
    if auth_type != "api_key":
        if given:
            raise AIDPConfigError(
                f"Connection extras {given} only apply to auth_type 'api_key' (inline key), but auth_type "
                f"is {auth_type!r}; remove them or change auth_type.",
                field=given[0],
            )
        return
    if not given:
        return  # config file + profile
    if inline["private_key"] and inline["key_file"]:
        raise AIDPConfigError(
            "Connection extras 'private_key' and 'key_file' are both set; keep only one.",
            field="key_file",
        )
    if not (inline["private_key"] or inline["key_file"]):
        raise AIDPConfigError(
            f"An inline API key needs 'private_key' (PEM content) or 'key_file'; only {given} are set.",
            field="private_key",
        )
    for name in ("tenancy", "user", "fingerprint"):
        if not inline[name]:
            raise AIDPConfigError(
                f"Connection extra '{name}' is required with an inline API key "
                "(tenancy, user, fingerprint and private_key or key_file); "
                "or remove the inline fields to use config_file/profile.",
                field=name,
            )
    _check_ocid(str(inline["tenancy"]), "tenancy")
    _check_ocid(str(inline["user"]), "user")
    fingerprint = str(inline["fingerprint"])
    if len(fingerprint.split(":")) != 16:
        raise AIDPConfigError(
            "Connection extra 'fingerprint' must be the key's fingerprint, 16 hex pairs separated by ':'.",
            field="fingerprint",
        )
    pem = inline["private_key"]
    if pem and "PRIVATE KEY" not in str(pem):
        raise AIDPConfigError(
            "Connection extra 'private_key' must be the PEM content of the key "
            "('-----BEGIN ... PRIVATE KEY-----'); for a path use 'key_file'.",
            field="private_key",
        )


def _check_template(template: str) -> None:
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise AIDPConfigError(
            f"Connection extra 'console_url_template' is not a valid template: {exc}.",
            field="console_url_template",
        ) from None
    unknown = names - CONSOLE_PLACEHOLDERS
    if unknown:
        raise AIDPConfigError(
            f"Connection extra 'console_url_template' uses unknown placeholders {sorted(unknown)}; "
            f"allowed: {sorted(CONSOLE_PLACEHOLDERS)}.",
            field="console_url_template",
        )


def _ca_bundle(value: Any) -> str | None:
    """The ``ca_bundle`` extra: an existing PEM file or ``c_rehash`` directory of trusted CAs."""
    if value in (None, ""):
        return None
    path = os.path.expanduser(str(value))
    if not os.path.exists(path):
        raise AIDPConfigError(
            f"Connection extra 'ca_bundle' names {path!r}, which does not exist: give the path of a PEM "
            "file of CA certificates readable by the worker and triggerer (or remove it to trust the "
            "system's CAs).",
            field="ca_bundle",
        )
    return path
