"""The ``aidp`` Airflow connection, parsed and validated into plain, immutable settings.

:class:`AIDPConnectionConfig` is the settings table (``ConnectionSettings`` in
:mod:`airflow_provider_aidp.hooks.settings`, one field per extra) plus what is not an extra: the
connection id and the endpoint. :meth:`~AIDPConnectionConfig.from_fields` reads every extra by its
row of that table, then checks what spans several settings. Everything is checked here, before
any request is sent, so a mistake fails with a message that names the field and the fix instead of
an HTTP 401/404 later.
This module is also the ONE place that builds API URLs (:meth:`AIDPConnectionConfig.url`).
It imports neither ``oci`` nor ``aiohttp``.
"""

from __future__ import annotations

import math
import os
import string
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from airflow_provider_aidp import compat
from airflow_provider_aidp.exceptions import AIDPConfigError
from airflow_provider_aidp.hooks.endpoint import resolve_endpoint
from airflow_provider_aidp.hooks.settings import (
    AUTH_TYPE_ALIASES,
    BY_NAME,
    DEPENDS_ON_FORMATS,
    INLINE_KEY_FIELDS,
    REMOVED_NAMES,
    REMOVED_PREFIX,
    SECRET_FIELDS,
    SETTINGS,
    SURFACES,
    ConnectionSettings,
    Setting,
)
from airflow_provider_aidp.models.runs import param_text

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

CONN_TYPE = "aidp"
DEFAULT_CONN_ID = "aidp_default"
DEFAULT_MAX_REQUESTS_PER_SECOND = float(BY_NAME["max_requests_per_second"].default or 0)

CONSOLE_PLACEHOLDERS = frozenset(
    {"region", "ai_data_platform_id", "workspace_key", "job_key", "run_key", "endpoint"}
)


def quote_segment(value: str) -> str:
    """Percent-encode one path segment: ``/``, ``?``, ``#``, ``%`` and ``..`` stay inside it."""
    encoded = quote(value, safe="")
    # "." and ".." are dot-segments that URL normalisers collapse; encode them so they cannot.
    if encoded in (".", ".."):
        encoded = encoded.replace(".", "%2E")
    return encoded


def _meant(key: str) -> str:
    """The setting an extra's key stands for: itself, or the name a removed spelling meant."""
    name = key.removeprefix(REMOVED_PREFIX)
    return REMOVED_NAMES.get(name, name)


def _mask_given_secrets(extra: Mapping[str, Any]) -> None:
    """Register every secret value in ``extra`` before anything can fail, under a removed spelling
    too: a validation error must not be the first place a value appears."""
    for key, value in extra.items():
        if isinstance(value, str) and _meant(key) in SECRET_FIELDS:
            compat.mask_secret(value)


def _refuse_removed_names(extra: Mapping[str, Any]) -> None:
    """An extra under a name no release read fails, naming the name to use (never its value)."""
    for key, value in extra.items():
        name = _meant(key)
        if name == key or value in (None, ""):
            continue
        if name not in BY_NAME:
            fix = "remove it: it is not a setting of this connection (see docs/connection.md)"
        elif extra.get(name) not in (None, ""):
            fix = f"remove it, '{name}' is set"
        else:
            fix = f"rename it to '{name}'"
        if key.startswith(REMOVED_PREFIX):
            fix += f" (extras are stored under their plain names, without '{REMOVED_PREFIX}')"
        raise AIDPConfigError(f"Connection extra '{key}' is not read: {fix}.", field=key)


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


def parse_setting(setting: Setting, raw: Any) -> Any:
    """One extra, read by its row: a number, one of its choices, or a string (stripped, unless a
    secret); empty gives the row's default, or an error if the setting is required."""
    if setting.kind != "string":
        return parse_number(setting, raw)
    if isinstance(raw, bool) and setting.choices:
        raw = "on" if raw else "off"  # a JSON boolean for an on/off switch
    value = None if raw is None else str(raw) if setting.secret else str(raw).strip()
    if not value:
        if setting.required:
            raise AIDPConfigError(
                f"Connection extra '{setting.name}' is required: {setting.description}",
                field=setting.name,
            )
        return setting.default
    if not setting.choices:
        return value
    choice = value.lower()
    choice = AUTH_TYPE_ALIASES.get(choice, choice)  # other spellings of an auth type (OCI CLI's)
    if choice not in setting.choices:
        raise AIDPConfigError(
            f"Connection extra '{setting.name}' must be one of {list(setting.choices)} "
            f"({setting.help}), got {value!r}.",
            field=setting.name,
        )
    return choice


def _check_ocid(value: str, name: str) -> None:
    if not value.startswith("ocid1."):
        raise AIDPConfigError(
            f"Connection extra '{name}' must be an OCID starting with 'ocid1.', got {value!r}. "
            "Copy it from the OCI console.",
            field=name,
        )


@dataclass(frozen=True, kw_only=True)
class AIDPConnectionConfig(ConnectionSettings):
    """Validated settings of one ``aidp`` connection: every extra (inherited, one field per row of
    the settings table) plus the connection id and the resolved endpoint. Secrets are kept out of
    ``repr``. Build it with :meth:`from_connection` or :meth:`from_fields`."""

    conn_id: str
    endpoint: str

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
        return [value for name in SECRET_FIELDS if (value := getattr(self, name))]

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
        extra = extra or {}
        if register_secrets:
            _mask_given_secrets(extra)  # first: no error below may be the first place a value appears
        _refuse_removed_names(extra)
        values = {s.name: parse_setting(s, extra.get(s.name)) for s in SETTINGS}
        # What spans several settings:
        endpoint = resolve_endpoint(host, schema, port, values["region"], values["api_version"])
        _check_ocid(values["ai_data_platform_id"], "ai_data_platform_id")
        _check_auth_fields(values["auth_type"], {name: values[name] for name in INLINE_KEY_FIELDS})
        values["private_key"] = _normalise_pem(values["private_key"])
        if values["depends_on_format"] is None:  # follows the API version
            values["depends_on_format"] = DEPENDS_ON_FORMATS[values["api_version"]]
        _check_template(values["console_url_template"])
        values["ca_bundle"] = _ca_bundle(values["ca_bundle"])
        config = cls(conn_id=conn_id, endpoint=endpoint, **values)
        if register_secrets:
            config.register_secrets()
        return config


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
