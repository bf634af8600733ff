"""AIDPRunJobOperator / AIDPRepairJobRunOperator / AIDPCancelJobRunOperator / AIDPJobRunSensor
against the emulator: through real Airflow ``dag.test()`` where the task context matters
(XCom, extra link, deferral, retries, task_state_store), directly through ``execute`` where the
point is the exception text or the log.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import structlog

from airflow_provider_aidp import compat
from airflow_provider_aidp.emulator import AIDPEmulator
from airflow_provider_aidp.exceptions import (
    AIDPConfigError,
    AIDPJobRunError,
    AIDPNotFoundError,
    AIDPPollError,
    AIDPRunTimeoutError,
)
from airflow_provider_aidp.hooks.aidp import AIDPHook
from airflow_provider_aidp.operators.aidp import (
    AIDPCancelJobRunOperator,
    AIDPRepairJobRunOperator,
    AIDPRunJobOperator,
)
from airflow_provider_aidp.runs.identity import TaskIdentity
from airflow_provider_aidp.sensors.aidp import AIDPJobRunSensor
from tests.integration.aidp_run_support import (
    TIME_SCALE,
    FakeTI,
    StdlibLines,
    build_dag,
    create_job,
    execute,
    notebook_task,
    run_dag,
    scrubbed,
    xcoms,
)


@pytest.fixture(scope="module")
def shared_emu(airflow_db: Any) -> Iterator[AIDPEmulator]:
    with AIDPEmulator(time_scale=TIME_SCALE) as server, pytest.MonkeyPatch.context() as mp:
        creds = server.generate_api_key()
        conn = json.loads(server.connection_json(creds))
        conn["extra"]["max_retries"] = 1
        # This module plays no lagging reading: a name or key that names nothing fails after 2 s,
        # not after the default 60 s grace (test_readings_matrix.py plays the lags).
        conn["extra"]["consistency_grace"] = 2
        mp.setenv("AIRFLOW_CONN_AIDP_DEFAULT", json.dumps(conn))
        yield server


@pytest.fixture
def emu(shared_emu: AIDPEmulator) -> Iterator[AIDPEmulator]:
    yield from scrubbed(shared_emu)


def job(emu: AIDPEmulator, *tasks: dict[str, Any], max_concurrent_runs: int = 1) -> str:
    name = f"job_{uuid.uuid4().hex[:8]}"
    return create_job(emu, name, list(tasks) or [notebook_task("a")], max_concurrent_runs)


def runs_of(emu: AIDPEmulator, job_key: str) -> list[dict[str, Any]]:
    return [r for r in emu.runs() if r.get("jobKey") == job_key]


def posts(emu: AIDPEmulator) -> list[Any]:
    return [r for r in emu.requests if r.method == "POST" and r.path.endswith("/jobRuns")]


def cancels(emu: AIDPEmulator, run_key: str) -> list[Any]:
    return [r for r in emu.requests if r.method == "POST" and r.path.endswith(f"/{run_key}/actions/cancel")]


def body(request: Any) -> Any:
    return json.loads(request.body) if isinstance(request.body, str | bytes) else request.body


# --- success, XCom, extra link -----------------------------------------------------------------


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferred"])
def test_success_pushes_xcoms_summary_and_link(emu: AIDPEmulator, deferrable: bool) -> None:
    job_key = job(emu, notebook_task("extract"), notebook_task("load", depends=["extract"]))
    dag = build_dag(
        lambda: AIDPRunJobOperator(
            task_id="run",
            job_key=job_key,
            parameters={"day": "{{ ds }}", "n": 3},
            poll_interval=0.2,
            deferrable=deferrable,
        )
    )
    states, run_id = run_dag(dag)
    assert states == {"run": "success"}
    values = xcoms(dag, run_id, "run")
    (run,) = runs_of(emu, job_key)
    assert values["run_key"] == values["return_value"] == run["key"]
    assert values["job_key"] == job_key
    assert values["run_url"] == f"{emu.url}/_emulator/console/jobs/{job_key}/runs/{run['key']}"
    assert values["_link_AIDPJobRunLink"] == values["run_url"]
    summary = values["run_summary"]
    assert summary["status"] == "SUCCESS" and summary["run_key"] == run["key"]
    assert {t["task_key"]: t["status"] for t in summary["tasks"]} == {"extract": "SUCCESS", "load": "SUCCESS"}
    assert all(t["duration_seconds"] == 3.0 for t in summary["tasks"])
    assert {p["name"]: p["value"] for p in run["parameters"]} == {"day": "2026-01-01", "n": "3"}
    assert len(posts(emu)) >= 1 and all(r.headers.get("opc-retry-token") for r in posts(emu))


def test_job_name_is_resolved_and_missing_name_fails_clearly(emu: AIDPEmulator) -> None:
    job_key = job(emu)
    name = next(j["name"] for j in emu.jobs() if j["key"] == job_key)
    result, ti, _ = execute(AIDPRunJobOperator(task_id="t", job_name=name, poll_interval=0.2))
    assert result == ti.xcoms["run_key"] and ti.xcoms["job_key"] == job_key
    before = len(posts(emu))
    result, _, _ = execute(AIDPRunJobOperator(task_id="t", job_name="no_such_job", poll_interval=0.2))
    assert isinstance(result, AIDPConfigError) and "no_such_job" in str(result) and "job_name" in str(result)
    assert len(posts(emu)) == before


def test_bad_arguments_fail_before_any_request() -> None:
    with pytest.raises(AIDPConfigError, match="exactly one of job_key or job_name"):
        AIDPRunJobOperator(task_id="t")
    with pytest.raises(AIDPConfigError, match="fetch_output"):
        AIDPRunJobOperator(task_id="t", job_key="k", fetch_output="sometimes")
    result, _, _ = execute(AIDPRunJobOperator(task_id="t", job_key="k", parameters={"a": {"nested": 1}}))
    assert isinstance(result, AIDPConfigError) and "parameters['a']" in str(result)


def test_no_wait_returns_right_after_starting(emu: AIDPEmulator) -> None:
    emu.script_task(task_key="a", duration=1000)
    job_key = job(emu)
    result, ti, _ = execute(AIDPRunJobOperator(task_id="t", job_key=job_key, wait_for_completion=False))
    assert result == ti.xcoms["run_key"] and "run_summary" not in ti.xcoms
    AIDPHook().cancel_job_run(result)


# --- failures and diagnostics ------------------------------------------------------------------


@pytest.mark.parametrize("outcome", ["FAILED", "INTERNAL_ERROR", "TIMED_OUT", "CANCELED"])
def test_each_failing_status_names_run_task_message_and_trace(emu: AIDPEmulator, outcome: str) -> None:
    emu.script_task(
        task_key="transform",
        outcome=outcome,
        state_message=f"transform says {outcome}",
        error_trace="Traceback (most recent call last):\n  File 'cell 3'\nKeyError: 'customer_id'",
        output="row count: 0",
    )
    job_key = job(
        emu,
        notebook_task("extract"),
        notebook_task("transform", depends=["extract"]),
        notebook_task("load", depends=["transform"]),
    )
    result, ti, lines = execute(AIDPRunJobOperator(task_id="t", job_key=job_key, poll_interval=0.2))
    assert isinstance(result, AIDPJobRunError), result
    message = str(result)
    (run,) = runs_of(emu, job_key)
    assert result.run_key == run["key"] and result.status == run["state"]["status"]
    assert run["key"] in message and f"ended {run['state']['status']}" in message
    assert f"task transform {outcome}: transform says {outcome}" in message
    assert "KeyError: 'customer_id'" in message
    assert "load (UPSTREAM_" in message  # the consequence is listed, apart from the cause
    assert ti.xcoms["run_url"] in message
    assert ti.xcoms["run_summary"]["status"] == run["state"]["status"]
    assert any("Output of AIDP task transform" in line and "row count: 0" in line for line in lines)
    assert not any("Output of AIDP task extract" in line for line in lines)  # on_failure: failed tasks only


def test_failed_run_through_dag_test_fails_the_task(emu: AIDPEmulator) -> None:
    emu.script_task(task_key="a", outcome="FAILED", state_message="boom")
    job_key = job(emu)
    dag = build_dag(lambda: AIDPRunJobOperator(task_id="run", job_key=job_key, poll_interval=0.2))
    states, run_id = run_dag(dag)
    assert states == {"run": "failed"}
    assert xcoms(dag, run_id, "run")["run_summary"]["tasks"][0]["state_message"] == "boom"


def test_skipped_run_says_another_run_was_active(emu: AIDPEmulator) -> None:
    emu.script_task(task_key="a", duration=1000)
    job_key = job(emu, max_concurrent_runs=1)
    blocking = AIDPHook().create_job_run(job_key).key
    result, _, _ = execute(AIDPRunJobOperator(task_id="t", job_key=job_key, poll_interval=0.2))
    AIDPHook().cancel_job_run(blocking)
    assert isinstance(result, AIDPJobRunError) and result.status == "SKIPPED"
    assert "SKIPPED" in str(result) and "another run of this job was already active" in str(result)
    assert "maxConcurrentRuns" in str(result)


def test_output_always_is_truncated_with_a_marker(emu: AIDPEmulator) -> None:
    emu.script_task(task_key="a", output="x" * 500)
    job_key = job(emu)
    result, _, lines = execute(
        AIDPRunJobOperator(
            task_id="t", job_key=job_key, poll_interval=0.2, fetch_output="always", max_output_chars=100
        )
    )
    assert isinstance(result, str)
    (line,) = [entry for entry in lines if "Output of AIDP task a" in entry]
    assert "x" * 100 + "... [truncated 400 more characters]" in line and "x" * 101 not in line


def test_output_never_fetches_nothing(emu: AIDPEmulator) -> None:
    emu.script_task(task_key="a", outcome="FAILED", output="secret-ish output")
    job_key = job(emu)
    result, _, lines = execute(
        AIDPRunJobOperator(task_id="t", job_key=job_key, poll_interval=0.2, fetch_output="never")
    )
    assert isinstance(result, AIDPJobRunError)
    assert not any("secret-ish output" in line for line in lines)
    assert not [
        r
        for r in emu.requests
        if r.path.endswith("/actions/fetchOutput") and result.run_key in json.dumps(r.body or {})
    ]


# --- cancellation and timeouts -----------------------------------------------------------------


def test_on_kill_cancels_the_run_in_the_sync_path(emu: AIDPEmulator) -> None:
    emu.script_task(task_key="a", duration=1000)
    job_key = job(emu)
    op = AIDPRunJobOperator(task_id="t", job_key=job_key, poll_interval=0.1)
    box: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: box.update(result=execute(op)))
    worker.start()
    deadline = time.monotonic() + 30
    while op._active_run_key is None and time.monotonic() < deadline:
        time.sleep(0.02)
    run_key = op._active_run_key
    assert run_key is not None
    op.on_kill()
    worker.join(30)
    result = box["result"][0]
    assert len(cancels(emu, run_key)) == 1
    assert isinstance(result, AIDPJobRunError) and result.status == "CANCELED"


def test_on_kill_without_cancel_on_kill_leaves_the_run(emu: AIDPEmulator) -> None:
    op = AIDPRunJobOperator(task_id="t", job_key="k", cancel_on_kill=False)
    op._active_run_key = "some-run"
    op.on_kill()
    assert not cancels(emu, "some-run")


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferred"])
def test_wait_timeout_cancels_then_fails(emu: AIDPEmulator, deferrable: bool) -> None:
    emu.script_task(task_key="a", duration=1000)
    job_key = job(emu)
    dag = build_dag(
        lambda: AIDPRunJobOperator(
            task_id="run", job_key=job_key, poll_interval=0.1, timeout=0.5, deferrable=deferrable
        )
    )
    states, run_id = run_dag(dag)
    assert states == {"run": "failed"}
    run_key = xcoms(dag, run_id, "run")["run_key"]
    assert len(cancels(emu, run_key)) == 1
    assert "run_summary" not in xcoms(dag, run_id, "run")


def test_timeout_message_names_the_run_and_the_cancel(emu: AIDPEmulator) -> None:
    emu.script_task(task_key="a", duration=1000)
    result, ti, _ = execute(AIDPRunJobOperator(task_id="t", job_key=job(emu), poll_interval=0.1, timeout=0.3))
    assert isinstance(result, AIDPRunTimeoutError) and result.canceled
    assert ti.xcoms["run_key"] in str(result) and "cancelled it" in str(result)


# --- transient faults --------------------------------------------------------------------------


def test_transient_poll_faults_within_budget_still_succeed_without_a_second_post(emu: AIDPEmulator) -> None:
    job_key = job(emu)
    emu.inject_fault("status", path="*/jobRuns/*", method="GET", times=4, status=503)
    before = len(posts(emu))
    result, _, _ = execute(AIDPRunJobOperator(task_id="t", job_key=job_key, poll_interval=0.1))
    assert isinstance(result, str)
    assert len(posts(emu)) == before + 1 and len(runs_of(emu, job_key)) == 1


def test_spent_poll_budget_is_reported_as_a_polling_error(emu: AIDPEmulator) -> None:
    emu.script_task(task_key="a", duration=1000)
    job_key = job(emu)
    emu.inject_fault("status", path="*/jobRuns/*", method="GET", times=None, status=503)
    result, ti, _ = execute(
        AIDPRunJobOperator(task_id="t", job_key=job_key, poll_interval=0.05, max_poll_errors=1)
    )
    emu.clear_faults()
    assert isinstance(result, AIDPPollError) and result.kind == "poll_error"
    assert "NOT reported failed" in str(result)
    assert not cancels(emu, ti.xcoms["run_key"])
    AIDPHook().cancel_job_run(ti.xcoms["run_key"])


def test_retried_post_after_a_lost_answer_gives_one_run(emu: AIDPEmulator) -> None:
    """The hook retries a POST whose answer was lost (reset) with the same token: still one run."""
    job_key = job(emu)
    emu.inject_fault("reset", path="*/jobRuns", method="POST", times=1)
    result, _, _ = execute(AIDPRunJobOperator(task_id="t", job_key=job_key, poll_interval=0.1))
    assert isinstance(result, str)
    tokens = {r.headers.get("opc-retry-token") for r in posts(emu) if job_key in json.dumps(r.body or {})}
    assert len(tokens) == 1 and len(runs_of(emu, job_key)) == 1


# --- exactly once across Airflow retries ---------------------------------------------------------


class CrashAfterSubmit(AIDPRunJobOperator):
    """Dies right after the POST on its first try, before the run key is stored (a worker crash)."""

    def _start_or_reattach(self, context: Any, *args: Any) -> Any:
        run = super()._start_or_reattach(context, *args)
        if context["ti"].try_number == 1:
            raise RuntimeError("simulated worker crash between POST /jobRuns and storing the run key")
        return run


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferred"])
def test_retry_after_crash_between_post_and_store_reattaches(emu: AIDPEmulator, deferrable: bool) -> None:
    job_key = job(emu)
    dag = build_dag(
        lambda: CrashAfterSubmit(
            task_id="run", job_key=job_key, poll_interval=0.1, retries=1, retry_delay=0, deferrable=deferrable
        )
    )
    states, run_id = run_dag(dag)
    assert states == {"run": "success"}
    job_posts = [r for r in posts(emu) if job_key in json.dumps(r.body or {})]
    assert len(job_posts) == 2  # one per try...
    assert len({r.headers["opc-retry-token"] for r in job_posts}) == 1  # ...with the same token
    (run,) = runs_of(emu, job_key)  # ...so AIDP started ONE run
    assert xcoms(dag, run_id, "run")["run_key"] == run["key"]
    identity = TaskIdentity(dag.dag_id, run_id, "run")
    assert job_posts[0].headers["opc-retry-token"] == identity.retry_token()


class CrashAfterStore(AIDPRunJobOperator):
    """Dies while waiting on its first try, after the run key was stored."""

    def _wait_for(self, context: Any, *args: Any) -> Any:
        if context["ti"].try_number == 1:
            raise RuntimeError("simulated worker crash while polling")
        return super()._wait_for(context, *args)


def test_retry_after_crash_while_waiting_reattaches_without_a_second_post(emu: AIDPEmulator) -> None:
    job_key = job(emu)
    dag = build_dag(
        lambda: CrashAfterStore(task_id="run", job_key=job_key, poll_interval=0.1, retries=1, retry_delay=0)
    )
    states, _ = run_dag(dag)
    assert states == {"run": "success"}
    job_posts = [r for r in posts(emu) if job_key in json.dumps(r.body or {})]
    if compat.HAS_TASK_STATE_STORE:  # the retry found the run key in the store
        assert len(job_posts) == 1
    else:  # Airflow < 3.3: the retry re-sent the same token and got the same run back
        assert len({r.headers["opc-retry-token"] for r in job_posts}) == 1
    assert len(runs_of(emu, job_key)) == 1


def test_retry_after_a_failed_run_starts_a_new_run(emu: AIDPEmulator) -> None:
    emu.script_task(task_key="a", outcome="FAILED", times=1)
    job_key = job(emu)
    dag = build_dag(
        lambda: AIDPRunJobOperator(
            task_id="run", job_key=job_key, poll_interval=0.1, retries=1, retry_delay=0
        )
    )
    states, _ = run_dag(dag)
    assert states == {"run": "success"}
    statuses = sorted(r["state"]["status"] for r in runs_of(emu, job_key))
    assert statuses == ["FAILED", "SUCCESS"]
    tokens = [r.headers["opc-retry-token"] for r in posts(emu) if job_key in json.dumps(r.body or {})]
    if compat.HAS_TASK_STATE_STORE:  # the retry read the failed run's key from the store
        assert len(tokens) == 2 and tokens[0] != tokens[1]
    else:  # the retry re-sent try 1's token (and got the failed run back), then resubmitted
        assert len(tokens) == 3 and tokens[0] == tokens[1] != tokens[2]


class FakeStateStore:
    """Airflow 3.3's ``task_state_store``, as the run operator uses it (``get`` / ``set``)."""

    def __init__(self, **values: Any) -> None:
        self.values = dict(values)

    def get(self, key: str) -> Any:
        return self.values.get(key)

    def set(self, key: str, value: Any) -> None:
        self.values[key] = value


