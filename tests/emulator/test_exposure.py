"""Bind address, public URL and TLS settings of the emulator (no sockets: the rules themselves)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from airflow_provider_aidp.emulator.exposure import Exposure


def test_default_is_loopback_http_with_its_localhost_alias() -> None:
    exp = Exposure()
    assert exp.url(8080) == "http://127.0.0.1:8080"
    assert exp.allowed_hosts(8080) == {"127.0.0.1:8080", "localhost:8080"}
    assert exp.bind_warning() is None and exp.server_ssl() is None and exp.ca_bundle is None


def test_public_url_host_is_the_only_signed_host_accepted() -> None:
    exp = Exposure("0.0.0.0", "https://aidp-emulator:8443", tls=True)
    assert exp.url(9999) == "https://aidp-emulator:8443"  # the public port, not the listening one
    assert exp.allowed_hosts(9999) == {"aidp-emulator:8443"}
    # no port in the public URL: the listening port (as inside a container network)
    assert Exposure("127.0.0.2", "https://aidp-emulator", tls=True).url(8443) == "https://aidp-emulator:8443"
    # the scheme's default port: clients omit it from Host, so both forms are accepted
    assert Exposure("0.0.0.0", "https://aidp.example:443", tls=True).allowed_hosts(8443) == {
        "aidp.example:443",
        "aidp.example",
    }


def test_non_loopback_bind_is_an_explicit_opt_in_with_a_warning() -> None:
    warning = Exposure("0.0.0.0").bind_warning()
    assert warning is not None and "0.0.0.0" in warning
    assert Exposure("127.0.0.2").bind_warning() is None
    assert Exposure("localhost").bind_warning() is None


@pytest.mark.parametrize(
    ("url", "tls", "problem"),
    [
        ("https://aidp-emulator", False, "use https:// with --tls"),
        ("http://aidp-emulator", True, "use https:// with --tls"),
        ("https://aidp-emulator/base", True, "no path"),
        ("aidp-emulator:8443", True, "https://HOST"),
    ],
)
def test_bad_public_url_names_the_fix(url: str, tls: bool, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Exposure(public_url=url, tls=tls)


def test_tls_certificate_covers_public_host_and_bind_address(tmp_path: Path) -> None:
    from cryptography import x509

    exp = Exposure("127.0.0.2", "https://aidp-emulator", tls=True, tls_dir=tmp_path)
    context = exp.server_ssl()
    assert isinstance(context, ssl.SSLContext)
    assert exp.ca_bundle == (tmp_path / "aidp-emulator-ca.pem").resolve()
    cert = x509.load_pem_x509_certificate(exp.ca_bundle.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"aidp-emulator", "localhost"} <= set(san.get_values_for_type(x509.DNSName))
    assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} == {"127.0.0.2", "127.0.0.1"}
    assert "PRIVATE KEY" not in exp.ca_bundle.read_text()  # only the public certificate is written
    assert list(tmp_path.iterdir()) == [exp.ca_bundle]


def test_an_existing_key_file_is_reused_so_the_printed_connection_is_stable(tmp_path: Path) -> None:
    """A compose file can hold a fixed AIRFLOW_CONN_AIDP_DEFAULT: restarts keep the same identity."""
    import requests

    from airflow_provider_aidp.emulator import AIDPEmulator
    from airflow_provider_aidp.emulator.__main__ import api_key

    key_file = tmp_path / "emulator_key.pem"
    with AIDPEmulator(time_scale=0) as first:
        created, path = api_key(first, key_file, None)
        assert path == str(key_file.resolve()) and oct(key_file.stat().st_mode & 0o777) == "0o600"
        extra = first.connection_extra(created, private_key_file=path)
    with AIDPEmulator(time_scale=0) as second:
        reused, _ = api_key(second, key_file, None)
        assert second.connection_extra(reused, private_key_file=path) == {
            **extra,
            "console_url_template": extra["console_url_template"].replace(first.url, second.url),
        }
        resp = requests.get(f"{second.base_path()}/jobs", auth=reused.signer(), timeout=10)
        assert resp.status_code == 200, resp.text  # the reused key is registered with the new server
