"""Fixtures shared by the end-to-end tests: one emulator process + one Airflow deployment.

Both are started once for all e2e tests (starting Airflow costs ~20 s on 2 cores) and are always
stopped in the fixture finalizers, whole process groups included, even when a test fails. They are
package-scoped: stopped after the last e2e test, not at the end of the whole session (an idle
deployment's scheduler, triggerer, dag-processor and api-server loops took about a quarter of a
core for the rest of a full run).
Set ``AIDP_E2E_KEEP=1`` to keep the temp directories (logs) after the tests.

``tests/e2e/production/`` has a deployment of its own (PostgreSQL, Celery, two triggerers, two
workers) and an emulator of its own; pytest runs that folder first and stops it before these start.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .deployment import AirflowDeployment, DeploymentError
from .processes import ManagedProcess

#: emulator seconds per real second; a default 3 s AIDP task takes 0.3 s
TIME_SCALE = 10.0


@dataclass
class EmulatorProcess:
    """``python -m airflow_provider_aidp.emulator`` in its own process group."""

    proc: ManagedProcess
    url: str
    connection: dict[str, Any]

    @property
    def client(self) -> Any:
        from airflow_provider_aidp.emulator.client import EmulatorClient

        return EmulatorClient(self.url)


def start_emulator(workdir: Path) -> EmulatorProcess:
    key_file = workdir / "emulator_api_key.pem"
    url_file = workdir / "emulator_url"
    argv = [
        sys.executable,
        "-m",
        "airflow_provider_aidp.emulator",
        "--port",
        "0",
        "--time-scale",
        str(TIME_SCALE),
        "--key-file",
        str(key_file),
        "--url-file",
        str(url_file),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["PYTHONUNBUFFERED"] = "1"
    proc = ManagedProcess("emulator", argv, env, workdir / "emulator.log", cwd=workdir).start()
    deadline = time.monotonic() + 60
    while not url_file.exists() or not url_file.read_text().strip():
        if not proc.alive():
            raise DeploymentError(f"the emulator exited:\n{proc.log_text()[-3000:]}")
        if time.monotonic() > deadline:
            proc.stop()
            raise DeploymentError(f"the emulator did not start within 60s:\n{proc.log_text()[-3000:]}")
        time.sleep(0.1)
    # the connection JSON is printed before the URL file is written
    lines = proc.log_text().splitlines()
    connection = next(json.loads(line) for line in lines if line.startswith('{"conn_type"'))
    return EmulatorProcess(proc, url_file.read_text().strip(), connection)


@pytest.fixture(scope="package")
def e2e_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="aidp-e2e-"))
    yield path
    if os.environ.get("AIDP_E2E_KEEP") != "1":
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="package")
def emulator_process(e2e_dir: Path) -> Iterator[EmulatorProcess]:
    emu = start_emulator(e2e_dir)
    try:
        yield emu
    finally:
        emu.proc.stop()


@pytest.fixture(scope="package")
def airflow_deployment(e2e_dir: Path, emulator_process: EmulatorProcess) -> Iterator[AirflowDeployment]:
    extra_env = {
        "AIRFLOW_CONN_AIDP_DEFAULT": json.dumps(emulator_process.connection),
        "AIDP_EXAMPLE_POLL_SECONDS": "1",
        "AIDP_EXAMPLE_RETRY_DELAY_SECONDS": "1",
    }
    deployment = AirflowDeployment(e2e_dir / "airflow_home", extra_env)
    try:
        deployment.start()
        yield deployment
    finally:
        deployment.stop()
        if deployment.leftovers:  # pragma: no cover - reported, not hidden
            pytest.fail(f"Airflow processes outlived the deployment: {deployment.leftovers}")


EXAMPLE_DAGS = ("example_aidp_etl", "example_aidp_deferred", "example_aidp_failure_repair")


#: emulator seconds the deferred example job's first AIDP task takes (15 s real at TIME_SCALE 10)
DEFERRED_EXAMPLE_TASK_SECONDS = 150.0


@pytest.fixture(scope="package")
def started_example_runs(
    airflow_deployment: AirflowDeployment, emulator_process: EmulatorProcess
) -> dict[str, str]:
    """Trigger the three example DAGs (``airflow dags trigger``, in parallel); dag_id -> run_id.

    Package-scoped and not waited for here, so tests that only need the deployment (the
    connection checks) run while the DAGs run; ``test_example_dags`` waits for the outcomes.

    The deferred example's AIDP runs are made to take 15 real seconds (their first task). A
    trigger that fires before the worker's defer exit is processed hits an Airflow 3.3.2 scheduler
    race (apache/airflow #67287: the worker's stale "success" from the defer exit is processed
    after the resumed task instance is already QUEUED, and the scheduler fails it as "killed
    externally"). That exit took about a second on an idle machine but up to ~8 s on a loaded
    2-core one (6 s runs lost the race there). Real AIDP runs take minutes, so this models
    production more closely.
    """
    emulator_process.client.script_task(
        job_name="clickstream_sessionize",
        task_key="sessionize_events",
        duration=DEFERRED_EXAMPLE_TASK_SECONDS,
    )
    for dag_id in EXAMPLE_DAGS:
        airflow_deployment.wait_for_dag(dag_id)
        airflow_deployment.unpause(dag_id)
    with ThreadPoolExecutor(len(EXAMPLE_DAGS)) as pool:
        return dict(zip(EXAMPLE_DAGS, pool.map(airflow_deployment.trigger, EXAMPLE_DAGS), strict=True))
