"""``airflow connections test`` against the emulator: success, a wrong key (401), a wrong workspace (404),
the wrong API version (named, with the one that works) and an unreachable endpoint (named, fast).

The connection test is what the UI's "Test" button runs; it must say what is wrong, not just
"failed". Connections come from ``AIRFLOW_CONN_*`` variables, as in a container deployment.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_aidp.emulator import AIDPEmulator

from .conftest import EmulatorProcess
from .deployment import AirflowDeployment
from .processes import free_port

pytestmark = pytest.mark.e2e

WRONG_WORKSPACE = "no_such_workspace"
GA, LA = "20260430", "20240831"


def _connection_test(deployment: AirflowDeployment, conn_id: str, conn: dict[str, Any]) -> tuple[int, str]:
    env = {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn)}
    result = deployment.cli("connections", "test", conn_id, env=env, check=False)
    return result.returncode, result.stdout + result.stderr


def _wrong_key_connection(emu: EmulatorProcess, workdir: Path) -> dict[str, Any]:
    """Same tenancy/user, but a key pair the emulator has never seen (as after a key rotation)."""
    from airflow_provider_aidp.emulator.credentials import generate_api_key

    creds = generate_api_key()
    key_file = workdir / "unregistered_key.pem"
    key_file.write_text(creds.private_key_pem)
    key_file.chmod(0o600)
    extra = dict(emu.connection["extra"], fingerprint=creds.fingerprint, key_file=str(key_file))
    extra.pop("private_key", None)
    return dict(emu.connection, extra=extra)


def test_connections_test_cli(
    started_example_runs: dict[str, str],  # only to overlap: these CLI calls run while the DAGs run
    airflow_deployment: AirflowDeployment,
    emulator_process: EmulatorProcess,
    e2e_dir: Path,
) -> None:
    emu = emulator_process
    # The emulator hosts only the connection's workspace: another one is a 404, as in AIDP.
    wrong_ws = dict(emu.connection, extra=dict(emu.connection["extra"], workspace_key=WRONG_WORKSPACE))
    unreachable = dict(emu.connection, host=f"http://127.0.0.1:{free_port()}")
    with AIDPEmulator(surfaces=[LA]) as la_only:  # a tenancy that only answers the LA surface
        extra = la_only.connection_extra(la_only.generate_api_key(), api_version=GA)
        cases = {
            "aidp_default": emu.connection,
            "aidp_wrong_key": _wrong_key_connection(emu, e2e_dir),
            "aidp_wrong_workspace": wrong_ws,
            "aidp_unreachable": unreachable,
            "aidp_wrong_version": {"conn_type": "aidp", "host": la_only.url, "extra": extra},
        }
        with ThreadPoolExecutor(len(cases)) as pool:
            futures = {
                cid: pool.submit(_connection_test, airflow_deployment, cid, c) for cid, c in cases.items()
            }
            results = {cid: f.result() for cid, f in futures.items()}

    code, out = results["aidp_default"]
    assert code == 0, out
    assert "Connection success!" in out

    code, out = results["aidp_wrong_key"]
    assert code == 1, out
    assert "Connection failed!" in out
    assert "401" in out and "Authentication failed" in out, out
    assert "PRIVATE KEY" not in out  # never leak key material into the message

    code, out = results["aidp_wrong_workspace"]
    assert code == 1, out
    assert "404" in out and "workspace_key" in out, out
    assert f"Workspace '{WRONG_WORKSPACE}' was not found (404 from 127.0.0.1" in out, out

    code, out = results["aidp_unreachable"]
    assert code == 1 and "Connection to 127.0.0.1 refused" in out, out

    code, out = results["aidp_wrong_version"]
    assert code == 1 and "this instance answers on api_version=20240831" in out, out

    # the failing checks really reached the emulator and were answered 401 / 404
    seen = emu.client.requests(method="GET", path_contains="/jobs")
    statuses = {(WRONG_WORKSPACE in r["path"], r["status"]) for r in seen}
    assert (False, 401) in statuses and (True, 404) in statuses and (False, 200) in statuses
