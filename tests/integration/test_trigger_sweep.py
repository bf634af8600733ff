"""The triggerer-wide status sweep against the emulator: many AIDPJobRunTriggers on one event loop.

Request counts come from the emulator's recorded requests; every terminal event must come from the
run's own GET (a listing summary has no ``taskToTaskRunMap``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_aidp.emulator import AIDPEmulator, Readings
from airflow_provider_aidp.emulator.recorder import RecordedRequest
from airflow_provider_aidp.hooks.aidp import AIDPHook
from airflow_provider_aidp.triggers import sweep
from airflow_provider_aidp.triggers.aidp import AIDPJobRunTrigger
from tests.integration.aidp_run_support import TIME_SCALE, create_job, notebook_task, scrubbed

POLL = 0.5  # seconds; the sweep cycles every 0.5 s (MIN_CYCLE_SECONDS)


@pytest.fixture(scope="module")
def shared_emu() -> Iterator[AIDPEmulator]:
    with AIDPEmulator(time_scale=TIME_SCALE) as server, pytest.MonkeyPatch.context() as mp:
        creds = server.generate_api_key()
        conn = json.loads(server.connection_json(creds))
        conn["extra"]["retry_wait_max"] = 2
        mp.setenv("AIRFLOW_CONN_AIDP_DEFAULT", json.dumps(conn))
        off = {**conn, "extra": {**conn["extra"], "status_sweep": "off"}}
        mp.setenv("AIRFLOW_CONN_AIDP_NOSWEEP", json.dumps(off))
        yield server


@pytest.fixture
def emu(shared_emu: AIDPEmulator) -> Iterator[AIDPEmulator]:
    yield from scrubbed(shared_emu)
    shared_emu.set_rate_limit(0)
    shared_emu.state.readings = Readings()


def start_runs(emu: AIDPEmulator, n: int, jobs: int, name: str, duration: float = 120.0) -> list[str]:
    """``n`` runs spread over ``jobs`` jobs, each task lasting ``duration`` emulator seconds."""
    emu.script_task(job_name=None, task_key=f"{name}_work", duration=duration)
    keys = [
        create_job(emu, f"{name}.{j}", [notebook_task(f"{name}_work")], max_concurrent_runs=n)
        for j in range(jobs)
    ]
    hook = AIDPHook()
    return [hook.create_job_run(keys[i % jobs]).key for i in range(n)]


async def follow(run_keys: list[str], conn_id: str = "aidp_default") -> list[dict[str, Any]]:
    async def one(run_key: str) -> dict[str, Any]:
        async for event in AIDPJobRunTrigger(run_key, aidp_conn_id=conn_id, poll_interval=POLL).run():
            return dict(event.payload)
        raise AssertionError("trigger yielded nothing")

    return await asyncio.gather(*(one(k) for k in run_keys))


def since(emu: AIDPEmulator, mark: int) -> list[RecordedRequest]:
    return [r for r in emu.requests if r.seq > mark]


def mark(emu: AIDPEmulator) -> int:
    return max((r.seq for r in emu.requests), default=0)


def listings(requests: list[RecordedRequest]) -> list[RecordedRequest]:
    return [r for r in requests if r.method == "GET" and r.path.endswith("/jobRuns")]


def run_gets(requests: list[RecordedRequest], run_key: str) -> list[RecordedRequest]:
    return [r for r in requests if r.method == "GET" and r.path.endswith(f"/jobRuns/{run_key}")]


def assert_all_succeeded_from_their_own_get(events: list[dict[str, Any]], run_keys: list[str]) -> None:
    assert [e["event"] for e in events] == ["terminal"] * len(run_keys), events
    assert [e["status"] for e in events] == ["SUCCESS"] * len(run_keys)
    assert [e["run"]["key"] for e in events] == run_keys
    assert all("taskToTaskRunMap" in e["run"] for e in events)  # a GET's JobRun, not a summary


async def test_many_triggers_share_one_listing_per_cycle(emu: AIDPEmulator) -> None:
    runs = start_runs(emu, 24, 3, "sweep_many", duration=150)  # ~3 s real
    start = mark(emu)
    events = await follow(runs)
    assert_all_succeeded_from_their_own_get(events, runs)
    seen = since(emu, start)
    lists = listings(seen)
    assert lists, "no status sweep happened"
    for request in lists:  # repeated status filters, the largest page size
        assert set(request.query["status"]) == {"PENDING", "QUEUED", "RUNNING", "BLOCKED"}
        assert request.query["limit"] == ["1000"]
    # new triggers are found by a workspace listing; then the jobs are listed by key
    assert "jobKey" not in lists[0].query
    assert any(len(r.query.get("jobKey", [])) == 3 for r in lists)
    # Per run: the terminal GET; a listing that lags can owe one more. Per-run polling at this
    # interval makes about 7 GETs per run over 3 s.
    gets = [len(run_gets(seen, k)) for k in runs]
    assert max(gets) <= 2 and min(gets) >= 1, gets
    assert len(lists) < 3 * 4 / POLL  # at most one listing per cycle (one page each here)


async def test_a_trigger_the_sweep_answers_sleeps_until_woken(
    emu: AIDPEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unchanged run costs its trigger no wake-up: it looks when a cycle brings news (its run
    started, changed, ended) or its own GET is due, not every poll interval."""
    asks: dict[int, int] = {}
    real_ask = sweep.Board.ask

    def counting(board: sweep.Board, wid: int, now: float, *, waited: bool = False) -> Any:
        asks[wid] = asks.get(wid, 0) + 1
        return real_ask(board, wid, now, waited=waited)

    monkeypatch.setattr(sweep.Board, "ask", counting)
    runs = start_runs(emu, 12, 2, "sweep_parked", duration=250)  # ~5 s real: ~10 poll intervals
    events = await follow(runs)
    assert_all_succeeded_from_their_own_get(events, runs)
    # Polling the board every interval would be ~10 looks a trigger; waking on news takes a few
    # (the first look, PENDING -> RUNNING, the end, a cycle that came late).
    assert len(asks) == len(runs) and max(asks.values()) <= 6, asks


