"""Where the emulator listens and how clients reach it: bind address, public URL, optional TLS.

By default it listens on 127.0.0.1 over plain HTTP and accepts the ``Host`` it prints. Real
deployments need more: Airflow in a container reaches it by a service name (``--bind 0.0.0.0
--public-url https://aidp-emulator:8443``), and https-only clients (Oracle's CLI) need TLS. The
public URL's host is the one the signature check accepts (OCI signs the ``host`` header), so a
signature made for another host is still refused; signature checking stays on in every mode.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ..hooks.endpoint import is_loopback as is_loopback_host  # the provider's own http:// rule
from . import tls

LOOPBACK = "127.0.0.1"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass
class Exposure:
    """Validated bind/public-URL/TLS settings (errors name the option and the fix)."""

    bind: str = LOOPBACK
    public_url: str | None = None
    tls: bool = False
    tls_dir: Path | None = None
    ca_bundle: Path | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.public_url is None:
            return
        parts = urlsplit(self.public_url)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/"):
            raise ValueError(
                f"public_url must look like https://HOST[:PORT] (no path), got {self.public_url!r}"
            )
        if (parts.scheme == "https") != self.tls:
            raise ValueError(
                f"public_url {self.public_url!r} uses {parts.scheme}:// but TLS is "
                f"{'on' if self.tls else 'off'}: use https:// with --tls, http:// without"
            )

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def public_host(self) -> str:
        if self.public_url is not None:
            return str(urlsplit(self.public_url).hostname)
        return LOOPBACK if self.bind in ("0.0.0.0", "::", "") else self.bind

    def public_port(self, bound_port: int) -> int:
        """The public URL's explicit port, else the listening port (as inside a container network)."""
        explicit = urlsplit(self.public_url).port if self.public_url else None
        return explicit or bound_port

    def url(self, bound_port: int) -> str:
        return f"{self.scheme}://{_netloc(self.public_host, self.public_port(bound_port))}"

    def allowed_hosts(self, bound_port: int) -> frozenset[str]:
        """``Host`` values a signed request may carry: the public host (and its loopback aliases)."""
        port = self.public_port(bound_port)
        hosts = {_netloc(self.public_host, port)}
        if port == _DEFAULT_PORTS[self.scheme]:
            hosts.add(self.public_host)  # clients omit the scheme's default port
        if self.public_url is None and self.public_host == LOOPBACK:
            hosts.add(f"localhost:{port}")
        return frozenset(hosts)

    def bind_warning(self) -> str | None:
        if is_loopback_host(self.bind):
            return None
        return (
            f"The AIDP emulator listens on {self.bind}, reachable from other machines/containers. It is a "
            "test double: it holds no real data, but anyone who can reach it can read what you store in it."
        )

    def server_ssl(self) -> ssl.SSLContext | None:
        """With TLS: a fresh self-signed certificate for the public host; its PEM is the CA bundle."""
        if not self.tls:
            return None
        hosts = [self.public_host, "localhost", LOOPBACK]
        if self.bind not in ("0.0.0.0", "::", ""):
            hosts.insert(1, self.bind)
        cert_pem, key_pem = tls.self_signed_certificate(hosts)
        self.ca_bundle = tls.write_certificate(cert_pem, self.tls_dir)
        return tls.server_context(cert_pem, key_pem)
