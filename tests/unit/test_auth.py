"""hooks/auth.py: each auth type builds the right signer; keys parsed once; token file reloads."""

from __future__ import annotations

import os
from pathlib import Path
from unittest import mock

import pytest
import requests

from airflow_provider_aidp.exceptions import AIDPConfigError
from airflow_provider_aidp.hooks import auth
from airflow_provider_aidp.hooks.connection import AIDPConnectionConfig
from tests.unit.hook_support import (
    OCID,
    PASS_PHRASE,
    TENANCY,
    USER,
    FakeConnection,
    make_key,
    verify_signature,
)


@pytest.fixture(autouse=True)
def _fresh_cache():
    auth.clear_signer_cache()
    yield
    auth.clear_signer_cache()


def cfg(**extra: object) -> AIDPConnectionConfig:
    base: dict[str, object] = {"ai_data_platform_id": OCID, "region": "us-ashburn-1"}
    base.update(extra)
    return AIDPConnectionConfig.from_connection(FakeConnection(extra=base))


def signed(signer: object, method: str = "GET", body: bytes | None = None) -> requests.PreparedRequest:
    req = requests.Request(
        method, "https://aidp.example.test/a/b?x=1", data=body, headers={"content-type": "application/json"}
    ).prepare()
    signer(req)  # type: ignore[operator]
    return req


def write_config(
    tmp_path: Path, key_pem: str, fingerprint: str, *, extra_lines: str = "", pass_phrase: str | None = None
) -> Path:
    key_file = tmp_path / "key.pem"
    key_file.write_text(key_pem)
    lines = [
        "[DEFAULT]",
        f"tenancy={TENANCY}",
        f"user={USER}",
        f"fingerprint={fingerprint}",
        f"key_file={key_file}",
        "region=us-ashburn-1",
    ]
    if pass_phrase:
        lines.append(f"pass_phrase={pass_phrase}")
    config_file = tmp_path / "config"
    config_file.write_text("\n".join(lines) + "\n" + extra_lines)
    return config_file


def test_inline_key_signer_verifies_with_public_key() -> None:
    key = make_key(PASS_PHRASE)
    signer = auth.get_signer(
        cfg(
            tenancy=TENANCY,
            user=USER,
            fingerprint=key.fingerprint,
            private_key=key.private_pem,
            passphrase=PASS_PHRASE,
        )
    )
    req = signed(signer, "POST", b'{"a":1}')
    params = verify_signature(
        method="POST", path_url=req.path_url, headers=req.headers, body=req.body, public_key=key.public_key
    )
    assert params["keyId"] == f"{TENANCY}/{USER}/{key.fingerprint}"


def test_private_key_file_and_cache_parses_once(tmp_path: Path) -> None:
    key = make_key()
    path = tmp_path / "k.pem"
    path.write_text(key.private_pem)
    config = cfg(tenancy=TENANCY, user=USER, fingerprint=key.fingerprint, key_file=str(path))
    with mock.patch("oci.signer.load_private_key", wraps=__import__("oci").signer.load_private_key) as load:
        first = auth.get_signer(config)
        second = auth.get_signer(
            cfg(tenancy=TENANCY, user=USER, fingerprint=key.fingerprint, key_file=str(path))
        )
    assert first is second
    assert load.call_count == 1
    verify_signature(
        method="GET", path_url="/a/b?x=1", headers=signed(first).headers, body=None, public_key=key.public_key
    )


def test_config_file_profile(tmp_path: Path) -> None:
    key = make_key(PASS_PHRASE)
    config_file = write_config(tmp_path, key.private_pem, key.fingerprint, pass_phrase=PASS_PHRASE)
    signer = auth.get_signer(cfg(config_file=str(config_file)))
    params = verify_signature(
        method="GET",
        path_url="/a/b?x=1",
        headers=signed(signer).headers,
        body=None,
        public_key=key.public_key,
    )
    assert params["keyId"].startswith(TENANCY)


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"config_file": "/nonexistent/oci/config"}, "config_file"),
        ({"profile": "NOPE"}, "profile"),
    ],
)
def test_config_file_errors_name_the_field(tmp_path: Path, extra: dict, field: str) -> None:
    key = make_key()
    config_file = write_config(tmp_path, key.private_pem, key.fingerprint)
    extra.setdefault("config_file", str(config_file))
    with pytest.raises(AIDPConfigError) as err:
        auth.get_signer(cfg(**extra))
    assert err.value.field == field


