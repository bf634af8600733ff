"""The three example DAGs, triggered with ``airflow dags trigger`` on a real deployment.

All three are triggered at once and run side by side (as they would in production); each test
then asserts on its DAG's outcome through the REST API, the task logs and what the emulator saw.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from .conftest import EmulatorProcess
from .deployment import AirflowDeployment

pytestmark = pytest.mark.e2e

ETL, DEFERRED, REPAIR = "example_aidp_etl", "example_aidp_deferred", "example_aidp_failure_repair"


@dataclass
class ExampleRun:
    dag_id: str
    run_id: str
    state: str = ""
    task_instances: dict[str, dict[str, Any]] = field(default_factory=dict)


@pytest.fixture(scope="module")
def example_runs(
    airflow_deployment: AirflowDeployment, started_example_runs: dict[str, str]
) -> dict[str, ExampleRun]:
    d = airflow_deployment
    runs = {dag_id: ExampleRun(dag_id, run_id) for dag_id, run_id in started_example_runs.items()}
    for run in runs.values():
        run.state = d.wait_for_dag_run(run.dag_id, run.run_id, timeout=240)
        run.task_instances = d.task_instances(run.dag_id, run.run_id)
    return runs


def _xcom(d: AirflowDeployment, run: ExampleRun, task_id: str, key: str = "return_value") -> Any:
    entry = d.api(
        "GET",
        f"dags/{run.dag_id}/dagRuns/{run.run_id}/taskInstances/{task_id}/xcomEntries/{key}",
        params={"deserialize": "true", "stringify": "false"},
    )
    value = entry["value"]
    return json.loads(value) if isinstance(value, str) and value[:1] in "[{" else value


def _emulator_runs(emu: EmulatorProcess, job_name: str) -> list[dict[str, Any]]:
    return [r for r in emu.client.runs() if r["job_name"] == job_name]


def _job_run_posts(emu: EmulatorProcess, job_key: str) -> list[dict[str, Any]]:
    posts = emu.client.requests(method="POST", path_contains="/jobRuns")
    return [
        p for p in posts if p["path"].endswith("/jobRuns") and json.loads(p["body"]).get("jobKey") == job_key
    ]


def _parameter(body: dict[str, Any], name: str) -> Any:
    """A run parameter, whether the API shape (list of name/value) or a plain dict."""
    params = body.get("parameters") or []
    if isinstance(params, dict):
        return params.get(name)
    return next((p.get("value") for p in params if p.get("name") == name), None)


def test_etl_dag_succeeds_with_run_parameters_and_summary(
    example_runs: dict[str, ExampleRun],
    airflow_deployment: AirflowDeployment,
    emulator_process: EmulatorProcess,
) -> None:
    run = example_runs[ETL]
    d = airflow_deployment
    assert run.state == "success", d.failure_report(run.dag_id, run.run_id)
    assert {t: ti["state"] for t, ti in run.task_instances.items()} == {
        "plan_inputs": "success",
        "upsert_sales_job": "success",
        "run_sales_job": "success",
        "record_run_metrics": "success",
    }

    metrics = _xcom(d, run, "record_run_metrics")
    assert metrics["status"] == "SUCCESS"
    assert (metrics["tasks_succeeded"], metrics["tasks_total"]) == (4, 4)

    job_key = _xcom(d, run, "upsert_sales_job")
    [aidp_run] = [
        r for r in _emulator_runs(emulator_process, "daily_sales_etl") if r["key"] == metrics["run_key"]
    ]
    assert aidp_run["job_key"] == job_key and aidp_run["status"] == "SUCCESS"
    assert set(aidp_run["tasks"]) == {
        "ingest_orders",
        "ingest_customers",
        "build_sales_mart",
        "publish_report",
    }
    # parameters came from the Airflow run: its date and the upstream task's result
    run_date = d.dag_run(ETL, run.run_id)["run_after"][:10]
    assert _parameter(aidp_run, "run_date") == run_date
    assert _parameter(aidp_run, "input_prefix") == f"landing/sales/dt={run_date}/"
    assert len(_job_run_posts(emulator_process, job_key)) == 1


def test_deferred_dag_succeeds_and_waited_in_the_triggerer(
    example_runs: dict[str, ExampleRun],
    airflow_deployment: AirflowDeployment,
    emulator_process: EmulatorProcess,
) -> None:
    run = example_runs[DEFERRED]
    d = airflow_deployment
    assert run.state == "success", d.failure_report(run.dag_id, run.run_id)
    assert all(ti["state"] == "success" for ti in run.task_instances.values()), run.task_instances
    # the DAG retries once (Airflow's stale-event race, see the example); no other retry is allowed
    assert not d.unexplained_retries(DEFERRED, run.run_id, run.task_instances), run.task_instances

    for task_id in ("sessionize_emea", "wait_for_sessionize_apac"):
        try_number = int(run.task_instances[task_id]["try_number"])
        log = d.task_log(DEFERRED, run.run_id, task_id, try_number)
        # the worker deferred the task ...
        assert "Pausing task as DEFERRED" in log, log[-3000:]
        # ... and resumed it with the trigger's event (execute_complete logged the summary)
        assert "ended SUCCESS" in log, log[-3000:]
        # the triggerer (not the worker) ran our trigger for this task instance, and it fired
        [trigger_log] = d.trigger_logs(DEFERRED, run.run_id, task_id, try_number).values()
        assert " starting" in trigger_log and "Trigger fired event" in trigger_log, trigger_log[-3000:]
        assert "airflow_provider_aidp.triggers.aidp.AIDPJobRunTrigger" in trigger_log
    # the start-only operator returned immediately; the sensor saw the same run finish
    apac_key = _xcom(d, run, "start_sessionize_apac", "run_key")
    assert _xcom(d, run, "wait_for_sessionize_apac", "run_summary")["run_key"] == apac_key
    published = _xcom(d, run, "publish_sessions")
    assert apac_key in published and len(set(published)) == 2


def test_failing_dag_shows_diagnostics_and_repairs_on_retry(
    example_runs: dict[str, ExampleRun],
    airflow_deployment: AirflowDeployment,
    emulator_process: EmulatorProcess,
) -> None:
    run = example_runs[REPAIR]
    d = airflow_deployment
    assert run.state == "failed"
    tis = run.task_instances
    assert tis["run_quality_gate"]["state"] == "failed"
    assert tis["run_quality_gate"]["try_number"] == 2  # the retry happened
    assert tis["alert_data_owners"]["state"] == "success"
    assert tis["refresh_customer_dashboard"]["state"] == "upstream_failed"
    assert _xcom(d, run, "alert_data_owners") == ["publish_customers", "validate_customers"]

    first = d.task_log(REPAIR, run.run_id, "run_quality_gate", 1)
    # one message naming the failed AIDP task, its state message and its error trace
    assert "validate_customers FAILED" in first, first[-4000:]
    assert "fail_on_null_customer_keys.ipynb failed" in first
    assert "ValueError: scripted failure" in first

    job_key = _xcom(d, run, "upsert_quality_gate_job")
    run_key = _xcom(d, run, "run_quality_gate", "run_key")
    # the retry repaired the failed run instead of starting a second one
    assert len(_job_run_posts(emulator_process, job_key)) == 1
    repairs = [
        r
        for r in emulator_process.client.requests(method="POST", path_contains="/actions/repair")
        if run_key in r["path"]
    ]
    assert len(repairs) == 1
    assert [t["taskKey"] for t in json.loads(repairs[0]["body"])["repairTasks"]] == ["validate_customers"]
    second = d.task_log(REPAIR, run.run_id, "run_quality_gate", 2)
    assert "validate_customers FAILED" in second, second[-4000:]
