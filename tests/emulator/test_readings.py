"""Each reading the emulator can play changes the answers the documented way (raw signed HTTP)."""

from __future__ import annotations

import base64
import bz2
import gzip
import json
from pathlib import Path

import pytest

from airflow_provider_aidp.emulator import AIDPEmulator, EmulatorClient, Readings
from airflow_provider_aidp.emulator.__main__ import load_scenario, parse_args
from airflow_provider_aidp.emulator.readings import parse_assignments
from tests.emulator.conftest import Api, task

FAILING = dict(
    outcome="FAILED",
    state_message="boom",
    error_trace="Traceback (most recent call last):\n  File 'cell 2'\nKeyError: 'customer_id'",
    output="rows: 3",
)


def finished_run(emu: AIDPEmulator, api: Api, *tasks: dict) -> dict:
    run = api.run(api.create_job(tasks=list(tasks) or [task("a")]))
    emu.advance(60)
    return api.get_run(run["key"])


def fetch(api: Api, tr_key: str) -> dict:
    tr = api("GET", f"/taskRuns/{tr_key}").json()
    return dict(
        api("POST", f"/taskRuns/{tr_key}/actions/fetchOutput", json={"outputKey": tr["outputKey"]}).json()
    )


@pytest.mark.parametrize(
    ("reading", "query", "found"),
    [
        ("folder", "/Workspace/Shared", True),
        ("folder", "/Workspace/Shared/etl.job", False),
        ("folder_and_name", "/Workspace/Shared", False),
        ("folder_and_name", "/Workspace/Shared/etl.job", True),
        ("ignored", "/Elsewhere", True),
    ],
)
def test_path_filter_readings(emu: AIDPEmulator, api: Api, reading: str, query: str, found: bool) -> None:
    api.create_job()
    emu.set_readings(path_filter=reading)
    items = api("GET", "/jobs", params={"path": query}).json()["items"]
    assert bool(items) is found


@pytest.mark.parametrize(
    ("reading", "found"),
    [
        ("exact", {"etl.job"}),
        ("contains", {"etl.job", "etl.job_backfill"}),
        ("case_insensitive", {"etl.job", "ETL.JOB"}),
        ("ignored", {"etl.job", "etl.job_backfill", "ETL.JOB", "other"}),
    ],
)
def test_name_filter_readings(emu: AIDPEmulator, api: Api, reading: str, found: set[str]) -> None:
    for name in ("etl.job", "etl.job_backfill", "ETL.JOB", "other"):
        api.create_job(name=name)
    emu.set_readings(name_filter=reading)
    items = api("GET", "/jobs", params={"displayName": "etl.job"}).json()["items"]
    assert {item["name"] for item in items} == found


def test_a_key_and_name_job_listing_leaves_the_path_to_the_job_get(emu: AIDPEmulator, api: Api) -> None:
    key = api.create_job(name="etl.job")
    emu.set_readings(job_list_fields="key_and_name")
    (item,) = api("GET", "/jobs", params={"displayName": "etl.job"}).json()["items"]
    assert item == {"key": key, "name": "etl.job"}
    assert api("GET", f"/jobs/{key}").json()["path"] == "/Workspace/Shared"


def test_an_update_answered_with_no_content(emu: AIDPEmulator, api: Api) -> None:
    key = api.create_job(name="etl.job")
    emu.set_readings(update_answer="no_content")
    body = {"name": "etl.job", "path": "/Workspace/Shared", "maxConcurrentRuns": 2}
    resp = api("PUT", f"/jobs/{key}", json=body)
    assert resp.status_code == 204 and resp.content == b""
    assert api("GET", f"/jobs/{key}").json()["maxConcurrentRuns"] == 2


def test_filled_defaults_on_get_and_put_answers(emu: AIDPEmulator, api: Api) -> None:
    bare = {k: v for k, v in task("a").items() if k not in ("source",)}
    key = api.create_job(tasks=[bare])
    assert "timeoutSeconds" not in api("GET", f"/jobs/{key}").json()  # default: what was sent
    emu.set_readings(fill_defaults=True)
    job = api("GET", f"/jobs/{key}").json()
    assert job["description"] == "" and job["timeoutSeconds"] == 0 and job["parameters"] == []
    (t,) = job["tasks"]
    assert t["source"] == "WORKSPACE" and t["maxRetries"] == 0 and t["cluster"]["clusterId"] == "cid-ck1"
    put = api(
        "PUT",
        f"/jobs/{key}",
        json={"name": "etl.job", "path": "/Workspace/Shared", "tasks": [bare], "jobClusters": []},
        headers={"if-match": "*"},
    )
    assert put.status_code == 200 and put.json()["tasks"][0]["isRetryOnTimeout"] is False