async def test_a_stalled_listing_sends_the_triggers_to_their_own_gets(emu: AIDPEmulator) -> None:
    """A cycle that takes longer than STALL_POLLS intervals counts as failed for its triggers: they
    read their runs themselves meanwhile (here the stalled listing outlasts the runs)."""
    runs = start_runs(emu, 6, 2, "sweep_stall", duration=400)  # ~8 s real
    emu.inject_fault("delay", path="*/jobRuns", method="GET", after=2, times=1, delay=30.0)
    start = mark(emu)
    events = await follow(runs)
    assert_all_succeeded_from_their_own_get(events, runs)
    seen = since(emu, start)
    assert len(listings(seen)) == 2  # the third is still waiting on the fault
    assert min(len(run_gets(seen, k)) for k in runs) >= 3  # polled on their own meanwhile


async def test_a_run_gone_from_the_listing_is_confirmed_by_its_own_get(emu: AIDPEmulator) -> None:
    short = start_runs(emu, 3, 1, "sweep_short", duration=50)
    long = start_runs(emu, 3, 1, "sweep_long", duration=250)
    start = mark(emu)
    events = await follow(short + long)
    assert_all_succeeded_from_their_own_get(events, short + long)
    seen = since(emu, start)
    for run_key in short:
        last_listed = max(r.seq for r in listings(seen))
        # the short runs' terminal GET came while the long runs were still listed
        assert run_gets(seen, run_key)[-1].seq < last_listed


async def test_a_failing_sweep_falls_back_to_per_run_polling(emu: AIDPEmulator) -> None:
    runs = start_runs(emu, 6, 2, "sweep_fail", duration=200)
    emu.inject_fault("status", path="*/jobRuns", method="GET", times=None, status=503)
    start = mark(emu)
    events = await follow(runs)
    assert_all_succeeded_from_their_own_get(events, runs)
    seen = since(emu, start)
    assert listings(seen) and all(r.status == 503 for r in listings(seen))
    assert min(len(run_gets(seen, k)) for k in runs) >= 4  # polled on their own, every cycle


