"""The run-event watcher (``AIDPJobRunEventTrigger`` in an ``AssetWatcher``) moves to the other triggerer.

The user-facing example ``example_aidp_event_driven.py`` on the production profile: the watcher
runs in one of two triggerers; AIDP's own schedule (the emulator's frozen clock, moved by the
test) finishes runs; the triggerer holding the watcher is SIGKILLed after it reported two runs,
and two more runs (one FAILED, one SUCCESS) end while no triggerer runs the watcher. The other
triggerer takes the watcher over once the dead one's heartbeat is older than
``triggerer_health_check_threshold``, resumes from the watermark in ``asset_state_store`` (read
back here from PostgreSQL, before and after), and reports the run it missed: no run lost, none
reported twice, one downstream DAG run per successful AIDP run.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import pytest

from ..asset_events import (
    ASSET_URI,
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
    reported_runs,
    succeeded,
    wait_baselined,
    wait_reported,
)
from ..conftest import TIME_SCALE, EmulatorProcess
from .conftest import Figures, TriggererKey
from .deployment import TRIGGERERS, ProductionDeployment
from .observe import is_listing, key_id

pytestmark = [pytest.mark.e2e, pytest.mark.production]


def stored_watermarks(d: ProductionDeployment) -> list[dict[str, Any]]:
    """The watched asset's rows of ``asset_state_store``, straight from PostgreSQL."""
    sql = (
        "SELECT json_build_object('key', s.key, 'value', s.value,"
        " 'updated', extract(epoch FROM s.updated_at))"
        " FROM asset_state_store s JOIN asset a ON a.id = s.asset_id"
        f" WHERE a.uri = '{ASSET_URI}'"
    )
    rows = [json.loads(line) for line in d.postgres.psql(sql).splitlines() if line.strip()]
    for row in rows:
        value = json.loads(row["value"])
        row["value"] = json.loads(value) if isinstance(value, str) else value
    return rows


def end_ms(payload: dict[str, Any]) -> int:
    return int(dt.datetime.fromisoformat(payload["end_time"].replace("Z", "+00:00")).timestamp() * 1000)


def covers(row: dict[str, Any], latest: dict[str, Any]) -> bool:
    """The stored watermark stands at ``latest`` run's end and lists it as handled."""
    mark = row["value"]
    return mark.get("end_ms") == end_ms(latest) and any(latest["run_key"] in k for k in mark.get("seen", {}))


def listings_of(emu: Any, job_key: str, since: int) -> list[dict[str, Any]]:
    return [
        r
        for r in emu.requests(method="GET", since=since)
        if is_listing(r) and r["query"].get("jobKey") == [job_key]
    ]


def test_the_watcher_moves_to_the_other_triggerer_and_misses_no_run_nor_repeats_one(
    production_deployment: ProductionDeployment,
    production_emulator: EmulatorProcess,
    triggerer_keys: dict[str, TriggererKey],
    figures: Figures,
) -> None:
    d, emu = production_deployment, production_emulator.client
    d.restore()  # two live triggerers (and both workers), whatever an earlier test left
    owner = {key.key_id: name for name, key in triggerer_keys.items()}
    d.wait_for_dag(SETUP_DAG)
    d.wait_for_dag(DOWNSTREAM_DAG)
    d.unpause(SETUP_DAG)
    assert d.wait_for_dag_run(SETUP_DAG, d.trigger(SETUP_DAG), timeout=120) == "success", d.log_tails()
    (job_key,) = [j["key"] for j in emu.jobs() if j["body"]["name"] == JOB_NAME]

    emu.set_time_scale(0)  # nothing fires or finishes unless the test moves the clock
    try:
        history = set(job_runs(emu, job_key, set()))
        seq = max((r["seq"] for r in emu.requests()), default=0)
        taken = baselines(d)
        d.unpause(DOWNSTREAM_DAG)  # the asset watcher starts, in one of the two triggerers
        first = d.wait_for(lambda: listings_of(emu, job_key, seq), 120, "the watcher's first listing")
        wait_baselined(d, taken)  # paced (an earlier test's triggerers): its listings take seconds
        holder = owner[key_id(first[0])]
        survivor = next(t for t in TRIGGERERS if t != holder)

        fire_schedule(emu)
        wait_reported(d, succeeded(emu, job_key, history), "the first successful run")
        fire_schedule(emu)
        wait_reported(d, succeeded(emu, job_key, history), "the second successful run")
        time.sleep(COMMITTED_AFTER_SECONDS)  # its watermark is saved
        before = stored_watermarks(d)
        latest_before = max(reported_runs(d), key=end_ms)

        killed_at = time.time()
        seq = max((r["seq"] for r in emu.requests()), default=0)
        d.processes[holder].kill()
        d.stop_component(holder)
        fire_schedule(emu, fail=True)  # both end while no triggerer runs the watcher
        fire_schedule(emu)
        taken_over = d.wait_for(
            lambda: [r for r in listings_of(emu, job_key, seq) if owner.get(key_id(r) or "") == survivor],
            120,
            f"{survivor} to take the watcher over",
        )
        failover_seconds = taken_over[0]["time"] - killed_at

        finished = job_runs(emu, job_key, history)
        ok = succeeded(emu, job_key, history)
        assert len(ok) == 3 and len(finished) == 4, finished
        wait_reported(d, ok, "the run that ended while no triggerer ran the watcher")
        time.sleep(3)  # a few more polls: room for a (wrong) duplicate to show up

        def all_consumed() -> list[list[str]] | None:
            got = read(lambda: downstream_run_keys(d))
            return got if got is not None and sum(len(keys) for keys in got) >= len(ok) else None

        per_dag_run = d.wait_for(all_consumed, 90, "the downstream DAG runs to consume every event")
    finally:
        emu.set_time_scale(TIME_SCALE)
        d.api("PATCH", f"dags/{DOWNSTREAM_DAG}", {"is_paused": True}, params={"update_mask": "is_paused"})

    events = reported_run_keys(d)
    assert sorted(events) == sorted(ok), (events, finished)  # each successful run once, no other
    assert sorted(k for keys in per_dag_run for k in keys) == sorted(ok)
    assert len(per_dag_run) == len(ok), per_dag_run  # one downstream DAG run per AIDP run
    # the watermark in PostgreSQL: written by the first triggerer, advanced by the survivor (it
    # saves commit_delay = 5 s after the events it covers)
    assert len(before) == 1 and covers(before[0], latest_before), (before, latest_before)
    latest_after = max(reported_runs(d), key=end_ms)
    after = d.wait_for(
        lambda: [row for row in stored_watermarks(d) if covers(row, latest_after)],
        COMMITTED_AFTER_SECONDS * 3,
        f"the watermark to cover the last run: {stored_watermarks(d)}",
    )
    assert len(stored_watermarks(d)) == 1 and after[0]["updated"] > killed_at, after
    missed = len(set(ok) - set(events))
    duplicated = len(events) - len(set(events))
    figures.add(
        f"run-event watcher failover: SIGKILL of {holder} after 2 reported runs, 2 more ended (1 FAILED) "
        f"while no triggerer ran it; {survivor} listed the job {failover_seconds:.1f} s after the kill; "
        f"events {len(events)} for {len(ok)} successful runs: missed {missed}, duplicated {duplicated}; "
        f"watermark in asset_state_store: end {after[0]['value']['end_ms']} ms, updated after the kill"
    )
