"""
### Event-driven: run a DAG after every AIDP job run, whoever started it

Two DAGs and one asset:

* `example_aidp_scheduled_export_setup` defines the AIDP job `sales.nightly_export` with a
  Quartz schedule (every 30 minutes). From then on **AIDP starts its runs itself**; Airflow
  never starts them (the AIDP console, CLI or another tool could start them too).
* The asset `aidp://sales.nightly_export/succeeded` is watched by an `AssetWatcher` whose trigger,
  `AIDPJobRunEventTrigger`, polls the job's runs in the triggerer (no worker slot) and fires one
  asset event per run that ends `SUCCESS`. The event's `extra["payload"]` carries the run key,
  job key and name, status, start/end times, the run's parameters and its console URL.
* `example_aidp_on_export_finished` is scheduled on that asset and reads the payload.

Airflow may fold several asset events that arrive between two scheduler loops into one DAG run,
so the task iterates over every triggering event. Only the connection id `aidp_default` says
where AIDP is; with the bundled emulator, `POST /_emulator/clock/advance {"seconds": 1800}`
makes the schedule fire at once.
"""

from __future__ import annotations

from typing import Any

import pendulum
from _example_settings import CLUSTER, POLL_SECONDS, WORKSPACE_PATH
from airflow.sdk import Asset, AssetWatcher, dag, task

from airflow_provider_aidp.operators.aidp import AIDPCreateJobOperator
from airflow_provider_aidp.triggers.run_events import AIDPJobRunEventTrigger

JOB_NAME = "sales.nightly_export"
EXPORT_JOB: dict[str, Any] = {
    "name": JOB_NAME,
    "path": WORKSPACE_PATH,
    "description": "Exports the day's sales; AIDP runs it on its own schedule (managed by Airflow).",
    "max_concurrent_runs": 1,
    "schedule": {
        "quartz_cron_expression": "0 0/30 * * * ?",  # every 30 minutes, on the hour and half hour
        "timezone_id": "UTC",
        "pause_status": "UNPAUSED",
    },
    "parameters": {"target": "warehouse"},
    "job_clusters": [CLUSTER],
    "tasks": [
        {
            "type": "NOTEBOOK_TASK",
            "task_key": "export",
            "cluster": CLUSTER,
            "source": "WORKSPACE",
            "notebook_path": f"{WORKSPACE_PATH}/sales/export.ipynb",
        }
    ],
}

EXPORT_SUCCEEDED = Asset(
    "aidp://sales.nightly_export/succeeded",
    watchers=[
        AssetWatcher(
            name="sales_nightly_export_runs",
            trigger=AIDPJobRunEventTrigger(
                job_names=[JOB_NAME], folder=WORKSPACE_PATH, statuses=["SUCCESS"], poll_interval=POLL_SECONDS
            ),
        )
    ],
)


@dag(
    dag_id="example_aidp_scheduled_export_setup",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["aidp", "example"],
    doc_md=__doc__,
)
def example_aidp_scheduled_export_setup() -> None:
    AIDPCreateJobOperator(task_id="define_export_job", spec=EXPORT_JOB)


@dag(
    dag_id="example_aidp_on_export_finished",
    schedule=[EXPORT_SUCCEEDED],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["aidp", "example"],
    doc_md=__doc__,
)
def example_aidp_on_export_finished() -> None:
    @task
    def load_export(**context: Any) -> list[str]:
        """One line per finished AIDP run that triggered this DAG run; returns their run keys."""
        run_keys = []
        for event in context["triggering_asset_events"][EXPORT_SUCCEEDED]:
            run = event.extra["payload"]
            print(
                f"AIDP run {run['run_key']} of {run['job_name']} ended {run['status']} at "
                f"{run['end_time']} (params {run['parameters']}): {run['console_url']}"
            )
            run_keys.append(run["run_key"])
        return run_keys

    load_export()


example_aidp_scheduled_export_setup()
example_aidp_on_export_finished()