def test_notebook_output_has_stream_and_ansi_error_cells(emu: AIDPEmulator, api: Api) -> None:
    emu.script_task(task_key="a", **FAILING)
    run = finished_run(emu, api)
    (item,) = fetch(api, run["taskToTaskRunMap"]["a"])["data"]
    assert item["type"] == "NOTEBOOK" and item["length"] == str(len(item["value"].encode()))
    cells = json.loads(item["value"])["cells"]
    assert cells[0]["outputs"][0]["text"] == ["rows: 3"] and cells[1]["outputs"] == []  # an empty cell
    (error,) = cells[2]["outputs"]
    assert (error["output_type"], error["ename"], error["evalue"]) == ("error", "KeyError", "'customer_id'")
    assert all(line.startswith("\x1b[") for line in error["traceback"])


@pytest.mark.parametrize(
    ("fmt", "kind", "value"), [("text", "TEXT_PLAIN", "rows: 3"), ("html", "TEXT_HTML", "<pre>rows: 3</pre>")]
)
def test_text_and_html_output_readings(emu: AIDPEmulator, api: Api, fmt: str, kind: str, value: str) -> None:
    emu.set_readings(output_format=fmt)
    emu.script_task(task_key="a", **FAILING)
    run = finished_run(emu, api)
    (item,) = fetch(api, run["taskToTaskRunMap"]["a"])["data"]
    assert item["type"] == kind and value in item["value"]


@pytest.mark.parametrize(
    ("encoding", "compression"), [("base64", None), ("gzip", "GZIP"), ("bzip2", "BZIP2")]
)
def test_output_encoding_readings(
    emu: AIDPEmulator, api: Api, encoding: str, compression: str | None
) -> None:
    emu.set_readings(output_format="text")
    emu.script_task(task_key="a", output="rows: 3")
    tr_key = finished_run(emu, api)["taskToTaskRunMap"]["a"]
    (plain,) = fetch(api, tr_key)["data"]
    emu.set_readings(output_format="text", output_encoding=encoding)
    (item,) = fetch(api, tr_key)["data"]
    assert item["isBase64"] is True and item.get("compression") == compression
    raw = base64.b64decode(item["value"])
    unpack = {"GZIP": gzip.decompress, "BZIP2": bz2.decompress}.get(compression or "", lambda b: b)
    assert unpack(raw).decode() == plain["value"] and plain["isBase64"] is False


def test_no_task_run_listing_on_one_surface(emu: AIDPEmulator, api: Api, la_api: Api) -> None:
    run = finished_run(emu, api)
    emu.set_readings(no_task_run_listing="20240831")
    assert la_api("GET", "/taskRuns", params={"jobRunKey": run["key"]}).status_code == 404
    assert api("GET", "/taskRuns", params={"jobRunKey": run["key"]}).status_code == 200
    summaries = api("GET", f"/jobRuns/{run['key']}", params={"shouldIncludeTaskRunSummaries": "true"}).json()
    assert list(summaries["taskRunSummaryMap"]) == [run["taskToTaskRunMap"]["a"]]


@pytest.mark.parametrize(("listed", "count"), [("all", 2), ("latest", 1)])
def test_listing_after_a_repair(emu: AIDPEmulator, api: Api, listed: str, count: int) -> None:
    emu.set_readings(listed_attempts=listed)
    emu.script_task(task_key="a", outcome="FAILED", times=1)
    run = finished_run(emu, api)
    api("POST", f"/jobRuns/{run['key']}/actions/repair", json={"repairTasks": [{"taskKey": "a"}]})
    emu.advance(60)
    items = api("GET", "/taskRuns", params={"jobRunKey": run["key"]}).json()["items"]
    latest = api.get_run(run["key"])["taskToTaskRunMap"]["a"]
    assert len(items) == count and latest != run["taskToTaskRunMap"]["a"]
    newest = max(items, key=lambda t: t["retryAttempt"])
    assert newest["key"] == latest and newest["state"]["status"] == "SUCCESS" and newest["retryAttempt"] == 1


@pytest.mark.parametrize(
    ("reading", "asked", "unasked"),
    [("on_request", True, False), ("default_on", True, True), ("never", False, False)],
)
def test_when_a_run_carries_task_run_summaries(
    emu: AIDPEmulator, api: Api, reading: str, asked: bool, unasked: bool
) -> None:
    run = finished_run(emu, api)
    emu.set_readings(task_run_summaries=reading)
    flag = {"shouldIncludeTaskRunSummaries": "true"}
    assert ("taskRunSummaryMap" in api("GET", f"/jobRuns/{run['key']}", params=flag).json()) is asked
    assert ("taskRunSummaryMap" in api.get_run(run["key"])) is unasked
    assert api.get_run(run["key"])["taskToTaskRunMap"] == run["taskToTaskRunMap"]  # the map always comes