def run_logged(op: AIDPRunJobOperator, ti: FakeTI, store: FakeStateStore | None) -> tuple[Any, list[str]]:
    """``op.execute`` with ``ti`` (and a state store); the result and the log lines about the run."""
    context: dict[str, Any] = {"ti": ti}
    if store is not None:
        context["task_state_store"] = store
    std = StdlibLines()
    if isinstance(op.log, logging.Logger):
        op.log.addHandler(std)
    try:
        with structlog.testing.capture_logs() as logs:
            result = op.execute(context)  # type: ignore[arg-type]
    finally:
        if isinstance(op.log, logging.Logger):
            op.log.removeHandler(std)
    lines = [str(e["event"]) % tuple(e.get("positional_args", ())) for e in logs] + std.lines
    return result, [line for line in lines if "AIDP" in line and "job run" in line]


SAYS = ("Started AIDP job run", "Reattached to AIDP job run", "Task was cleared", "retry token")


def said(lines: list[str]) -> list[str]:
    """Which of the run operator's start / reattach / replace / token sentences the log holds."""
    return [s for line in lines for s in SAYS if s in line]


def test_the_log_says_once_whether_a_run_was_started_reattached_or_replaced(emu: AIDPEmulator) -> None:
    """#24: a cleared task's log said "Reattaching ... from a previous try" for the run it had just
    started. Each case now says what happened, once."""
    emu.script_task(task_key="a", duration=1000)
    job_key = job(emu, max_concurrent_runs=3)
    op = AIDPRunJobOperator(task_id="t", job_key=job_key, wait_for_completion=False, retries=2)
    first, store = FakeTI(op), FakeStateStore()
    started, lines = run_logged(op, first, store)
    assert said(lines) == ["Started AIDP job run"] and f"{started} of job {job_key}" in lines[0]

    retry = FakeTI(op, try_number=2)  # the same task instance, retried: the stored run is still going
    retry.run_id = first.run_id
    reattached, lines = run_logged(op, retry, store)
    assert reattached == started and said(lines) == ["Reattached to AIDP job run"]
    assert f"run {started} (" in lines[0] and "), which try 1 started" in lines[0]

    cleared = FakeTI(op, try_number=3)  # a user cleared it: Airflow raised max_tries past the last try
    cleared.run_id, cleared.max_tries = first.run_id, 2 + op.retries
    replaced, lines = run_logged(op, cleared, store)
    assert replaced != started and said(lines) == ["Task was cleared"]
    assert f"since AIDP job run {started} was started; started a new run {replaced}" in lines[0]
    assert len(posts_of(emu, job_key)) == 2  # the first try's and the clear's, none for the retry
    for key in (started, replaced):
        AIDPHook().cancel_job_run(key)


