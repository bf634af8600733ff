"""Job schedules fire on the emulator's clock: runs nobody started, each at its fire time."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from airflow_provider_aidp.emulator import AIDPEmulator
from airflow_provider_aidp.emulator.schedules import next_fire
from airflow_provider_aidp.models.cron import parse_quartz
from tests.emulator.conftest import Api, task

HALF_HOURLY = "0 0/30 * * * ?"


def schedule(cron: str = HALF_HOURLY, tz: str = "UTC", pause: str | None = "UNPAUSED") -> dict[str, Any]:
    body = {"quartzCronExpression": cron, "timezoneId": tz}
    return body if pause is None else {**body, "pauseStatus": pause}


def runs(api: Api, job_key: str) -> list[dict[str, Any]]:
    resp = api("GET", "/jobRuns", params={"jobKey": job_key, "limit": 1000})
    assert resp.status_code == 200, resp.text
    return list(resp.json()["items"])


def put_schedule(api: Api, job_key: str, sched: dict[str, Any]) -> None:
    body = {k: v for k, v in api("GET", f"/jobs/{job_key}").json().items() if k not in ("key",)}
    resp = api("PUT", f"/jobs/{job_key}", json={**body, "schedule": sched})
    assert resp.status_code == 200, resp.text


def to_half_hour(emu: AIDPEmulator) -> float:
    """Move the (manual) clock to just after a :00/:30 boundary, so fire counts are exact."""
    now = emu.clock.now()
    emu.clock.advance(1800 - now % 1800 + 1)
    return emu.clock.now()


def test_unpaused_schedule_starts_one_run_per_fire_time(emu: AIDPEmulator, api: Api) -> None:
    start = to_half_hour(emu)
    key = api.create_job("sched.job", [task("a")], schedule=schedule())
    assert runs(api, key) == []
    emu.clock.advance(2 * 3600 + 60)  # four :00/:30 boundaries, the last a minute ago
    listed = runs(api, key)
    assert len(listed) == 4
    assert {r["launched"] for r in listed} == {"SCHEDULED"}
    created = sorted(
        dt.datetime.fromisoformat(r["timeCreated"].replace("Z", "+00:00")).timestamp() for r in listed
    )
    assert created == pytest.approx([start - 1 + 1800 * i for i in (1, 2, 3, 4)], abs=0.01)
    assert {r["state"]["status"] for r in listed} == {"SUCCESS"}  # each ran long ago by now
    manual = api.run(key)
    assert manual["launched"] == "MANUAL"


def test_paused_schedule_fires_nothing_and_unpausing_does_not_backfill(emu: AIDPEmulator, api: Api) -> None:
    to_half_hour(emu)
    key = api.create_job("paused.job", [task("a")], schedule=schedule(pause="PAUSED"))
    emu.clock.advance(3 * 3600)
    assert runs(api, key) == []
    put_schedule(api, key, schedule(pause="UNPAUSED"))
    assert runs(api, key) == []
    emu.clock.advance(1800)
    assert len(runs(api, key)) == 1


def test_schedule_respects_max_concurrent_runs(emu: AIDPEmulator, api: Api) -> None:
    to_half_hour(emu)
    emu.script_task(task_key="slow", duration=45 * 60)  # longer than the interval
    key = api.create_job("busy.job", [task("slow")], schedule=schedule())
    emu.clock.advance(3600)
    statuses = [r["state"]["status"] for r in sorted(runs(api, key), key=lambda r: r["timeCreated"])]
    assert statuses == ["RUNNING", "SKIPPED"]


def test_deleted_job_stops_firing_and_a_run_by_api_is_manual(emu: AIDPEmulator, api: Api) -> None:
    to_half_hour(emu)
    key = api.create_job("gone.job", [task("a")], schedule=schedule())
    emu.clock.advance(1800)
    assert len(runs(api, key)) == 1
    assert api("DELETE", f"/jobs/{key}").status_code == 204
    emu.clock.advance(3 * 3600)
    resp = api("GET", "/jobRuns", params={"limit": 1000})
    assert [r["jobKey"] for r in resp.json()["items"]] == [key]


def test_next_fire_follows_the_time_zone() -> None:
    cron = parse_quartz("0 0 2 * * ?")  # 02:00 every day, New York time
    zone = ZoneInfo("America/New_York")
    after = dt.datetime(2026, 1, 10, 12, 0, tzinfo=dt.timezone.utc).timestamp()
    fire = next_fire(cron, zone, after)
    assert fire is not None
    assert dt.datetime.fromtimestamp(fire, dt.timezone.utc) == dt.datetime(
        2026, 1, 11, 7, 0, tzinfo=dt.timezone.utc
    )
    assert next_fire(parse_quartz("0 0 2 * * ? 2020"), zone, after) is None