def test_task_run_summaries_keyed_by_task_key_or_flat(emu: AIDPEmulator, api: Api) -> None:
    run = finished_run(emu, api)
    tr_key, flag = run["taskToTaskRunMap"]["a"], {"shouldIncludeTaskRunSummaries": "true"}
    emu.set_readings(task_run_summaries="by_task_key")
    keyed = api("GET", f"/jobRuns/{run['key']}", params=flag).json()["taskRunSummaryMap"]
    assert list(keyed) == ["a"] and keyed["a"]["key"] == tr_key
    emu.set_readings(task_run_summaries="flat")
    (flat,) = api("GET", f"/jobRuns/{run['key']}", params=flag).json()["taskRunSummaryMap"].values()
    assert flat["status"] == "SUCCESS" and "state" not in flat and flat["key"] == tr_key


def test_repair_fields_readings(emu: AIDPEmulator, api: Api) -> None:
    emu.script_task(task_key="a", outcome="FAILED", times=1)
    run = finished_run(emu, api)
    api("POST", f"/jobRuns/{run['key']}/actions/repair", json={"repairTasks": [{"taskKey": "a"}]})
    assert api.get_run(run["key"])["repairKey"] == 1
    emu.set_readings(repair_fields="no_repair_key")
    body = api.get_run(run["key"])
    assert "repairKey" not in body and [h["key"] for h in body["repairHistory"]] == [0, 1]
    emu.set_readings(repair_fields="none")
    assert not {"repairKey", "repairHistory"} & set(api.get_run(run["key"]))


def test_loose_types_and_unknown_statuses(emu: AIDPEmulator, api: Api) -> None:
    emu.set_readings(loose_types=True, unknown_statuses=True)
    emu.state.timings.pending_s = 0.0
    run = api.run(api.create_job(tasks=[task("a"), task("b", depends=["a"])]))
    queued = api("GET", f"/jobRuns/{run['key']}", params={"shouldIncludeTaskRunSummaries": "true"}).json()
    assert queued["state"]["status"] == "WAITING_FOR_RESOURCES"
    assert {s["state"]["status"] for s in queued["taskRunSummaryMap"].values()} == {"NOT_STARTED"}
    emu.advance(60)
    done = api.get_run(run["key"])
    assert isinstance(done["startTime"], str) and done["startTime"].endswith("Z")
    assert isinstance(done["executionDuration"], str)
    (item,) = fetch(api, done["taskToTaskRunMap"]["a"])["data"]
    assert isinstance(item["length"], int)


def test_ignored_retry_tokens_create_again(emu: AIDPEmulator, api: Api) -> None:
    key = api.create_job(tasks=[task("a")])
    emu.state.timings.task_s = 0.0
    body, headers = {"jobKey": key}, {"opc-retry-token": "tok-1"}
    first = api("POST", "/jobRuns", json=body, headers=headers).json()["key"]
    emu.advance(10)
    assert api("POST", "/jobRuns", json=body, headers=headers).json()["key"] == first
    emu.set_readings(retry_tokens="ignored")
    assert api("POST", "/jobRuns", json=body, headers=headers).json()["key"] != first


def test_readings_are_set_by_constructor_cli_scenario_and_control_api(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="path_filter must be one of"):
        Readings(path_filter="prefix")
    with pytest.raises(ValueError, match="unknown reading"):
        Readings.from_dict({"paths": "folder"})
    args = parse_args(["--reading", "path_filter=ignored", "--reading", "fill_defaults=true"])
    assert Readings.from_dict(parse_assignments(args.reading)) == Readings(
        path_filter="ignored", fill_defaults=True
    )
    scenario = tmp_path / "s.json"
    scenario.write_text(json.dumps({"readings": {"output_format": "html", "unknown_statuses": "yes"}}))
    with AIDPEmulator(time_scale=0, readings={"retry_tokens": "ignored"}) as emu:
        assert emu.readings.retry_tokens == "ignored"
        load_scenario(emu, scenario)
        assert (emu.readings.output_format, emu.readings.unknown_statuses) == ("html", True)
        client = EmulatorClient(emu.url)
        assert client.readings(no_task_run_listing="all")["no_task_run_listing"] == "all"
        assert client.readings(reset=True) == Readings().to_dict() == client.readings()