def test_without_a_stored_key_a_retry_says_what_the_retry_token_answered(emu: AIDPEmulator) -> None:
    """Airflow < 3.3 (no state store): a retry cannot know whether an earlier try got as far as the
    POST, and says so instead of claiming a new run or a reattachment."""
    emu.script_task(task_key="a", duration=1000)
    job_key = job(emu)
    op = AIDPRunJobOperator(task_id="t", job_key=job_key, wait_for_completion=False, retries=1)
    first = FakeTI(op)
    started, lines = run_logged(op, first, None)
    assert said(lines) == ["Started AIDP job run"]
    retry = FakeTI(op, try_number=2)
    retry.run_id = first.run_id
    again, lines = run_logged(op, retry, None)
    assert again == started and said(lines) == ["retry token"]
    assert f"retry token with job run {started} (" in lines[0]
    AIDPHook().cancel_job_run(started)


def posts_of(emu: AIDPEmulator, job_key: str) -> list[Any]:
    return [r for r in posts(emu) if job_key in json.dumps(r.body or {})]


def test_repair_on_retry_repairs_the_failed_run(emu: AIDPEmulator) -> None:
    emu.script_task(task_key="b", outcome="FAILED", times=1)
    job_key = job(
        emu, notebook_task("a"), notebook_task("b", depends=["a"]), notebook_task("c", depends=["b"])
    )
    dag = build_dag(
        lambda: AIDPRunJobOperator(
            task_id="run", job_key=job_key, poll_interval=0.1, retries=1, retry_delay=0, repair_on_retry=True
        )
    )
    states, run_id = run_dag(dag)
    assert states == {"run": "success"}
    (run,) = runs_of(emu, job_key)
    assert run["state"]["status"] == "SUCCESS"
    repairs = [r for r in emu.requests if r.path.endswith(f"/{run['key']}/actions/repair")]
    assert len(repairs) == 1
    assert body(repairs[0])["repairTasks"] == [
        {"taskKey": "b", "shouldIncludeDownstream": True, "shouldIncludeUpstream": False}
    ]
    assert xcoms(dag, run_id, "run")["run_summary"]["status"] == "SUCCESS"


