"""Verification of OCI HTTP request signatures (the scheme of ``oci.signer.Signer``).

The client signs a string made of ``name: value`` lines for the headers it lists in the
``Authorization: Signature headers="...",keyId="...",signature="..."`` header. OCI requires
``date (request-target) host`` on every request and additionally ``content-length content-type
x-content-sha256`` on POST/PUT/PATCH. ``keyId`` is ``tenancy/user/fingerprint`` for API keys or
``ST$<token>`` for session tokens. Any failure gives the caller a reason string (never key
material) that becomes a 401 ``NotAuthenticated``.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

GENERIC_HEADERS = ("date", "(request-target)", "host")
BODY_HEADERS = ("content-length", "content-type", "x-content-sha256")
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
MAX_CLOCK_SKEW_SECONDS = 300.0
_PARAM = re.compile(r'(\w+)="([^"]*)"')


def public_key_fingerprint(public_key: rsa.RSAPublicKey) -> str:
    """OCI's key fingerprint: MD5 of the DER SubjectPublicKeyInfo, colon-separated hex."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashlib.md5(der).hexdigest()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


@dataclass
class SessionToken:
    public_key: rsa.RSAPublicKey
    expires_at: float | None = None  # wall-clock epoch seconds; None = never
    revoked: bool = False


class KeyRegistry:
    """Public keys the emulator trusts, by keyId; thread-safe (tests register from their thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._api_keys: dict[str, rsa.RSAPublicKey] = {}
        self._tokens: dict[str, SessionToken] = {}

    def add_api_key(self, tenancy: str, user: str, fingerprint: str, public_key_pem: str | bytes) -> str:
        key = _load_public_key(public_key_pem)
        key_id = f"{tenancy}/{user}/{fingerprint}"
        with self._lock:
            self._api_keys[key_id] = key
        return key_id

    def add_session_token(
        self, token: str, public_key_pem: str | bytes, *, expires_in: float | None = None
    ) -> None:
        expires_at = None if expires_in is None else time.time() + expires_in
        with self._lock:
            self._tokens[token] = SessionToken(_load_public_key(public_key_pem), expires_at)

    def revoke_session_token(self, token: str) -> bool:
        with self._lock:
            entry = self._tokens.get(token)
            if entry is not None:
                entry.revoked = True
            return entry is not None

    def expire_session_token(self, token: str) -> bool:
        with self._lock:
            entry = self._tokens.get(token)
            if entry is not None:
                entry.expires_at = time.time() - 1
            return entry is not None

    def lookup(self, key_id: str) -> rsa.RSAPublicKey | str:
        """The public key for ``key_id``, or a reason string why it is not usable."""
        with self._lock:
            if key_id.startswith("ST$"):
                entry = self._tokens.get(key_id[3:])
                if entry is None:
                    return "unknown session token"
                if entry.revoked:
                    return "session token revoked; run `oci session refresh`"
                if entry.expires_at is not None and entry.expires_at < time.time():
                    return "session token expired; run `oci session refresh`"
                return entry.public_key
            found = self._api_keys.get(key_id)
        return found if found is not None else f"unknown keyId {key_id!r}"

    def clear(self) -> None:
        with self._lock:
            self._api_keys.clear()
            self._tokens.clear()


def _load_public_key(pem: str | bytes) -> rsa.RSAPublicKey:
    data = pem.encode() if isinstance(pem, str) else pem
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("only RSA public keys are supported")
    return key


def parse_authorization(value: str) -> dict[str, str]:
    scheme, _, params = value.partition(" ")
    if scheme != "Signature":
        raise ValueError("Authorization scheme must be 'Signature'")
    return dict(_PARAM.findall(params))


def verify_request(
    registry: KeyRegistry,
    *,
    method: str,
    path_qs: str,
    headers: Mapping[str, str],
    body: bytes,
    allowed_hosts: frozenset[str] | None = None,
    max_skew: float = MAX_CLOCK_SKEW_SECONDS,
) -> str | None:
    """Return ``None`` if the request is properly signed, else the reason it is not.

    ``headers`` must be case-insensitive (aiohttp's CIMultiDictProxy is). ``path_qs`` is the raw
    request target as sent (path plus query, still percent-encoded).
    """
    auth = headers.get("authorization")
    if not auth:
        return "missing Authorization header"
    try:
        params = parse_authorization(auth)
    except ValueError as exc:
        return str(exc)
    for name in ("keyId", "signature", "headers"):
        if name not in params:
            return f"Authorization header lacks {name}"
    if params.get("algorithm", "rsa-sha256") != "rsa-sha256":
        return "unsupported signature algorithm"
    signed = params["headers"].lower().split()
    required = GENERIC_HEADERS + (BODY_HEADERS if method.upper() in BODY_METHODS else ())
    missing = [h for h in required if h not in signed]
    if missing:
        return f"signature does not cover required headers: {', '.join(missing)}"
    problem = _check_headers(method, headers, body, allowed_hosts, max_skew)
    if problem:
        return problem
    public_key = registry.lookup(params["keyId"])
    if isinstance(public_key, str):
        return public_key
    lines = []
    for name in signed:
        if name == "(request-target)":
            lines.append(f"(request-target): {method.lower()} {path_qs}")
        elif name in headers:
            lines.append(f"{name}: {headers[name]}")
        else:
            return f"signed header {name!r} is missing from the request"
    try:
        signature = base64.b64decode(params["signature"], validate=True)
        public_key.verify(signature, "\n".join(lines).encode(), padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return "signature verification failed"
    return None


def _check_headers(
    method: str,
    headers: Mapping[str, str],
    body: bytes,
    allowed_hosts: frozenset[str] | None,
    max_skew: float,
) -> str | None:
    date = headers.get("date")
    if not date:
        return "missing date header"
    try:
        sent = email.utils.parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError):
        return "unparseable date header"
    if abs(time.time() - sent) > max_skew:
        return f"date header is more than {int(max_skew)} s from the server's clock"
    host = headers.get("host")
    if not host:
        return "missing host header"
    if allowed_hosts is not None and host not in allowed_hosts:
        return f"host header {host!r} does not name this endpoint"
    if method.upper() in BODY_METHODS:
        digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
        if headers.get("x-content-sha256") != digest:
            return "x-content-sha256 does not match the body"
        if headers.get("content-length") != str(len(body)):
            return "content-length does not match the body"
    return None
