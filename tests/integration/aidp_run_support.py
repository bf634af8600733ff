"""Helpers for the run operator / sensor / trigger integration tests (owned by the run-operator tests).

An emulator wired to ``aidp_default`` through ``AIRFLOW_CONN_AIDP_DEFAULT``, a way to create a
job with tasks, and a runner that puts one operator in a DAG and runs it with ``dag.test()``.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from airflow_provider_aidp.emulator import AIDPEmulator

CLUSTER = {"clusterKey": "ck1", "clusterName": "demo_cluster"}
#: emulator seconds per real second: a default 3 s task plus 2 s of queueing take ~0.1 s.
TIME_SCALE = 50.0
LOGICAL_DATE = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def notebook_task(
    key: str, *, depends: list[str] | None = None, run_if: str = "ALL_SUCCESS"
) -> dict[str, Any]:
    return {
        "type": "NOTEBOOK_TASK",
        "taskKey": key,
        "runIf": run_if,
        "cluster": dict(CLUSTER),
        "source": "WORKSPACE",
        "notebookPath": f"/Workspace/Shared/{key}.ipynb",
        "dependsOn": [{"taskKey": d} for d in depends or []],
    }


def create_job(
    emu: AIDPEmulator, name: str, tasks: list[dict[str, Any]], max_concurrent_runs: int = 1
) -> str:
    """Create a job in two steps (POST name-only, PUT the tasks) through the real hook."""
    from airflow_provider_aidp.hooks.aidp import AIDPHook

    hook = AIDPHook()
    head = {"name": name, "path": "/Workspace/Shared", "maxConcurrentRuns": max_concurrent_runs}
    key = hook.create_job(head).key
    hook.update_job(key, {**head, "tasks": tasks, "jobClusters": [CLUSTER]})
    return key


def scrubbed(shared: AIDPEmulator) -> Iterator[AIDPEmulator]:
    """A module's shared emulator for one test: no scripts or faults left over (before and after)."""
    shared.clear_faults()
    shared.state.scripts.clear()
    yield shared
    shared.clear_faults()


@pytest.fixture
def emu(monkeypatch: pytest.MonkeyPatch) -> Iterator[AIDPEmulator]:
    """A scaled-clock emulator that the ``aidp_default`` connection points at."""
    with AIDPEmulator(time_scale=TIME_SCALE) as server:
        creds = server.generate_api_key()
        monkeypatch.setenv("AIRFLOW_CONN_AIDP_DEFAULT", server.connection_json(creds))
        yield server


class FakeTI:
    """Just enough task instance for calling ``execute`` directly (no Airflow DB)."""

    def __init__(self, task: Any, try_number: int = 1) -> None:
        self.dag_id, self.run_id, self.task_id = "direct", f"r_{uuid.uuid4().hex}", task.task_id
        self.map_index, self.try_number, self.max_tries, self.task = -1, try_number, task.retries, task
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value

    def xcom_pull(self, task_ids: Any = None, key: str = "return_value", **_: Any) -> Any:
        return self.xcoms.get(key)


def execute(op: Any) -> tuple[Any, FakeTI, list[str]]:
    """Run ``op.execute`` with a fake context; returns (result or exception, ti, rendered log lines)."""
    ti = FakeTI(op)
    std = StdlibLines()  # Airflow 3.0 operators log through a stdlib logger, later ones structlog
    if isinstance(op.log, logging.Logger):
        op.log.addHandler(std)
    try:
        with structlog.testing.capture_logs() as logs:
            try:
                result: Any = op.execute({"ti": ti})
            except Exception as exc:
                result = exc
    finally:
        if isinstance(op.log, logging.Logger):
            op.log.removeHandler(std)
    lines = [str(e["event"]) % tuple(e.get("positional_args", ())) for e in logs]
    return result, ti, lines + std.lines


class StdlibLines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def build_dag(*factories: Any) -> Any:
    """A fresh DAG holding the operators the factories build (unique id: no state shared between tests)."""
    from airflow.sdk import DAG

    with DAG(dag_id=f"aidp_it_{uuid.uuid4().hex[:10]}", schedule=None) as dag:
        for factory in factories:
            factory()
    return dag


def run_dag(dag: Any) -> tuple[dict[str, str | None], str]:
    """Register the DAG and run it with ``dag.test()``; returns (task id -> state, run id)."""
    register_dag(dag)
    dag_run = dag.test(logical_date=LOGICAL_DATE, run_after=LOGICAL_DATE)
    return task_states(dag.dag_id, dag_run.run_id), dag_run.run_id


def xcoms(dag: Any, run_id: str, task_id: str) -> dict[str, Any]:
    return {key: value for tid, key, value in xcom_values(dag.dag_id, run_id) if tid == task_id}


def register_dag(dag: Any) -> None:
    """Write a DAG defined in test code to the metadata DB, as the dag-processor would (dag.test needs it)."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.collection import update_dag_parsing_results_in_db
    from airflow.serialization.serialized_objects import LazyDeserializedDAG
    from airflow.utils.session import create_session

    DagBundlesManager().sync_bundles_to_db()
    with create_session() as session:
        if hasattr(LazyDeserializedDAG, "from_dag"):  # Airflow >= 3.1
            lazy = LazyDeserializedDAG.from_dag(dag)
            update_dag_parsing_results_in_db("dags-folder", None, [lazy], {}, None, set(), session=session)
        else:  # Airflow 3.0: no parse duration; the DagBag (not the DAG) sets relative_fileloc
            from airflow.serialization.serialized_objects import SerializedDAG

            dag.relative_fileloc = dag.relative_fileloc or dag.fileloc
            lazy = LazyDeserializedDAG(data=SerializedDAG.to_dict(dag))
            update_dag_parsing_results_in_db("dags-folder", None, [lazy], {}, set(), session=session)


def task_states(dag_id: str, run_id: str) -> dict[str, str | None]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        tis = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
        ).all()
        return {
            ti.task_id: (None if ti.state is None else str(getattr(ti.state, "value", ti.state)))
            for ti in tis
        }


def xcom_values(dag_id: str, run_id: str) -> list[tuple[str, str, Any]]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(XComModel).where(XComModel.dag_id == dag_id, XComModel.run_id == run_id)
        ).all()
        return [(r.task_id, r.key, XComModel.deserialize_value(r)) for r in rows]