@pytest.mark.parametrize(
    "readings",
    [
        {"run_list_filters": "ignored", "unknown_statuses": True},
        {"run_list_filters": "status_ignored", "page_size": "max100_clamp"},
        {"run_list_filters": "job_key_ignored", "page_size": "max100_reject"},
        {"run_list_filters": "job_key_required"},
        {"run_list_filters": "first_values_only"},
        {"queued_filter": "refused"},
    ],
    ids=[
        "filters-ignored+unknown-statuses",
        "status-ignored+clamped-pages",
        "job-key-ignored+limit-refused",
        "job-key-required",
        "first-values-only",
        "queued-refused",
    ],
)
async def test_readings_that_bend_the_listing_give_exact_events(
    emu: AIDPEmulator, readings: dict[str, Any]
) -> None:
    start_runs(emu, 4, 1, "sweep_noise", duration=1)  # finished runs the bent listings show
    emu.set_readings(readings)
    runs = start_runs(emu, 8, 2, "sweep_bent", duration=100)
    start = mark(emu)
    events = await follow(runs)
    assert_all_succeeded_from_their_own_get(events, runs)
    seen = since(emu, start)
    assert max(len(run_gets(seen, k)) for k in runs) <= 3
    if readings.get("run_list_filters") == "first_values_only":  # learned: one value of each a listing
        learned = [i for i, r in enumerate(listings(seen)) if len(r.query["status"]) == 1]
        assert learned, listings(seen)
        later = [r for r in listings(seen)[learned[0] :] if "limit" in r.query and r.query["limit"] != ["1"]]
        assert later and all(len(r.query.get("jobKey", [])) <= 1 for r in later), later
        assert all(len(r.query["status"]) == 1 for r in later), later
    listed = [r for r in listings(seen) if r.status == 200]
    if readings.get("queued_filter") == "refused":  # the refusal names QUEUED: only QUEUED is dropped
        assert listings(seen)[0].status == 400 and listed, listings(seen)
        assert all("QUEUED" not in r.query["status"] and r.query["limit"] == ["1000"] for r in listed)
    if readings.get("page_size") == "max100_reject":  # the sweeper fell back to the page size served
        assert {r.query["limit"][0] for r in listings(seen) if r.status == 200} == {"100"}
    if readings.get("run_list_filters") == "job_key_required":  # refused workspace-wide, then by job
        assert any(r.status == 400 and "jobKey" not in r.query for r in listings(seen))
        assert any(r.status == 200 and "jobKey" in r.query for r in listings(seen))
        assert all(r.query["limit"] == ["1000"] and "QUEUED" in r.query["status"] for r in listed)


async def test_a_refusal_that_names_nothing_steps_down_page_size_then_queued(emu: AIDPEmulator) -> None:
    """A 400 whose message names neither ``limit`` nor ``QUEUED``: the first costs the page size,
    the second ``QUEUED``; the events stay exact."""
    runs = start_runs(emu, 6, 2, "sweep_refused", duration=100)
    emu.inject_fault("status", path="*/jobRuns", method="GET", times=2, status=400, body="Bad request")
    start = mark(emu)
    events = await follow(runs)
    assert_all_succeeded_from_their_own_get(events, runs)
    seen = listings(since(emu, start))
    assert [r.status for r in seen[:2]] == [400, 400] and seen[0].query["limit"] == ["1000"], seen
    assert seen[1].query["limit"] == ["100"] and "QUEUED" in seen[1].query["status"]
    assert all(r.query["limit"] == ["100"] and "QUEUED" not in r.query["status"] for r in seen[2:])


async def test_rate_limited_tenancy_fails_no_trigger(emu: AIDPEmulator) -> None:
    runs = start_runs(emu, 12, 2, "sweep_limited", duration=100)
    emu.set_rate_limit(3)
    start = mark(emu)
    events = await follow(runs)
    assert_all_succeeded_from_their_own_get(events, runs)
    assert any(r.status == 429 for r in since(emu, start)), "the limit never bit: the test proves nothing"


async def test_status_sweep_off_polls_each_run(emu: AIDPEmulator) -> None:
    runs = start_runs(emu, 4, 1, "sweep_off", duration=200)
    start = mark(emu)
    events = await follow(runs, conn_id="aidp_nosweep")
    assert_all_succeeded_from_their_own_get(events, runs)
    seen = since(emu, start)
    assert not listings(seen)
    assert min(len(run_gets(seen, k)) for k in runs) >= 4


async def test_a_trigger_alone_polls_as_before(emu: AIDPEmulator) -> None:
    runs = start_runs(emu, 1, 1, "sweep_alone", duration=200)
    start = mark(emu)
    events = await follow(runs)
    assert_all_succeeded_from_their_own_get(events, runs)
    seen = since(emu, start)
    assert not listings(seen) and len(run_gets(seen, runs[0])) >= 4


async def test_a_deadline_ends_the_wait_for_a_cycle(emu: AIDPEmulator) -> None:
    """With the sweep on, a timeout still fires at the trigger's deadline, not a poll interval later."""
    runs = start_runs(emu, 4, 1, "sweep_deadline", duration=100_000)  # never ends in this test
    poll = 60.0  # a poll interval far beyond the deadline: an overshoot would show

    async def one(run_key: str) -> tuple[dict[str, Any], float]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        trigger = AIDPJobRunTrigger(run_key, poll_interval=poll, deadline=time.time() + 3.0)
        async for event in trigger.run():
            return dict(event.payload), loop.time() - started
        raise AssertionError("trigger yielded nothing")

    results = await asyncio.gather(*(one(k) for k in runs))
    assert [e["event"] for e, _ in results] == ["timeout"] * len(runs), results
    assert max(took for _, took in results) < poll / 2, results
