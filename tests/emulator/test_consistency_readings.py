"""The eventual-consistency readings: read_after_create_lag, listing_lag and unique_names (raw HTTP).

Lags count real (monotonic) seconds. Most tests swap the store's real clock for a hand-moved one
(``HandClock``), so they prove exact boundaries without sleeping; two poll the real clock.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_aidp.emulator import AIDPEmulator, EmulatorClient, Readings
from airflow_provider_aidp.emulator.__main__ import load_scenario, parse_args
from airflow_provider_aidp.emulator.readings import parse_assignments
from tests.emulator.conftest import Api, task

FOLDER = "/Workspace/Shared"
Request = Callable[[str], requests.Response]


class HandClock:
    """A stand-in for ``time.monotonic`` that only :meth:`wait` moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def wait(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def real(emu: AIDPEmulator) -> HandClock:
    clock = HandClock()
    emu.state.store.monotonic = clock
    return clock


def reads_as_missing(request: Request, key: str) -> None:
    """``request`` naming ``key`` gets exactly the answer it gets for a key that never existed."""
    ghost = f"ghost-{uuid.uuid4()}"
    got, missing = request(key), request(ghost)
    assert (got.status_code, missing.status_code) == (404, 404), got.text
    assert got.json() == json.loads(missing.text.replace(ghost, key))
    assert got.json()["code"] == "NotAuthorizedOrNotFound"


def job_requests(api: Api) -> dict[str, Request]:
    body = {"name": "etl.job", "path": FOLDER}
    return {
        "get": lambda k: api("GET", f"/jobs/{k}"),
        "put": lambda k: api("PUT", f"/jobs/{k}", json=body),
        "delete": lambda k: api("DELETE", f"/jobs/{k}"),
        "permissions": lambda k: api("GET", f"/jobs/{k}/permissions"),
        "cancelJobRuns": lambda k: api("POST", f"/jobs/{k}/actions/cancelJobRuns", json={}),
        "run it": lambda k: api("POST", "/jobRuns", json={"jobKey": k}),
    }


def run_requests(api: Api) -> dict[str, Request]:
    return {
        "get": lambda k: api("GET", f"/jobRuns/{k}"),
        "cancel": lambda k: api("POST", f"/jobRuns/{k}/actions/cancel", json={}),
        "repair": lambda k: api("POST", f"/jobRuns/{k}/actions/repair", json={}),
        "delete": lambda k: api("DELETE", f"/jobRuns/{k}"),
        "its task runs": lambda k: api("GET", "/taskRuns", params={"jobRunKey": k}),
    }


def task_run_requests(api: Api) -> dict[str, Request]:
    return {
        "get": lambda k: api("GET", f"/taskRuns/{k}"),
        "retries": lambda k: api("GET", f"/taskRuns/{k}/retries"),
        "fetchOutput": lambda k: api("POST", f"/taskRuns/{k}/actions/fetchOutput", json={}),
        "export": lambda k: api("POST", f"/taskRuns/{k}/outputs/o/actions/export", json={}),
    }


def listed_jobs(api: Api, **params: str) -> list[str]:
    return [j["key"] for j in api("GET", "/jobs", params=params).json()["items"]]


def listed_runs(api: Api, job_key: str, path: str = "/jobRuns") -> list[str]:
    return [r["key"] for r in api("GET", path, params={"jobKey": job_key}).json()["items"]]


# --- the defaults --------------------------------------------------------------------------------


def test_by_default_what_is_created_is_visible_at_once_and_names_may_repeat(
    emu: AIDPEmulator, api: Api
) -> None:
    assert (Readings().read_after_create_lag, Readings().listing_lag, Readings().unique_names) == (
        0.0,
        0.0,
        "none",
    )
    key = api.create_job(tasks=[task("a")])
    assert api("GET", f"/jobs/{key}").status_code == 200 and listed_jobs(api) == [key]
    run = api.run(key)
    assert api("GET", f"/jobRuns/{run['key']}").status_code == 200
    assert listed_runs(api, key) == [run["key"]] == listed_runs(api, key, "/recentJobRuns")
    assert api("GET", f"/taskRuns/{run['taskToTaskRunMap']['a']}").status_code == 200
    assert list(api.task_statuses(run["key"])) == ["a"]
    twin = api.create_job()  # the same name in the same folder
    assert twin != key and sorted(listed_jobs(api, displayName="etl.job")) == sorted([key, twin])


# --- read_after_create_lag -----------------------------------------------------------------------


def test_a_job_just_created_reads_as_missing_until_the_lag_has_passed_in_real_seconds(
    emu: AIDPEmulator, api: Api, real: HandClock
) -> None:
    emu.set_readings(read_after_create_lag=30)
    created = api("POST", "/jobs", json={"name": "etl.job", "path": FOLDER})
    assert created.status_code == 201 and created.headers["location"] == created.json()["key"]
    key = created.json()["key"]
    for name, request in job_requests(api).items():
        if name != "delete":
            reads_as_missing(request, key)
    assert listed_jobs(api) == [key]  # listings are the other reading's business
    emu.advance(3600)  # the emulator's scripted clock does not end the lag
    real.wait(29.9)
    reads_as_missing(job_requests(api)["get"], key)
    real.wait(0.1)
    assert api("GET", f"/jobs/{key}").json()["key"] == key
    assert api("DELETE", f"/jobs/{key}").status_code == 204


def test_a_run_and_its_task_runs_read_as_missing_while_the_service_runs_them(
    emu: AIDPEmulator, api: Api, real: HandClock
) -> None:
    job_key = api.create_job(tasks=[task("a"), task("b", depends=["a"])])
    real.wait(60)
    emu.set_readings(read_after_create_lag=30)
    run = api.run(job_key)  # the POST's own answer is whole: key and task-run keys
    tr_keys = list(run["taskToTaskRunMap"].values())
    assert len(tr_keys) == 2
    for request in run_requests(api).values():
        reads_as_missing(request, run["key"])
    for request in task_run_requests(api).values():
        reads_as_missing(request, tr_keys[0])
    emu.advance(60)  # meanwhile the service runs the tasks to the end
    (seen,) = [r for r in emu.runs() if r["key"] == run["key"]]
    assert seen["state"]["status"] == "SUCCESS"
    real.wait(30)
    assert api.get_run(run["key"])["state"]["status"] == "SUCCESS"
    assert api.task_statuses(run["key"]) == {"a": "SUCCESS", "b": "SUCCESS"}
    assert api("GET", f"/taskRuns/{tr_keys[0]}").json()["state"]["status"] == "SUCCESS"


def test_task_runs_a_repair_creates_lag_while_the_repaired_run_stays_readable(
    emu: AIDPEmulator, api: Api, real: HandClock
) -> None:
    emu.script_task(task_key="a", outcome="FAILED", times=1)
    run = api.run(api.create_job(tasks=[task("a")]))
    emu.advance(60)
    real.wait(60)
    emu.set_readings(read_after_create_lag=30)
    first = run["taskToTaskRunMap"]["a"]
    repaired = api("POST", f"/jobRuns/{run['key']}/actions/repair", json={"repairTasks": [{"taskKey": "a"}]})
    assert repaired.status_code == 200
    second = repaired.json()["taskToTaskRunMap"]["a"]
    assert second != first and api("GET", f"/taskRuns/{first}").status_code == 200
    reads_as_missing(task_run_requests(api)["get"], second)
    real.wait(30)
    emu.advance(60)
    assert api("GET", f"/taskRuns/{second}").json()["state"]["status"] == "SUCCESS"


def test_the_service_works_on_what_the_client_cannot_read_yet(
    emu: AIDPEmulator, api: Api, real: HandClock
) -> None:
    """Schedules fire, a JOB_TASK starts its job and cancelJobRuns cancels runs, all during the lag."""
    emu.clock.advance(1800 - emu.clock.now() % 1800 + 1)  # just past a :00/:30 boundary
    sched = {"quartzCronExpression": "0 0/30 * * * ?", "timezoneId": "UTC", "pauseStatus": "UNPAUSED"}
    scheduled = api.create_job("sched.job", [task("s")], schedule=sched)
    child = api.create_job("child.job", [task("inner")])
    nested = {
        "type": "JOB_TASK",
        "taskKey": "nested",
        "runIf": "ALL_SUCCESS",
        "jobKey": child,
        "dependsOn": [],
    }
    parent = api.create_job("parent.job", [nested])
    slow = api.create_job("slow.job", [task("s", path="/Workspace/Shared/slow.ipynb")])
    real.wait(60)
    parent_run, slow_run = api.run(parent), api.run(slow)
    emu.set_readings(read_after_create_lag=30)  # the four jobs older than that, both runs younger
    assert api("GET", f"/jobs/{scheduled}").status_code == 200  # the jobs are readable
    assert api("GET", f"/jobRuns/{slow_run['key']}").status_code == 404
    assert api("POST", f"/jobs/{slow}/actions/cancelJobRuns", json={}).status_code == 202
    emu.advance(3600 + 60)  # two fire times of the schedule; the nested run is long done
    runs = emu.runs()
    fired = [r for r in runs if r["jobKey"] == scheduled]
    assert len(fired) == 2 and {r["launched"] for r in fired} == {"SCHEDULED"}
    assert {r["state"]["status"] for r in fired} == {"SUCCESS"}
    assert [r["state"]["status"] for r in runs if r["jobKey"] == child] == ["SUCCESS"]
    by_key = {r["key"]: r for r in runs}
    assert by_key[parent_run["key"]]["state"]["status"] == "SUCCESS"
    assert by_key[slow_run["key"]]["state"]["status"] == "CANCELED"
    for r in fired:  # scheduled runs were created just now, in real time: the client waits for them
        reads_as_missing(run_requests(api)["get"], r["key"])


def test_a_retried_create_replays_its_answer_during_the_lag(
    emu: AIDPEmulator, api: Api, real: HandClock
) -> None:
    emu.set_readings(read_after_create_lag=30)
    body, token = {"name": "etl.job", "path": FOLDER}, {"opc-retry-token": "job-1"}
    first = api("POST", "/jobs", json=body, headers=token)
    again = api("POST", "/jobs", json=body, headers=token)
    assert (first.status_code, again.status_code) == (201, 201) and again.json() == first.json()
    real.wait(30)  # a job to run, then the same for a run
    job_key = first.json()["key"]
    run_token = {"opc-retry-token": "run-1"}
    run = api("POST", "/jobRuns", json={"jobKey": job_key}, headers=run_token)
    replay = api("POST", "/jobRuns", json={"jobKey": job_key}, headers=run_token)
    assert (run.status_code, replay.status_code) == (201, 201)
    assert replay.json()["key"] == run.json()["key"] and len(emu.runs()) == 1
    assert len(emu.jobs()) == 1
    reads_as_missing(run_requests(api)["get"], run.json()["key"])


def test_the_read_lag_counts_real_seconds_on_a_manual_clock(emu: AIDPEmulator, api: Api) -> None:
    emu.set_readings(read_after_create_lag=1.0)
    start = time.monotonic()
    key = api("POST", "/jobs", json={"name": "etl.job", "path": FOLDER}).json()["key"]
    emu.advance(3600)
    first_read = poll(lambda: api("GET", f"/jobs/{key}").status_code == 200)
    assert first_read - start >= 1.0


# --- listing_lag ---------------------------------------------------------------------------------


def test_listings_show_what_was_created_only_after_the_listing_lag(
    emu: AIDPEmulator, api: Api, real: HandClock
) -> None:
    job_key = api.create_job(tasks=[task("a")])
    real.wait(60)
    emu.set_readings(listing_lag=30)
    newer = api.create_job(name="newer.job")
    assert listed_jobs(api) == [job_key] and listed_jobs(api, displayName="newer.job") == []
    assert api("GET", f"/jobs/{newer}").status_code == 200  # read by key: at once
    run = api.run(job_key)
    assert listed_runs(api, job_key) == [] == listed_runs(api, job_key, "/recentJobRuns")
    assert api("GET", "/taskRuns", params={"jobRunKey": run["key"]}).json()["items"] == []
    emu.advance(60)  # the service runs it meanwhile
    assert api.get_run(run["key"])["state"]["status"] == "SUCCESS"
    real.wait(29.9)
    assert listed_runs(api, job_key) == []
    real.wait(0.1)
    assert sorted(listed_jobs(api)) == sorted([job_key, newer])
    assert listed_runs(api, job_key) == [run["key"]] == listed_runs(api, job_key, "/recentJobRuns")
    assert api.task_statuses(run["key"]) == {"a": "SUCCESS"}


def test_the_listing_lag_counts_real_seconds(emu: AIDPEmulator, api: Api) -> None:
    emu.set_readings(listing_lag=1.0)
    start = time.monotonic()
    key = api("POST", "/jobs", json={"name": "etl.job", "path": FOLDER}).json()["key"]
    emu.advance(3600)
    assert poll(lambda: listed_jobs(api) == [key]) - start >= 1.0


def poll(done: Callable[[], bool], deadline: float = 30.0) -> float:
    """The real time at which ``done()`` first holds (polled every 50 ms)."""
    end = time.monotonic() + deadline
    while not done():
        assert time.monotonic() < end, "still not visible"
        time.sleep(0.05)
    return time.monotonic()


# --- unique_names --------------------------------------------------------------------------------


def create(api: Api, name: str = "etl.job", path: str = FOLDER, **headers: str) -> requests.Response:
    return api("POST", "/jobs", json={"name": name, "path": path}, headers=headers)


@pytest.mark.parametrize(
    ("reading", "same_folder", "other_folder"),
    [("none", 201, 201), ("folder", 409, 201), ("workspace", 409, 409)],
)
def test_a_taken_name_is_refused_where_names_are_unique(
    emu: AIDPEmulator, api: Api, reading: str, same_folder: int, other_folder: int
) -> None:
    emu.set_readings(unique_names=reading)
    assert create(api).status_code == 201
    again, elsewhere = create(api), create(api, path="/Workspace/Other")
    assert (again.status_code, elsewhere.status_code) == (same_folder, other_folder)
    if reading != "none":
        assert again.json() == {
            "code": "Conflict",
            "message": f"A job named 'etl.job' already exists {where(reading)}; job names must be unique",
        }
    assert create(api, name="other.job").status_code == 201


def where(reading: str) -> str:
    return (
        "in folder '/Workspace/Shared'"
        if reading == "folder"
        else "in this workspace (in folder '/Workspace/Shared')"
    )


def test_names_are_unique_per_workspace_not_across_workspaces(
    emu: AIDPEmulator, api: Api, creds: Any
) -> None:
    emu.set_readings(unique_names="workspace")
    emu.host_workspace("ocid1.aidataplatform.oc1.iad.emulator", "other_ws")
    other = Api(emu, creds)
    other.base = emu.base_path(workspace_key="other_ws")
    assert create(api).status_code == 201 and create(other).status_code == 201


def test_a_retried_create_replays_its_job_instead_of_a_conflict(emu: AIDPEmulator, api: Api) -> None:
    emu.set_readings(unique_names="folder")
    first = create(api, **{"opc-retry-token": "tok-1"})
    replay = create(api, **{"opc-retry-token": "tok-1"})
    assert (first.status_code, replay.status_code) == (201, 201) and replay.json() == first.json()
    assert create(api, **{"opc-retry-token": "tok-2"}).status_code == 409
    assert [j["name"] for j in emu.jobs()] == ["etl.job"]


@pytest.mark.parametrize("reading", ["folder", "workspace"])
def test_a_rename_onto_a_taken_name_is_refused(emu: AIDPEmulator, api: Api, reading: str) -> None:
    emu.set_readings(unique_names=reading)
    taken = create(api).json()["key"]
    mine = create(api, name="mine.job").json()["key"]

    def put(key: str, name: str, path: str = FOLDER) -> int:
        return api("PUT", f"/jobs/{key}", json={"name": name, "path": path}).status_code

    assert put(mine, "etl.job") == 409
    assert put(taken, "etl.job", "/Workspace/Other") == 200  # a job never conflicts with itself
    assert put(mine, "etl.job", "/Workspace/Other") == 409  # now taken there
    assert put(mine, "mine.job") == 200 and put(mine, "mine.job", "/Workspace/Moved") == 200
    assert sorted((j["name"], j["path"]) for j in emu.jobs()) == [
        ("etl.job", "/Workspace/Other"),
        ("mine.job", "/Workspace/Moved"),
    ]


def test_a_name_taken_by_a_job_nobody_can_read_or_list_yet_is_still_taken(
    emu: AIDPEmulator, api: Api, real: HandClock
) -> None:
    emu.set_readings(unique_names="folder", read_after_create_lag=30, listing_lag=30)
    holder = create(api).json()["key"]
    assert listed_jobs(api, displayName="etl.job") == [] and api("GET", f"/jobs/{holder}").status_code == 404
    assert create(api).status_code == 409  # the write path is consistent; only reads lag
    real.wait(30)
    assert listed_jobs(api, displayName="etl.job") == [holder]


@pytest.mark.parametrize(("reading", "answer", "jobs"), [("none", 201, 2), ("folder", 409, 1)])
def test_another_writer_takes_the_name_just_before_a_create(
    emu: AIDPEmulator, api: Api, reading: str, answer: int, jobs: int
) -> None:
    emu.set_readings(unique_names=reading)
    assert listed_jobs(api, displayName="etl.job") == []  # the client looked: the name was free
    EmulatorClient(emu.url).inject_fault("name_taken", path="*/jobs", method="POST")
    resp = create(api)
    assert resp.status_code == answer
    assert [j["name"] for j in emu.jobs()] == ["etl.job"] * jobs
    listed = listed_jobs(api, displayName="etl.job")  # theirs is visible at once, and so is ours
    assert len(set(listed)) == jobs and (answer == 409 or resp.json()["key"] in listed)
    assert create(api, name="next.job").status_code == 201  # the fault fired once


def test_another_writer_takes_the_name_a_rename_wants(emu: AIDPEmulator, api: Api) -> None:
    emu.set_readings(unique_names="workspace")
    mine = create(api, name="mine.job").json()["key"]
    emu.inject_fault("name_taken", path="*/jobs/*", method="PUT")
    renamed = api("PUT", f"/jobs/{mine}", json={"name": "etl.job", "path": FOLDER})
    assert renamed.status_code == 409 and "'etl.job'" in renamed.json()["message"]
    assert sorted(j["name"] for j in emu.jobs()) == ["etl.job", "mine.job"]


# --- settings --------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [-1, "soon", True, float("inf"), float("nan"), None])
def test_a_lag_must_be_a_finite_number_of_seconds(bad: Any) -> None:
    for name in ("read_after_create_lag", "listing_lag"):
        with pytest.raises(ValueError, match=f"reading {name} must be a number of seconds >= 0"):
            Readings(**{name: bad})


def test_the_consistency_readings_are_set_by_constructor_cli_scenario_and_control_api(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unique_names must be one of \['none', 'folder', 'workspace'\]"):
        Readings(unique_names="global")
    args = parse_args(
        [
            "--reading",
            "read_after_create_lag=2.5",
            "--reading",
            "listing_lag=1",
            "--reading",
            "unique_names=folder",
        ]
    )
    assert Readings.from_dict(parse_assignments(args.reading)) == Readings(
        read_after_create_lag=2.5, listing_lag=1.0, unique_names="folder"
    )
    scenario = tmp_path / "s.json"
    scenario.write_text(json.dumps({"readings": {"listing_lag": "3", "unique_names": "workspace"}}))
    with AIDPEmulator(time_scale=0, readings={"read_after_create_lag": 4}) as emu:
        assert emu.readings.read_after_create_lag == 4.0
        load_scenario(emu, scenario)
        assert (emu.readings.listing_lag, emu.readings.unique_names) == (3.0, "workspace")
        assert emu.set_readings(unique_names="none").unique_names == "none"
        client = EmulatorClient(emu.url)
        assert client.readings(read_after_create_lag=0.5)["read_after_create_lag"] == 0.5
        with pytest.raises(RuntimeError, match="listing_lag must be a number of seconds"):
            client.readings(listing_lag=-2)
        assert client.readings(reset=True) == Readings().to_dict()
