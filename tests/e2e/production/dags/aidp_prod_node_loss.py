"""Test DAG (production profile): many AIDP runs waited for in triggerers, one in a worker.

Not a user-facing example: ``tests/e2e/production/test_node_loss.py`` spreads the ten deferred
runs (``run_00`` .. ``run_09``, ``deferrable=True``) over two triggerers and kills one of them
together with the Celery worker that runs ``run_sync`` (``deferrable=False``, one retry): every
deferred task must still succeed on its first try, and the retry of ``run_sync`` must reattach to
the AIDP run its first try started. Each task starts its own run of one job, told apart by the
run parameter ``slot``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from _example_settings import CLUSTER, POLL_SECONDS, WORKSPACE_PATH
from airflow.sdk import dag

from airflow_provider_aidp.operators.aidp import AIDPCreateJobOperator, AIDPRunJobOperator

JOB_NAME = "prod_node_loss"
DEFERRED_SLOTS = 10
JOB: dict[str, Any] = {
    "name": JOB_NAME,
    "path": WORKSPACE_PATH,
    "max_concurrent_runs": DEFERRED_SLOTS + 1,
    "job_clusters": [CLUSTER],
    "tasks": [
        {
            "type": "NOTEBOOK_TASK",
            "task_key": "work",
            "cluster": CLUSTER,
            "source": "WORKSPACE",
            "notebook_path": f"{WORKSPACE_PATH}/prod/work.ipynb",
        }
    ],
}


@dag(
    dag_id="aidp_prod_node_loss",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_tasks=DEFERRED_SLOTS + 2,
    tags=["aidp", "test"],
)
def aidp_prod_node_loss() -> None:
    job = AIDPCreateJobOperator(task_id="define_job", spec=JOB)
    for slot in range(DEFERRED_SLOTS):
        AIDPRunJobOperator(
            task_id=f"run_{slot:02d}",
            job_key=job.output,
            parameters={"slot": str(slot)},
            deferrable=True,
            poll_interval=POLL_SECONDS,
        )
    AIDPRunJobOperator(
        task_id="run_sync",
        job_key=job.output,
        parameters={"slot": "sync"},
        deferrable=False,
        poll_interval=POLL_SECONDS,
        retries=1,
        retry_delay=timedelta(seconds=1),
    )


aidp_prod_node_loss()
