"""AIDPConnectionConfig: validation messages name the field; URLs for both surfaces; hostile keys."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import pytest

from airflow_provider_aidp.exceptions import AIDPConfigError
from airflow_provider_aidp.hooks.connection import AIDPConnectionConfig
from tests.unit.hook_support import OCID, PASS_PHRASE, TENANCY, USER, FakeConnection, make_key

FP = ":".join(["ab"] * 16)


def config(host: str | None = None, **extra: object) -> AIDPConnectionConfig:
    base: dict[str, object] = {"ai_data_platform_id": OCID, "region": "us-ashburn-1"}
    base.update(extra)
    return AIDPConnectionConfig.from_connection(FakeConnection(host=host, extra=base))


def test_default_endpoint_ga_surface() -> None:
    cfg = config(workspace_key="ws")
    assert cfg.endpoint == "https://aidp.us-ashburn-1.oci.oraclecloud.com"
    assert cfg.url("ws", "jobRuns", "r1") == (
        f"https://aidp.us-ashburn-1.oci.oraclecloud.com/20260430/aiDataPlatforms/{OCID}/workspaces/ws/jobRuns/r1"
    )
    assert cfg.depends_on_format == "objects"
    assert cfg.auth_type == "api_key" and cfg.profile == "DEFAULT" and cfg.config_file == "~/.oci/config"


def test_la_surface_uses_data_lakes_and_keys_format() -> None:
    cfg = config(api_version="20240831")
    assert cfg.url("ws", "jobs") == (
        f"https://aidp.us-ashburn-1.oci.oraclecloud.com/20240831/dataLakes/{OCID}/workspaces/ws/jobs"
    )
    assert cfg.depends_on_format == "keys"
    assert config(api_version="20240831", depends_on_format="objects").depends_on_format == "objects"


@pytest.mark.parametrize(
    ("host", "endpoint"),
    [
        ("https://example.test", "https://example.test"),
        ("https://example.test/", "https://example.test"),
        ("https://example.test/20260430", "https://example.test"),
        ("https://example.test/gw/20260430/", "https://example.test/gw"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://localhost:1", "http://localhost:1"),
        ("http://[::1]:1", "http://[::1]:1"),
        ("example.test", "https://example.test"),
    ],
)
def test_endpoint_override(host: str, endpoint: str) -> None:
    cfg = AIDPConnectionConfig.from_connection(FakeConnection(host=host, extra={"ai_data_platform_id": OCID}))
    assert cfg.endpoint == endpoint
    assert cfg.url("ws", "jobs") == f"{endpoint}/20260430/aiDataPlatforms/{OCID}/workspaces/ws/jobs"


@pytest.mark.parametrize("key", ["../x", "..", ".", "a/b", "a?b=c", "a#frag", "a%2Fb", "ключ/名字", "a b"])
def test_hostile_keys_stay_in_one_segment(key: str) -> None:
    cfg = config()
    url = cfg.url("ws", "jobRuns", key, "actions", "cancel")
    parts = urlsplit(url)
    assert parts.query == "" and parts.fragment == ""
    segments = parts.path.split("/")
    assert segments[-4] == "jobRuns" and segments[-2:] == ["actions", "cancel"]
    assert unquote(segments[-3]) == key
    assert segments[-3] not in (".", "..")


@pytest.mark.parametrize("key", ["", None])
def test_empty_key_is_refused(key: str | None) -> None:
    # "/jobRuns/" would address the collection, not a run (found by the reliability matrix).
    with pytest.raises(AIDPConfigError) as info:
        config().url("ws", "jobRuns", key)  # type: ignore[arg-type]
    assert info.value.field == "key"


def test_hostile_workspace_and_query_values() -> None:
    cfg = config()
    url = cfg.url("w/../s", "taskRuns", query=[("jobRunKey", "a&b=c#d"), ("status", "X"), ("status", "Y")])
    parts = urlsplit(url)
    assert "/workspaces/w%2F..%2Fs/taskRuns" in parts.path
    assert parts.query == "jobRunKey=a%26b%3Dc%23d&status=X&status=Y"


@pytest.mark.parametrize(
    ("host", "extra", "field", "fragment"),
    [
        (None, {"region": None}, "region", "region"),
        (None, {"ai_data_platform_id": None}, "ai_data_platform_id", "required"),
        (None, {"ai_data_platform_id": "aidp123"}, "ai_data_platform_id", "ocid1."),
        (None, {"api_version": "2024"}, "api_version", "20260430"),
        (None, {"auth_type": "password"}, "auth_type", "api_key"),
        ("http://aidp.example.com", {}, "host", "https://"),
        ("ftp://x", {}, "host", "https://"),
        ("https://user:pw@x.test", {}, "host", "credentials"),
        ("https://x.test/20240831", {}, "host", "api_version"),
        (None, {"tenancy": TENANCY}, "private_key", "private_key"),
        (None, {"key_file": "/k.pem"}, "tenancy", "tenancy"),
        (
            None,
            {
                "tenancy": TENANCY,
                "user": USER,
                "fingerprint": FP,
                "private_key": "x",
                "key_file": "/k",
            },
            "key_file",
            "both",
        ),
        (
            None,
            {"tenancy": "t", "user": USER, "fingerprint": FP, "key_file": "/k"},
            "tenancy",
            "ocid1.",
        ),
        (
            None,
            {"tenancy": TENANCY, "user": USER, "fingerprint": "ab", "key_file": "/k"},
            "fingerprint",
            "",
        ),
        (
            None,
            {"tenancy": TENANCY, "user": USER, "fingerprint": FP, "private_key": "/path/key.pem"},
            "private_key",
            "key_file",
        ),
        (None, {"auth_type": "instance_principal", "key_file": "/k"}, "key_file", "api_key"),
        (None, {"max_retries": "many"}, "max_retries", "whole number"),
        (None, {"max_retries": -1}, "max_retries", "0 or more"),
        (None, {"timeout": 0}, "timeout", "greater than 0"),
        (None, {"console_url_template": "https://x/{nope}"}, "console_url_template", "nope"),
        (None, {"depends_on_format": "list"}, "depends_on_format", "objects"),
    ],
)
def test_validation_names_the_field(host: str | None, extra: dict, field: str, fragment: str) -> None:
    with pytest.raises(AIDPConfigError) as err:
        config(host, **extra)
    assert err.value.field == field
    assert fragment in str(err.value)


def test_valid_inline_key_and_aliases() -> None:
    key = make_key()
    cfg = config(
        tenancy=TENANCY,
        user=USER,
        fingerprint=key.fingerprint,
        private_key=key.private_pem,
        auth_type="oke_workload_identity" if False else "api_key",
    )
    assert cfg.uses_inline_key
    assert config(auth_type="oke_workload_identity").auth_type == "workload_identity"
    assert config(auth_type="RESOURCE_PRINCIPAL").auth_type == "resource_principal"


def test_numbers_from_strings_and_ints() -> None:
    cfg = AIDPConnectionConfig.from_connection(
        FakeConnection(
            extra={
                "ai_data_platform_id": OCID,
                "region": "eu-frankfurt-1",
                "max_retries": "2",
                "timeout": "7.5",
                "retry_wait_max": 3,
            }
        )
    )
    assert cfg.region == "eu-frankfurt-1" and cfg.max_retries == 2 and cfg.timeout == 7.5
    assert cfg.retry_wait_max == 3.0


def test_prefixed_extras_are_refused_naming_the_plain_name() -> None:
    """``extra__aidp__<name>`` was never written by Airflow 3's form nor read by a release."""
    extra = {"extra__aidp__ai_data_platform_id": OCID, "region": "eu-frankfurt-1"}
    with pytest.raises(AIDPConfigError) as err:
        AIDPConnectionConfig.from_connection(FakeConnection(extra=extra))
    assert err.value.field == "extra__aidp__ai_data_platform_id"
    assert "rename it to 'ai_data_platform_id'" in str(err.value)