# --- repair and cancel operators, sensor ---------------------------------------------------------


def finished_failed_run(emu: AIDPEmulator) -> str:
    emu.script_task(task_key="b", outcome="FAILED", times=1)
    job_key = job(emu, notebook_task("a"), notebook_task("b", depends=["a"]))
    result, _, _ = execute(AIDPRunJobOperator(task_id="t", job_key=job_key, poll_interval=0.1))
    assert isinstance(result, AIDPJobRunError)
    return result.run_key


def test_repair_operator_reruns_failed_tasks_and_waits(emu: AIDPEmulator) -> None:
    run_key = finished_failed_run(emu)
    result, ti, _ = execute(AIDPRepairJobRunOperator(task_id="r", run_key=run_key, poll_interval=0.1))
    assert result == run_key and ti.xcoms["run_summary"]["status"] == "SUCCESS"
    (repair,) = [r for r in emu.requests if r.path.endswith(f"/{run_key}/actions/repair")]
    assert [t["taskKey"] for t in body(repair)["repairTasks"]] == ["b"]


def test_repair_operator_refuses_an_active_run(emu: AIDPEmulator) -> None:
    emu.script_task(task_key="a", duration=1000)
    run_key = AIDPHook().create_job_run(job(emu)).key
    result, _, _ = execute(AIDPRepairJobRunOperator(task_id="r", run_key=run_key))
    AIDPHook().cancel_job_run(run_key)
    assert isinstance(result, AIDPConfigError) and "only a finished run can be repaired" in str(result)


