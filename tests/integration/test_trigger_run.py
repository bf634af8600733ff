"""AIDPJobRunTrigger against the emulator: success, restart without cancel, kill, timeout, faults."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_aidp.emulator import AIDPEmulator
from airflow_provider_aidp.hooks.aidp import AIDPHook
from airflow_provider_aidp.triggers.aidp import AIDPJobRunTrigger
from tests.integration.aidp_run_support import TIME_SCALE, create_job, notebook_task, scrubbed


@pytest.fixture(scope="module")
def shared_emu() -> Iterator[AIDPEmulator]:
    """One emulator for the module (key generation is the slow part); tests use their own runs."""
    with AIDPEmulator(time_scale=TIME_SCALE) as server, pytest.MonkeyPatch.context() as mp:
        creds = server.generate_api_key(pass_phrase="s3cret-pass")
        conn = json.loads(server.connection_json(creds))
        conn["extra"]["max_retries"] = 0  # hook-level retries off, so the trigger's own budget shows
        mp.setenv("AIRFLOW_CONN_AIDP_DEFAULT", json.dumps(conn))
        yield server


@pytest.fixture
def emu(shared_emu: AIDPEmulator) -> Iterator[AIDPEmulator]:
    yield from scrubbed(shared_emu)


def start_run(emu: AIDPEmulator, *, duration: float | None = None) -> str:
    if duration is not None:
        emu.script_task(task_key="work", duration=duration)
    job_key = create_job(emu, "trigger.job", [notebook_task("work")])
    return AIDPHook().create_job_run(job_key).key


def cancels(emu: AIDPEmulator, run_key: str) -> list[Any]:
    return [r for r in emu.requests if r.method == "POST" and r.path.endswith(f"/{run_key}/actions/cancel")]


def run_gets(emu: AIDPEmulator, run_key: str) -> list[Any]:
    return [r for r in emu.requests if r.method == "GET" and r.path.endswith(f"/jobRuns/{run_key}")]


async def first_event(trigger: AIDPJobRunTrigger) -> dict[str, Any]:
    async for event in trigger.run():
        return dict(event.payload)
    raise AssertionError("trigger yielded nothing")


def test_serialize_round_trip_has_only_primitives_and_no_secrets(emu: AIDPEmulator) -> None:
    trigger = AIDPJobRunTrigger(
        "run-1",
        workspace_key="ws",
        poll_interval=5,
        deadline=1_900_000_000.5,
        max_poll_errors=3,
        cancel_on_kill=False,
    )
    path, kwargs = trigger.serialize()
    assert path == "airflow_provider_aidp.triggers.aidp.AIDPJobRunTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert all(v is None or isinstance(v, str | int | float | bool) for v in kwargs.values())
    again = AIDPJobRunTrigger(**kwargs)
    assert again.serialize() == (path, kwargs)
    dumped = json.dumps(kwargs)
    import os

    conn = json.loads(os.environ["AIRFLOW_CONN_AIDP_DEFAULT"])["extra"]
    for secret in ("PRIVATE KEY", "s3cret-pass", conn["fingerprint"], conn["user"]):
        assert secret not in dumped


async def test_success_event_carries_the_run(emu: AIDPEmulator) -> None:
    run_key = start_run(emu)
    event = await first_event(AIDPJobRunTrigger(run_key, poll_interval=0.2))
    assert event["event"] == "terminal" and event["status"] == "SUCCESS"
    assert event["run"]["key"] == run_key and event["run"]["state"]["status"] == "SUCCESS"
    assert json.loads(json.dumps(event)) == event
    assert not cancels(emu, run_key)


async def test_triggerer_restart_does_not_cancel_and_the_new_instance_resumes(emu: AIDPEmulator) -> None:
    run_key = start_run(emu, duration=60)  # ~1.2 s real
    first = AIDPJobRunTrigger(run_key, poll_interval=0.2)
    task = asyncio.ensure_future(first_event(first))
    while not run_gets(emu, run_key):
        await asyncio.sleep(0.02)
    task.cancel()  # what a triggerer shutdown does to a running trigger
    with pytest.raises(asyncio.CancelledError):
        await task
    await first.cleanup()
    assert not cancels(emu, run_key)

    _path, kwargs = first.serialize()
    second = AIDPJobRunTrigger(**json.loads(json.dumps(kwargs)))
    event = await first_event(second)
    assert event["event"] == "terminal" and event["status"] == "SUCCESS"
    assert not cancels(emu, run_key)
    assert next(r for r in emu.runs() if r["key"] == run_key)["state"]["status"] == "SUCCESS"


async def test_on_kill_cancels_the_run(emu: AIDPEmulator) -> None:
    run_key = start_run(emu, duration=1000)
    trigger = AIDPJobRunTrigger(run_key, poll_interval=0.2)
    await trigger.on_kill()
    assert len(cancels(emu, run_key)) == 1
    event = await first_event(AIDPJobRunTrigger(run_key, poll_interval=0.2))
    assert event["status"] == "CANCELED"


async def test_on_kill_respects_cancel_on_kill_false(emu: AIDPEmulator) -> None:
    run_key = start_run(emu, duration=1000)
    await AIDPJobRunTrigger(run_key, cancel_on_kill=False).on_kill()
    assert not cancels(emu, run_key)


async def test_deadline_cancels_then_reports_timeout(emu: AIDPEmulator) -> None:
    run_key = start_run(emu, duration=1000)
    trigger = AIDPJobRunTrigger(run_key, poll_interval=0.2, deadline=time.time() + 0.5)
    event = await first_event(trigger)
    assert event["event"] == "timeout" and event["canceled"] is True and event["cancel_error"] is None
    assert run_key in event["message"] and "cancelled" in event["message"]
    assert len(cancels(emu, run_key)) == 1


async def test_deadline_without_cancel_leaves_the_run(emu: AIDPEmulator) -> None:
    run_key = start_run(emu, duration=1000)
    trigger = AIDPJobRunTrigger(
        run_key, poll_interval=0.2, deadline=time.time() + 0.3, cancel_on_timeout=False
    )
    event = await first_event(trigger)
    assert event["event"] == "timeout" and event["canceled"] is False
    assert not cancels(emu, run_key)


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "status", "status": 503},
        {"kind": "status", "status": 429},
        {"kind": "reset"},
        {"kind": "truncated"},
        {"kind": "status", "status": 401},
    ],
)
async def test_transient_errors_within_budget_are_not_failures(
    emu: AIDPEmulator, fault: dict[str, Any]
) -> None:
    run_key = start_run(emu)
    times = 1 if fault.get("status") == 401 else 3
    emu.inject_fault(path=f"*/jobRuns/{run_key}", method="GET", times=times, **fault)
    event = await first_event(AIDPJobRunTrigger(run_key, poll_interval=0.1, max_poll_errors=5))
    assert event["event"] == "terminal" and event["status"] == "SUCCESS"
    assert len(run_gets(emu, run_key)) >= times + 1
    assert not cancels(emu, run_key)


async def test_spent_budget_is_a_poll_error_not_a_failure_and_never_cancels(emu: AIDPEmulator) -> None:
    run_key = start_run(emu, duration=1000)
    emu.inject_fault("status", path=f"*/jobRuns/{run_key}", method="GET", times=None, status=503)
    event = await first_event(AIDPJobRunTrigger(run_key, poll_interval=0.05, max_poll_errors=2))
    assert event["event"] == "poll_error" and event["errors"] == 3
    assert "NOT reported failed" in event["message"] and "503" in event["message"]
    assert len(run_gets(emu, run_key)) == 3  # one GET per poll
    assert not cancels(emu, run_key)


async def test_two_401_in_a_row_is_an_auth_error(emu: AIDPEmulator) -> None:
    run_key = start_run(emu, duration=1000)
    emu.inject_fault("status", path=f"*/jobRuns/{run_key}", method="GET", times=None, status=401)
    event = await first_event(AIDPJobRunTrigger(run_key, poll_interval=0.05, max_poll_errors=5))
    assert event["event"] == "error" and "401" in event["message"]
    assert not cancels(emu, run_key)


async def test_unknown_run_is_an_error_event(emu: AIDPEmulator) -> None:
    event = await first_event(AIDPJobRunTrigger("no-such-run", poll_interval=0.05))
    assert event["event"] == "error" and "404" in event["message"]
