"""Shared helpers for the hook/auth/connection unit tests: test keys, connections, signature checks.

Keys are generated at run time (never committed). Signature verification re-implements OCI's
HTTP-signature scheme independently of ``oci`` so a signing bug cannot hide behind itself.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

OCID = "ocid1.aidataplatform.oc1.iad.testinstance"
TENANCY = "ocid1.tenancy.oc1..testtenancy"
USER = "ocid1.user.oc1..testuser"
#: Distinctive strings that must never appear in logs, exception text or reprs.
PASS_PHRASE = "Zebra-Quartz-Pass-7731"


@dataclass
class TestKey:
    private_pem: str
    public_key: Any
    fingerprint: str
    pass_phrase: str | None = None


@functools.cache
def _rsa_key(tag: str) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def make_key(pass_phrase: str | None = None, *, tag: str = "default") -> TestKey:
    """A PEM test key; one RSA key per ``tag`` per session (generation is slow on a busy CPU)."""
    key = _rsa_key(tag)
    encryption = (
        serialization.BestAvailableEncryption(pass_phrase.encode())
        if pass_phrase
        else serialization.NoEncryption()
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    ).decode()
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = hashlib.md5(der).hexdigest()
    fingerprint = ":".join(digest[i : i + 2] for i in range(0, 32, 2))
    return TestKey(pem, key.public_key(), fingerprint, pass_phrase)


def inline_extra(key: TestKey, **overrides: Any) -> dict[str, Any]:
    extra: dict[str, Any] = {
        "ai_data_platform_id": OCID,
        "workspace_key": "ws1",
        "tenancy": TENANCY,
        "user": USER,
        "fingerprint": key.fingerprint,
        "private_key": key.private_pem,
    }
    if key.pass_phrase:
        extra["passphrase"] = key.pass_phrase
    extra.update(overrides)
    return {k: v for k, v in extra.items() if v is not None}


class FakeConnection:
    """Just what AIDPConnectionConfig.from_connection reads from an Airflow Connection."""

    def __init__(
        self, conn_id: str = "aidp_test", host: str | None = None, extra: Mapping[str, Any] | None = None
    ):
        self.conn_id = conn_id
        self.host = host
        self.schema = None
        self.port = None
        self.extra_dejson = dict(extra or {})
        self.extra = json.dumps(self.extra_dejson)


_SIG_RE = re.compile(r'(\w+)="([^"]*)"')


def verify_signature(
    *, method: str, path_url: str, headers: Mapping[str, str], body: bytes | None, public_key: Any
) -> dict[str, str]:
    """Verify an OCI ``Authorization: Signature ...`` header; return its parameters.

    Signing string: one ``name: value`` line per signed header, ``(request-target)`` being
    ``<method lower> <path?query>``; RSA PKCS#1 v1.5 with SHA-256 (see oci/signer.py).
    """
    lower = {k.lower(): v for k, v in headers.items()}
    auth = lower["authorization"]
    assert auth.startswith("Signature ")
    params = dict(_SIG_RE.findall(auth))
    assert params["algorithm"] == "rsa-sha256"
    assert params["version"] == "1"
    signed = params["headers"].split(" ")
    expected = ["date", "(request-target)", "host"]
    if method.upper() in ("POST", "PUT", "PATCH"):
        expected += ["content-length", "content-type", "x-content-sha256"]
        digest = base64.b64encode(hashlib.sha256(body or b"").digest()).decode()
        assert lower["x-content-sha256"] == digest, "x-content-sha256 does not match the body sent"
        assert int(lower["content-length"]) == len(body or b"")
    assert signed == expected
    lines = []
    for name in signed:
        if name == "(request-target)":
            lines.append(f"(request-target): {method.lower()} {path_url}")
        else:
            lines.append(f"{name}: {lower[name]}")
    public_key.verify(
        base64.b64decode(params["signature"]),
        "\n".join(lines).encode(),
        padding.PKCS1v15(),
        hashes.SHA256(),
    )
    return params


HOST = "https://aidp.test"


def install_connection(monkeypatch: Any, conn: FakeConnection) -> None:
    """Make AIDPHook's sync and async connection lookups return ``conn`` (no Airflow DB/env)."""
    from airflow_provider_aidp.hooks.aidp import AIDPHook

    async def aget(cls: Any, conn_id: str) -> FakeConnection:
        return conn

    monkeypatch.setattr(AIDPHook, "get_connection", classmethod(lambda cls, conn_id: conn))
    monkeypatch.setattr(AIDPHook, "aget_connection", classmethod(aget), raising=False)  # 3.0: none


def base_url(workspace: str = "ws1", host: str = HOST) -> str:
    return f"{host}/20260430/aiDataPlatforms/{OCID}/workspaces/{workspace}"


def drive(op: Any, respond: Any) -> Any:
    """Run a service operation (``hooks/service.py``) without HTTP: ``respond(call)`` returns the
    JSON body of the call's answer or raises the ``AIDPError`` the service would; pauses are skipped."""
    from airflow_provider_aidp.exceptions import AIDPError
    from airflow_provider_aidp.hooks.service import Pause
    from airflow_provider_aidp.hooks.transport import ApiResponse

    reply: Any = None
    error: Exception | None = None
    while True:
        try:
            step = op.throw(error) if error is not None else op.send(reply)
        except StopIteration as done:
            return done.value
        reply, error = None, None
        if isinstance(step, Pause):
            continue
        try:
            reply = ApiResponse(200, {}, respond(step))
        except AIDPError as exc:
            error = exc


def service(**extra: Any) -> Any:
    """A ``Service`` of a plain connection (no key material needed: nothing is signed)."""
    from airflow_provider_aidp.hooks.connection import AIDPConnectionConfig
    from airflow_provider_aidp.hooks.service import Profile, Service

    fields = {"ai_data_platform_id": OCID, "workspace_key": "ws1", **extra}
    return Service(AIDPConnectionConfig.from_fields(host=HOST, extra=fields), Profile())
