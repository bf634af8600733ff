"""The /_emulator/ control API through EmulatorClient, the CLI, the pytest fixture, connection helpers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote

import pytest
import requests

from airflow_provider_aidp.emulator import AIDPEmulator, EmulatorClient

from .conftest import Api, task

REPO = Path(__file__).resolve().parents[2]


def test_control_api_drives_a_run(emu: AIDPEmulator) -> None:
    client = EmulatorClient(emu.url)
    assert client.health()
    creds = client.generate_api_key()
    api = Api(emu, creds)
    client.script_task(task_key="a", outcome="FAILED", state_message="boom", duration=5)
    key = api.create_job(tasks=[task("a")])
    run = api.run(key)
    client.advance(30)
    runs = client.runs()
    assert runs[0]["key"] == run["key"] and runs[0]["status"] == "FAILED"
    assert runs[0]["tasks"]["a"]["state_message"] == "boom"
    assert client.jobs()[0]["key"] == key
    assert len(client.requests(method="POST", path_contains="/jobRuns")) == 1
    client.inject_fault("status", "*/jobs", method="GET", status=503)
    assert client.faults()[0]["status"] == 503
    assert api("GET", "/jobs").status_code == 503
    client.clear_requests()
    assert client.requests() == []
    page = requests.get(f"{emu.url}/_emulator/console/runs/{run['key']}", timeout=5)
    assert page.status_code == 200 and "FAILED" in page.text and "boom" in page.text
    client.config(surfaces=["20240831"])
    assert api("GET", "/jobs").status_code == 404
    client.reset()
    assert client.runs() == [] and client.config()["surfaces"] == ["20240831"]
    with pytest.raises(RuntimeError):
        client.script_task(outcome="EXPLODED")


def test_control_session_tokens(emu: AIDPEmulator) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from oci.auth.signers.security_token_signer import SecurityTokenSigner

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    client = EmulatorClient(emu.url)
    assert client.register_session_token("t1", pem) == "ST$t1"
    session = requests.Session()
    session.auth = SecurityTokenSigner("t1", key)
    assert session.get(emu.base_path() + "/jobs", timeout=5).status_code == 200
    client.revoke_session_token("t1")
    assert session.get(emu.base_path() + "/jobs", timeout=5).status_code == 401


def test_connection_helpers(emu: AIDPEmulator, tmp_path: Path) -> None:
    creds = emu.generate_api_key()
    extra = emu.connection_extra(creds)
    assert extra["auth_type"] == "api_key" and extra["private_key"].startswith("-----BEGIN")
    assert extra["console_url_template"] == emu.url + "/_emulator/console/jobs/{job_key}/runs/{run_key}"
    assert extra["ai_data_platform_id"].startswith("ocid1.aidataplatform.")
    as_json = json.loads(emu.connection_json(creds, api_version="20240831"))
    assert as_json["host"] == emu.url and as_json["extra"]["api_version"] == "20240831"
    key_file = tmp_path / "key.pem"
    uri = emu.connection_uri(creds, private_key_file=str(key_file))
    assert uri.startswith("aidp://http://") and "BEGIN" not in unquote(uri)

    from airflow.models.connection import Connection

    conn = Connection(conn_id="aidp_test", uri=uri)
    assert conn.host == emu.url and conn.extra_dejson["key_file"] == str(key_file)


async def test_async_form() -> None:
    import aiohttp

    async with (
        AIDPEmulator(accept_any_signature=True) as emu,
        aiohttp.ClientSession() as session,
        session.get(emu.base_path() + "/jobs") as resp,
    ):
        assert resp.status == 200 and await resp.json() == {"items": []}


@pytest.mark.aidp_emulator(time_scale=0, surfaces=["20240831"])
def test_pytest_fixture(aidp_emulator: AIDPEmulator) -> None:
    creds = aidp_emulator.generate_api_key()
    assert Api(aidp_emulator, creds, "20240831")("GET", "/jobs").status_code == 200
    assert Api(aidp_emulator, creds)("GET", "/jobs").status_code == 404


def test_cli_prints_a_working_connection(tmp_path: Path) -> None:
    scenario = tmp_path / "scenario.json"
    scenario.write_text(
        json.dumps({"scripts": [{"task_key": "a", "outcome": "FAILED"}], "timings": {"task_s": 0.5}})
    )
    key_file = tmp_path / "emu_key.pem"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_provider_aidp.emulator",
            "--port",
            "0",
            "--key-file",
            str(key_file),
            "--scenario",
            str(scenario),
            "--time-scale",
            "100",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [proc.stdout.readline() for _ in range(5)]  # type: ignore[union-attr]
        url = lines[0].split()[-1]
        conn = json.loads(lines[3])
        assert conn["host"] == url and conn["extra"]["key_file"] == str(key_file.resolve())
        assert "BEGIN" not in "".join(lines) and key_file.read_text().startswith("-----BEGIN")
        assert (key_file.stat().st_mode & 0o777) == 0o600
        client = EmulatorClient(url)
        assert client.health() and client.config()["timings"]["task_s"] == 0.5
        assert client.config()["time_scale"] == 100
        extra = conn["extra"]
        from oci.signer import Signer

        session = requests.Session()
        session.auth = Signer(extra["tenancy"], extra["user"], extra["fingerprint"], extra["key_file"])
        platform, ws = extra["ai_data_platform_id"], extra["workspace_key"]
        base = f"{url}/20260430/aiDataPlatforms/{platform}/workspaces/{ws}"
        assert session.get(base + "/jobs", timeout=5).status_code == 200
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode == 0


def test_scaled_clock_moves_runs_without_advance() -> None:
    with AIDPEmulator(time_scale=50) as emu:
        creds = emu.generate_api_key()
        api = Api(emu, creds)
        run = api.run(api.create_job(tasks=[task("a")]))
        deadline = time.monotonic() + 5
        while api.get_run(run["key"])["state"]["status"] != "SUCCESS" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert api.get_run(run["key"])["state"]["status"] == "SUCCESS"


@pytest.mark.aidp_connection(api_version="20240831", workspace_key="ws2")
def test_aidp_connection_fixture(aidp_connection) -> None:  # type: ignore[no-untyped-def]
    import os

    conn = json.loads(os.environ["AIRFLOW_CONN_AIDP_DEFAULT"])
    assert conn["host"] == aidp_connection.emulator.url and conn["extra"]["workspace_key"] == "ws2"
    api = Api(aidp_connection.emulator, aidp_connection.credentials, "20240831")
    api.base = api.base.replace("emulator_ws", "ws2")
    key = api.create_job(tasks=[task("a", la=True)])
    api.run(key)
    api("POST", f"/jobs/{key}/actions/cancelJobRuns")
    emu = aidp_connection.emulator
    assert len(emu.find_requests("POST", path="*/jobRuns")) == 1
    assert len(emu.find_requests("POST", path_contains="/jobs")) == 2
    assert len(EmulatorClient(emu.url).requests(method="POST", path="*/jobRuns")) == 1
