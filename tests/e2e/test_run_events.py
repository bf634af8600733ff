"""Event-driven DAGs: AIDP runs that Airflow never started trigger the downstream DAG, once each.

``example_aidp_scheduled_export_setup`` defines a job with a Quartz schedule; the emulator's
clock (frozen for the test, moved by hand) makes the schedule fire. The asset watcher of
``example_aidp_on_export_finished`` must turn each SUCCESS run into exactly one asset event and
DAG run, skip FAILED runs, and keep doing so across a SIGKILL of the triggerer: a run that ends
while no triggerer runs is reported after the restart (from the watermark in the asset state
store), and no run reported before the kill is reported again.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from .asset_events import (
    COMMITTED_AFTER_SECONDS,
    DOWNSTREAM_DAG,
    JOB_NAME,
    SETUP_DAG,
    baselines,
    downstream_run_keys,
    fire_schedule,
    job_runs,
    read,
    reported_run_keys,
    succeeded,
    wait_baselined,
    wait_reported,
)
from .conftest import TIME_SCALE, EmulatorProcess
from .deployment import AirflowDeployment

pytestmark = pytest.mark.e2e


def test_runs_started_outside_airflow_trigger_the_dag_once_each_across_a_triggerer_kill(
    airflow_deployment: AirflowDeployment, emulator_process: EmulatorProcess
) -> None:
    d, emu = airflow_deployment, emulator_process.client
    d.wait_for_dag(SETUP_DAG)
    d.wait_for_dag(DOWNSTREAM_DAG)
    d.unpause(SETUP_DAG)
    setup_run = d.trigger(SETUP_DAG)
    assert d.wait_for_dag_run(SETUP_DAG, setup_run, timeout=120) == "success", d.log_tails()
    (job_key,) = [j["key"] for j in emu.jobs() if j["body"]["name"] == JOB_NAME]

    emu.set_time_scale(0)  # nothing fires or finishes unless the test moves the clock
    try:
        history = set(job_runs(emu, job_key, set()))
        seq = max((r["seq"] for r in emu.requests()), default=0)
        taken = baselines(d)
        d.unpause(DOWNSTREAM_DAG)  # starts the asset watcher in the triggerer
        d.wait_for(
            lambda: [
                r for r in emu.requests(method="GET", since=seq) if r["query"].get("jobKey") == [job_key]
            ],
            120,
            "the watcher's first listing of the job's runs (its baseline)",
        )
        wait_baselined(d, taken)

        # one run at a time: two events in one poll can race Airflow's scheduler, which then
        # starts the DAG for the first and leaves the second for the next DAG run
        fire_schedule(emu, fail=True)  # FAILED: not reported
        fire_schedule(emu)  # SUCCESS
        wait_reported(d, succeeded(emu, job_key, history), "the first successful run")
        fire_schedule(emu)  # SUCCESS
        wait_reported(d, succeeded(emu, job_key, history), "the second successful run")
        time.sleep(COMMITTED_AFTER_SECONDS)  # its watermark is saved

        triggerer = d.processes["triggerer"]
        assert triggerer.pid is not None
        os.killpg(triggerer.pid, signal.SIGKILL)
        d.stop_component("triggerer")
        fire_schedule(emu, fail=True)  # both end while no triggerer runs
        fire_schedule(emu)
        d.start_component("triggerer")

        finished = job_runs(emu, job_key, history)
        ok = succeeded(emu, job_key, history)
        assert len(ok) == 3 and len(finished) == 5, finished
        wait_reported(d, ok, "the run that ended while the triggerer was down")
        time.sleep(3)  # a few more polls: room for a (wrong) duplicate to show up

        def all_consumed() -> list[list[str]] | None:
            got = read(lambda: downstream_run_keys(d))
            return got if got is not None and sum(len(keys) for keys in got) >= len(ok) else None

        per_dag_run = d.wait_for(all_consumed, 60, "the downstream DAG runs to consume every event")
    finally:
        emu.set_time_scale(TIME_SCALE)
        d.api("PATCH", f"dags/{DOWNSTREAM_DAG}", {"is_paused": True}, params={"update_mask": "is_paused"})

    events = d.wait_for(lambda: read(lambda: reported_run_keys(d)), 30, "the asset events")
    assert sorted(events) == sorted(ok), (events, finished)  # each successful run once, no other
    assert sorted(k for keys in per_dag_run for k in keys) == sorted(ok)
    assert len(per_dag_run) == len(ok), per_dag_run  # one downstream DAG run per AIDP run