def test_one_line_pem_with_escaped_newlines_is_normalised() -> None:
    key = make_key()
    cfg = config(
        tenancy=TENANCY,
        user=USER,
        fingerprint=key.fingerprint,
        private_key=key.private_pem.replace("\n", "\\n"),
    )
    assert cfg.private_key == key.private_pem


def test_repr_hides_secrets() -> None:
    key = make_key(PASS_PHRASE)
    cfg = config(
        tenancy=TENANCY,
        user=USER,
        fingerprint=key.fingerprint,
        private_key=key.private_pem,
        passphrase=PASS_PHRASE,
    )
    text = repr(cfg) + str(cfg)
    assert PASS_PHRASE not in text
    assert "PRIVATE KEY" not in text and key.private_pem.splitlines()[1] not in text


def test_console_url_default_and_custom() -> None:
    cfg = config(workspace_key="ws")
    url = cfg.console_url(workspace_key=None, run_key="r/1", job_key="j1")
    assert url.startswith("https://cloud.oracle.com/") and "r%2F1" in url and "us-ashburn-1" in url
    custom = config(console_url_template="{endpoint}/ui/{workspace_key}/{run_key}")
    assert custom.console_url(workspace_key="w", run_key="r", job_key=None) == (
        "https://aidp.us-ashburn-1.oci.oraclecloud.com/ui/w/r"
    )


def test_missing_workspace_is_a_config_error() -> None:
    with pytest.raises(AIDPConfigError) as err:
        config().url("", "jobs")
    assert err.value.field == "workspace_key"
