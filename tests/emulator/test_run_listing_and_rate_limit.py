"""``GET /jobRuns`` filters and page sizes under each reading, and the per-tenancy rate limit."""

from __future__ import annotations

import pytest
import requests
from multidict import MultiDict

from airflow_provider_aidp.emulator import AIDPEmulator, ApiKeyCredentials
from airflow_provider_aidp.emulator.paging import paginate
from airflow_provider_aidp.emulator.ratelimit import RateLimit
from airflow_provider_aidp.emulator.readings import Readings

from .conftest import Api, task


@pytest.fixture
def api(emu: AIDPEmulator, creds: ApiKeyCredentials) -> Api:
    return Api(emu, creds)


def listed(api: Api, **params: object) -> list[str]:
    resp = api("GET", "/jobRuns", params=params)
    assert resp.status_code == 200, resp.text
    return sorted(r["key"] for r in resp.json()["items"])


@pytest.mark.parametrize(
    ("reading", "wanted"),
    [
        ("applied", {"a_active"}),
        ("status_ignored", {"a_active", "a_done"}),
        ("job_key_ignored", {"a_active", "c_active"}),
        ("ignored", {"a_active", "a_done", "c_active"}),
        ("job_key_required", {"a_active"}),
    ],
)
def test_run_list_filter_readings(emu: AIDPEmulator, api: Api, reading: str, wanted: set[str]) -> None:
    emu.script_task(task_key="t", duration=1000)
    jobs = {name: api.create_job(f"job_{name}", tasks=[task("t")], maxConcurrentRuns=5) for name in "abc"}
    runs = {"a_done": api.run(jobs["a"])["key"]}
    api("POST", f"/jobRuns/{runs['a_done']}/actions/cancel")
    runs["a_active"] = api.run(jobs["a"])["key"]
    runs["c_active"] = api.run(jobs["c"])["key"]
    emu.set_readings(run_list_filters=reading)
    got = listed(api, jobKey=[jobs["a"], jobs["b"]], status=["QUEUED", "RUNNING", "PENDING"], limit=1000)
    assert got == sorted(runs[name] for name in wanted)


def test_a_run_listing_that_reads_only_the_first_of_repeated_values(emu: AIDPEmulator, api: Api) -> None:
    emu.script_task(task_key="t", duration=1000)
    jobs = {name: api.create_job(f"job_{name}", tasks=[task("t")], maxConcurrentRuns=5) for name in "ab"}
    done = api.run(jobs["a"])["key"]
    api("POST", f"/jobRuns/{done}/actions/cancel")
    emu.advance(60)  # CANCELING -> CANCELED
    active = api.run(jobs["a"])["key"]
    emu.set_readings(run_list_filters="first_values_only")
    assert listed(api, jobKey=[jobs["a"], jobs["b"]]) == sorted([done, active])
    assert listed(api, jobKey=[jobs["b"], jobs["a"]]) == []
    active_statuses = ["QUEUED", "RUNNING", "PENDING"]
    assert listed(api, jobKey=[jobs["a"]], status=["CANCELED", *active_statuses]) == [done]


def in_order(api: Api, **params: object) -> list[str]:
    resp = api("GET", "/jobRuns", params=params)
    assert resp.status_code == 200, resp.text
    return [r["key"] for r in resp.json()["items"]]


def test_a_run_listing_windowed_by_creation_time_newest_first(emu: AIDPEmulator, api: Api) -> None:
    job = api.create_job("job_w")
    old = emu.seed_history(job, 3, every=3600.0)  # created 3 h, 2 h and 1 h ago, finished
    new = api.run(job)["key"]
    run = api.get_run(new)
    since = old[1]
    created = {k: api.get_run(k)["timeCreated"] for k in old}
    assert in_order(api, jobKey=job, sortBy="timeCreated", sortOrder="DESC") == [new, *reversed(old)]
    assert in_order(api, jobKey=job, sortBy="timeCreated", sortOrder="ASC") == [*old, new]
    window = {"timeCreatedGreaterThanOrEqualTo": created[since]}
    assert listed(api, jobKey=job, **window) == sorted([old[1], old[2], new])  # inclusive, to the ms
    upto = {"timeCreatedLessThanOrEqualTo": created[since]}
    assert listed(api, jobKey=job, **upto) == sorted(old[:2])
    assert run["timeCreated"] > created[old[2]] and api.get_run(old[0])["state"]["status"] == "SUCCESS"
    resp = api("GET", "/jobRuns", params={"timeCreatedGreaterThanOrEqualTo": "yesterday"})
    assert resp.status_code == 400 and "RFC 3339" in resp.json()["message"]


def test_a_service_that_ignores_the_sort_or_the_time_filter(emu: AIDPEmulator, api: Api) -> None:
    job = api.create_job("job_i")
    keys = emu.seed_history(job, 30, every=60.0)
    newest = api.get_run(keys[-1])["timeCreated"]
    emu.set_readings(time_filter="ignored")
    assert listed(api, jobKey=job, timeCreatedGreaterThanOrEqualTo=newest, limit=100) == sorted(keys)
    emu.set_readings(time_filter="applied", run_sort="ignored")
    served = in_order(api, jobKey=job, sortBy="timeCreated", sortOrder="DESC", limit=100)
    assert served == sorted(keys) != list(reversed(keys))  # by key: nothing to do with time
    assert in_order(api, jobKey=job, timeCreatedGreaterThanOrEqualTo=newest) == [keys[-1]]


