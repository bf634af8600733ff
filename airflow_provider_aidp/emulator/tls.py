"""A self-signed certificate for the emulator's public host, so https-only clients can reach it.

Oracle's CLI and OCI SDKs refuse ``http://`` endpoints, and the provider allows ``http://`` only on
loopback; a container reaching the emulator by service name needs TLS. The certificate is its
own CA (``basicConstraints CA:TRUE``), so the one PEM file is both the server certificate and the
CA bundle clients trust (``REQUESTS_CA_BUNDLE``, ``SSL_CERT_FILE``, the connection's ``ca_bundle``).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import tempfile
from collections.abc import Iterable
from pathlib import Path

#: Written next to the API key file (or into a fresh temporary directory).
CERT_FILE_NAME = "aidp-emulator-ca.pem"


def _san(host: str) -> object:
    from cryptography import x509

    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def self_signed_certificate(hosts: Iterable[str], days: int = 30) -> tuple[str, str]:
    """(certificate PEM, private key PEM) valid for every name/IP in ``hosts`` (the first is the CN)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    names = list(dict.fromkeys(h for h in hosts if h))
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0][:64])])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([_san(h) for h in names]), critical=False)  # type: ignore[misc]
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return cert_pem, key_pem


def server_context(cert_pem: str, key_pem: str) -> ssl.SSLContext:
    """A TLS server context; the private key touches disk only in a 0600 temporary file, then is removed."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    fd, key_path = tempfile.mkstemp(prefix="aidp-emulator-tls-", suffix=".key")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(key_pem)
        cert_file = Path(key_path).with_suffix(".crt")
        cert_file.write_text(cert_pem)
        try:
            context.load_cert_chain(str(cert_file), key_path)
        finally:
            cert_file.unlink()
    finally:
        os.unlink(key_path)
    return context


def write_certificate(cert_pem: str, directory: Path | None) -> Path:
    """Write the certificate (public; the CA bundle for clients) into ``directory`` or a temp dir."""
    target_dir = directory if directory is not None else Path(tempfile.mkdtemp(prefix="aidp-emulator-"))
    target_dir.mkdir(parents=True, exist_ok=True)
    path = target_dir / CERT_FILE_NAME
    path.write_text(cert_pem)
    return path.resolve()
