"""The connection's ``ca_bundle`` extra: validated before any request, used by both transports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_provider_aidp.exceptions import AIDPConfigError
from airflow_provider_aidp.hooks.connection import AIDPConnectionConfig

EXTRA = {
    "region": "us-ashburn-1",
    "ai_data_platform_id": "ocid1.aidataplatform.oc1.iad.x",
    "workspace_key": "w",
}


def config(**extra: Any) -> AIDPConnectionConfig:
    return AIDPConnectionConfig.from_fields(extra={**EXTRA, **extra})


def test_missing_ca_bundle_file_fails_naming_the_field(tmp_path: Path) -> None:
    with pytest.raises(AIDPConfigError, match=r"'ca_bundle'.*does not exist") as err:
        config(ca_bundle=str(tmp_path / "nope.pem"))
    assert err.value.field == "ca_bundle"


def test_ca_bundle_is_kept_and_defaults_to_none(tmp_path: Path) -> None:
    pem = tmp_path / "ca.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\n")
    assert config(ca_bundle=str(pem)).ca_bundle == str(pem)
    assert config().ca_bundle is None and config(ca_bundle="").ca_bundle is None


def test_async_transport_trusts_the_bundle_before_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_aidp.emulator.tls import self_signed_certificate
    from airflow_provider_aidp.hooks.transport import ssl_context

    cert_pem, _ = self_signed_certificate(["bundle.test"])
    bundle = tmp_path / "ca.pem"
    bundle.write_text(cert_pem)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    assert ssl_context(None) is True  # aiohttp's default (system CAs)
    context = ssl_context(str(bundle))
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "bundle.test"),),)]
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))  # the sync path's variable, honoured too
    assert len(ssl_context(None).get_ca_certs()) == 1
