"""Where requests go: the default endpoint of a region (its realm's domain), or a user's override.

An override must be a full ``https://`` URL; plain ``http://`` is accepted only for loopback
addresses (the emulator), so a typo can never send signed requests in clear over a network.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from airflow_provider_aidp.exceptions import AIDPConfigError
from airflow_provider_aidp.hooks.realms import resolve_region
from airflow_provider_aidp.hooks.settings import SURFACES


def is_loopback(hostname: str) -> bool:
    if hostname.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def resolve_endpoint(
    host: str | None, schema: str | None, port: int | None, region: str | None, api_version: str
) -> str:
    """Resolve the service endpoint (scheme + host [+ port] [+ path prefix]), without the api version."""
    if not host:
        if not region:
            raise AIDPConfigError(
                "Connection extra 'region' is required when no endpoint override (host) is set, "
                "e.g. 'us-ashburn-1'.",
                field="region",
            )
        return resolve_region(region).endpoint
    host = host.strip()
    if "://" not in host:
        scheme = schema if schema in ("http", "https") else "https"
        host = f"{scheme}://{host}{f':{port}' if port else ''}"
    parts = urlsplit(host)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AIDPConfigError(
            f"Connection host (endpoint override) must be a full https:// URL, got {host!r}.", field="host"
        )
    if parts.query or parts.fragment or parts.username or parts.password:
        raise AIDPConfigError(
            "Connection host (endpoint override) must not carry credentials, a query or a fragment.",
            field="host",
        )
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise AIDPConfigError(
            f"Connection host uses plain http:// for {parts.hostname!r}; use https:// "
            "(http:// is allowed only for loopback addresses such as 127.0.0.1 or localhost).",
            field="host",
        )
    path = parts.path.rstrip("/")
    if path.endswith(f"/{api_version}"):
        path = path[: -len(api_version) - 1]
    elif any(path.endswith(f"/{v}") for v in SURFACES):
        raise AIDPConfigError(
            f"Connection host ends with a different API version than api_version={api_version!r}; "
            "remove the version from the host or change api_version.",
            field="host",
        )
    return f"{parts.scheme}://{parts.netloc}{path}"
