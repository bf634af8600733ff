"""Clear = repair on a real deployment: ``example_aidp_workflow_group``'s middle AIDP task fails once.

The DAG run fails as ONE AIDP run with the downstream task ``upstream_failed``; the failed task is
then cleared with its downstream tasks through the REST API (what the UI's Clear sends). Its next
try repairs the AIDP task and its downstream task in the same run -- the emulator sees one repair
request and no second ``POST /jobRuns`` -- and the DAG run ends ``success``.

Timing (TIME_SCALE 10): the failing try fails within a second, long before Airflow gets to the task,
so the task reports it without deferring; the repaired run takes 15 s, so the deferred task's trigger
fires well after the worker's defer exit (apache/airflow#67287, see ``conftest.started_example_runs``).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from .conftest import EmulatorProcess
from .deployment import AirflowDeployment

pytestmark = pytest.mark.e2e

DAG_ID = "example_aidp_workflow_group"
JOB_NAME = "daily_sales_workflow"
FAILING = "build_sales_mart"
#: emulator seconds of the repaired task run (15 s real)
REPAIRED_TASK_SECONDS = 150.0


def _states(d: AirflowDeployment, run_id: str) -> dict[str, str | None]:
    return {task_id: ti["state"] for task_id, ti in d.task_instances(DAG_ID, run_id).items()}


def _job_runs(emu: Any) -> list[dict[str, Any]]:
    return [r for r in emu.runs() if r["job_name"] == JOB_NAME]


def test_clearing_the_failed_task_through_the_rest_api_repairs_the_same_aidp_run(
    airflow_deployment: AirflowDeployment, emulator_process: EmulatorProcess
) -> None:
    d, emu = airflow_deployment, emulator_process.client
    # latest matching script wins: the first run of the task fails fast, its repair succeeds slowly
    emu.script_task(job_name=JOB_NAME, task_key=FAILING, duration=REPAIRED_TASK_SECONDS)
    emu.script_task(
        job_name=JOB_NAME, task_key=FAILING, outcome="FAILED", duration=1.0, times=1,
        error_trace="Traceback (most recent call last):\nValueError: negative quantities in orders",
    )  # fmt: skip
    d.wait_for_dag(DAG_ID)
    d.unpause(DAG_ID)
    run_id = d.trigger(DAG_ID)

    assert d.wait_for_dag_run(DAG_ID, run_id, timeout=180) == "failed", d.log_tails()
    assert _states(d, run_id) == {
        "plan_day": "success",
        "sales.launch": "success",
        "sales.ingest_orders": "success",
        "sales.build_sales_mart": "failed",
        "sales.publish_report": "upstream_failed",
        "report_sales_workflow": "upstream_failed",
    }
    (aidp_run,) = _job_runs(emu)
    statuses = {k: t["status"] for k, t in aidp_run["tasks"].items()}
    assert statuses == {"ingest_orders": "SUCCESS", FAILING: "FAILED", "publish_report": "UPSTREAM_FAILED"}
    log = d.task_log(DAG_ID, run_id, f"sales.{FAILING}")
    assert "negative quantities in orders" in log and "Clearing this task repairs it" in log

    cleared = d.api(
        "POST",
        f"dags/{DAG_ID}/clearTaskInstances",
        {
            "dry_run": False,
            "dag_run_id": run_id,
            "task_ids": [f"sales.{FAILING}"],
            "include_downstream": True,
            "only_failed": False,
            "reset_dag_runs": True,
        },
    )
    assert {ti["task_id"] for ti in cleared["task_instances"]} == {
        f"sales.{FAILING}",
        "sales.publish_report",
        "report_sales_workflow",
    }
    assert d.wait_for_dag_run(DAG_ID, run_id, timeout=240) == "success", d.log_tails()
    assert set(_states(d, run_id).values()) == {"success"}

    (aidp_run,) = _job_runs(emu)  # still ONE run of the job...
    assert aidp_run["status"] == "SUCCESS" and aidp_run["repair_key"] == 1
    assert {t["status"] for t in aidp_run["tasks"].values()} == {"SUCCESS"}
    job_run_posts = [
        p
        for p in emu.requests(method="POST", path="*/jobRuns")
        if json.loads(p["body"]).get("jobKey") == aidp_run["job_key"]
    ]
    assert len(job_run_posts) == 1  # ...no second run was started...
    (repair,) = emu.requests(
        method="POST", path=f"*/jobRuns/{aidp_run['key']}/actions/repair"
    )  # ...one repair
    assert json.loads(repair["body"])["repairTasks"] == [
        {"taskKey": FAILING, "shouldIncludeDownstream": True, "shouldIncludeUpstream": False}
    ]
    # the cleared task's second try said what it did, then waited for the repaired run in the triggerer
    second = d.task_log(DAG_ID, run_id, f"sales.{FAILING}", try_number=2)
    assert "repairing build_sales_mart, publish_report in AIDP job run" in second, second[-3000:]
    assert d.trigger_logs(DAG_ID, run_id, f"sales.{FAILING}", try_number=2), (
        "the repaired task was not deferred"
    )
    summaries = {
        task: d.api(
            "GET",
            f"dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/sales.{task}/xcomEntries/task_run",
            params={"deserialize": "true", "stringify": "false"},
        )["value"]
        for task in (FAILING, "publish_report")
    }
    for task, summary in summaries.items():
        value = json.loads(summary) if isinstance(summary, str) else summary
        assert value["status"] == "SUCCESS" and value["task_run_key"] == aidp_run["tasks"][task]["key"]