def test_cancel_operator_cancels_and_waits(emu: AIDPEmulator) -> None:
    emu.script_task(task_key="a", duration=1000)
    run_key = AIDPHook().create_job_run(job(emu)).key
    result, _, _ = execute(
        AIDPCancelJobRunOperator(task_id="c", run_key=run_key, wait_for_termination=True, poll_interval=0.1)
    )
    assert result == [run_key]
    assert AIDPHook().get_job_run(run_key).status == "CANCELED"


def test_cancel_operator_by_job_cancels_all_active_runs(emu: AIDPEmulator) -> None:
    emu.script_task(task_key="a", duration=1000)
    job_key = job(emu, max_concurrent_runs=2)
    keys = {AIDPHook().create_job_run(job_key).key for _ in range(2)}
    result, _, _ = execute(
        AIDPCancelJobRunOperator(task_id="c", job_key=job_key, wait_for_termination=True, poll_interval=0.1)
    )
    assert set(result) == keys
    assert {AIDPHook().get_job_run(k).status for k in keys} == {"CANCELED"}


def test_cancel_by_job_without_the_cancel_job_runs_action_still_fails_for_a_missing_job(
    emu: AIDPEmulator,
) -> None:
    """Where a surface has no ``cancelJobRuns`` (404), the runs are cancelled one by one, but a
    job key that names no job is still an error, not a silent no-op."""
    emu.set_readings(no_cancel_job_runs="all")
    try:
        result, _, _ = execute(AIDPCancelJobRunOperator(task_id="c", job_key="no-such-job"))
    finally:
        emu.set_readings(no_cancel_job_runs="none")
    assert isinstance(result, AIDPNotFoundError) and "GET" in str(result) and "no-such-job" in str(result)


