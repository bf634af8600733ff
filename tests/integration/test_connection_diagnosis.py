"""The connection's Test and ``doctor`` against the emulator: fast, one attempt, saying what is wrong."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_aidp.emulator import AIDPEmulator
from airflow_provider_aidp.emulator.connection import DEFAULT_PLATFORM_ID
from airflow_provider_aidp.emulator.credentials import generate_api_key
from airflow_provider_aidp.hooks.aidp import AIDPHook

REPO = Path(__file__).resolve().parents[2]
GA, LA = "20260430", "20240831"


@pytest.fixture(scope="module")
def emu() -> Iterator[AIDPEmulator]:
    with AIDPEmulator(time_scale=0) as server:
        yield server


@pytest.fixture(scope="module")
def la_only() -> Iterator[AIDPEmulator]:
    """A tenancy that answers only the LA surface (as some do)."""
    with AIDPEmulator(time_scale=0, surfaces=[LA]) as server:
        yield server


@pytest.fixture(scope="module")
def extra(emu: AIDPEmulator) -> dict[str, Any]:
    return emu.connection_extra(emu.generate_api_key())


def run_test(monkeypatch: pytest.MonkeyPatch, host: str, extra: dict[str, Any]) -> tuple[bool, str, float]:
    monkeypatch.setenv(
        "AIRFLOW_CONN_AIDP_CHECK", json.dumps({"conn_type": "aidp", "host": host, "extra": extra})
    )
    started = time.monotonic()
    ok, message = AIDPHook("aidp_check").test_connection()
    return ok, message, time.monotonic() - started


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_success_names_host_surface_and_workspace(emu: AIDPEmulator, extra: dict, monkeypatch: Any) -> None:
    ok, message, _ = run_test(monkeypatch, emu.url, extra)
    assert ok, message
    assert "Connected to 127.0.0.1" in message and "aiDataPlatforms" in message and "emulator_ws" in message


def test_refused_is_one_fast_attempt_naming_the_host(extra: dict, monkeypatch: Any) -> None:
    port = closed_port()
    ok, message, elapsed = run_test(monkeypatch, f"http://127.0.0.1:{port}", dict(extra, max_retries=5))
    assert not ok
    assert "refused" in message and "127.0.0.1" in message
    assert elapsed < 5  # the hook's retry ladder (max_retries=5) took ~25 s here


def test_unknown_host_is_a_dns_failure_naming_the_host(extra: dict, monkeypatch: Any) -> None:
    ok, message, elapsed = run_test(monkeypatch, "https://aidp.no-such-region.invalid", extra)
    assert not ok
    assert message.startswith("DNS: cannot resolve aidp.no-such-region.invalid"), message
    assert elapsed < 5


def test_tls_to_a_plain_http_port_is_named_tls(emu: AIDPEmulator, extra: dict, monkeypatch: Any) -> None:
    # https:// to the emulator's plain-http port: a TLS handshake failure, not "ConnectionError".
    host = emu.url.replace("http://", "https://")
    ok, message, _ = run_test(monkeypatch, host, extra)
    assert not ok
    assert message.startswith("TLS handshake with 127.0.0.1 failed") and "ca_bundle" in message, message


def test_wrong_api_version_says_which_one_works(la_only: AIDPEmulator, monkeypatch: Any) -> None:
    extra = la_only.connection_extra(la_only.generate_api_key(), api_version=GA)
    ok, message, _ = run_test(monkeypatch, la_only.url, extra)
    assert not ok
    assert "this instance answers on api_version=20240831" in message, message
    assert "127.0.0.1" in message


def test_wrong_workspace_is_named(emu: AIDPEmulator, extra: dict, monkeypatch: Any) -> None:
    ok, message, _ = run_test(monkeypatch, emu.url, dict(extra, workspace_key="no_such_ws"))
    assert not ok
    assert message.startswith("Workspace 'no_such_ws' was not found (404 from 127.0.0.1"), message


def test_wrong_instance_is_named(emu: AIDPEmulator, extra: dict, monkeypatch: Any) -> None:
    other = "ocid1.aidataplatform.oc1.iad.notmine"
    ok, message, _ = run_test(monkeypatch, emu.url, dict(extra, ai_data_platform_id=other))
    assert not ok
    assert message.startswith(f"AI Data Platform instance {other} was not found"), message


def test_opaque_404_reading_names_both_suspects(emu: AIDPEmulator, extra: dict, monkeypatch: Any) -> None:
    """OCI often answers a bare NotAuthorizedOrNotFound; the message must still help."""
    emu.state.tenancy.detailed = False
    try:
        ok, message, _ = run_test(monkeypatch, emu.url, dict(extra, workspace_key="no_such_ws"))
    finally:
        emu.state.tenancy.detailed = True
    assert not ok
    assert "Not found (404 from 127.0.0.1 [NotAuthorizedOrNotFound]" in message
    assert "'ai_data_platform_id' and 'workspace_key'" in message and DEFAULT_PLATFORM_ID in message


def test_401_names_the_key(emu: AIDPEmulator, extra: dict, monkeypatch: Any) -> None:
    stranger = generate_api_key()  # never registered with the emulator
    wrong = dict(extra, fingerprint=stranger.fingerprint, private_key=stranger.private_key_pem)
    ok, message, _ = run_test(monkeypatch, emu.url, wrong)
    assert not ok
    assert message.startswith("Authentication failed (401 from 127.0.0.1"), message
    assert f"key fingerprint {stranger.fingerprint}" in message and "PRIVATE KEY" not in message


def test_403_is_a_policy_problem_and_500_is_not_retried(
    emu: AIDPEmulator, extra: dict, monkeypatch: Any
) -> None:
    emu.inject_fault("status", status=403, path="*/jobs", times=1)
    ok, message, _ = run_test(monkeypatch, emu.url, extra)
    assert not ok and message.startswith("Not authorized (403 from 127.0.0.1") and "policy" in message
    emu.state.recorder.clear()
    emu.inject_fault("status", status=503, path="*/jobs", times=1)
    ok, message, _ = run_test(monkeypatch, emu.url, dict(extra, max_retries=5))
    assert not ok and "503 from 127.0.0.1" in message
    assert len(emu.find_requests(method="GET")) == 1  # one attempt, no retry ladder


def test_bad_settings_fail_before_any_request(emu: AIDPEmulator, extra: dict, monkeypatch: Any) -> None:
    emu.state.recorder.clear()
    ok, message, _ = run_test(monkeypatch, emu.url, dict(extra, api_version="2024"))
    assert not ok and "'api_version' must be one of" in message
    assert emu.requests == []


def _doctor(env_conn: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, AIRFLOW_CONN_AIDP_DOCTOR=json.dumps(env_conn), PYTHONIOENCODING="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "airflow_provider_aidp.doctor", "--conn-id", "aidp_doctor", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_doctor_prints_each_check(
    emu: AIDPEmulator, extra: dict, monkeypatch: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from airflow_provider_aidp.doctor import main

    conn = {"conn_type": "aidp", "host": emu.url, "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_AIDP_DOCTOR", json.dumps(conn))
    assert main(["--conn-id", "aidp_doctor"]) == 0
    good = capsys.readouterr().out
    lines = [line for line in good.splitlines() if line[:1] in "✔✘"]
    assert [line.split(":")[0] for line in lines] == ["✔ settings", "✔ credentials", "✔ DNS", "✔ API"]
    bad = _doctor(conn, "--workspace-key", "elsewhere")  # the command as users run it
    assert bad.returncode == 1
    assert bad.stdout.splitlines()[-1].startswith("✘ API: Workspace 'elsewhere' was not found")
    assert extra["private_key"].splitlines()[1] not in good + bad.stdout + bad.stderr
