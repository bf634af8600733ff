"""Restart the triggerer while deferred AIDP tasks wait: they still complete, with exactly one run each.

The emulator is scripted so the runs of ``example_aidp_deferred`` cannot finish on their own
(an hour-long task); once both deferred tasks are waiting, the triggerer is stopped and started
again, the new triggerer must pick the triggers up (from the metadata DB, with only JSON kwargs),
and then the emulator's clock is moved forward so the runs finish. The emulator's request log
proves no second ``POST /jobRuns`` was sent for either task.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_aidp.hooks.service import LISTED_STATUSES

from .conftest import EmulatorProcess
from .deployment import AirflowDeployment

pytestmark = pytest.mark.e2e

DAG_ID = "example_aidp_deferred"
DEFERRED_TASKS = ("sessionize_emea", "wait_for_sessionize_apac")
LONG_TASK_SECONDS = 3600.0


def _triggerers_that_started(d: AirflowDeployment, run_id: str) -> dict[str, set[int]]:
    """Per deferred task: the ids of the triggerer jobs that started its trigger."""
    return {
        task_id: {job for job, text in d.trigger_logs(DAG_ID, run_id, task_id).items() if " starting" in text}
        for task_id in DEFERRED_TASKS
    }


def _all_started(d: AirflowDeployment, run_id: str, triggerers: int) -> dict[str, set[int]] | None:
    """The triggerer ids per task once every deferred task was started by ``triggerers`` of them."""
    jobs = _triggerers_that_started(d, run_id)
    return jobs if all(len(j) >= triggerers for j in jobs.values()) else None


def test_deferred_tasks_survive_a_triggerer_restart(
    airflow_deployment: AirflowDeployment, emulator_process: EmulatorProcess
) -> None:
    d, emu = airflow_deployment, emulator_process.client
    d.wait_for_dag(DAG_ID)
    d.unpause(DAG_ID)
    before = max((r["seq"] for r in emu.requests()), default=0)
    emu.script_task(
        job_name="clickstream_sessionize", task_key="sessionize_events", duration=LONG_TASK_SECONDS, times=2
    )
    try:
        run_id = d.trigger(DAG_ID)

        def both_deferred() -> bool:
            d.check_alive()
            tis = d.task_instances(DAG_ID, run_id)
            bad = {t: ti["state"] for t, ti in tis.items() if ti["state"] in ("failed", "upstream_failed")}
            assert not bad, bad
            return all(tis.get(t, {}).get("state") == "deferred" for t in DEFERRED_TASKS)

        d.wait_for(both_deferred, 150, "both AIDP tasks to be deferred")
        first = d.wait_for(lambda: _all_started(d, run_id, 1), 60, "the triggerer to start both triggers")
        assert all(len(jobs) == 1 for jobs in first.values()), first

        d.restart_component("triggerer")
        after = d.wait_for(
            lambda: _all_started(d, run_id, 2),
            90,
            "the restarted triggerer (a new job) to pick both triggers up",
        )
        # the same triggers, now run by the new triggerer job
        assert all(after[t] > first[t] for t in DEFERRED_TASKS), after
        states = {t: ti["state"] for t, ti in d.task_instances(DAG_ID, run_id).items() if t in DEFERRED_TASKS}
        assert states == dict.fromkeys(DEFERRED_TASKS, "deferred")

        emu.advance(LONG_TASK_SECONDS)  # let the AIDP runs finish
        state = d.wait_for_dag_run(DAG_ID, run_id, timeout=120)
        assert state == "success", d.failure_report(DAG_ID, run_id)
        # the example retries once for Airflow's stale-event race only: a retry must not hide a
        # trigger that failed after the restart
        assert not d.unexplained_retries(DAG_ID, run_id, DEFERRED_TASKS), d.task_instances(DAG_ID, run_id)
    finally:
        emu.clear_scripts()

    posts = [
        json.loads(r["body"])
        for r in emu.requests(method="POST", path_contains="/jobRuns", since=before)
        if r["path"].endswith("/jobRuns")
    ]
    # exactly one run per region: the restart re-submitted nothing
    assert sorted(_parameter(body, "region") for body in posts) == ["apac", "emea"], posts
    # the two triggers followed their runs through the triggerer's status sweep (on by default)
    sweeps = [
        r
        for r in emu.requests(method="GET", path_contains="/jobRuns", since=before)
        if r["path"].endswith("/jobRuns") and set(r["query"].get("status", [])) >= set(LISTED_STATUSES)
    ]
    assert sweeps, "no status sweep listing was sent"


def _parameter(body: dict[str, Any], name: str) -> Any:
    params = body.get("parameters") or []
    if isinstance(params, dict):
        return params.get(name)
    return next((p.get("value") for p in params if p.get("name") == name), None)