@pytest.mark.parametrize("mode", ["poke", "reschedule", "deferrable"])
def test_sensor_success_and_failure(emu: AIDPEmulator, mode: str) -> None:
    good = AIDPHook().create_job_run(job(emu)).key
    emu.script_task(task_key="a", outcome="FAILED", state_message="sensor saw it fail")
    bad = AIDPHook().create_job_run(job(emu)).key
    kwargs: dict[str, Any] = {"poke_interval": 0.1, "timeout": 60}
    if mode == "deferrable":
        kwargs["deferrable"] = True
    else:
        kwargs["mode"] = mode
    dag = build_dag(
        lambda: AIDPJobRunSensor(task_id="good", run_key=good, **kwargs),
        lambda: AIDPJobRunSensor(task_id="bad", run_key=bad, **kwargs),
    )
    states, run_id = run_dag(dag)
    assert states == {"good": "success", "bad": "failed"}
    assert xcoms(dag, run_id, "good")["run_summary"]["status"] == "SUCCESS"
    assert xcoms(dag, run_id, "bad")["run_summary"]["tasks"][0]["state_message"] == "sensor saw it fail"
    assert xcoms(dag, run_id, "good")["run_url"].endswith(good)
    assert not cancels(emu, bad)


def test_sensor_failure_message_matches_the_operator(emu: AIDPEmulator) -> None:
    emu.script_task(
        task_key="a", outcome="FAILED", state_message="same words", error_trace="ZeroDivisionError"
    )
    run_key = AIDPHook().create_job_run(job(emu)).key
    sensor = AIDPJobRunSensor(task_id="s", run_key=run_key, poke_interval=0.1)
    deadline = time.monotonic() + 30
    while AIDPHook().get_job_run(run_key).status != "FAILED" and time.monotonic() < deadline:
        time.sleep(0.05)
    ti = FakeTI(sensor)
    with pytest.raises(AIDPJobRunError) as info:
        sensor.poke({"ti": ti})  # type: ignore[arg-type]
    assert "task a FAILED: same words" in str(info.value) and "ZeroDivisionError" in str(info.value)


