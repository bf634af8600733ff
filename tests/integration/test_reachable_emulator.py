"""The docker-compose recipe of docs/emulator.md, minus Docker: what it relies on, through real Airflow.

In the recipe Airflow reaches the emulator by a service name over TLS; here the emulator binds
127.0.0.2, its public URL names ``aidp-emulator.test`` (resolved to 127.0.0.2 by a resolver
override in this process, as a container network's DNS would), signatures are checked against
that public host, and the connection trusts the emulator's certificate through its ``ca_bundle``
extra (the environment's REQUESTS_CA_BUNDLE points at the system CAs, which do not trust it).
Both waits run: ``deferrable=False`` (requests) and ``deferrable=True`` (the trigger's aiohttp).
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_aidp.emulator import AIDPEmulator
from airflow_provider_aidp.operators.aidp import AIDPRunJobOperator
from tests.integration.aidp_run_support import TIME_SCALE, build_dag, create_job, notebook_task, run_dag

PUBLIC_HOST = "aidp-emulator.test"
BIND = "127.0.0.2"


@pytest.fixture(scope="module")
def compose_like_emulator(
    airflow_db: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AIDPEmulator]:
    real_getaddrinfo = socket.getaddrinfo

    def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
        return real_getaddrinfo(BIND if host == PUBLIC_HOST else host, *args, **kwargs)

    tls_dir = tmp_path_factory.mktemp("tls")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket, "getaddrinfo", resolve)
        with AIDPEmulator(
            bind=BIND, public_url=f"https://{PUBLIC_HOST}", tls=True, tls_dir=tls_dir, time_scale=TIME_SCALE
        ) as server:
            mp.setenv("AIRFLOW_CONN_AIDP_DEFAULT", server.connection_json(server.generate_api_key()))
            yield server


def test_the_printed_connection_names_the_public_host_and_the_ca_bundle(
    compose_like_emulator: AIDPEmulator,
) -> None:
    emu = compose_like_emulator
    conn = json.loads(emu.connection_json())
    assert emu.url == f"https://{PUBLIC_HOST}:{emu.port}" and conn["host"] == emu.url
    assert conn["extra"]["ca_bundle"] == str(emu.ca_bundle) and Path(conn["extra"]["ca_bundle"]).is_file()


def test_signatures_are_checked_against_the_public_host(compose_like_emulator: AIDPEmulator) -> None:
    """A correctly signed request that names another host (the bind address) is refused."""
    emu = compose_like_emulator
    creds = emu.generate_api_key()
    path = emu.base_path().split(emu.url, 1)[1] + "/jobs"
    ok = requests.get(f"{emu.url}{path}", auth=creds.signer(), verify=str(emu.ca_bundle), timeout=10)
    assert ok.status_code == 200, ok.text
    other = requests.get(
        f"https://{BIND}:{emu.port}{path}", auth=creds.signer(), verify=str(emu.ca_bundle), timeout=10
    )
    assert other.status_code == 401 and "host" in other.text.lower()
    unsigned = requests.get(f"{emu.url}{path}", verify=str(emu.ca_bundle), timeout=10)
    assert unsigned.status_code == 401


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferred"])
def test_run_operator_succeeds_and_fails_over_tls(
    compose_like_emulator: AIDPEmulator, deferrable: bool
) -> None:
    emu = compose_like_emulator
    tag = uuid.uuid4().hex[:8]
    emu.script_task(job_name=f"bad_{tag}", outcome="FAILED", state_message="scripted failure")
    good = create_job(emu, f"good_{tag}", [notebook_task("a")])
    bad = create_job(emu, f"bad_{tag}", [notebook_task("a")])
    dag = build_dag(
        lambda: AIDPRunJobOperator(task_id="ok", job_key=good, poll_interval=0.2, deferrable=deferrable),
        lambda: AIDPRunJobOperator(task_id="bad", job_key=bad, poll_interval=0.2, deferrable=deferrable),
    )
    states, _ = run_dag(dag)
    assert states == {"ok": "success", "bad": "failed"}
    statuses = {r["jobKey"]: r["state"]["status"] for r in emu.runs() if r["jobKey"] in (good, bad)}
    assert statuses == {good: "SUCCESS", bad: "FAILED"}
    polls = [r for r in emu.requests if r.method == "GET" and "/jobRuns/" in r.path]
    hosts = {v for r in polls for k, v in r.headers.items() if k.lower() == "host"}
    assert polls and hosts == {f"{PUBLIC_HOST}:{emu.port}"}
