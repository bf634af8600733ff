"""AIDPTaskRunTrigger against the emulator: one AIDP task of a run, its triggers sharing one read of it.

The tasks of a workflow group are the AIDP tasks of one run: their triggers on one loop read the
run once per look that needs a newer reading, not once each. Plus: a replaced (repaired) task run is
not reported, a run that ended without the task is an error, the kwargs survive a restart.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_aidp.emulator import AIDPEmulator
from airflow_provider_aidp.hooks.aidp import AIDPHook, close_async_sessions
from airflow_provider_aidp.triggers.task_run import AIDPTaskRunTrigger, RunReader
from tests.integration.aidp_run_support import create_job, notebook_task, scrubbed

#: emulator seconds per real second (a 30 emulator-second task: 1.5 s)
SCALE = 20.0


@pytest.fixture(scope="module")
def shared_emu() -> Iterator[AIDPEmulator]:
    with AIDPEmulator(time_scale=SCALE) as server, pytest.MonkeyPatch.context() as mp:
        creds = server.generate_api_key()
        mp.setenv("AIRFLOW_CONN_AIDP_DEFAULT", server.connection_json(creds))
        yield server


@pytest.fixture
def emu(shared_emu: AIDPEmulator) -> Iterator[AIDPEmulator]:
    yield from scrubbed(shared_emu)


def start_chain(emu: AIDPEmulator, keys: tuple[str, ...], seconds: float = 30.0) -> str:
    """A run of a job whose tasks run one after the other, ``seconds`` (emulator) each."""
    name = f"trig_{uuid.uuid4().hex[:8]}"
    for key in keys:
        emu.script_task(job_name=name, task_key=key, duration=seconds)
    tasks = [notebook_task(k, depends=[keys[i - 1]] if i else None) for i, k in enumerate(keys)]
    return AIDPHook().create_job_run(create_job(emu, name, tasks)).key


def run_gets(emu: AIDPEmulator, run_key: str) -> int:
    return sum(1 for r in emu.requests if r.method == "GET" and r.path.endswith(f"/jobRuns/{run_key}"))


def follow(run_key: str, *task_keys: str, poll: float = 0.2, **kwargs: Any) -> list[dict[str, Any]]:
    async def all_of() -> list[dict[str, Any]]:
        triggers = [AIDPTaskRunTrigger(run_key, k, poll_interval=poll, **kwargs) for k in task_keys]
        try:
            return list(await asyncio.gather(*(t_run(t) for t in triggers)))
        finally:
            await close_async_sessions()

    async def t_run(trigger: AIDPTaskRunTrigger) -> dict[str, Any]:
        async for event in trigger.run():
            return dict(event.payload)
        raise AssertionError("trigger yielded nothing")

    return asyncio.run(all_of())


def test_each_trigger_ends_with_its_task_run_and_they_share_the_reads_of_the_run(emu: AIDPEmulator) -> None:
    keys = ("a", "b", "c")
    alone_key = start_chain(emu, keys)
    (alone,) = follow(alone_key, "c")  # one trigger following the last task: its own reads
    shared_key = start_chain(emu, keys)
    events = follow(shared_key, *keys)  # three triggers of one run on one loop
    run = AIDPHook().get_job_run(shared_key)
    for key, event in zip(keys, events, strict=True):
        assert (event["event"], event["status"], event["task_key"]) == ("terminal", "SUCCESS", key)
        assert event["run"]["key"] == run.task_to_task_run_map[key]  # type: ignore[index]
    assert alone["status"] == "SUCCESS"
    # three followers of one run cost about what one follower costs, not three times as much
    alone_gets, shared_gets = run_gets(emu, alone_key), run_gets(emu, shared_key)
    assert shared_gets <= 1.5 * alone_gets + 2, (shared_gets, alone_gets)


def test_a_reader_answers_from_a_reading_newer_than_the_callers_last(emu: AIDPEmulator) -> None:
    run_key = start_chain(emu, ("a",))

    async def scenario() -> tuple[int, int, int]:
        hook, reader = AIDPHook(), RunReader(run_key)
        try:
            start = time.time()
            first = await asyncio.gather(*(reader.read(hook, start - 1, None) for _ in range(5)))
            together = run_gets(emu, run_key)  # five at once: one read
            again = await reader.read(hook, start - 1, None)  # older than what the reader has: cached
            cached = run_gets(emu, run_key)
            await reader.read(hook, first[0].started, None)  # wants a newer one: read again
            assert again is first[0] and len({id(r) for r in first}) == 1
            return together, cached, run_gets(emu, run_key)
        finally:
            await close_async_sessions()

    assert asyncio.run(scenario()) == (1, 1, 2)


def test_a_repaired_task_run_is_followed_and_the_replaced_one_is_not_reported(emu: AIDPEmulator) -> None:
    name = f"trig_{uuid.uuid4().hex[:8]}"
    emu.script_task(job_name=name, task_key="a", outcome="FAILED", times=1)
    hook = AIDPHook()
    run_key = hook.create_job_run(create_job(emu, name, [notebook_task("a")])).key
    (failed,) = follow(run_key, "a")
    assert failed["status"] == "FAILED"
    old_key = failed["run"]["key"]
    hook.repair_job_run(run_key, [{"taskKey": "a"}])
    (repaired,) = follow(run_key, "a", skip_task_run_keys=[old_key], created_at=time.time())
    assert repaired["status"] == "SUCCESS" and repaired["run"]["key"] != old_key


def test_a_run_that_ended_without_the_task_is_an_error(emu: AIDPEmulator) -> None:
    (event,) = follow(start_chain(emu, ("a",), seconds=1.0), "not_a_task")
    assert event["event"] == "error" and "without a new run of task not_a_task" in event["message"]


def test_the_deadline_ends_the_wait_without_cancelling_the_run(emu: AIDPEmulator) -> None:
    run_key = start_chain(emu, ("a",), seconds=3600.0)
    (event,) = follow(run_key, "a", deadline=time.time() + 3.0)
    assert event["event"] == "timeout" and "AIDP task a of job run" in event["message"]
    assert AIDPHook().get_job_run(run_key).status == "RUNNING"
    assert not [r for r in emu.requests if r.path.endswith("/actions/cancel")]


def test_serialize_round_trip_has_only_json_primitives() -> None:
    trigger = AIDPTaskRunTrigger(
        "run-1", "load", skip_task_run_keys=["tr-0"], poll_interval=5, created_at=1.5
    )
    path, kwargs = trigger.serialize()
    assert path == "airflow_provider_aidp.triggers.task_run.AIDPTaskRunTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert AIDPTaskRunTrigger(**kwargs).serialize() == (path, kwargs)
