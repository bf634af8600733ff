"""The ONE place that builds OCI request signers for an ``aidp`` connection.

``oci`` is imported inside the functions (it is slow to import and DAG files must stay cheap).
Signers are cached per connection config: parsing an RSA key or calling a metadata service once
per process is enough, even with a thousand triggers polling at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_provider_aidp.compat import mask_secret
from airflow_provider_aidp.exceptions import AIDPConfigError

if TYPE_CHECKING:
    from airflow_provider_aidp.hooks.connection import AIDPConnectionConfig

_CACHE: dict[str, Any] = {}
_CACHE_LOCK = threading.Lock()


def _cache_key(config: AIDPConnectionConfig) -> str:
    """A SHA-256 digest of the signer's inputs: the cache outlives the call and must not keep the
    private key and pass phrase in clear (a heap dump or a debugger would show them)."""
    parts = (
        config.auth_type,
        config.config_file,
        config.profile,
        config.tenancy,
        config.user,
        config.fingerprint,
        config.private_key,
        config.key_file,
        config.passphrase,
    )
    return hashlib.sha256(json.dumps(parts, default=str).encode("utf-8")).hexdigest()


def get_signer(config: AIDPConnectionConfig) -> Any:
    """Return a (cached) ``requests``-style signer: ``signer(prepared_request)`` adds the OCI headers.

    May read files or call a metadata service: from async code run it with ``asyncio.to_thread``.
    """
    key = _cache_key(config)
    signer = _CACHE.get(key)
    if signer is not None:
        return signer
    with _CACHE_LOCK:
        signer = _CACHE.get(key)
        if signer is None:
            signer = build_signer(config)
            _CACHE[key] = signer
    return signer


def clear_signer_cache() -> None:
    """Forget every cached signer (tests, or after rotating keys in a long-lived process)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def build_signer(config: AIDPConnectionConfig) -> Any:
    """Build a new signer for the connection's ``auth_type`` (uncached)."""
    builders = {
        "api_key": _api_key_signer,
        "security_token": _security_token_signer,
        "instance_principal": _instance_principal_signer,
        "resource_principal": _resource_principal_signer,
        "workload_identity": _workload_identity_signer,
    }
    return builders[config.auth_type](config)


class _SignableRequest:
    """Just the parts of a ``requests.PreparedRequest`` that an OCI signer reads and writes.

    The async path signs this instead of preparing a full ``requests`` request per call (URL
    re-parsing, cookies, hooks): about 0.1 ms less CPU per request, and the URL sent is byte for
    byte the URL signed. Every signer type works unchanged, since they all sign through
    ``do_request_sign(request)`` (session tokens re-read their token file first, as before).
    """

    __slots__ = ("body", "headers", "method", "path_url", "url")

    def __init__(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None) -> None:
        from requests.structures import CaseInsensitiveDict

        self.method, self.url, self.body = method, url, body
        self.headers: CaseInsensitiveDict[str] = CaseInsensitiveDict(headers)
        if body is not None:
            self.headers["content-length"] = str(len(body))
        parts = urlsplit(url)
        self.path_url = f"{parts.path}?{parts.query}" if parts.query else parts.path


def sign_request(
    signer: Any, method: str, url: str, headers: Mapping[str, str], body: bytes | None
) -> dict[str, str]:
    """The headers to send with ``method url body``: ``headers`` plus date, host, body digest and
    ``authorization``, signed by ``signer`` (as returned by :func:`get_signer`)."""
    request = _SignableRequest(method, url, headers, body)
    signer(request)
    signed = dict(request.headers.items())
    signed.setdefault("host", urlsplit(url).netloc)
    return signed


# --- api_key ---------------------------------------------------------------------------------


def _api_key_signer(config: AIDPConnectionConfig) -> Any:
    if config.uses_inline_key:
        return _make_key_signer(
            tenancy=str(config.tenancy),
            user=str(config.user),
            fingerprint=str(config.fingerprint),
            key_content=config.private_key,
            key_file=config.key_file,
            pass_phrase=config.passphrase,
            key_field="private_key" if config.private_key else "key_file",
        )
    profile = _read_profile(config)
    for name in ("tenancy", "user", "fingerprint"):
        if not profile.get(name):
            raise AIDPConfigError(
                f"OCI config profile [{config.profile}] in {config.config_file} has no '{name}'; "
                "add it or use the inline key fields.",
                field="profile",
            )
    if not (profile.get("key_content") or profile.get("key_file")):
        raise AIDPConfigError(
            f"OCI config profile [{config.profile}] in {config.config_file} has no 'key_file'.",
            field="profile",
        )
    return _make_key_signer(
        tenancy=profile["tenancy"],
        user=profile["user"],
        fingerprint=profile["fingerprint"],
        key_content=profile.get("key_content"),
        key_file=profile.get("key_file"),
        pass_phrase=profile.get("pass_phrase"),
        key_field="profile",
    )


def _make_key_signer(
    *,
    tenancy: str,
    user: str,
    fingerprint: str,
    key_content: str | None,
    key_file: str | None,
    pass_phrase: str | None,
    key_field: str,
) -> Any:
    import oci

    private_key = _load_private_key(key_content, key_file, pass_phrase, key_field)
    # Signer parses the key itself; build it with a dummy path and swap in the parsed key so the
    # (possibly encrypted) key is parsed once and no key text is held beyond this call.
    signer = oci.signer.Signer.__new__(oci.signer.Signer)
    signer.api_key = f"{tenancy}/{user}/{fingerprint}"
    signer.private_key = private_key
    signer.create_signers(
        signer.api_key,
        private_key,
        ["date", "(request-target)", "host"],
        ["content-length", "content-type", "x-content-sha256"],
    )
    return signer


