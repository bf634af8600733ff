"""AIDPJobRunEventTrigger against the emulator: runs nobody in Airflow started, restarts, request cost."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_aidp.emulator import AIDPEmulator
from airflow_provider_aidp.exceptions import AIDPConfigError
from airflow_provider_aidp.hooks.aidp import AIDPHook
from airflow_provider_aidp.triggers.run_events import AIDPJobRunEventTrigger
from tests.integration.aidp_run_support import TIME_SCALE, create_job, notebook_task
from tests.integration.run_events_support import FAST, FakeAssetState, Watcher, committed, settle


@pytest.fixture(scope="module")
def emu() -> Iterator[AIDPEmulator]:
    with AIDPEmulator(time_scale=TIME_SCALE) as server, pytest.MonkeyPatch.context() as mp:
        creds = server.generate_api_key()
        mp.setenv("AIRFLOW_CONN_AIDP_DEFAULT", server.connection_json(creds))
        yield server


def job(emu: AIDPEmulator, name: str, outcome: str = "SUCCESS") -> str:
    if outcome != "SUCCESS":
        emu.script_task(task_key=f"{name}_t", job_name=name, outcome=outcome)
    return create_job(emu, name, [notebook_task(f"{name}_t")], max_concurrent_runs=5)


def start(job_key: str, **params: str) -> str:
    return AIDPHook().create_job_run(job_key, params or None).key


async def test_reports_each_run_started_outside_airflow_once_with_what_downstream_needs(
    emu: AIDPEmulator,
) -> None:
    key = job(emu, "events.basic")
    old = start(key)
    await asyncio.sleep(0.3)  # history: finished before the watcher starts, never reported
    state = FakeAssetState()
    watcher = Watcher(AIDPJobRunEventTrigger(job_names=["events.basic"], **FAST), state)
    await settle(state, 1)
    new = start(key, region="emea")
    event = await watcher.next()
    assert event["run_key"] == new != old
    assert event["job_key"] == key and event["job_name"] == "events.basic"
    assert event["status"] == "SUCCESS" and event["launched"] == "MANUAL"
    assert event["parameters"] == {"region": "emea"}
    assert event["console_url"].endswith(f"/_emulator/console/jobs/{key}/runs/{new}")
    assert event["end_time"] >= event["start_time"]
    assert await watcher.quiet() == []
    await watcher.stop()


async def test_only_chosen_statuses_and_one_bounded_listing_per_poll(emu: AIDPEmulator) -> None:
    good, bad = job(emu, "events.good"), job(emu, "events.bad", outcome="FAILED")
    state = FakeAssetState()
    trigger = AIDPJobRunEventTrigger(job_keys=[good, bad], statuses=["FAILED"], **FAST)
    watcher = Watcher(trigger, state)
    await settle(state, 1)
    emu.state.recorder.clear()
    runs = [start(good), start(bad), start(good)]
    event = await watcher.next()
    assert (event["run_key"], event["status"]) == (runs[1], "FAILED")
    assert await watcher.quiet() == []
    await watcher.stop()
    lists = [r for r in emu.requests if r.method == "GET" and r.path.endswith("/jobRuns")]
    gets = [r for r in emu.requests if r.method == "GET" and "/jobRuns/" in r.path]
    # One request a poll for both jobs: runs created since the bound, newest first, any status
    # (statuses are matched here); no run predates the bound, so no listing of active runs.
    assert lists and all(sorted(r.query["jobKey"]) == sorted([good, bad]) for r in lists)
    assert all("timeCreatedGreaterThanOrEqualTo" in r.query and "status" not in r.query for r in lists)
    assert all(r.query["sortBy"] == ["timeCreated"] and r.query["sortOrder"] == ["DESC"] for r in lists)
    assert [g.path.rsplit("/", 1)[1] for g in gets] == [runs[1]]  # parameters of the reported run only


def created_ms(emu: AIDPEmulator, run_key: str) -> int:
    return int(emu.state.store.runs[run_key].created * 1000)


def bounds(requests: list[Any]) -> list[int]:
    """The ``timeCreatedGreaterThanOrEqualTo`` of each bounded listing, as epoch ms."""
    out = []
    for r in requests:
        if r.method == "GET" and r.path.endswith("/jobRuns") and "timeCreatedGreaterThanOrEqualTo" in r.query:
            when = r.query["timeCreatedGreaterThanOrEqualTo"][0].replace("Z", "+00:00")
            out.append(int(dt.datetime.fromisoformat(when).timestamp() * 1000))
    return out


@pytest.mark.parametrize(
    "readings",
    [{}, {"time_filter": "ignored"}, {"run_sort": "ignored", "time_filter": "ignored"}],
    ids=["default", "time-filter-ignored", "sort-and-time-filter-ignored"],
)
async def test_a_run_created_before_the_bound_that_ends_after_it_is_reported_once(
    emu: AIDPEmulator, readings: dict[str, str]
) -> None:
    """The listing is bounded by creation time, but a long run created before the bound is
    followed until it ends, and reported once, however the service treats the window."""
    emu.set_readings(**readings)
    try:
        long_key, short_key = job(emu, "events.long"), job(emu, "events.short")
        emu.script_task(job_name="events.long", task_key="events.long_t", duration=100_000)
        emu.state.recorder.clear()
        long_run = start(long_key)
        history = [start(short_key) for _ in range(3)]  # created after it: the bound passes it
        await asyncio.sleep(0.3)
        state = FakeAssetState()
        trigger = AIDPJobRunEventTrigger(job_keys=[long_key, short_key], lookback_seconds=0, **FAST)
        watcher = Watcher(trigger, state)
        await settle(state, 1)  # baselined: the history is not reported, the long run is followed
        assert next(iter(state.values.values()))["open"] == {long_run: created_ms(emu, long_run)}
        short = start(short_key)
        assert (await watcher.next())["run_key"] == short
        emu.advance(100_000)  # the long run ends
        event = await watcher.next()
        assert (event["run_key"], event["status"]) == (long_run, "SUCCESS")
        assert await watcher.quiet() == []
        await watcher.stop()
        assert created_ms(emu, long_run) < min(bounds(emu.requests)), "the long run was inside the bound"
        assert history and not set(history) & {short, long_run}
    finally:
        emu.set_readings(**{name: "applied" for name in readings})


async def test_a_long_run_that_ends_while_no_triggerer_runs_is_reported_after_the_restart(
    emu: AIDPEmulator,
) -> None:
    long_key, short_key = job(emu, "events.long_down"), job(emu, "events.short_down")
    emu.script_task(job_name="events.long_down", task_key="events.long_down_t", duration=100_000)
    long_run = start(long_key)
    start(short_key)  # created after it: the bound passes it
    await asyncio.sleep(0.3)  # ... and finished before the watcher starts (history)
    state = FakeAssetState()
    trigger = {"job_keys": [long_key, short_key], "lookback_seconds": 0, **FAST}
    first = Watcher(AIDPJobRunEventTrigger(**trigger), state)
    await settle(state, 1)
    short = start(short_key)
    assert (await first.next())["run_key"] == short
    end = emu.state.store.runs[short].end
    await committed(state, short, None if end is None else int(end * 1000))
    await first.stop()
    emu.advance(100_000)  # ends while down, created before the saved bound
    second = Watcher(AIDPJobRunEventTrigger(**trigger), state)
    assert (await second.next())["run_key"] == long_run
    assert await second.quiet() == []
    await second.stop()


@pytest.mark.parametrize(
    "readings",
    [{}, {"time_filter": "ignored"}, {"run_sort": "ignored"}],
    ids=["default", "time-filter-ignored", "sort-ignored"],
)
async def test_a_poll_reads_one_page_however_long_the_history(
    emu: AIDPEmulator, readings: dict[str, str]
) -> None:
    """1,000 runs of history per job: every poll is one request of one page (where the service
    ignores the time filter, the newest-first page already reaches the bound)."""
    keys = [job(emu, "events.history_a"), job(emu, "events.history_b")]
    for key in keys:
        emu.seed_history(key, 1000, every=600.0)
    emu.set_readings(**readings)
    try:
        state = FakeAssetState()
        watcher = Watcher(AIDPJobRunEventTrigger(job_keys=keys, **FAST), state)
        await settle(state, 1)
        emu.state.recorder.clear()
        runs = [start(keys[0]), start(keys[1])]
        got = sorted([(await watcher.next())["run_key"], (await watcher.next())["run_key"]])
        assert got == sorted(runs) and await watcher.quiet() == []

        def listings() -> list[Any]:
            return [r for r in emu.requests if r.method == "GET" and r.path.endswith("/jobRuns")]

        for _ in range(200):  # at least 5 polls seen, however slowly a loaded machine runs them
            if len(listings()) >= 5:
                break
            await asyncio.sleep(0.1)
        await watcher.stop()
        lists = listings()
        assert len(lists) >= 5 and all("page" not in r.query for r in lists), [r.query for r in lists]
    finally:
        emu.set_readings(**{name: "applied" for name in readings})


async def test_restart_reports_runs_that_ended_while_down_and_nothing_twice(emu: AIDPEmulator) -> None:
    key = job(emu, "events.restart")
    state = FakeAssetState()
    first = Watcher(AIDPJobRunEventTrigger(job_keys=[key], **FAST), state)
    await settle(state, 1)
    before = start(key)
    assert (await first.next())["run_key"] == before
    await committed(state, before)
    await first.stop()
    down = [start(key), start(key)]
    await asyncio.sleep(0.4)  # both end while no trigger runs
    second = Watcher(AIDPJobRunEventTrigger(job_keys=[key], **FAST), state)
    got = [(await second.next())["run_key"], (await second.next())["run_key"]]
    assert sorted(got) == sorted(down)
    assert await second.quiet() == []
    await second.stop()


async def test_a_failed_read_while_reporting_neither_loses_nor_repeats_the_run(emu: AIDPEmulator) -> None:
    key = job(emu, "events.flaky")
    state = FakeAssetState()
    watcher = Watcher(AIDPJobRunEventTrigger(job_keys=[key], **FAST), state)
    await settle(state, 1)
    emu.inject_fault("status", path="*/jobRuns/*", method="GET", status=400, times=1)
    run = start(key)
    assert (await watcher.next())["run_key"] == run  # reported on the poll after the failed read
    assert await watcher.quiet() == []
    await watcher.stop()
    assert emu.state.faults.all()[0].fired == 1


async def test_restart_inside_the_commit_delay_reports_the_last_event_again(emu: AIDPEmulator) -> None:
    """The documented at-least-once window: stopped before its watermark was saved."""
    key = job(emu, "events.window")
    state = FakeAssetState()
    slow = {"poll_interval": 0.1, "commit_delay": 30.0}
    first = Watcher(AIDPJobRunEventTrigger(job_keys=[key], **slow), state)
    await settle(state, 1)
    run = start(key)
    assert (await first.next())["run_key"] == run
    await first.stop()
    assert not any(k.startswith(f"{run}@") for k in next(iter(state.values.values()))["seen"])  # not saved
    second = Watcher(AIDPJobRunEventTrigger(job_keys=[key], **slow), state)
    assert (await second.next())["run_key"] == run
    await second.stop()


async def test_without_a_state_store_a_restart_rebaselines(emu: AIDPEmulator) -> None:
    """Airflow < 3.3 (no asset state store): runs that ended while down are not reported."""
    key = job(emu, "events.memory")
    first = Watcher(AIDPJobRunEventTrigger(job_keys=[key], **FAST), None)
    await asyncio.sleep(0.3)
    await first.stop()
    start(key)
    await asyncio.sleep(0.3)
    second = Watcher(AIDPJobRunEventTrigger(job_keys=[key], **FAST), None)
    assert await second.quiet(0.8) == []
    live = start(key)
    assert (await second.next())["run_key"] == live
    await second.stop()


def test_kwargs_are_stable_json_and_bad_input_names_the_field() -> None:
    trigger = AIDPJobRunEventTrigger(job_names=["a"], folder="/Workspace/x", statuses=["FAILED", "SUCCESS"])
    path, kwargs = trigger.serialize()
    assert path == "airflow_provider_aidp.triggers.run_events.AIDPJobRunEventTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs
    again = AIDPJobRunEventTrigger(**kwargs)
    assert again.serialize() == (path, kwargs) and again.state_key == trigger.state_key
    for bad, field in (
        ({}, "job_keys"),
        ({"job_keys": ["k"], "statuses": ["RUNNING"]}, "statuses"),
        ({"job_keys": [""]}, "job_keys"),
        ({"job_keys": ["k"], "poll_interval": -1}, "poll_interval"),
    ):
        with pytest.raises(AIDPConfigError) as err:
            AIDPJobRunEventTrigger(**bad)
        assert err.value.field == field
