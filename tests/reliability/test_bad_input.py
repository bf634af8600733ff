"""Bad input: a clear error that names the field, raised before anything is sent.

Bad connection fields are checked through the hook with the HTTP transport guarded (any send is
recorded and refused, so a validation gap can never reach a real host) and against the emulator's
request log.  Hostile keys must stay inside their path segment: the emulator must receive exactly
the key, on the route it was meant for.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from airflow_provider_aidp.exceptions import AIDPConfigError, AIDPNotFoundError
from tests.reliability.support import CONN_ID, FAST_RETRY_EXTRA, conn_env_name

CATEGORY = "bad input"
PASS_PHRASE = "Gl4cier-Walrus-Passphrase-90210"


@pytest.fixture
def sends(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every HTTP send the hook attempts (and refuse it): must stay empty."""
    import requests.adapters

    attempted: list[str] = []

    def refuse(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        attempted.append(f"{request.method} {request.url}")
        raise requests.ConnectionError("network disabled by the bad-input test")

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", refuse)
    return attempted


@pytest.fixture(scope="module")
def encrypted_key() -> Any:
    from airflow_provider_aidp.emulator import generate_api_key

    return generate_api_key(pass_phrase=PASS_PHRASE)


def _base_extra(emu: Any, creds: Any) -> dict[str, Any]:
    extra = dict(emu.connection_extra(creds))
    extra.update(FAST_RETRY_EXTRA)
    return extra


def _bad_connections(
    emu: Any, creds: Any, encrypted: Any, tmp_path: Any
) -> dict[str, tuple[dict[str, Any], str]]:
    """name -> (connection dict, the field the error must name)."""
    base = {"conn_type": "aidp", "host": emu.url, "extra": _base_extra(emu, creds)}

    def variant(host: Any = "keep", **changes: Any) -> dict[str, Any]:
        conn = json.loads(json.dumps(base))
        if host != "keep":
            conn["host"] = host
        for key, value in changes.items():
            if value is None:
                conn["extra"].pop(key, None)
            else:
                conn["extra"][key] = value
        return conn

    enc_extra = {
        "private_key": encrypted.private_key_pem,
        "tenancy": encrypted.tenancy,
        "user": encrypted.user,
        "fingerprint": encrypted.fingerprint,
    }
    return {
        "unknown auth type": (variant(auth_type="password"), "auth_type"),
        "missing region and no endpoint": (variant(host=None, region=None), "region"),
        "malformed instance OCID": (variant(ai_data_platform_id="aidp-1234"), "ai_data_platform_id"),
        "malformed tenancy OCID": (variant(tenancy="tenancy-1234"), "tenancy"),
        "malformed fingerprint": (variant(fingerprint="12:34"), "fingerprint"),
        "http:// endpoint to a non-loopback host": (variant(host="http://aidp.example.com"), "host"),
        "endpoint with credentials in it": (variant(host="https://user:pw@aidp.example.com"), "host"),
        "private_key is not PEM": (variant(private_key="not a key"), "private_key"),
        "unreadable key file (missing)": (
            variant(private_key=None, key_file=str(tmp_path / "missing.pem")),
            "key_file",
        ),
        "unreadable key file (a directory)": (
            variant(private_key=None, key_file=str(tmp_path)),
            "key_file",
        ),
        "encrypted key, wrong pass phrase": (
            variant(**enc_extra, passphrase="wrong-pass-phrase-000"),
            "passphrase",
        ),
        "encrypted key, no pass phrase": (variant(**enc_extra, passphrase=None), "passphrase"),
        "both private_key and key_file": (
            variant(key_file=str(tmp_path / "k.pem")),
            "key_file",
        ),
        "passphrase under a removed name (pass_phrase)": (
            variant(**enc_extra, pass_phrase=PASS_PHRASE),
            "passphrase",
        ),
        "no workspace anywhere": (variant(workspace_key=None), "workspace_key"),
        "unknown api_version": (variant(api_version="20200101"), "api_version"),
        "retry budget not a number": (variant(max_retries="many"), "max_retries"),
    }


CASES = [
    "unknown auth type",
    "missing region and no endpoint",
    "malformed instance OCID",
    "malformed tenancy OCID",
    "malformed fingerprint",
    "http:// endpoint to a non-loopback host",
    "endpoint with credentials in it",
    "private_key is not PEM",
    "unreadable key file (missing)",
    "unreadable key file (a directory)",
    "encrypted key, wrong pass phrase",
    "encrypted key, no pass phrase",
    "both private_key and key_file",
    "passphrase under a removed name (pass_phrase)",
    "no workspace anywhere",
    "unknown api_version",
    "retry budget not a number",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_connection_field(
    case: str,
    aidp_emulator: Any,
    aidp_conn: Any,
    encrypted_key: Any,
    tmp_path: Any,
    sends: list[str],
    monkeypatch: pytest.MonkeyPatch,
    scenario: Any,
) -> None:
    from airflow_provider_aidp.hooks.aidp import AIDPHook

    conn, field = _bad_connections(aidp_emulator, aidp_conn, encrypted_key, tmp_path)[case]
    row = scenario(
        CATEGORY, f"connection: {case}", expected=f"AIDPConfigError naming '{field}'; nothing sent"
    )
    monkeypatch.setenv(conn_env_name(), json.dumps(conn))
    with pytest.raises(AIDPConfigError) as info:
        AIDPHook(aidp_conn_id=CONN_ID).get_job_run("run-1")
    message = str(info.value)
    received = len(aidp_emulator.requests)
    row.observed = f"AIDPConfigError(field={info.value.field!r}); {len(sends)} sends, {received} received"
    assert info.value.field == field or f"'{field}'" in message, message
    assert sends == []
    assert aidp_emulator.requests == []
    for secret in (PASS_PHRASE, "wrong-pass-phrase-000", aidp_conn.private_key_pem.splitlines()[1]):
        assert secret not in message


HOSTILE_KEYS = {
    "dot-dot slash": "../jobs",
    "dot-dot": "..",
    "dot": ".",
    "traversal deep": "a/../../../x",
    "query": "run?limit=1&page=p100",
    "fragment": "run#frag",
    "encoded slash": "a%2Fb",
    "encoded dot-dot": "%2E%2E",
    "very long": "k" * 2000,
    "unicode": "ключ-鍵-🔑",
    "space and plus": "a b+c",
    "semicolon / matrix param": "run;x=1",
    "backslash": "..\\..\\jobs",
}


@pytest.mark.parametrize("label", list(HOSTILE_KEYS))
def test_hostile_run_key_stays_in_its_segment(
    label: str, aidp_emulator: Any, aidp_conn: Any, scenario: Any
) -> None:
    from airflow_provider_aidp.hooks.aidp import AIDPHook

    key = HOSTILE_KEYS[label]
    row = scenario(
        CATEGORY,
        f"hostile run key: {label}",
        expected="404 for exactly that key on GET /jobRuns/{key}; path unchanged",
    )
    hook = AIDPHook(aidp_conn_id=CONN_ID)
    with pytest.raises(AIDPNotFoundError) as info:
        hook.get_job_run(key)
    received = aidp_emulator.requests
    assert len(received) == 1
    request = received[0]
    prefix = aidp_emulator.base_path().split(aidp_emulator.url, 1)[1] + "/jobRuns/"
    # The emulator routed it as GET /jobRuns/{key} with the key intact (its 404 names the key).
    assert f"JobRun {key} not found" in str(info.value), str(info.value)[:300]
    assert request.method == "GET" and request.path.startswith(prefix)
    assert request.query == {}, request.query
    row.observed = "404 naming the exact key; GET /jobRuns/{key}; no query, no traversal"


@pytest.mark.parametrize("label", ["dot-dot slash", "query", "encoded slash", "unicode"])
def test_hostile_workspace_and_job_key(label: str, aidp_emulator: Any, aidp_conn: Any, scenario: Any) -> None:
    from airflow_provider_aidp.hooks.aidp import AIDPHook

    key = HOSTILE_KEYS[label]
    row = scenario(
        CATEGORY,
        f"hostile workspace / job key: {label}",
        expected="404; the request stays inside that workspace / job",
    )
    with pytest.raises(AIDPNotFoundError):
        AIDPHook(aidp_conn_id=CONN_ID, workspace_key=key).get_job_run("run-1")
    with pytest.raises(AIDPNotFoundError) as info:
        AIDPHook(aidp_conn_id=CONN_ID).get_job(key)
    assert f"Job {key} not found" in str(info.value)
    with pytest.raises(AIDPNotFoundError) as info:
        AIDPHook(aidp_conn_id=CONN_ID).cancel_job_run(key)
    assert f"JobRun {key} not found" in str(info.value)
    assert all(r.query == {} for r in aidp_emulator.requests)
    assert [r.method for r in aidp_emulator.requests] == ["GET", "GET", "POST"]
    row.observed = "404s on the intended routes; no query injected"


@pytest.mark.parametrize("key", ["", None])
def test_empty_key_is_refused_before_sending(
    key: Any, aidp_emulator: Any, aidp_conn: Any, scenario: Any
) -> None:
    from airflow_provider_aidp.hooks.aidp import AIDPHook

    row = scenario(CATEGORY, f"empty run key ({key!r})", expected="AIDPConfigError; nothing sent")
    hook = AIDPHook(aidp_conn_id=CONN_ID)
    with pytest.raises(AIDPConfigError):
        hook.get_job_run(key)
    with pytest.raises(AIDPConfigError):
        hook.cancel_job_run(key)
    row.observed = f"AIDPConfigError; {len(aidp_emulator.requests)} received"
    assert aidp_emulator.requests == []


@pytest.mark.parametrize(
    ("case", "change", "field"),
    [
        ("malformed instance OCID", {"ai_data_platform_id": "aidp-1234"}, "ai_data_platform_id"),
        ("unknown auth type", {"auth_type": "password"}, "auth_type"),
    ],
)
def test_bad_connection_through_a_real_task(
    case: str,
    change: dict[str, Any],
    field: str,
    aidp_emulator: Any,
    aidp_conn: Any,
    airflow_db: Any,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    scenario: Any,
) -> None:
    """The same errors surface in the task log of a real Airflow task, and nothing reaches the API."""
    from tests.reliability.dags import TASK_ID, run_job_dag
    from tests.reliability.support import run_dag, seed_job

    row = scenario(
        CATEGORY,
        f"connection through a DAG task: {case}",
        "sync",
        expected=f"task failed; log names '{field}'; nothing sent",
    )
    conn = json.loads(os.environ[conn_env_name()])
    conn["extra"].update(change)
    monkeypatch.setenv(conn_env_name(), json.dumps(conn))
    job_key = seed_job(aidp_emulator)
    capfd.readouterr()
    states, _ = run_dag(run_job_dag(f"rel_badconn_{field}", job_key=job_key))
    output = "".join(capfd.readouterr())
    received = len(aidp_emulator.requests)
    row.observed = (
        f"task {states[TASK_ID]}; '{field}' in log: {field in output}; {received} requests received"
    )
    assert states[TASK_ID] == "failed"
    assert f"'{field}'" in output
    assert aidp_emulator.requests == []
