"""Helpers shared by the fault-matrix tests: seed jobs in the emulator, read what it recorded,
register and run DAGs through real Airflow (``dag.test()``), retry a task the way the scheduler does.

Kept here (not in a test file) so the crash runner subprocess can import it too.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from typing import Any

from airflow_provider_aidp.emulator.connection import DEFAULT_PLATFORM_ID, DEFAULT_WORKSPACE
from tests.integration.aidp_run_support import register_dag, task_states, xcom_values

__all__ = ["register_dag", "task_states", "xcom_values"]

SCOPE = (DEFAULT_PLATFORM_ID, DEFAULT_WORKSPACE)
CONN_ID = "aidp_reliability"
#: Hook retry budget of every run scenario: 4 retries, waits capped at 0.2 s, 2 s request timeout.
FAST_RETRY_EXTRA: dict[str, Any] = {"max_retries": 4, "retry_wait_max": 0.2, "timeout": 2.0}
LOGICAL_DATE = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


# --- emulator side -----------------------------------------------------------------------------


def notebook_task(task_key: str, path: str | None = None, depends_on: Iterable[str] = ()) -> dict[str, Any]:
    return {
        "taskKey": task_key,
        "type": "NOTEBOOK_TASK",
        "notebookPath": path or f"/Workspace/reliability/{task_key}.ipynb",
        "cluster": {"clusterName": "reliability_cluster"},
        "runIf": "ALL_SUCCESS",
        "dependsOn": [{"taskKey": k} for k in depends_on],
    }


def default_tasks() -> list[dict[str, Any]]:
    return [notebook_task("extract"), notebook_task("load", depends_on=["extract"])]


def seed_job(
    emu: Any,
    name: str = "reliability_job",
    *,
    path: str = "/reliability",
    tasks: list[dict[str, Any]] | None = None,
    max_concurrent_runs: int = 1,
) -> str:
    """Create a job straight in the emulator's store (no request recorded); returns its key."""
    body = {
        "name": name,
        "path": path,
        "maxConcurrentRuns": max_concurrent_runs,
        "tasks": tasks if tasks is not None else default_tasks(),
    }
    return str(emu.state.store.create_job(SCOPE, body).key)


def is_create_run(method: str, path: str) -> bool:
    return method == "POST" and path.rstrip("/").endswith("/jobRuns")


def run_posts(emu: Any) -> list[Any]:
    """Every POST /jobRuns the emulator received (answered or not)."""
    return [r for r in emu.requests if is_create_run(r.method, r.path)]


def cancel_requests(emu: Any) -> list[Any]:
    ends = ("/actions/cancel", "/actions/cancelJobRuns")
    return [r for r in emu.requests if r.method == "POST" and r.path.endswith(ends)]


def runs_of(emu: Any, job_key: str) -> list[dict[str, Any]]:
    return [r for r in emu.runs() if r.get("jobKey") == job_key]


def run_status(run: dict[str, Any]) -> str | None:
    return (run.get("state") or {}).get("status")


def connection_json(emu: Any, creds: Any, **extra: Any) -> str:
    """``AIRFLOW_CONN_...`` JSON for the emulator with the fast retry budget (overridable)."""
    conn = json.loads(emu.connection_json(creds))
    conn["extra"].update(FAST_RETRY_EXTRA)
    conn["extra"].update(extra)
    return json.dumps(conn)


def conn_env_name(conn_id: str = CONN_ID) -> str:
    return f"AIRFLOW_CONN_{conn_id.upper()}"


# --- Airflow side ------------------------------------------------------------------------------


def run_dag(dag: Any, logical_date: dt.datetime = LOGICAL_DATE) -> tuple[dict[str, str | None], str]:
    """``dag.test()`` at a fixed logical date (so a fixed run id); returns (task id -> state, run id)."""
    register_dag(dag)
    dr = dag.test(logical_date=logical_date, run_after=logical_date)
    return task_states(dag.dag_id, dr.run_id), dr.run_id


def retry_task(dag: Any, task_id: str, logical_date: dt.datetime = LOGICAL_DATE) -> str | None:
    """Retry one task instance of an existing DAG run the way the scheduler does after a worker crash.

    The DAG run (and so its ``task_state_store`` rows) is kept; the crashed try is failed into
    ``up_for_retry``, the try number goes up, and the task runs again in this process (deferred
    tasks have their trigger run inline, as in ``dag.test()``).  Returns the final state.
    """
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.sdk.definitions.dag import _run_task
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    with create_session() as session:
        dr = session.scalar(
            select(DagRun).where(DagRun.dag_id == dag.dag_id, DagRun.logical_date == logical_date)
        )
        assert dr is not None, "the crashed attempt left no DAG run"
        ti = session.scalar(
            select(TaskInstance).where(
                TaskInstance.dag_id == dag.dag_id,
                TaskInstance.run_id == dr.run_id,
                TaskInstance.task_id == task_id,
            )
        )
        assert ti is not None
        ti.try_number += 1
        ti.state = TaskInstanceState.SCHEDULED
        ti.next_method = None
        ti.next_kwargs = None
        session.commit()
        session.refresh(ti)
        session.expunge(ti)
    _run_task(ti=ti, task=dag.task_dict[task_id], run_triggerer=True)
    return task_states(dag.dag_id, ti.run_id)[task_id]
