"""DAGs of the fault matrix, built in code (one AIDPRunJobOperator task) and registered in the DB.

Importable by the crash-runner subprocess, which must build the very same DAG as the test.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from tests.reliability.support import CONN_ID

TASK_ID = "run_job"
START = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)


def run_job_dag(
    dag_id: str,
    *,
    job_key: str | None = None,
    job_name: str | None = None,
    deferrable: bool = False,
    retries: int = 0,
    **operator_kwargs: Any,
) -> Any:
    """One ``AIDPRunJobOperator`` task that polls fast (0.1 s) against the emulator."""
    from airflow.sdk import DAG

    from airflow_provider_aidp.operators.aidp import AIDPRunJobOperator

    kwargs: dict[str, Any] = {"poll_interval": 0.1, "aidp_conn_id": CONN_ID}
    kwargs.update(operator_kwargs)
    if job_key is not None:
        kwargs["job_key"] = job_key
    if job_name is not None:
        kwargs["job_name"] = job_name
    with DAG(dag_id, schedule=None, start_date=START, catchup=False) as dag:
        AIDPRunJobOperator(
            task_id=TASK_ID,
            deferrable=deferrable,
            retries=retries,
            retry_delay=dt.timedelta(seconds=0),
            **kwargs,
        )
    return dag
