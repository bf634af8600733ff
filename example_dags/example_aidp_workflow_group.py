"""
### Daily sales workflow on AIDP: each AIDP task an Airflow task, one AIDP run, Clear = repair

The AIDP job `daily_sales_workflow` is defined right here, as Airflow tasks inside an
`AIDPWorkflowTaskGroup`: `ingest_orders` (a notebook), then `build_sales_mart` (a Python script),
then `publish_report` (a notebook). What the group does with them:

* **One AIDP run.** The group's `launch` task creates or updates the job from the group's tasks
  (one AIDP task per operator, `dependsOn` from the `>>` edges, the group's cluster and parameters;
  an unchanged job is not written) and starts ONE run of it, never a second one on a retry or after
  a worker crash.
* **The grid shows the AIDP run as it is.** Each task follows its own AIDP task in that run (waiting
  in the triggerer), logs its output and diagnostics when it fails, links to the run, and ends as
  its AIDP task did: a failed AIDP task is a failed Airflow task and the tasks after it are
  `upstream_failed`, as AIDP marks them `UPSTREAM_FAILED`.
* **Clear = repair.** Fix the failing notebook, then clear the failed task with its downstream tasks
  (the UI's Clear, the REST API or `airflow tasks clear`): its next try repairs that AIDP task and
  the ones after it in the SAME AIDP run, one repair request, and follows the repaired task runs.
  Clearing `launch` starts a new run instead, on purpose.
* **Around the group.** `plan_day` runs before it and `report_sales_workflow` after it reads each
  task's summary (XCom `task_run`).

The run date reaches every AIDP task as the job-run parameter `run_date` (`run_parameters` are
templated; the task definitions are not: they are the job, the same in every DAG run).
"""

from __future__ import annotations

from typing import Any

import pendulum
from _example_settings import CLUSTER_KEY, CLUSTER_NAME, POLL_SECONDS, RUN_DATE, WORKSPACE_PATH
from airflow.sdk import dag, task

from airflow_provider_aidp.operators.workflow import (
    AIDPNotebookTaskOperator,
    AIDPPythonTaskOperator,
    AIDPWorkflowTaskGroup,
)

FOLDER = f"{WORKSPACE_PATH}/sales_workflow"
TASK_IDS = ("ingest_orders", "build_sales_mart", "publish_report")


@dag(
    dag_id="example_aidp_workflow_group",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["aidp", "example", "workflow"],
    doc_md=__doc__,
)
def example_aidp_workflow_group() -> None:
    @task
    def plan_day(**context: Any) -> str:
        day = context["dag_run"].run_after.strftime("%Y-%m-%d")
        print(f"Sales workflow for {day}")
        return day

    with AIDPWorkflowTaskGroup(
        group_id="sales",
        job_name="daily_sales_workflow",
        job_path=FOLDER,
        job_clusters=[{"cluster_key": CLUSTER_KEY, "cluster_name": CLUSTER_NAME}],
        parameters={"run_date": "1970-01-01"},  # the job's default, overridden by each run
        run_parameters={"run_date": RUN_DATE},
    ) as sales:
        ingest = AIDPNotebookTaskOperator(
            task_id="ingest_orders",
            notebook_path=f"{FOLDER}/ingest_orders.ipynb",
            cluster_key=CLUSTER_KEY,
            poke_interval=POLL_SECONDS,
        )
        build = AIDPPythonTaskOperator(
            task_id="build_sales_mart",
            file_path=f"{FOLDER}/build_sales_mart.py",
            command_line_arguments="--full-refresh",
            cluster_key=CLUSTER_KEY,
            poke_interval=POLL_SECONDS,
            fetch_output="always",
        )
        publish = AIDPNotebookTaskOperator(
            task_id="publish_report",
            notebook_path=f"{FOLDER}/publish_report.ipynb",
            cluster_key=CLUSTER_KEY,
            poke_interval=POLL_SECONDS,
        )
        ingest >> build >> publish

    @task
    def report_sales_workflow(**context: Any) -> dict[str, str]:
        """Each AIDP task's status, from the summaries the group's tasks pushed."""
        ti = context["ti"]
        statuses = {}
        for task_id in TASK_IDS:
            summary = ti.xcom_pull(task_ids=f"sales.{task_id}", key="task_run")
            statuses[task_id] = summary["status"]
            print(f"{task_id}: {summary['status']} in {summary['duration_seconds']}s ({summary['run_url']})")
        return statuses

    plan_day() >> sales >> report_sales_workflow()


example_aidp_workflow_group()
