"""
### Clickstream sessionization on AIDP, waited for in the triggerer

The same shape as `example_aidp_etl`, but nothing occupies an Airflow worker slot while AIDP works:
the waiting happens in the triggerer (`deferrable=True`), where one process can watch thousands of
runs.

1. `upsert_sessionize_job` makes sure the AIDP job `clickstream_sessionize` (a notebook that
   sessionizes raw events, then a Python task that computes session metrics) exists.
2. Two regions are processed by the same job, in parallel (the job allows two concurrent runs):
   * EMEA: `sessionize_emea` starts the run and **defers** until it ends (one operator);
   * APAC: `start_sessionize_apac` only starts the run (`wait_for_completion=False`) and hands the
     run key on through XCom; `wait_for_sessionize_apac`, an `AIDPJobRunSensor` in deferrable
     mode, waits for that run. Splitting start and wait like this lets other tasks (here
     `notify_apac_started`) run in between, or lets a different DAG wait on the run.
3. `publish_sessions` (Airflow) runs when both regions are done and reads both run summaries
   (the run operator and the sensor both push `run_summary`).

`retries=1`: Airflow 3.3 can fail a deferred task whose trigger fired while the scheduler had not yet
processed the worker's exit at deferral (apache/airflow#72716, "state mismatch" in the task's audit
log); the retry waits for the same AIDP run (the operator reattaches to the run its first try started,
the sensor waits for its run key again), so no second run is started.

A triggerer must be running (`airflow triggerer`). The trigger holds only the connection id and the
run key, never credentials, and survives a triggerer restart: the new triggerer resumes polling the
same AIDP run rather than starting another.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from _example_settings import CLUSTER, POLL_SECONDS, RUN_DATE, WORKSPACE_PATH
from airflow.sdk import XComArg, dag, task

from airflow_provider_aidp.operators.aidp import AIDPCreateJobOperator, AIDPRunJobOperator
from airflow_provider_aidp.sensors.aidp import AIDPJobRunSensor

SESSIONIZE_JOB_SPEC: dict[str, Any] = {
    "name": "clickstream_sessionize",
    "path": WORKSPACE_PATH,
    "description": "Sessionize one region's raw click events and compute session metrics.",
    "maxConcurrentRuns": 2,  # one run per region at the same time
    "parameters": [{"name": "region", "value": "emea"}, {"name": "run_date", "value": "1970-01-01"}],
    "jobClusters": [CLUSTER],
    "tasks": [
        {
            "type": "NOTEBOOK_TASK",
            "taskKey": "sessionize_events",
            "runIf": "ALL_SUCCESS",
            "cluster": CLUSTER,
            "source": "WORKSPACE",
            "notebookPath": f"{WORKSPACE_PATH}/clickstream/sessionize_events.ipynb",
        },
        {
            "type": "PYTHON_TASK",
            "taskKey": "session_metrics",
            "runIf": "ALL_SUCCESS",
            "cluster": CLUSTER,
            "source": "WORKSPACE",
            "filePath": f"{WORKSPACE_PATH}/clickstream/session_metrics.py",
            "dependsOn": [{"taskKey": "sessionize_events"}],
        },
    ],
}


@dag(
    dag_id="example_aidp_deferred",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["aidp", "example", "deferrable"],
    doc_md=__doc__,
    default_args={"retries": 1, "retry_delay": timedelta(seconds=2)},
)
def example_aidp_deferred() -> None:
    upsert_job = AIDPCreateJobOperator(task_id="upsert_sessionize_job", spec=SESSIONIZE_JOB_SPEC)

    sessionize_emea = AIDPRunJobOperator(
        task_id="sessionize_emea",
        job_key=upsert_job.output,
        parameters={"region": "emea", "run_date": RUN_DATE},
        deferrable=True,
        poll_interval=POLL_SECONDS,
    )

    start_apac = AIDPRunJobOperator(
        task_id="start_sessionize_apac",
        job_key=upsert_job.output,
        parameters={"region": "apac", "run_date": RUN_DATE},
        wait_for_completion=False,
    )

    @task
    def notify_apac_started(run_url: str) -> None:
        """Something useful to do while AIDP works: tell the APAC team where to watch."""
        print(f"APAC sessionization started: {run_url}")

    wait_apac = AIDPJobRunSensor(
        task_id="wait_for_sessionize_apac",
        run_key="{{ ti.xcom_pull(task_ids='start_sessionize_apac', key='run_key') }}",
        deferrable=True,
        poke_interval=POLL_SECONDS,
    )

    @task
    def publish_sessions(emea: dict[str, Any], apac: dict[str, Any]) -> list[str]:
        """Both regions are done: publish (here: print) what downstream consumers need."""
        for region, summary in (("EMEA", emea), ("APAC", apac)):
            print(f"{region} run {summary['run_key']} {summary['status']} in {summary['duration_seconds']}s")
        return [emea["run_key"], apac["run_key"]]

    notify_apac_started(XComArg(start_apac, key="run_url"))
    start_apac >> wait_apac
    publish_sessions(XComArg(sessionize_emea, key="run_summary"), XComArg(wait_apac, key="run_summary"))


example_aidp_deferred()
