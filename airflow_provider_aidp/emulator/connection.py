"""Airflow ``aidp`` connection settings that point at an emulator (extra dict, URI, JSON)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlencode

from .credentials import ApiKeyCredentials
from .tenancy import DEFAULT_PLATFORM_ID, DEFAULT_WORKSPACE

DEFAULT_REGION = "us-ashburn-1"
CONSOLE_TEMPLATE = "{endpoint}/_emulator/console/jobs/{job_key}/runs/{run_key}"


def connection_extra(
    url: str,
    creds: ApiKeyCredentials | None,
    *,
    api_version: str = "20260430",
    workspace_key: str = DEFAULT_WORKSPACE,
    ai_data_platform_id: str = DEFAULT_PLATFORM_ID,
    region: str = DEFAULT_REGION,
    private_key_file: str | None = None,
) -> dict[str, Any]:
    """The ``extra`` of an ``aidp`` connection; with ``private_key_file`` no key content is included."""
    extra: dict[str, Any] = {
        "region": region,
        "ai_data_platform_id": ai_data_platform_id,
        "workspace_key": workspace_key,
        "api_version": api_version,
        "auth_type": "api_key",
        "console_url_template": CONSOLE_TEMPLATE.replace("{endpoint}", url),
    }
    if creds is not None:
        extra.update(tenancy=creds.tenancy, user=creds.user, fingerprint=creds.fingerprint)
        if private_key_file:
            extra["key_file"] = private_key_file
        else:
            extra["private_key"] = creds.private_key_pem
        if creds.pass_phrase:
            extra["passphrase"] = creds.pass_phrase
    return extra


def connection_json(url: str, extra: dict[str, Any]) -> str:
    """JSON for ``AIRFLOW_CONN_<ID>``: ``{"conn_type": "aidp", "host": url, "extra": {...}}``."""
    return json.dumps({"conn_type": "aidp", "host": url, "extra": extra})


def connection_uri(url: str, extra: dict[str, Any]) -> str:
    """Airflow URI form, ``aidp://http://127.0.0.1%3APORT/?k=v...`` (host keeps its scheme)."""
    scheme, _, rest = url.partition("://")
    return f"aidp://{scheme}://{quote(rest, safe='')}/?{urlencode(extra)}"
