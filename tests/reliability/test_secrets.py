"""Secrets: after end-to-end runs with distinctive credentials, search every place Airflow keeps
text for the private key, the pass phrase and the session token.  Zero hits.

Each scenario runs a DAG through real Airflow (``dag.test()``) and keeps its whole output (file
descriptors 1 and 2): the task log and, in deferred mode, the trigger's log (``dag.test()`` runs
the trigger inline).  Then the test searches that output, every XCom value of the run, every file under
AIRFLOW_HOME/logs, and a full dump of the SQLite metadata database (rendered template fields,
XCom, trigger rows, task instances, logs table, ...).

The needles: the pass phrase, every base64 line of the encrypted PEM, every base64 line of the
same key unencrypted (in case something decrypted and re-serialized it), and the session token.
A control search of the connection itself proves the needles would be found.

The REST API scenario stores a connection holding the key and passphrase through Airflow's own API
app and searches every answer of its connection endpoints (create, get, list, patch, test, the
form's hook metadata); the browser test (tests/e2e/test_connection_form.py) searches the UI.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.dags import TASK_ID, run_job_dag
from tests.reliability.support import (
    FAST_RETRY_EXTRA,
    conn_env_name,
    run_dag,
    runs_of,
    seed_job,
    xcom_values,
)

CATEGORY = "secrets"
PASS_PHRASE = "Aidp-Reliability-Walrus-Passphrase-7391"
SESSION_TOKEN = "ST-aidp-reliability-session-" + secrets.token_hex(16)
TIME_SCALE = 20.0


@pytest.fixture(scope="module")
def secret_key() -> Any:
    from airflow_provider_aidp.emulator import generate_api_key

    return generate_api_key(pass_phrase=PASS_PHRASE)


def needles(creds: Any) -> dict[str, str]:
    from cryptography.hazmat.primitives import serialization

    found: dict[str, str] = {"pass phrase": PASS_PHRASE, "session token": SESSION_TOKEN}
    key = serialization.load_pem_private_key(creds.private_key_pem.encode(), PASS_PHRASE.encode())
    plain = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    for label, pem in (("encrypted PEM", creds.private_key_pem), ("decrypted PEM", plain)):
        for i, line in enumerate(pem.splitlines()):
            if line and not line.startswith("-----") and len(line) >= 16:
                found[f"{label} line {i}"] = line
    return found


def count_hits(text: str, wanted: dict[str, str]) -> dict[str, int]:
    return {label: text.count(value) for label, value in wanted.items() if value in text}


def metadata_dump(home: Path) -> str:
    con = sqlite3.connect(home / "airflow.db")
    try:
        return "\n".join(con.iterdump())
    finally:
        con.close()


def log_files(home: Path) -> str:
    root = home / "logs"
    if not root.exists():
        return ""
    return "\n".join(p.read_text(errors="replace") for p in sorted(root.rglob("*")) if p.is_file())


def _session_token_connection(emu: Any, creds: Any, tmp_path: Path) -> str:
    key_file = tmp_path / "key.pem"
    key_file.write_text(creds.private_key_pem)
    token_file = tmp_path / "token"
    token_file.write_text(SESSION_TOKEN)
    config = tmp_path / "config"
    config.write_text(
        textwrap.dedent(f"""\
        [DEFAULT]
        user={creds.user}
        fingerprint={creds.fingerprint}
        tenancy={creds.tenancy}
        region=us-ashburn-1
        key_file={key_file}
        pass_phrase={PASS_PHRASE}
        security_token_file={token_file}
        """)
    )
    emu.register_session_token(SESSION_TOKEN, creds.public_key_pem)
    extra = {**emu.connection_extra(None), **FAST_RETRY_EXTRA}
    extra.update(auth_type="security_token", config_file=str(config), profile="DEFAULT")
    return json.dumps({"conn_type": "aidp", "host": emu.url, "extra": extra})


SCENARIOS = {
    # name -> (auth, deferrable, scripted outcome of the AIDP task, fault on the poll route)
    "API key + pass phrase, sync run, outputs logged": ("api_key", False, "SUCCESS", None),
    "API key + pass phrase, deferred run": ("api_key", True, "SUCCESS", None),
    "API key + pass phrase, AIDP task fails (error trace logged)": ("api_key", False, "FAILED", None),
    "session token, deferred run with a 401 on a poll": ("security_token", True, "SUCCESS", 401),
    "API key with a wrong pass phrase (config error)": ("wrong_pass_phrase", False, "SUCCESS", None),
}


@pytest.mark.aidp_emulator(time_scale=TIME_SCALE)
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_no_secret_anywhere(
    name: str,
    aidp_emulator: Any,
    secret_key: Any,
    airflow_db: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    scenario: Any,
) -> None:
    auth, deferrable, outcome, fault = SCENARIOS[name]
    emu = aidp_emulator
    row = scenario(
        CATEGORY,
        name,
        "deferred" if deferrable else "sync",
        expected="0 hits in task/trigger log, XCom, log files, metadata DB dump",
    )
    emu.register_api_key(secret_key)
    if auth == "security_token":
        conn = _session_token_connection(emu, secret_key, tmp_path)
    else:
        conn_dict = json.loads(emu.connection_json(secret_key))
        conn_dict["extra"].update(FAST_RETRY_EXTRA)
        if auth == "wrong_pass_phrase":
            conn_dict["extra"]["passphrase"] = "Wrong-" + PASS_PHRASE[::-1]
        conn = json.dumps(conn_dict)
    monkeypatch.setenv(conn_env_name(), conn)
    wanted = needles(secret_key)
    if auth == "wrong_pass_phrase":
        wanted["wrong pass phrase"] = "Wrong-" + PASS_PHRASE[::-1]
    control = count_hits(
        conn + (tmp_path / "token").read_text() if auth == "security_token" else conn, wanted
    )
    assert control, "the needles must be findable in the connection itself"

    job_key = seed_job(emu, f"secret_job_{list(SCENARIOS).index(name)}")
    emu.script_task(
        task_key="load",
        outcome=outcome,
        output="rows loaded: 42",
        state_message=None if outcome == "SUCCESS" else "load failed: bad input",
        error_trace=None if outcome == "SUCCESS" else "Traceback: ValueError: bad row 7",
    )
    if fault:
        emu.inject_fault("status", "*/jobRuns/*", "GET", status=fault, times=1)
    dag_id = f"rel_secret_{list(SCENARIOS).index(name)}"
    dag = run_job_dag(dag_id, job_key=job_key, deferrable=deferrable, fetch_output="always")
    capfd.readouterr()
    states, run_id = run_dag(dag)
    captured = capfd.readouterr()
    output = captured.out + captured.err
    state = states[TASK_ID]
    if auth != "wrong_pass_phrase":  # the search covers the real task (and trigger) log
        assert f"AIDP job run {runs_of(emu, job_key)[0]['key']}" in output

    xcoms = json.dumps([list(x) for x in xcom_values(dag_id, run_id)], default=str)
    sources = {
        "task + trigger log": output,
        "XCom": xcoms,
        "log files": log_files(airflow_db),
        "metadata DB dump": metadata_dump(airflow_db),
    }
    hits = {where: count_hits(text, wanted) for where, text in sources.items()}
    total = sum(sum(h.values()) for h in hits.values())
    row.secrets_found = total
    row.observed = (
        f"task {state}; searched {len(output)} chars of log, {len(xcoms)} of XCom, "
        f"{len(sources['metadata DB dump'])} of DB dump for {len(wanted)} needles: {total} hits"
    )
    assert total == 0, {k: v for k, v in hits.items() if v}
    expected_state = "success" if auth != "wrong_pass_phrase" and outcome == "SUCCESS" else "failed"
    assert state == expected_state, output[-3000:]
    if auth == "wrong_pass_phrase":
        assert "passphrase" in output
    if auth == "security_token":
        assert any(r.status == 401 for r in emu.requests)


REST_CONN_ID = "aidp_rest_secrets"


@pytest.mark.aidp_emulator(time_scale=TIME_SCALE)
def test_no_secret_in_rest_api_answers(
    aidp_emulator: Any,
    secret_key: Any,
    airflow_db: Path,
    monkeypatch: pytest.MonkeyPatch,
    scenario: Any,
) -> None:
    """Airflow's REST API hides extras by name: every secret the connection takes must be hidden."""
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    row = scenario(
        CATEGORY,
        "REST API connection endpoints (create, get, list, patch, test, form metadata)",
        "api",
        expected="0 hits in every answer; Test succeeds with the stored (hidden) secrets",
    )
    emu = aidp_emulator
    emu.register_api_key(secret_key)
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
    monkeypatch.setenv("AIRFLOW__CORE__TEST_CONNECTION", "Enabled")
    client = TestClient(create_app("core"))
    extra = json.loads(emu.connection_json(secret_key))["extra"]
    assert extra["passphrase"] == PASS_PHRASE and "PRIVATE KEY" in extra["private_key"]
    body = {"connection_id": REST_CONN_ID, "conn_type": "aidp", "host": emu.url, "extra": json.dumps(extra)}
    answers: dict[str, Any] = {}
    client.delete(f"/api/v2/connections/{REST_CONN_ID}")
    try:
        answers["POST /connections"] = client.post("/api/v2/connections", json=body)
        answers["GET /connections/{id}"] = got = client.get(f"/api/v2/connections/{REST_CONN_ID}")
        answers["GET /connections"] = client.get("/api/v2/connections", params={"limit": 100})
        shown = got.json()
        edited = dict(shown, extra=json.dumps(dict(json.loads(shown["extra"]), timeout=30)))
        answers["PATCH /connections/{id}"] = client.patch(f"/api/v2/connections/{REST_CONN_ID}", json=edited)
        answers["POST /connections/test"] = tested = client.post("/api/v2/connections/test", json=edited)
        answers["GET /ui/connections/hook_meta"] = client.get("/ui/connections/hook_meta")
    finally:
        client.delete(f"/api/v2/connections/{REST_CONN_ID}")
    for where, resp in answers.items():
        assert resp.status_code < 300, (where, resp.status_code, resp.text[:300])
    assert json.loads(shown["extra"])["private_key"] == "***" == json.loads(shown["extra"])["passphrase"]
    assert tested.json()["status"] is True, tested.text  # the hidden values were kept, and they work
    wanted = needles(secret_key)
    hits = {where: count_hits(resp.text, wanted) for where, resp in answers.items()}
    total = sum(sum(h.values()) for h in hits.values())
    row.secrets_found = total
    chars = sum(len(r.text) for r in answers.values())
    row.observed = (
        f"searched {len(answers)} answers ({chars} chars) for {len(wanted)} needles: {total} hits; "
        f"Test: {tested.json()['message'][:40]}..."
    )
    assert total == 0, {k: v for k, v in hits.items() if v}
