"""Helpers for the workflow task group tests: a group DAG, a user's Clear, and what the emulator saw.

``clear_and_resume`` does what a Clear does in Airflow (``clear_task_instances``: a new try id, a
raised ``max_tries``, the DAG run queued again) and then what the scheduler does next, in the loop
``dag.test()`` uses: the cleared tasks run again, deferrals resolved inline. ``dag.test()`` itself
cannot do it: it replaces any run of the same logical date with a new one.
"""

from __future__ import annotations

import inspect
import time
import uuid
from collections.abc import Callable
from typing import Any

from airflow_provider_aidp.emulator import AIDPEmulator

FOLDER = "/Workspace/Shared/wf"
CLUSTERS = [{"cluster_key": "wf", "cluster_name": "demo_cluster"}]


def job_name() -> str:
    return f"wf_{uuid.uuid4().hex[:8]}"


def chain_group(
    name: str, keys: tuple[str, ...] = ("extract", "transform", "load"), **task_args: Any
) -> Callable[[], Any]:
    """A factory (for ``build_dag``) of a group ``etl`` whose notebook tasks run one after the other."""

    def build() -> Any:
        from airflow_provider_aidp.operators.workflow import AIDPNotebookTaskOperator, AIDPWorkflowTaskGroup

        args = {"poke_interval": 0.2, **task_args}
        with AIDPWorkflowTaskGroup(
            group_id="etl",
            job_name=name,
            job_path=FOLDER,
            job_clusters=CLUSTERS,
            run_parameters={"day": "{{ ds }}"},
            launch_kwargs={"retries": 0},
        ) as group:
            previous = None
            for key in keys:
                op = AIDPNotebookTaskOperator(
                    task_id=key, notebook_path=f"{FOLDER}/{key}.ipynb", cluster_key="wf", **args
                )
                if previous is not None:
                    previous >> op
                previous = op
        return group

    return build


def runs_of_job(emu: AIDPEmulator, name: str) -> list[dict[str, Any]]:
    return [r for r in emu.runs() if r.get("jobName") == name]


def job_key_of(emu: AIDPEmulator, name: str) -> str:
    from airflow_provider_aidp.hooks.aidp import AIDPHook

    job = AIDPHook().find_job(name, FOLDER)
    assert job is not None
    return job.key


def requests(emu: AIDPEmulator, method: str, suffix: str) -> list[Any]:
    return [r for r in emu.requests if r.method == method and r.path.endswith(suffix)]


def run_posts(emu: AIDPEmulator, job_key: str) -> list[Any]:
    return [r for r in requests(emu, "POST", "/jobRuns") if (r.json() or {}).get("jobKey") == job_key]


def repairs(emu: AIDPEmulator, run_key: str) -> list[Any]:
    return requests(emu, "POST", f"/jobRuns/{run_key}/actions/repair")


def task_statuses(emu: AIDPEmulator, run_key: str) -> dict[str, str]:
    from airflow_provider_aidp.hooks.aidp import AIDPHook

    hook = AIDPHook()
    return {t.task_key or "": str(t.status) for t in hook.get_task_runs(hook.get_job_run(run_key))}


# --- a user's Clear, then the scheduler ------------------------------------------------------------


def clear_and_resume(
    dag: Any, run_id: str, task_ids: list[str], *, downstream: bool
) -> dict[str, str | None]:
    """Clear ``task_ids`` (with their downstream tasks) of the DAG run, as the UI / REST API / CLI do,
    and run the DAG run on until it ends; the task states then."""
    from airflow.models.taskinstance import TaskInstance, clear_task_instances
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from tests.integration.aidp_run_support import task_states

    chosen = set(task_ids)
    if downstream:
        for task_id in task_ids:
            chosen |= set(dag.get_task(task_id).get_flat_relative_ids(upstream=False))
    with create_session() as session:
        tis = session.scalars(
            select(TaskInstance).where(
                TaskInstance.dag_id == dag.dag_id,
                TaskInstance.run_id == run_id,
                TaskInstance.task_id.in_(chosen),
            )
        ).all()
        clear_task_instances(list(tis), session)
    resume(dag, run_id)
    return task_states(dag.dag_id, run_id)


def resume(dag: Any, run_id: str, timeout: float = 180.0) -> None:
    """The scheduler's part, as ``dag.test()`` plays it: run what is schedulable until the run ends."""
    from airflow import settings
    from airflow.models.dagrun import DagRun
    from airflow.utils.state import DagRunState, TaskInstanceState
    from sqlalchemy import select

    session = settings.Session()
    dag_run = session.scalar(select(DagRun).where(DagRun.dag_id == dag.dag_id, DagRun.run_id == run_id))
    dag_run.state = DagRunState.RUNNING
    dag_run.dag = _scheduler_dag(dag_run, session)
    session.commit()
    deadline = time.monotonic() + timeout
    while dag_run.state == DagRunState.RUNNING:
        assert time.monotonic() < deadline, "the resumed DAG run did not end"
        session.expire_all()
        schedulable, _ = dag_run.update_state(session=session)
        for ti in schedulable:
            if ti.state != TaskInstanceState.UP_FOR_RESCHEDULE:
                ti.try_number += 1
            ti.state = TaskInstanceState.SCHEDULED
        session.commit()
        scheduled = [
            t for t in dag_run.get_task_instances(session=session) if t.state == TaskInstanceState.SCHEDULED
        ]
        if not scheduled:
            time.sleep(0.2)
        for ti in scheduled:
            _run(ti, dag.task_dict[ti.task_id])
    session.close()


def _scheduler_dag(dag_run: Any, session: Any) -> Any:
    try:  # Airflow >= 3.1
        from airflow.models.dagbag import DBDagBag

        return DBDagBag().get_dag_for_run(dag_run=dag_run, session=session)
    except ImportError:  # Airflow 3.0
        from airflow.jobs.scheduler_job_runner import SchedulerDagBag

        return SchedulerDagBag().get_dag(dag_run=dag_run, session=session)


def _run(ti: Any, task: Any) -> None:
    from airflow.sdk.definitions import dag as dag_module

    run_task = dag_module._run_task
    if "task" in inspect.signature(run_task).parameters:  # Airflow >= 3.1
        run_task(ti=ti, task=task, run_triggerer=True)
    else:  # Airflow 3.0
        ti.task = task
        run_task(ti=ti, run_triggerer=True)