def test_wrong_pass_phrase_and_missing_pass_phrase() -> None:
    key = make_key(PASS_PHRASE)
    base = {"tenancy": TENANCY, "user": USER, "fingerprint": key.fingerprint, "private_key": key.private_pem}
    with pytest.raises(AIDPConfigError) as err:
        auth.get_signer(cfg(**base))
    assert err.value.field == "passphrase"
    with pytest.raises(AIDPConfigError) as err:
        auth.get_signer(cfg(**base, passphrase="wrong-" + PASS_PHRASE))
    assert err.value.field == "private_key"
    assert PASS_PHRASE not in str(err.value) and key.private_pem.splitlines()[1] not in str(err.value)


def test_missing_key_file(tmp_path: Path) -> None:
    key = make_key()
    with pytest.raises(AIDPConfigError) as err:
        auth.get_signer(
            cfg(
                tenancy=TENANCY,
                user=USER,
                fingerprint=key.fingerprint,
                key_file=str(tmp_path / "missing.pem"),
            )
        )
    assert err.value.field == "key_file"


def test_security_token_signer_reloads_on_mtime_change(tmp_path: Path) -> None:
    key = make_key()
    token_file = tmp_path / "token"
    token_file.write_text("token-one")
    config_file = write_config(
        tmp_path, key.private_pem, key.fingerprint, extra_lines=f"security_token_file={token_file}\n"
    )
    signer = auth.get_signer(cfg(auth_type="security_token", config_file=str(config_file)))
    params = verify_signature(
        method="GET",
        path_url="/a/b?x=1",
        headers=signed(signer).headers,
        body=None,
        public_key=key.public_key,
    )
    assert params["keyId"] == "ST$token-one"
    token_file.write_text("token-two")
    stat = token_file.stat()
    os.utime(token_file, (stat.st_atime, stat.st_mtime + 10))
    params = verify_signature(
        method="GET",
        path_url="/a/b?x=1",
        headers=signed(signer).headers,
        body=None,
        public_key=key.public_key,
    )
    assert params["keyId"] == "ST$token-two"


def test_security_token_profile_without_token_file(tmp_path: Path) -> None:
    key = make_key()
    config_file = write_config(tmp_path, key.private_pem, key.fingerprint)
    with pytest.raises(AIDPConfigError, match="oci session authenticate"):
        auth.get_signer(cfg(auth_type="security_token", config_file=str(config_file)))


@pytest.mark.parametrize(
    ("auth_type", "factory"),
    [
        ("instance_principal", "InstancePrincipalsSecurityTokenSigner"),
        ("resource_principal", "get_resource_principals_signer"),
        ("workload_identity", "get_oke_workload_identity_resource_principal_signer"),
        ("oke_workload_identity", "get_oke_workload_identity_resource_principal_signer"),
    ],
)
def test_principal_signers_use_the_oci_factory(auth_type: str, factory: str) -> None:
    sentinel = object()
    factories = [
        "InstancePrincipalsSecurityTokenSigner",
        "get_resource_principals_signer",
        "get_oke_workload_identity_resource_principal_signer",
    ]
    patches = {name: mock.patch(f"oci.auth.signers.{name}", return_value=object()) for name in factories}
    mocks = {name: p.start() for name, p in patches.items()}
    try:
        mocks[factory].return_value = sentinel
        assert auth.get_signer(cfg(auth_type=auth_type)) is sentinel
        assert auth.get_signer(cfg(auth_type=auth_type)) is sentinel  # cached
        assert mocks[factory].call_count == 1
        for name in factories:
            if name != factory:
                mocks[name].assert_not_called()
    finally:
        for p in patches.values():
            p.stop()


def test_signer_cache_keeps_no_secret_in_clear() -> None:
    """The cache outlives the call: its key is a digest, not the private key and pass phrase."""
    key = make_key(PASS_PHRASE)
    config = cfg(
        tenancy=TENANCY,
        user=USER,
        fingerprint=key.fingerprint,
        private_key=key.private_pem,
        passphrase=PASS_PHRASE,
    )
    signer = auth.get_signer(config)
    assert auth.get_signer(config) is signer  # still cached per config
    (cache_key,) = auth._CACHE
    assert PASS_PHRASE not in repr(cache_key) and "PRIVATE KEY" not in repr(cache_key)
    assert "MII" not in repr(cache_key) and len(cache_key) == 64
    other = cfg(tenancy=TENANCY, user=USER, fingerprint=key.fingerprint, private_key=key.private_pem)
    assert auth._cache_key(other) != cache_key  # a different pass phrase is a different signer
