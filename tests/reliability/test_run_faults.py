"""Faults during a run: the emulator misbehaves while AIDPRunJobOperator submits and waits, through
real Airflow (``dag.test()``), in sync and in deferred mode (the trigger runs inline).

For every scenario the matrix records the final task state, the number of AIDP runs the emulator
created (must be 1), cancel requests (must be 0) and the AIDP run's final status (never CANCELED).
Transient faults inside the budget must not fail the task; the API gone for longer than the budget
fails it with a polling error, and still never cancels the run.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.reliability.dags import TASK_ID, run_job_dag
from tests.reliability.support import (
    CONN_ID,
    FAST_RETRY_EXTRA,
    cancel_requests,
    conn_env_name,
    run_dag,
    run_posts,
    run_status,
    runs_of,
    seed_job,
)

CATEGORY = "faults during a run"
SUBMIT = ("POST", "*/jobRuns")
POLL = ("GET", "*/jobRuns/*")
#: emulator seconds per real second: a run (1 s pending, 1 s queued, 2 tasks x 3 s) takes ~0.3 s.
TIME_SCALE = 30.0


@dataclass(frozen=True)
class Fault:
    name: str
    kind: str
    fields: dict[str, Any] = field(default_factory=dict)
    conn_extra: dict[str, Any] = field(default_factory=dict)


FAULTS = [
    Fault("burst of 429 with Retry-After", "status", {"status": 429, "retry_after": 0.1, "times": 3}),
    Fault("burst of 429 without Retry-After", "status", {"status": 429, "times": 3}),
    Fault("500 twice", "status", {"status": 500, "times": 2}),
    Fault("502 HTML error page twice", "html", {"status": 502, "times": 2}),
    Fault("503 twice", "status", {"status": 503, "times": 2}),
    Fault("connection reset twice", "reset", {"times": 2}),
    Fault(
        "read timeout (answer after 1.5 s, client timeout 0.5 s)",
        "delay",
        {"delay": 1.5, "times": 1},
        {"timeout": 0.5},
    ),
    Fault("truncated JSON body", "truncated", {"times": 1}),
    Fault("200 with an HTML (non-JSON) body", "non_json", {"times": 1}),
    Fault("401 once", "status", {"status": 401, "times": 1}),
]


def _use_connection(monkeypatch: pytest.MonkeyPatch, **extra: Any) -> None:
    if not extra:
        return
    conn = json.loads(os.environ[conn_env_name()])
    conn["extra"].update(extra)
    monkeypatch.setenv(conn_env_name(), json.dumps(conn))


def _observe(emu: Any, job_key: str, states: dict[str, str | None], row: Any) -> tuple[str | None, list[Any]]:
    emu.clear_faults()
    emu.advance(3600)  # let the AIDP run reach its end: it must end SUCCESS, never CANCELED
    runs = runs_of(emu, job_key)
    cancels = cancel_requests(emu)
    state = states.get(TASK_ID)
    row.runs_created = len(runs)
    row.runs_duplicated = max(0, len(runs) - 1)
    row.wrong_cancellations = len(cancels)
    row.observed = (
        f"task {state}; {len(runs)} run(s), AIDP {', '.join(str(run_status(r)) for r in runs) or '-'}; "
        f"{len(run_posts(emu))} POST /jobRuns; {len(cancels)} cancel(s)"
    )
    return state, runs


#: Polling faults in both modes (the sync loop and the trigger are different code). Submit faults
#: once: the POST happens in ``execute()`` before any deferral, the same code in both modes. A 401
#: on the POST is an auth failure, not a transient fault.
CASES = [
    *[pytest.param(f, "poll", m, id=f"{f.name}-poll-{m}") for f in FAULTS for m in ("sync", "deferred")],
    *[pytest.param(f, "submit", "sync", id=f"{f.name}-submit") for f in FAULTS if f.name != "401 once"],
]


@pytest.mark.aidp_emulator(time_scale=TIME_SCALE)
@pytest.mark.parametrize(("fault", "route", "mode"), CASES)
def test_transient_fault(
    fault: Fault,
    route: str,
    mode: str,
    aidp_emulator: Any,
    aidp_conn: Any,
    airflow_db: Any,
    monkeypatch: pytest.MonkeyPatch,
    scenario: Any,
) -> None:
    row = scenario(
        CATEGORY,
        f"{fault.name} on {'POST /jobRuns' if route == 'submit' else 'GET /jobRuns/{key}'}",
        mode if route == "poll" else "sync + deferred (same submit code)",
        expected="task success; 1 run; AIDP SUCCESS; 0 cancels",
    )
    emu = aidp_emulator
    _use_connection(monkeypatch, **fault.conn_extra)
    job_key = seed_job(emu)
    method, path = SUBMIT if route == "submit" else POLL
    emu.inject_fault(fault.kind, path, method, **fault.fields)
    dag = run_job_dag(
        f"rel_fault_{route}_{mode}_{FAULTS.index(fault)}", job_key=job_key, deferrable=mode == "deferred"
    )
    states, _ = run_dag(dag)
    fired = sum(f.fired for f in emu.state.faults.all())
    state, runs = _observe(emu, job_key, states, row)
    row.note(f"{fired} faulted responses")
    row.false_failure = state != "success" and all(run_status(r) == "SUCCESS" for r in runs)
    assert fired == fault.fields["times"]  # every injected fault was really served
    assert state == "success"
    assert len(runs) == 1
    assert run_status(runs[0]) == "SUCCESS"
    assert cancel_requests(emu) == []


@pytest.mark.aidp_emulator(time_scale=TIME_SCALE)
@pytest.mark.parametrize("mode", ["sync", "deferred"])
def test_api_gone_longer_than_budget(
    mode: str,
    aidp_emulator: Any,
    aidp_conn: Any,
    airflow_db: Any,
    monkeypatch: pytest.MonkeyPatch,
    scenario: Any,
) -> None:
    row = scenario(
        CATEGORY,
        "API gone (503 on every poll) longer than the error budget",
        mode,
        expected="task failed (polling error, not a job failure); 1 run; never cancelled; "
        "AIDP run still ends SUCCESS",
    )
    emu = aidp_emulator
    _use_connection(monkeypatch, max_retries=1)
    job_key = seed_job(emu)
    emu.inject_fault("status", POLL[1], "GET", status=503, times=None)
    dag = run_job_dag(f"rel_gone_{mode}", job_key=job_key, deferrable=mode == "deferred", max_poll_errors=2)
    states, _ = run_dag(dag)
    state, runs = _observe(emu, job_key, states, row)
    assert state == "failed"
    assert len(runs) == 1
    assert run_status(runs[0]) == "SUCCESS"
    assert cancel_requests(emu) == []


@pytest.mark.aidp_emulator(time_scale=TIME_SCALE)
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_session_token_expired_then_refreshed(
    mode: str, aidp_emulator: Any, api_key: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, scenario: Any
) -> None:
    """A 401 once: the session token expires mid-wait, `oci session refresh` rewrites the token file,
    the next poll signs with the new token.  The 401 error says how to refresh and never shows a token."""
    import asyncio
    import secrets
    import textwrap

    from airflow_provider_aidp.exceptions import AIDPAuthError
    from airflow_provider_aidp.hooks.aidp import AIDPHook, close_async_sessions

    emu = aidp_emulator
    row = scenario(
        CATEGORY,
        "401 once: session token expired, token file refreshed",
        f"hook ({mode})",
        expected="one 401 naming `oci session refresh`, no token in it; next poll succeeds; 1 run",
    )
    old, new = (f"st-{secrets.token_hex(12)}" for _ in range(2))
    key_file, token_file, config = tmp_path / "key.pem", tmp_path / "token", tmp_path / "config"
    key_file.write_text(api_key.private_key_pem)
    token_file.write_text(old)
    config.write_text(
        textwrap.dedent(f"""\
        [reliability]
        user={api_key.user}
        fingerprint={api_key.fingerprint}
        tenancy={api_key.tenancy}
        region=us-ashburn-1
        key_file={key_file}
        security_token_file={token_file}
        """)
    )
    emu.register_session_token(old, api_key.public_key_pem)
    extra = {
        **emu.connection_extra(None),
        **FAST_RETRY_EXTRA,
        "auth_type": "security_token",
        "config_file": str(config),
        "profile": "reliability",
    }
    monkeypatch.setenv(conn_env_name(), json.dumps({"conn_type": "aidp", "host": emu.url, "extra": extra}))
    hook = AIDPHook(aidp_conn_id=CONN_ID)
    run = hook.create_job_run(seed_job(emu))

    def refresh() -> None:
        token_file.write_text(new)
        stat = token_file.stat()
        os.utime(token_file, (stat.st_atime, stat.st_mtime + 5))  # a visibly new file, as a refresh writes
        emu.register_session_token(new, api_key.public_key_pem)

    emu.expire_session_token(old)

    async def poll_async() -> tuple[str, str | None]:
        try:
            try:
                await hook.a_get_job_run(run.key)
            except AIDPAuthError as exc:
                refresh()
                return str(exc), (await hook.a_get_job_run(run.key)).status
            raise AssertionError("an expired token must be refused")
        finally:
            await close_async_sessions()

    if mode == "sync":
        with pytest.raises(AIDPAuthError) as info:
            hook.get_job_run(run.key)
        message = str(info.value)
        refresh()
        status = hook.get_job_run(run.key).status
    else:
        message, status = asyncio.run(poll_async())
    statuses = [r.status for r in emu.requests if r.method == "GET"]
    row.runs_created = len(runs_of(emu, run.job_key or ""))
    row.observed = (
        f"GET statuses {statuses}; then run {status}; hint in error: {'oci session refresh' in message}"
    )
    assert "oci session refresh --profile reliability" in message
    assert old not in message and new not in message
    assert statuses == [401, 200]
    assert status is not None
    assert row.runs_created == 1


DIAGNOSTIC_ROUTES = {
    "task-run read (GET /taskRuns/{key}) answers 500": ("status", "*/taskRuns/*", "GET", {"status": 500}),
    "task-run output (POST .../fetchOutput) answers 503": (
        "status",
        "*/actions/fetchOutput",
        "POST",
        {"status": 503},
    ),
    "task-run read is a 200 HTML page": ("non_json", "*/taskRuns/*", "GET", {}),
}


@pytest.mark.aidp_emulator(time_scale=TIME_SCALE)
@pytest.mark.parametrize("mode", ["sync", "deferred"])
@pytest.mark.parametrize("label", list(DIAGNOSTIC_ROUTES))
def test_diagnostics_unavailable_after_success(
    label: str, mode: str, aidp_emulator: Any, aidp_conn: Any, airflow_db: Any, scenario: Any
) -> None:
    """The run succeeded; the reads that only build the summary / log the outputs keep failing.
    That must not turn a successful run into a failed task."""
    row = scenario(
        CATEGORY, f"after SUCCESS, {label} (every attempt)", mode, expected="task success; 1 run; 0 cancels"
    )
    emu = aidp_emulator
    kind, path, method, fields = DIAGNOSTIC_ROUTES[label]
    job_key = seed_job(emu)
    emu.inject_fault(kind, path, method, times=None, **fields)
    dag = run_job_dag(
        f"rel_diag_{mode}_{list(DIAGNOSTIC_ROUTES).index(label)}",
        job_key=job_key,
        deferrable=mode == "deferred",
        fetch_output="always",
    )
    states, _ = run_dag(dag)
    fired = sum(f.fired for f in emu.state.faults.all())
    state, runs = _observe(emu, job_key, states, row)
    row.note(f"{fired} faulted diagnostic reads")
    row.false_failure = state != "success" and all(run_status(r) == "SUCCESS" for r in runs)
    assert fired > 0  # the diagnostic reads were really attempted and refused
    assert state == "success"
    assert len(runs) == 1 and run_status(runs[0]) == "SUCCESS"
    assert cancel_requests(emu) == []