def test_history_is_seeded_finished_and_listed_at_once(emu: AIDPEmulator, api: Api) -> None:
    job = api.create_job("job_h")
    emu.set_readings(listing_lag=30.0)
    keys = emu.seed_history(job, 5, every=10.0, duration=2.0, status="FAILED")
    assert listed(api, jobKey=job, status="FAILED") == sorted(keys)
    run = api.get_run(keys[0])
    assert run["endTime"] - run["startTime"] == 2000
    with pytest.raises(ValueError, match="terminal"):
        emu.seed_history(job, 1, status="RUNNING")


def test_cancel_job_runs_is_missing_on_one_surface(emu: AIDPEmulator, api: Api, la_api: Api) -> None:
    key = api.create_job("job_x")
    assert la_api("POST", f"/jobs/{key}/actions/cancelJobRuns").status_code == 202
    emu.set_readings(no_cancel_job_runs="20240831")
    assert la_api("POST", f"/jobs/{key}/actions/cancelJobRuns").status_code == 404
    assert api("POST", f"/jobs/{key}/actions/cancelJobRuns").status_code == 202


def test_a_queued_status_filter_is_refused_by_an_older_service(emu: AIDPEmulator, api: Api) -> None:
    assert api("GET", "/jobRuns", params={"status": ["QUEUED", "RUNNING"]}).status_code == 200
    emu.set_readings(queued_filter="refused")
    resp = api("GET", "/jobRuns", params={"status": ["QUEUED", "RUNNING"]})
    assert resp.status_code == 400 and "QUEUED" in resp.json()["message"]
    assert api("GET", "/jobRuns", params={"status": ["PENDING", "RUNNING"]}).status_code == 200


def test_a_run_listing_without_job_key_is_refused_when_the_key_is_required(
    emu: AIDPEmulator, api: Api
) -> None:
    api.create_job("job_0")
    assert api("GET", "/jobRuns").status_code == 200
    emu.set_readings(run_list_filters="job_key_required")
    resp = api("GET", "/jobRuns", params={"status": "RUNNING"})
    assert resp.status_code == 400 and "jobKey is required" in resp.json()["message"]
    assert resp.json()["code"] == "MissingParameter"  # OCI's code for a required parameter


@pytest.mark.parametrize(
    ("reading", "limit", "status"),
    [
        ("max1000", 1000, 200),
        ("max1000", 1001, 400),
        ("max100_reject", 1000, 400),
        ("max100_reject", 100, 200),
    ],
)
def test_page_size_readings_refuse_a_limit_above_the_max(
    emu: AIDPEmulator, api: Api, reading: str, limit: int, status: int
) -> None:
    emu.set_readings(page_size=reading)
    api.create_job("job_0")
    resp = api("GET", "/jobRuns", params={"limit": limit})
    assert resp.status_code == status, resp.text
    if status == 400:
        assert "limit must be between 1 and" in resp.json()["message"]


def test_a_clamping_server_serves_its_max_and_a_next_page() -> None:
    items = list(range(250))
    page, headers = paginate(items, MultiDict(limit="1000"), *Readings(page_size="max100_clamp").page_limit())
    assert page == items[:100] and headers["opc-next-page"] == "p100"
    page, headers = paginate(items, MultiDict(limit="1000", page="p200"), 100, True)
    assert page == items[200:] and "opc-next-page" not in headers


def test_rate_limit_bucket_per_tenancy() -> None:
    now = [0.0]
    limit = RateLimit(2, clock=lambda: now[0])
    a, b = 'Signature keyId="ocid1.tenancy.a/u/f"', 'Signature keyId="ocid1.tenancy.b/u/f"'
    assert [limit.take(a) for _ in range(3)] == [0.0, 0.0, 0.5]
    assert limit.take(b) == 0.0  # another tenancy has its own bucket
    now[0] = 0.5
    assert limit.take(a) == 0.0 and limit.throttled == 1
    limit.set(0)
    assert all(limit.take(a) == 0.0 for _ in range(100))
    with pytest.raises(ValueError, match="rate limit"):
        limit.set(-1)


def test_rate_limit_answers_429_with_retry_after_and_spares_the_control_api(
    emu: AIDPEmulator, api: Api
) -> None:
    emu.set_rate_limit(3)
    codes = [api("GET", "/jobs").status_code for _ in range(8)]
    assert codes[:3] == [200, 200, 200] and 429 in codes
    throttled = api("GET", "/jobs")
    assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) >= 1
    assert throttled.json()["code"] == "TooManyRequests"
    control = requests.get(f"{emu.url}/_emulator/rate-limit", timeout=5).json()
    assert control["per_second"] == 3 and control["throttled"] >= 2
    assert requests.put(f"{emu.url}/_emulator/rate-limit", json={"per_second": 0}, timeout=5).ok
    assert [api("GET", "/jobs").status_code for _ in range(10)] == [200] * 10
    bad = requests.put(f"{emu.url}/_emulator/rate-limit", json={"per_second": "x"}, timeout=5)
    assert bad.status_code == 400


def test_rate_limit_from_the_constructor() -> None:
    with AIDPEmulator(time_scale=0, rate_limit=7) as server:
        assert server.state.rate_limit.per_second == 7


def test_an_accepted_cancel_answers_202_without_a_body(emu: AIDPEmulator, api: Api) -> None:
    emu.script_task(task_key="t", duration=1000)
    run = api.run(api.create_job("job_0", tasks=[task("t")]))
    emu.set_readings(cancel_answer="accepted")
    resp = api("POST", f"/jobRuns/{run['key']}/actions/cancel")
    assert resp.status_code == 202 and resp.content == b"" and resp.headers["opc-work-request-id"]
    emu.advance(5)
    assert api.get_run(run["key"])["state"]["status"] == "CANCELED"