def test_mapped_tasks_get_their_own_runs_and_tokens(emu: AIDPEmulator) -> None:
    job_key = job(emu, max_concurrent_runs=3)
    dag = build_dag(
        lambda: AIDPRunJobOperator.partial(task_id="run", job_key=job_key, poll_interval=0.1).expand(
            parameters=[{"n": "1"}, {"n": "2"}, {"n": "3"}]
        )
    )
    states, _ = run_dag(dag)
    assert states == {"run": "success"}
    runs = runs_of(emu, job_key)
    assert sorted(p["value"] for r in runs for p in r["parameters"]) == ["1", "2", "3"]
    assert {r["state"]["status"] for r in runs} == {"SUCCESS"}
    tokens = {r.headers["opc-retry-token"] for r in posts(emu) if job_key in json.dumps(r.body or {})}
    assert len(tokens) == 3


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferred"])
def test_execution_timeout_cancels_the_run(emu: AIDPEmulator, deferrable: bool) -> None:
    """Sync: Airflow calls on_kill() after AirflowTaskTimeout unwound execute(). Deferred: Airflow
    times the trigger out without on_kill, so the trigger's own deadline must come first."""
    emu.script_task(task_key="a", duration=1000)
    job_key = job(emu)
    dag = build_dag(
        lambda: AIDPRunJobOperator(
            task_id="run",
            job_key=job_key,
            poll_interval=0.1,
            execution_timeout=timedelta(seconds=2),
            deferrable=deferrable,
        )
    )
    states, run_id = run_dag(dag)
    assert states == {"run": "failed"}
    assert len(cancels(emu, xcoms(dag, run_id, "run")["run_key"])) == 1


