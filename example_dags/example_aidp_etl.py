"""
### Daily sales ETL on Oracle AI Data Platform

A cross-system pipeline where the heavy lifting happens on AIDP Spark and Airflow does the rest:

1. `plan_inputs` (Airflow) works out which landing-zone partition this run processes, from the run's
   logical date.
2. `upsert_sales_job` makes sure the AIDP Workflow job `daily_sales_etl` exists and matches the
   definition below (created on the first run, left alone when unchanged, updated when you edit it):
   two ingest notebooks run in parallel, a Python script builds the sales mart once both are done,
   and a notebook publishes the daily report.
3. `run_sales_job` starts a run of that job with parameters taken from the Airflow run (`run_date`,
   `input_prefix`), logs the AIDP console URL at once, waits for the run, and pushes the run key,
   URL and a per-task summary to XCom (`run_key`, `run_url`, `run_summary`).
4. `record_run_metrics` (Airflow) reads the run summary from XCom, the way a downstream step that
   updates a metrics store or posts to chat would.

Only the connection id `aidp_default` says where AIDP is; the cluster, the job folder and the poll
interval come from `_example_settings.py` (environment overrides), so the file runs unchanged
against the bundled emulator (`make demo`) and against a real tenancy.
"""

from __future__ import annotations

from typing import Any

import pendulum
from _example_settings import CLUSTER, POLL_SECONDS, RUN_DATE, WORKSPACE_PATH
from airflow.sdk import XComArg, dag, task

from airflow_provider_aidp.operators.aidp import AIDPCreateJobOperator, AIDPRunJobOperator

#: The AIDP job, as code. Run-time values (run_date, input_prefix) arrive as job-run parameters;
#: the defaults below are what a run started from the AIDP console would use.
SALES_JOB_SPEC: dict[str, Any] = {
    "name": "daily_sales_etl",
    "path": WORKSPACE_PATH,
    "description": "Ingest orders and customers, build the sales mart, publish the daily report.",
    "maxConcurrentRuns": 1,
    "parameters": [
        {"name": "run_date", "value": "1970-01-01"},
        {"name": "input_prefix", "value": "landing/sales/"},
    ],
    "jobClusters": [CLUSTER],
    "tasks": [
        {
            "type": "NOTEBOOK_TASK",
            "taskKey": "ingest_orders",
            "runIf": "ALL_SUCCESS",
            "cluster": CLUSTER,
            "source": "WORKSPACE",
            "notebookPath": f"{WORKSPACE_PATH}/sales/ingest_orders.ipynb",
        },
        {
            "type": "NOTEBOOK_TASK",
            "taskKey": "ingest_customers",
            "runIf": "ALL_SUCCESS",
            "cluster": CLUSTER,
            "source": "WORKSPACE",
            "notebookPath": f"{WORKSPACE_PATH}/sales/ingest_customers.ipynb",
        },
        {
            "type": "PYTHON_TASK",
            "taskKey": "build_sales_mart",
            "runIf": "ALL_SUCCESS",
            "cluster": CLUSTER,
            "source": "WORKSPACE",
            "filePath": f"{WORKSPACE_PATH}/sales/build_sales_mart.py",
            "dependsOn": [{"taskKey": "ingest_orders"}, {"taskKey": "ingest_customers"}],
        },
        {
            "type": "NOTEBOOK_TASK",
            "taskKey": "publish_report",
            "runIf": "ALL_SUCCESS",
            "cluster": CLUSTER,
            "source": "WORKSPACE",
            "notebookPath": f"{WORKSPACE_PATH}/sales/publish_report.ipynb",
            "dependsOn": [{"taskKey": "build_sales_mart"}],
        },
    ],
}


@dag(
    dag_id="example_aidp_etl",
    schedule=None,  # e.g. "@daily" in production; None keeps the example manual
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["aidp", "example"],
    doc_md=__doc__,
)
def example_aidp_etl() -> None:
    @task
    def plan_inputs(run_date: str) -> str:
        """The landing-zone partition this run reads (the AIDP notebooks get it as a parameter)."""
        return f"landing/sales/dt={run_date}/"

    input_prefix = plan_inputs(RUN_DATE)

    upsert_job = AIDPCreateJobOperator(task_id="upsert_sales_job", spec=SALES_JOB_SPEC)

    run_job = AIDPRunJobOperator(
        task_id="run_sales_job",
        job_key=upsert_job.output,  # the job key the upsert returned
        parameters={"run_date": RUN_DATE, "input_prefix": input_prefix},
        poll_interval=POLL_SECONDS,
        fetch_output="on_failure",
    )

    @task
    def record_run_metrics(summary: dict[str, Any]) -> dict[str, Any]:
        """Turn the AIDP run summary into the few numbers a metrics store or a chat message wants."""
        tasks = summary["tasks"]
        durations = {t["task_key"]: t["duration_seconds"] for t in tasks}
        print(f"AIDP run {summary['run_key']} {summary['status']}: {summary['run_url']}")
        for key, seconds in durations.items():
            print(f"  {key}: {seconds}s")
        return {
            "run_key": summary["run_key"],
            "status": summary["status"],
            "tasks_succeeded": sum(t["status"] == "SUCCESS" for t in tasks),
            "tasks_total": len(tasks),
            "slowest_task": max(durations, key=lambda k: durations[k] or 0) if durations else None,
        }

    upsert_job >> run_job
    record_run_metrics(XComArg(run_job, key="run_summary"))


example_aidp_etl()
