"""Throw-away OCI API keys for talking to the emulator (generated at run time, never committed)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .signing import public_key_fingerprint


@dataclass(frozen=True)
class ApiKeyCredentials:
    """An API key registered with an emulator. ``repr`` never shows the private key or pass phrase."""

    tenancy: str
    user: str
    fingerprint: str
    private_key_pem: str = field(repr=False)
    public_key_pem: str = field(repr=False)
    pass_phrase: str | None = field(default=None, repr=False)

    @property
    def key_id(self) -> str:
        return f"{self.tenancy}/{self.user}/{self.fingerprint}"

    def oci_config(self, region: str = "us-ashburn-1") -> dict[str, Any]:
        """A config dict for the ``oci`` SDK / ``oci.signer.Signer.from_config`` (inline key)."""
        config = {
            "tenancy": self.tenancy,
            "user": self.user,
            "fingerprint": self.fingerprint,
            "key_content": self.private_key_pem,
            "region": region,
        }
        if self.pass_phrase:
            config["pass_phrase"] = self.pass_phrase
        return config

    def signer(self) -> Any:
        """An ``oci.signer.Signer`` for this key (imports oci lazily)."""
        from oci.signer import Signer

        return Signer(
            self.tenancy,
            self.user,
            self.fingerprint,
            None,
            pass_phrase=self.pass_phrase,
            private_key_content=self.private_key_pem,
        )

    def to_dict(self, include_secret: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "tenancy": self.tenancy,
            "user": self.user,
            "fingerprint": self.fingerprint,
            "key_id": self.key_id,
            "public_key_pem": self.public_key_pem,
        }
        if include_secret:
            out["private_key_pem"] = self.private_key_pem
            out["pass_phrase"] = self.pass_phrase
        return out


def generate_api_key(*, pass_phrase: str | None = None, key_size: int = 2048) -> ApiKeyCredentials:
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(pass_phrase.encode())
        if pass_phrase
        else serialization.NoEncryption()
    )
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    return _credentials(key, private_pem.decode(), pass_phrase)


def api_key_from_pem(private_key_pem: str, *, pass_phrase: str | None = None) -> ApiKeyCredentials:
    """Credentials for an existing private key; tenancy/user derive from its fingerprint, so the same
    key file gives the same connection on every start (a fixed ``AIRFLOW_CONN_...`` in a compose file)."""
    password = pass_phrase.encode() if pass_phrase else None
    key = serialization.load_pem_private_key(private_key_pem.encode(), password=password)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the emulator key file must hold an RSA private key (OCI API keys are RSA)")
    return _credentials(key, private_key_pem, pass_phrase)


def _credentials(key: rsa.RSAPrivateKey, private_pem: str, pass_phrase: str | None) -> ApiKeyCredentials:
    """Tenancy/user OCIDs derive from the key's fingerprint: a reused key file keeps its identity."""
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    fingerprint = public_key_fingerprint(key.public_key())
    suffix = hashlib.sha256(fingerprint.encode()).hexdigest()[:16]
    return ApiKeyCredentials(
        tenancy=f"ocid1.tenancy.oc1..emulator{suffix}",
        user=f"ocid1.user.oc1..emulator{suffix}",
        fingerprint=fingerprint,
        private_key_pem=private_pem,
        public_key_pem=public_pem.decode(),
        pass_phrase=pass_phrase,
    )