@pytest.mark.parametrize("kind", ["truncated", "non_json"])
def test_garbled_answer_to_the_post_is_resent_with_the_same_token(emu: AIDPEmulator, kind: str) -> None:
    """The run was created but its answer was unreadable: resending the token returns that run."""
    job_key = job(emu)
    emu.inject_fault(kind, path="*/jobRuns", method="POST", times=1)
    result, _, _ = execute(AIDPRunJobOperator(task_id="t", job_key=job_key, poll_interval=0.1))
    assert isinstance(result, str), result
    job_posts = [r for r in posts(emu) if job_key in json.dumps(r.body or {})]
    assert len(job_posts) == 2 and len({r.headers["opc-retry-token"] for r in job_posts}) == 1
    assert len(runs_of(emu, job_key)) == 1


def test_deferrable_sensor_links_carry_the_job_key(emu: AIDPEmulator) -> None:
    """The link is published before deferring: it must already name the job (no ``jobs//runs``)."""
    import asyncio

    from airflow_provider_aidp.hooks.aidp import close_async_sessions

    try:  # Airflow >= 3.2
        from airflow.sdk.exceptions import TaskDeferred
    except ImportError:
        from airflow.exceptions import TaskDeferred  # type: ignore[no-redef]

    job_key = job(emu)
    emu.script_task(task_key="a", outcome="FAILED", state_message="deferred sensor saw it fail")
    run_key = AIDPHook().create_job_run(job_key).key
    expected = f"{emu.url}/_emulator/console/jobs/{job_key}/runs/{run_key}"
    kwargs: dict[str, Any] = {"run_key": run_key, "deferrable": True, "poke_interval": 0.1, "timeout": 60}
    dag = build_dag(lambda: AIDPJobRunSensor(task_id="s", **kwargs))
    states, run_id = run_dag(dag)
    assert states == {"s": "failed"}
    values = xcoms(dag, run_id, "s")
    assert values["run_url"] == values["_link_AIDPJobRunLink"] == expected
    assert values["run_summary"]["run_url"] == expected

    sensor = AIDPJobRunSensor(task_id="direct", **kwargs)
    ti = FakeTI(sensor)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({"ti": ti})  # type: ignore[arg-type]
    assert ti.xcoms["run_url"] == expected

    async def fire() -> dict[str, Any]:
        try:
            return (await anext(deferred.value.trigger.run())).payload
        finally:
            await close_async_sessions()

    event = asyncio.run(fire())
    with pytest.raises(AIDPJobRunError) as info:
        AIDPJobRunSensor(task_id="direct", **kwargs).execute_complete({"ti": ti}, event)  # type: ignore[arg-type]
    assert expected in str(info.value)


# --- older Airflow: degraded features are named once in the task log ----------------------------


def test_a_context_without_task_state_store_is_named_once(emu: AIDPEmulator) -> None:
    """The fake context has no task_state_store, as every context before Airflow 3.3."""
    job_key = job(emu)
    result, _, lines = execute(AIDPRunJobOperator(task_id="t", job_key=job_key, poll_interval=0.2))
    assert isinstance(result, str)
    assert lines.count(compat.NO_STATE_STORE_NOTE) == 1
    assert "opc-retry-token alone protects against duplicate" in compat.NO_STATE_STORE_NOTE


def test_deferring_names_the_missing_trigger_on_kill_only_where_it_is_missing(emu: AIDPEmulator) -> None:
    try:  # Airflow >= 3.2
        from airflow.sdk.exceptions import TaskDeferred
    except ImportError:
        from airflow.exceptions import TaskDeferred  # type: ignore[no-redef]

    op = AIDPRunJobOperator(task_id="t", job_key=job(emu), poll_interval=0.2, deferrable=True)
    std = StdlibLines()
    if isinstance(op.log, logging.Logger):
        op.log.addHandler(std)
    with structlog.testing.capture_logs() as logs, pytest.raises(TaskDeferred):
        op.execute({"ti": FakeTI(op)})  # TaskDeferred is a BaseException: execute() would not catch it
    lines = [str(e["event"]) % tuple(e.get("positional_args", ())) for e in logs] + std.lines
    assert lines.count(compat.NO_TRIGGER_ON_KILL_NOTE) == (0 if compat.HAS_TRIGGER_ON_KILL else 1)
