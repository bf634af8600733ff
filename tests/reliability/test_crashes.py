"""Crashes: the worker (or the triggerer) is killed with SIGKILL at each step, then the work resumes.

The task runs in a worker process forked from the test process (as Airflow's supervisor forks its
task runner), through real Airflow (``dag.test()`` against the SQLite metadata DB).  An emulator
``delay`` fault holds the worker at a known step; the moment the emulator has received that
request, the test SIGKILLs the worker.  The retry then runs the way the scheduler retries a task
whose worker died: same DAG run (so its ``task_state_store`` survives), next try number.  Exactly
one AIDP run must exist and the task must end in success.

"After the POST, before the key is stored" is the dangerous gap: the emulator creates the run
after the worker died, so no run key was stored anywhere.  The deterministic ``opc-retry-token``
(derived from the task instance) makes the retry's POST return that same run.

The triggerer scenario serializes a trigger, runs it in a process that is killed mid-wait, and
resumes it from the serialized kwargs in another process: the run is followed to its end and
never cancelled.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.dags import TASK_ID, run_job_dag
from tests.reliability.support import (
    CONN_ID,
    cancel_requests,
    retry_task,
    run_dag,
    run_posts,
    run_status,
    runs_of,
    seed_job,
)
from tests.reliability.worker import REACH_TIMEOUT, fork_worker, kill_when

CATEGORY = "crashes"
TIME_SCALE = 10.0

#: step -> (how the operator names the job, fault (kind, path glob, method, delay s), deferrable)
STEPS: dict[str, tuple[str, tuple[str, str, str, float], bool]] = {
    "before the POST (looking the job up by name)": ("job_name", ("delay", "*/jobs", "GET", 3.0), False),
    "after the POST, before the run key is stored": ("job_key", ("delay", "*/jobRuns", "POST", 2.0), False),
    "while polling": ("job_key", ("delay", "*/jobRuns/*", "GET", 3.0), False),
    "while deferred (trigger polling inline)": ("job_key", ("delay", "*/jobRuns/*", "GET", 3.0), True),
}


def token_of(request: Any) -> str | None:
    return next((v for k, v in request.headers.items() if k.lower() == "opc-retry-token"), None)


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + REACH_TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.02)


@pytest.mark.aidp_emulator(time_scale=TIME_SCALE)
@pytest.mark.parametrize("step", list(STEPS))
def test_worker_killed_then_task_retried(
    step: str, aidp_emulator: Any, aidp_conn: Any, airflow_db: Any, tmp_path: Path, scenario: Any
) -> None:
    emu = aidp_emulator
    index = list(STEPS).index(step)
    how, (kind, path, method, delay), deferrable = STEPS[step]
    row = scenario(
        CATEGORY,
        f"worker SIGKILLed {step}, task retried",
        "deferred" if deferrable else "sync",
        expected="retry ends success; exactly 1 AIDP run; one opc-retry-token; 0 cancels",
    )
    job_name = f"crash_job_{index}"
    job_key = seed_job(emu, job_name)
    target = {"job_name": job_name} if how == "job_name" else {"job_key": job_key}
    operator = {**target, "deferrable": deferrable, "retries": 2, "aidp_conn_id": CONN_ID}
    dag_id = f"rel_crash_{index}"
    fault = emu.inject_fault(kind, path, method, delay=delay, times=1)

    log = tmp_path / "worker.log"
    pid = fork_worker(lambda: print(run_dag(run_job_dag(dag_id, **operator))), log)
    kill_when(pid, lambda: fault.fired >= 1, log, f"{method} {path}")
    if "after the POST" in step:
        # The emulator finishes the POST the dead worker sent: a run exists whose key nobody stored.
        # The request is recorded when its (undeliverable) answer is written, which can trail the run.
        wait_for(
            lambda: len(runs_of(emu, job_key)) == 1 and len(run_posts(emu)) == 1,
            "the dead worker's POST creating its run, and its record",
        )
    posts_before_retry = len(run_posts(emu))

    state = retry_task(run_job_dag(dag_id, **operator), TASK_ID)
    emu.advance(3600)
    runs = runs_of(emu, job_key)
    posts = run_posts(emu)
    tokens = {token_of(p) for p in posts}
    cancels = cancel_requests(emu)
    row.runs_created = len(runs)
    row.runs_duplicated = max(0, len(runs) - 1)
    row.wrong_cancellations = len(cancels)
    row.false_failure = state != "success" and all(run_status(r) == "SUCCESS" for r in runs)
    row.observed = (
        f"retry {state}; {len(runs)} run(s), AIDP {'/'.join(str(run_status(r)) for r in runs)}; "
        f"POST /jobRuns: {posts_before_retry} before the retry, {len(posts)} in all, "
        f"{len(tokens)} distinct opc-retry-token; {len(cancels)} cancel(s)"
    )
    assert state == "success"
    assert len(runs) == 1 and run_status(runs[0]) == "SUCCESS"
    assert len(tokens) == 1 and None not in tokens
    assert cancels == []
    if "before the POST" in step:
        assert posts_before_retry == 0 and len(posts) == 1
    if "after the POST" in step:
        assert posts_before_retry == 1 and len(posts) == 2  # the retry re-sent it and got the same run
    if step.startswith("while"):
        assert len(posts) == 1  # reattached from the task state store: no second POST at all


@pytest.mark.aidp_emulator(time_scale=0)  # manual clock: the run waits until the test moves time
def test_triggerer_killed_and_trigger_resumed(
    aidp_emulator: Any, aidp_conn: Any, tmp_path: Path, scenario: Any
) -> None:
    from airflow.sdk._shared.module_loading import import_string

    from airflow_provider_aidp.hooks.aidp import AIDPHook
    from airflow_provider_aidp.triggers.aidp import AIDPJobRunTrigger

    emu = aidp_emulator
    row = scenario(
        CATEGORY,
        "triggerer SIGKILLed mid-wait; trigger re-created from its serialized kwargs in another process",
        "deferred",
        expected="resumed trigger reports SUCCESS for the same run; 1 run; 0 cancels",
    )
    job_key = seed_job(emu, "crash_trigger_job")
    run = AIDPHook(aidp_conn_id=CONN_ID).create_job_run(job_key)
    classpath, kwargs = AIDPJobRunTrigger(run.key, aidp_conn_id=CONN_ID, poll_interval=0.05).serialize()
    stored = json.loads(json.dumps(kwargs))  # what the trigger table keeps: JSON primitives only

    def triggerer() -> None:
        trigger = import_string(classpath)(**stored)

        async def consume() -> None:
            async for event in trigger.run():
                print(json.dumps(event.payload))

        asyncio.run(consume())

    def polls() -> int:
        return len([r for r in emu.requests if r.method == "GET" and "/jobRuns/" in r.path])

    log = tmp_path / "triggerer.log"
    pid = fork_worker(triggerer, log)
    kill_when(pid, lambda: polls() >= 3, log, "three polls")
    polls_before = polls()
    emu.advance(3600)  # the run finishes while no triggerer is watching

    async def first_event() -> dict[str, Any]:
        async for event in import_string(classpath)(**stored).run():
            return dict(event.payload)
        raise AssertionError("the trigger ended without an event")

    event = asyncio.run(first_event())
    runs = runs_of(emu, job_key)
    cancels = cancel_requests(emu)
    row.runs_created = len(runs)
    row.wrong_cancellations = len(cancels)
    row.observed = (
        f"{polls_before} polls before the kill; resumed event {event.get('event')!r} "
        f"status {event.get('status')!r}; {len(runs)} run(s); {len(cancels)} cancel(s)"
    )
    assert event.get("run_key") == run.key
    assert event.get("status") == "SUCCESS"
    assert len(runs) == 1 and run_status(runs[0]) == "SUCCESS"
    assert cancels == []
