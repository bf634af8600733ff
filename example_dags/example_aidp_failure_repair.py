"""
### Customer data quality gate on AIDP: what a failure looks like, and repair on retry

The AIDP job `customer_quality_gate` loads customer records, validates them, and only then publishes
them. Its validation notebook fails (on the bundled emulator any task whose notebook path contains
`fail` fails with a scripted error trace; on a real tenancy point it at a notebook that raises).
This example shows what the provider does about it:

* **Diagnostics in one place.** `run_quality_gate` fails with one message that names the AIDP run,
  each failed AIDP task, its state message and the start of its error trace, followed by the
  console URL; the failed tasks' outputs are written to the Airflow task log.
* **Repair on retry.** The task has `retries=1` and `repair_on_retry=True`: the retry does *not*
  start a second run of the whole job; it repairs the failed run, re-running only the failed AIDP
  task and what depends on it (`load_customers`, which succeeded, is not run again). Fix the
  notebook between the two tries and the retry succeeds; here it fails again, so the task fails.
* **Cross-system reaction.** `refresh_customer_dashboard` runs only if the gate passed;
  `alert_data_owners` runs only if it failed and reads the run summary (XCom `run_summary`) to
  say which AIDP tasks failed and where to look. The DAG run ends failed, as it should.
"""

from __future__ import annotations

from typing import Any

import pendulum
from _example_settings import CLUSTER, POLL_SECONDS, RETRY_DELAY, RUN_DATE, WORKSPACE_PATH
from airflow.sdk import dag, task

from airflow_provider_aidp.operators.aidp import AIDPCreateJobOperator, AIDPRunJobOperator

QUALITY_GATE_JOB_SPEC: dict[str, Any] = {
    "name": "customer_quality_gate",
    "path": WORKSPACE_PATH,
    "description": "Load customers, fail on null business keys, publish only validated data.",
    "maxConcurrentRuns": 1,
    "parameters": [{"name": "run_date", "value": "1970-01-01"}],
    "jobClusters": [CLUSTER],
    "tasks": [
        {
            "type": "NOTEBOOK_TASK",
            "taskKey": "load_customers",
            "runIf": "ALL_SUCCESS",
            "cluster": CLUSTER,
            "source": "WORKSPACE",
            "notebookPath": f"{WORKSPACE_PATH}/quality/load_customers.ipynb",
        },
        {
            "type": "NOTEBOOK_TASK",
            "taskKey": "validate_customers",
            "runIf": "ALL_SUCCESS",
            "cluster": CLUSTER,
            "source": "WORKSPACE",
            # the emulator fails any task whose path contains "fail"
            "notebookPath": f"{WORKSPACE_PATH}/quality/fail_on_null_customer_keys.ipynb",
            "dependsOn": [{"taskKey": "load_customers"}],
        },
        {
            "type": "PYTHON_TASK",
            "taskKey": "publish_customers",
            "runIf": "ALL_SUCCESS",
            "cluster": CLUSTER,
            "source": "WORKSPACE",
            "filePath": f"{WORKSPACE_PATH}/quality/publish_customers.py",
            "dependsOn": [{"taskKey": "validate_customers"}],
        },
    ],
}


@dag(
    dag_id="example_aidp_failure_repair",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["aidp", "example", "failure"],
    doc_md=__doc__,
)
def example_aidp_failure_repair() -> None:
    upsert_job = AIDPCreateJobOperator(task_id="upsert_quality_gate_job", spec=QUALITY_GATE_JOB_SPEC)

    run_gate = AIDPRunJobOperator(
        task_id="run_quality_gate",
        job_key=upsert_job.output,
        parameters={"run_date": RUN_DATE},
        poll_interval=POLL_SECONDS,
        retries=1,
        retry_delay=RETRY_DELAY,
        repair_on_retry=True,
        fetch_output="on_failure",
    )

    @task
    def refresh_customer_dashboard() -> None:
        print("Customer data validated; refreshing the dashboard.")

    @task(trigger_rule="one_failed")
    def alert_data_owners(**context: Any) -> list[str]:
        """Tell the data owners what failed, from the run summary the run operator pushed."""
        summary = context["ti"].xcom_pull(task_ids="run_quality_gate", key="run_summary")
        if not summary:
            print("The quality gate failed before an AIDP run finished; see run_quality_gate's log.")
            return []
        # a repaired run lists every attempt of a task; report each task once
        failed = {t["task_key"]: t for t in summary["tasks"] if t["status"] != "SUCCESS"}
        for key, t in sorted(failed.items()):
            print(f"AIDP task {key} {t['status']}: {t['state_message']}")
        print(f"Run {summary['run_key']}: {summary['run_url']}")
        return sorted(failed)

    upsert_job >> run_gate >> [refresh_customer_dashboard(), alert_data_owners()]


example_aidp_failure_repair()
