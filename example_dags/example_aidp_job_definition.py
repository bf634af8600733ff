"""
### AIDP job definition as code: customer churn scoring

Keeps an Oracle AI Data Platform Workflow job in this repository and makes AIDP match it, the way
Terraform or `DatabricksCreateJobsOperator` would, but idempotently and validated before any call:

* `plan_churn_job` validates the definition and logs the diff against what AIDP has now
  (`dry_run=True`: nothing is written). Read it in the task log before a change goes live.
* `define_churn_job` applies it: creates the job on the first run (a name-only create, then the
  full definition), leaves it alone when nothing changed (`action` = `unchanged`, no write at all),
  or sends one full update guarded by the job's etag. It returns the job key and pushes `job_key`
  and `action` to XCom.
* `report` logs what happened, as a downstream step (a chat notification, a change log) would.

The job itself: two notebooks load features in parallel, a Python script trains and scores once
both succeeded, and a notebook publishes the scores even when scoring failed (`runIf: ALL_DONE`)
so the dashboard shows the failure. AIDP runs it every day at 04:30 Europe/Paris on its own
(`schedule`), with job parameters that a run can override.

The definition is checked when this file is parsed: a typo in a task key, a dependency cycle, a
cron firing more often than every 30 minutes or a cluster UUID instead of its name is an import
error in the Airflow UI, not a failed run at 04:30. Only the connection id `aidp_default` says where
AIDP is; the cluster and folder come from `_example_settings.py` (environment overrides).
"""

from __future__ import annotations

from typing import Any

import pendulum
from _example_settings import CLUSTER, WORKSPACE_PATH
from airflow.sdk import dag, task

from airflow_provider_aidp.operators.aidp import AIDPCreateJobOperator

CHURN_JOB: dict[str, Any] = {
    "name": "customer_churn.scoring",
    "path": WORKSPACE_PATH,
    "description": "Daily churn features, model scoring and publication (managed by Airflow).",
    "max_concurrent_runs": 1,
    "timeout_seconds": 3 * 3600,
    "schedule": {
        "quartz_cron_expression": "0 30 4 * * ?",  # Quartz: sec min hour dom month dow
        "timezone_id": "Europe/Paris",
        "pause_status": "UNPAUSED",
    },
    "parameters": {"model_version": "v7", "lookback_days": 90},
    "job_clusters": [CLUSTER],
    "tasks": [
        {
            "type": "NOTEBOOK_TASK",
            "task_key": "usage_features",
            "cluster": CLUSTER,
            "source": "WORKSPACE",
            "notebook_path": f"{WORKSPACE_PATH}/churn/usage_features.ipynb",
            "parameters": {"lookback_days": 90},
            "max_retries": 2,
            "min_retry_interval_millis": 60_000,
        },
        {
            "type": "NOTEBOOK_TASK",
            "task_key": "billing_features",
            "cluster": CLUSTER,
            "source": "WORKSPACE",
            "notebook_path": f"{WORKSPACE_PATH}/churn/billing_features.ipynb",
            "max_retries": 2,
            "min_retry_interval_millis": 60_000,
        },
        {
            "type": "PYTHON_TASK",
            "task_key": "score",
            "depends_on": ["usage_features", "billing_features"],
            "cluster": CLUSTER,
            "source": "WORKSPACE",
            "file_path": f"{WORKSPACE_PATH}/churn/score.py",
            "command_line_arguments": "--model v7 --output churn_scores",
            "timeout_seconds": 3600,
        },
        {
            "type": "NOTEBOOK_TASK",
            "task_key": "publish",
            "depends_on": ["score"],
            "run_if": "ALL_DONE",
            "cluster": CLUSTER,
            "source": "WORKSPACE",
            "notebook_path": f"{WORKSPACE_PATH}/churn/publish.ipynb",
        },
    ],
}


@dag(
    dag_id="example_aidp_job_definition",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["aidp", "example"],
    doc_md=__doc__,
)
def example_aidp_job_definition() -> None:
    plan = AIDPCreateJobOperator(task_id="plan_churn_job", spec=CHURN_JOB, dry_run=True)
    define = AIDPCreateJobOperator(task_id="define_churn_job", spec=CHURN_JOB)

    @task
    def report(job_key: str, **context: Any) -> str:
        action = context["ti"].xcom_pull(task_ids="define_churn_job", key="action")
        message = f"AIDP job customer_churn.scoring ({job_key}): {action}"
        print(message)
        return message

    plan >> define
    report(define.output)


example_aidp_job_definition()