def _load_private_key(
    key_content: str | None, key_file: str | None, pass_phrase: str | None, key_field: str
) -> Any:
    """Parse a PEM private key; errors name the field, never echo the key or pass phrase."""
    from oci.exceptions import InvalidPrivateKey, MissingPrivateKeyPassphrase
    from oci.signer import load_private_key

    mask_secret(pass_phrase)
    if key_content is None:
        path = os.path.expanduser(str(key_file))
        try:
            with open(path, encoding="utf-8") as handle:
                key_content = handle.read()
        except OSError as exc:
            raise AIDPConfigError(
                f"Cannot read the private key file {path!r} ({exc.strerror}); check '{key_field}'.",
                field=key_field,
            ) from None
    mask_secret(key_content)
    try:
        return load_private_key(key_content, pass_phrase)
    except MissingPrivateKeyPassphrase:
        where = "the profile's 'pass_phrase'" if key_field == "profile" else "'passphrase'"
        raise AIDPConfigError(f"The private key is encrypted: set {where}.", field="passphrase") from None
    except (InvalidPrivateKey, ValueError, TypeError):
        raise AIDPConfigError(
            f"The private key given by '{key_field}' is not a valid PEM private key, or 'passphrase' "
            "is wrong.",
            field=key_field,
        ) from None


def _read_profile(config: AIDPConnectionConfig) -> dict[str, Any]:
    import oci

    path = os.path.expanduser(config.config_file)
    try:
        profile: dict[str, Any] = oci.config.from_file(path, config.profile)
    except oci.exceptions.ConfigFileNotFound:
        raise AIDPConfigError(
            f"OCI config file {path!r} not found; set 'config_file' or use inline key fields.",
            field="config_file",
        ) from None
    except oci.exceptions.ProfileNotFound:
        raise AIDPConfigError(
            f"Profile [{config.profile}] not found in OCI config file {path!r}; check 'profile'.",
            field="profile",
        ) from None
    except (oci.exceptions.InvalidConfig, oci.exceptions.InvalidKeyFilePath) as exc:
        raise AIDPConfigError(
            f"OCI config file {path!r} profile [{config.profile}] is invalid: {type(exc).__name__}; "
            "check 'config_file' and 'profile'.",
            field="config_file",
        ) from None
    for name in ("key_content", "pass_phrase"):
        mask_secret(profile.get(name))
    return profile


# --- security_token --------------------------------------------------------------------------


class ReloadingSecurityTokenSigner:
    """A session-token signer that re-reads the token file whenever its mtime changes.

    ``oci session refresh`` rewrites the token file in place; a long-lived triggerer picks the new
    token up without a restart. Call it like any ``requests`` auth object.
    """

    def __init__(self, token_file: str, private_key: Any, profile: str) -> None:
        self.token_file = token_file
        self.private_key = private_key
        self.profile = profile
        self._mtime: float | None = None
        self._signer: Any = None
        self._lock = threading.Lock()
        self._reload_if_changed()

    def _reload_if_changed(self) -> Any:
        from oci.auth.signers import SecurityTokenSigner

        try:
            mtime = os.stat(self.token_file).st_mtime
        except OSError as exc:
            raise AIDPConfigError(
                f"Cannot read security_token_file {self.token_file!r} of profile [{self.profile}] "
                f"({exc.strerror}); run `oci session authenticate --profile {self.profile}`.",
                field="profile",
            ) from None
        if mtime == self._mtime and self._signer is not None:
            return self._signer
        with self._lock:
            if mtime != self._mtime or self._signer is None:
                with open(self.token_file, encoding="utf-8") as handle:
                    token = handle.read().strip()
                mask_secret(token)
                self._signer = SecurityTokenSigner(token, self.private_key)
                self._mtime = mtime
        return self._signer

    def __call__(self, request: Any) -> Any:
        return self._reload_if_changed()(request)


def _security_token_signer(config: AIDPConnectionConfig) -> Any:
    profile = _read_profile(config)
    token_file = profile.get("security_token_file")
    if not token_file:
        raise AIDPConfigError(
            f"Profile [{config.profile}] has no 'security_token_file'; create a session with "
            f"`oci session authenticate --profile {config.profile}` or use auth_type 'api_key'.",
            field="profile",
        )
    private_key = _load_private_key(
        profile.get("key_content"), profile.get("key_file"), profile.get("pass_phrase"), "profile"
    )
    return ReloadingSecurityTokenSigner(os.path.expanduser(token_file), private_key, config.profile)


# --- principals (metadata / environment based) -------------------------------------------------


def _instance_principal_signer(config: AIDPConnectionConfig) -> Any:
    from oci.auth import signers

    return signers.InstancePrincipalsSecurityTokenSigner()


def _resource_principal_signer(config: AIDPConnectionConfig) -> Any:
    from oci.auth import signers

    return signers.get_resource_principals_signer()


def _workload_identity_signer(config: AIDPConnectionConfig) -> Any:
    from oci.auth import signers

    return signers.get_oke_workload_identity_resource_principal_signer()
