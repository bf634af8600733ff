"""OCI request signatures: signed with ``oci.signer.Signer`` itself, then tampered with."""

from __future__ import annotations

import email.utils
import time

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from oci.auth.signers.security_token_signer import SecurityTokenSigner

from airflow_provider_aidp.emulator import AIDPEmulator, ApiKeyCredentials, generate_api_key

from .conftest import Api


def _prepared(
    emu: AIDPEmulator, creds: ApiKeyCredentials, method: str = "POST", body: bytes = b'{"name": "a.job"}'
) -> requests.PreparedRequest:
    req = requests.Request(
        method,
        emu.base_path() + "/jobs",
        data=body if method in ("POST", "PUT") else None,
        headers={"content-type": "application/json"},
    )
    prepared = req.prepare()
    creds.signer()(prepared)
    return prepared


def _send(prepared: requests.PreparedRequest) -> requests.Response:
    with requests.Session() as s:
        return s.send(prepared, timeout=10)


def test_good_signatures_pass(emu: AIDPEmulator, creds: ApiKeyCredentials) -> None:
    assert _send(_prepared(emu, creds)).status_code == 201
    assert _send(_prepared(emu, creds, "GET")).status_code == 200


def test_pass_phrase_protected_key_signs(emu: AIDPEmulator) -> None:
    creds = emu.generate_api_key(pass_phrase="correct horse")
    assert "ENCRYPTED" in creds.private_key_pem and "correct horse" not in repr(creds)
    assert Api(emu, creds)("GET", "/jobs").status_code == 200


@pytest.mark.parametrize(
    "tamper",
    ["body", "host", "date_old", "content_sha", "drop_auth", "signature_bytes", "path"],
)
def test_tampered_requests_get_401(emu: AIDPEmulator, creds: ApiKeyCredentials, tamper: str) -> None:
    prepared = _prepared(emu, creds)
    if tamper == "body":
        prepared.body = b'{"name": "b.job"}'
    elif tamper == "host":
        prepared.headers["host"] = f"localhost:{emu.port}"  # allowed host, but not the signed one
    elif tamper == "date_old":
        prepared.headers["date"] = email.utils.formatdate(time.time() - 3600, usegmt=True)
    elif tamper == "content_sha":
        prepared.headers["x-content-sha256"] = "AAAA"
    elif tamper == "drop_auth":
        del prepared.headers["authorization"]
    elif tamper == "signature_bytes":
        prepared.headers["authorization"] = prepared.headers["authorization"].replace(
            'signature="', 'signature="AB'
        )
    elif tamper == "path":
        prepared.url = prepared.url.replace("/jobs", "/jobRuns")
    resp = _send(prepared)
    assert resp.status_code == 401, resp.text
    assert resp.json()["code"] == "NotAuthenticated" and resp.json()["message"]
    assert emu.state.store.jobs == {}


def test_signature_must_cover_body_headers_on_post(emu: AIDPEmulator, creds: ApiKeyCredentials) -> None:
    signer = creds.signer()
    req = requests.Request(
        "POST",
        emu.base_path() + "/jobs",
        data=b'{"name": "a.job"}',
        headers={"content-type": "application/json"},
    ).prepare()
    signer.without_content_headers(req)  # signs only date (request-target) host
    resp = _send(req)
    assert resp.status_code == 401 and "x-content-sha256" in resp.json()["message"]


def test_unknown_key_and_wrong_host_header(emu: AIDPEmulator, creds: ApiKeyCredentials) -> None:
    assert _send(_prepared(emu, generate_api_key(), "GET")).status_code == 401
    req = requests.Request("GET", emu.base_path() + "/jobs", headers={"host": "evil.example.com"}).prepare()
    creds.signer()(req)
    resp = _send(req)
    assert resp.status_code == 401 and "host" in resp.json()["message"]


def test_accept_any_signature_switch(creds: ApiKeyCredentials) -> None:
    with AIDPEmulator(time_scale=0, accept_any_signature=True) as emu:
        resp = requests.get(emu.base_path() + "/jobs", timeout=10)
        assert resp.status_code == 200 and resp.json() == {"items": []}


def test_session_token_signing_then_expiry_and_revocation(emu: AIDPEmulator) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    for token, action in (("tok-expire", emu.expire_session_token), ("tok-revoke", emu.revoke_session_token)):
        assert emu.register_session_token(token, public_pem) == f"ST${token}"
        session = requests.Session()
        session.auth = SecurityTokenSigner(token, key)
        assert session.get(emu.base_path() + "/jobs", timeout=10).status_code == 200
        action(token)
        resp = session.get(emu.base_path() + "/jobs", timeout=10)
        assert resp.status_code == 401 and "oci session refresh" in resp.json()["message"]
