"""Fault injection per route, and the request recorder."""

from __future__ import annotations

import pytest
import requests

from airflow_provider_aidp.emulator import AIDPEmulator

from .conftest import Api, task


def test_status_faults_with_and_without_retry_after(emu: AIDPEmulator, api: Api) -> None:
    emu.inject_fault("status", "*/jobs", method="GET", status=429, retry_after=2, times=1)
    emu.inject_fault("status", "*/jobs", method="GET", status=429, times=1)
    first = api("GET", "/jobs")
    assert first.status_code == 429 and first.headers["retry-after"] == "2"
    assert first.json()["code"] == "TooManyRequests"
    second = api("GET", "/jobs")
    assert second.status_code == 429 and "retry-after" not in second.headers
    assert api("GET", "/jobs").status_code == 200  # both exhausted


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors(emu: AIDPEmulator, api: Api, status: int) -> None:
    emu.inject_fault("status", "*", status=status, times=2)
    assert [api("GET", "/jobs").status_code for _ in range(3)] == [status, status, 200]


def test_502_html_page(emu: AIDPEmulator, api: Api) -> None:
    emu.inject_fault("html", "*/jobs")
    resp = api("GET", "/jobs")
    assert resp.status_code == 502 and resp.headers["content-type"].startswith("text/html")
    assert "Bad Gateway" in resp.text


def test_method_filter(emu: AIDPEmulator, api: Api) -> None:
    emu.inject_fault("status", "*/jobRuns", method="POST", status=503, times=None)
    key = api.create_job(tasks=[task("a")])
    assert api("POST", "/jobRuns", json={"jobKey": key}).status_code == 503
    assert api("GET", "/jobRuns").status_code == 200
    emu.clear_faults()
    assert api("POST", "/jobRuns", json={"jobKey": key}).status_code == 201


def test_delay_beyond_client_timeout(emu: AIDPEmulator, api: Api) -> None:
    emu.inject_fault("delay", "*/jobs", delay=1.0)
    with pytest.raises(requests.exceptions.ReadTimeout):
        api("GET", "/jobs", timeout=0.2)
    assert api("GET", "/jobs").status_code == 200


def test_dropped_connection(emu: AIDPEmulator, api: Api) -> None:
    emu.inject_fault("reset", "*/jobs")
    with pytest.raises(requests.exceptions.ConnectionError):
        api("GET", "/jobs")
    assert api("GET", "/jobs").status_code == 200


def test_truncated_json(emu: AIDPEmulator, api: Api) -> None:
    key = api.create_job(tasks=[task("a")])
    run = api.run(key)
    emu.inject_fault("truncated", "*/jobRuns/*")
    resp = api("GET", f"/jobRuns/{run['key']}")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/json")
    with pytest.raises(ValueError):
        resp.json()
    assert resp.text and resp.text.startswith("{")


def test_non_json_empty_list_and_empty_body(emu: AIDPEmulator, api: Api) -> None:
    api.create_job()
    emu.inject_fault("non_json", "*/jobs")
    resp = api("GET", "/jobs")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    emu.inject_fault("empty_list", "*/jobs")
    assert api("GET", "/jobs").json() == {"items": []}
    emu.inject_fault("empty_body", "*/jobs")
    resp = api("GET", "/jobs")
    assert resp.status_code == 200 and resp.content == b""
    assert len(api("GET", "/jobs").json()["items"]) == 1


def test_faults_apply_before_authentication(emu: AIDPEmulator) -> None:
    emu.inject_fault("status", "*", status=503)
    assert requests.get(emu.base_path() + "/jobs", timeout=5).status_code == 503
    assert requests.get(emu.base_path() + "/jobs", timeout=5).status_code == 401


def test_bad_fault_definitions() -> None:
    from airflow_provider_aidp.emulator import Fault

    with pytest.raises(ValueError):
        Fault(kind="explode")
    with pytest.raises(ValueError):
        Fault(kind="status")


def test_every_request_is_recorded(emu: AIDPEmulator, api: Api) -> None:
    key = api.create_job(tasks=[task("a")])
    api(
        "POST",
        "/jobRuns",
        json={"jobKey": key, "parameters": [{"name": "p", "value": "1"}]},
        headers={"opc-retry-token": "abc"},
    )
    api("GET", "/jobs", params={"limit": 5})
    posts = emu.find_requests("POST", "/jobRuns")
    assert len(posts) == 1
    rec = posts[0]
    assert rec.json() == {"jobKey": key, "parameters": [{"name": "p", "value": "1"}]}
    assert rec.headers["opc-retry-token"] == "abc" and rec.status == 201
    assert "authorization" in {h.lower() for h in rec.headers}
    listing = emu.find_requests("GET", "/jobs")[-1]
    assert listing.query == {"limit": ["5"]}
    assert [r.method for r in emu.requests] == ["POST", "PUT", "POST", "GET"]


def test_after_lets_the_first_matches_through(emu: AIDPEmulator, api: Api) -> None:
    emu.inject_fault("status", "*/jobs", method="GET", status=500, after=2)
    assert [api("GET", "/jobs").status_code for _ in range(4)] == [200, 200, 500, 200]
