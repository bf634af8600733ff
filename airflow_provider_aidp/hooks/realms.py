"""Region -> realm -> domain, read from the ``oci`` package's own region tables.

OCI has many realms (commercial ``oc1`` = ``oraclecloud.com``, US government ``oc2``/``oc3``,
UK government ``oc4`` = ``oraclegovcloud.uk``, EU sovereign ``oc19`` = ``oraclecloud.eu``...), and
users often write a region by its short code (``iad``, ``fra``). Hard-coding ``oraclecloud.com``
sends every non-commercial tenancy to a host that does not exist.

``oci.regions_definitions`` is a plain data module, but importing it through the ``oci`` package
runs ``oci/__init__`` (about a second: every service client). It is loaded here on its own, from
the installed package's directory, the first time an endpoint is needed; never at import.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import dataclass
from types import ModuleType

from airflow_provider_aidp.exceptions import AIDPConfigError

#: Same variable the ``oci`` SDK reads: domain of regions its tables do not know yet.
DEFAULT_REALM_ENV = "OCI_DEFAULT_REALM"


@dataclass(frozen=True)
class RegionInfo:
    """A region resolved to its full name, realm and second-level domain."""

    region: str
    realm: str
    domain: str

    @property
    def endpoint(self) -> str:
        """The AIDP service endpoint of this region."""
        return f"https://aidp.{self.region}.oci.{self.domain}"


@functools.cache
def _tables() -> ModuleType:
    spec = importlib.util.find_spec("oci")
    if spec is None or not spec.submodule_search_locations:
        raise AIDPConfigError("The 'oci' package is not installed; it is needed to sign requests.")
    path = os.path.join(next(iter(spec.submodule_search_locations)), "regions_definitions.py")
    module_spec = importlib.util.spec_from_file_location("_aidp_oci_regions_definitions", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def resolve_region(region: str) -> RegionInfo:
    """Full region name, realm and domain of ``region`` (a name like ``us-ashburn-1`` or a short code).

    A region the installed ``oci`` does not know yet is assumed to be in the realm given by
    ``OCI_DEFAULT_REALM`` (a domain, as for the SDK), else the commercial realm, as the SDK does.
    An unknown three-letter code is refused: it cannot be a region name.
    """
    tables = _tables()
    name = region.strip().lower()
    if not name or not all(c.isalnum() or c == "-" for c in name):
        raise AIDPConfigError(
            f"Connection extra 'region' must look like 'us-ashburn-1' or a short code like 'iad', "
            f"got {region!r}.",
            field="region",
        )
    name = tables.REGIONS_SHORT_NAMES.get(name, name)
    realm = tables.REGION_REALMS.get(name)
    if realm is not None:
        return RegionInfo(name, realm, tables.REALMS[realm])
    if "-" not in name:
        raise AIDPConfigError(
            f"Connection extra 'region' {region!r} is not a known region or short code; use the region "
            "name (e.g. 'us-ashburn-1') or set the Endpoint override (host).",
            field="region",
        )
    fallback = os.environ.get(DEFAULT_REALM_ENV)
    if fallback:
        return RegionInfo(name, "unknown", fallback)
    return RegionInfo(name, "oc1", tables.REALMS["oc1"])
