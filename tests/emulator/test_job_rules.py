"""The live-verified job rules, paging, surfaces and retry tokens."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_aidp.emulator import AIDPEmulator, ApiKeyCredentials

from .conftest import NOTEBOOK, Api, task

NAME_ONLY = {"name": "etl.job", "path": "/Workspace/Shared", "maxConcurrentRuns": 1}


def _full(tasks: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {**NAME_ONLY, "jobClusters": [NOTEBOOK], "tasks": tasks, **fields}


def test_create_is_name_only(api: Api) -> None:
    resp = api("POST", "/jobs", json=_full([task("a")]))
    assert resp.status_code == 400 and "Invalid Task type" in resp.json()["message"]
    resp = api("POST", "/jobs", json={"displayName": "x"})
    assert resp.status_code == 400 and resp.json()["code"] == "InvalidParameter"
    resp = api("POST", "/jobs", json=NAME_ONLY)
    assert resp.status_code == 201 and resp.headers["etag"] and resp.headers["opc-request-id"]


@pytest.mark.parametrize("name", ["1job", "my-job", "has space", "_x", ""])
def test_name_charset(api: Api, name: str) -> None:
    resp = api("POST", "/jobs", json={"name": name})
    assert resp.status_code == 400 and "Invalid resource name" in resp.json()["message"]


def test_put_is_full_replace_and_requires_name(api: Api) -> None:
    key = api.create_job(tasks=[task("a")], description="first")
    resp = api("PUT", f"/jobs/{key}", json={"tasks": [task("a")]})
    assert resp.status_code == 400 and resp.json()["message"] == "name must not be null"
    resp = api("PUT", f"/jobs/{key}", json={"name": "etl.job"})
    assert resp.status_code == 200
    body = api("GET", f"/jobs/{key}").json()
    assert not body.get("tasks") and "description" not in body and "path" not in body


def test_task_type_discriminator(api: Api) -> None:
    key = api.create_job()
    bad = task("a")
    bad["taskType"] = bad.pop("type")
    resp = api("PUT", f"/jobs/{key}", json=_full([bad]))
    assert resp.status_code == 400 and "taskType" in resp.json()["message"]
    resp = api("PUT", f"/jobs/{key}", json=_full([{**task("a"), "type": "BASH_TASK"}]))
    assert resp.status_code == 400


def test_required_run_if_and_cluster(api: Api) -> None:
    key = api.create_job()
    no_run_if = {k: v for k, v in task("a").items() if k != "runIf"}
    assert api("PUT", f"/jobs/{key}", json=_full([no_run_if])).status_code == 400
    no_cluster = {k: v for k, v in task("a").items() if k != "cluster"}
    resp = api("PUT", f"/jobs/{key}", json=_full([no_cluster]))
    assert resp.status_code == 400 and "cluster" in resp.json()["message"]


def test_if_match(api: Api) -> None:
    key = api.create_job(tasks=[task("a")])
    etag = api("GET", f"/jobs/{key}").headers["etag"]
    assert (
        api("PUT", f"/jobs/{key}", json=_full([task("a")]), headers={"if-match": "stale"}).status_code == 412
    )
    ok = api("PUT", f"/jobs/{key}", json=_full([task("b")]), headers={"if-match": etag})
    assert ok.status_code == 200 and ok.headers["etag"] != etag
    assert api("PUT", f"/jobs/{key}", json=_full([task("c")]), headers={"if-match": etag}).status_code == 412
    assert api("DELETE", f"/jobs/{key}", headers={"if-match": etag}).status_code == 412
    assert api("DELETE", f"/jobs/{key}").status_code == 204
    assert api("GET", f"/jobs/{key}").status_code == 404


def test_depends_on_unknown_keys_and_cycles(api: Api) -> None:
    key = api.create_job()
    resp = api("PUT", f"/jobs/{key}", json=_full([task("a", depends=["ghost"])]))
    assert resp.status_code == 400 and "ghost" in resp.json()["message"]
    resp = api("PUT", f"/jobs/{key}", json=_full([task("a", depends=["b"]), task("b", depends=["a"])]))
    assert resp.status_code == 400 and "cycle" in resp.json()["message"]
    resp = api("PUT", f"/jobs/{key}", json=_full([task("a"), task("a")]))
    assert resp.status_code == 400


def test_depends_on_form_per_surface(api: Api, la_api: Api) -> None:
    key = api.create_job()
    # GA takes objects, rejects strings
    assert (
        api("PUT", f"/jobs/{key}", json=_full([task("a"), task("b", depends=["a"], la=True)])).status_code
        == 400
    )
    assert api("PUT", f"/jobs/{key}", json=_full([task("a"), task("b", depends=["a"])])).status_code == 200
    # the same job read on the LA surface shows strings; LA rejects objects and takes strings
    assert la_api("GET", f"/jobs/{key}").json()["tasks"][1]["dependsOn"] == ["a"]
    assert api("GET", f"/jobs/{key}").json()["tasks"][1]["dependsOn"] == [{"taskKey": "a"}]
    assert la_api("PUT", f"/jobs/{key}", json=_full([task("a"), task("b", depends=["a"])])).status_code == 400
    assert (
        la_api("PUT", f"/jobs/{key}", json=_full([task("a"), task("b", depends=["a"], la=True)])).status_code
        == 200
    )


def test_paging_headers(api: Api) -> None:
    for i in range(5):
        api.create_job(name=f"job{i}")
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 2}
    pages = 0
    while True:
        resp = api("GET", "/jobs", params=params)
        assert resp.headers["opc-total-items"] == "5"
        seen += [j["name"] for j in resp.json()["items"]]
        pages += 1
        if "opc-next-page" not in resp.headers:
            break
        params["page"] = resp.headers["opc-next-page"]
    assert pages == 3 and sorted(seen) == [f"job{i}" for i in range(5)]
    assert api("GET", "/jobs", params={"displayName": "job3"}).json()["items"][0]["name"] == "job3"
    assert api("GET", "/jobs", params={"page": "bogus"}).status_code == 400
    assert api("GET", "/jobs", params={"limit": 0}).status_code == 400


def test_surfaces_can_be_switched_off(emu: AIDPEmulator, creds: ApiKeyCredentials) -> None:
    ga, la = Api(emu, creds), Api(emu, creds, "20240831")
    assert ga("GET", "/jobs").status_code == 200 and la("GET", "/jobs").status_code == 200
    emu.set_surfaces("20240831")
    assert ga("GET", "/jobs").status_code == 404 and la("GET", "/jobs").status_code == 200
    emu.set_surfaces("20260430")
    assert ga("GET", "/jobs").status_code == 200 and la("GET", "/jobs").status_code == 404
    # mismatched version/prefix pairs never exist
    assert (
        ga.session.get(f"{emu.url}/20240831/aiDataPlatforms/x/workspaces/w/jobs", timeout=5).status_code
        == 404
    )


def test_actions_run_is_404_and_jobruns_is_the_trigger(api: Api) -> None:
    key = api.create_job(tasks=[task("a")])
    assert api("POST", f"/jobs/{key}/actions/run", json={}).status_code == 404
    assert api("POST", "/jobRuns", json={"jobKey": key}).status_code == 201
    assert api("POST", "/jobRuns", json={}).status_code == 400
    assert api("POST", "/jobRuns", json={"jobKey": "nope"}).status_code == 404


def test_retry_tokens(emu: AIDPEmulator, api: Api) -> None:
    key = api.create_job(tasks=[task("a")])
    first = api("POST", "/jobRuns", json={"jobKey": key}, headers={"opc-retry-token": "tok1"})
    again = api("POST", "/jobRuns", json={"jobKey": key}, headers={"opc-retry-token": "tok1"})
    assert first.status_code == again.status_code == 201 and first.json()["key"] == again.json()["key"]
    assert len(emu.state.store.runs) == 1
    other = api(
        "POST",
        "/jobRuns",
        json={"jobKey": key, "parameters": [{"name": "p", "value": "1"}]},
        headers={"opc-retry-token": "tok1"},
    )
    assert other.status_code == 409
    emu.advance(25 * 3600)  # tokens live 24 h; the first run is long finished by now
    late = api("POST", "/jobRuns", json={"jobKey": key}, headers={"opc-retry-token": "tok1"})
    assert late.status_code == 201 and late.json()["key"] != first.json()["key"]
    job1 = api("POST", "/jobs", json={"name": "x.job"}, headers={"opc-retry-token": "tj"}).json()["key"]
    job2 = api("POST", "/jobs", json={"name": "x.job"}, headers={"opc-retry-token": "tj"}).json()["key"]
    assert job1 == job2


def test_scopes_are_separate(emu: AIDPEmulator, creds: ApiKeyCredentials, api: Api) -> None:
    key = api.create_job()
    emu.host_workspace("ocid1.aidataplatform.oc1.iad.emulator", "other_ws")
    other = Api(emu, creds)
    other.base = other.base.replace("/workspaces/emulator_ws", "/workspaces/other_ws")
    assert other("GET", f"/jobs/{key}").status_code == 404
    assert other("GET", "/jobs").json()["items"] == []


@pytest.mark.parametrize(
    ("cron", "tz", "ok"),
    [
        ("0 0 2 * * ?", "UTC", True),
        ("0 0/30 * * * ?", "US/Pacific", True),
        ("0 0,30 * * * ?", "UTC", True),
        ("0 0/15 * * * ?", "UTC", False),
        ("0 * * * * ?", "UTC", False),
        ("*/10 0 * * * ?", "UTC", False),
        ("0 0,10 * * * ?", "UTC", False),
        ("0 0 2 * *", "UTC", False),
        ("0 0 2 * * ?", "Mars/Olympus", False),
    ],
)
def test_schedule_rules(api: Api, cron: str, tz: str, ok: bool) -> None:
    key = api.create_job()
    body = {
        **NAME_ONLY,
        "schedule": {"quartzCronExpression": cron, "timezoneId": tz, "pauseStatus": "UNPAUSED"},
    }
    resp = api("PUT", f"/jobs/{key}", json=body)
    assert (resp.status_code == 200) is ok, resp.text
