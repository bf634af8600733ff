"""AIDPHook sync path: signing, errors, retries, pagination, bad bodies (requests-mock)."""

from __future__ import annotations

import email.utils
import json
import re
import time
from typing import Any

import pytest
import requests

from airflow_provider_aidp import exceptions as exc
from airflow_provider_aidp.hooks import auth
from airflow_provider_aidp.hooks.aidp import AIDPHook
from airflow_provider_aidp.hooks.transport import RetryPolicy, parse_retry_after
from tests.unit.hook_support import (
    HOST,
    FakeConnection,
    base_url,
    inline_extra,
    install_connection,
    make_key,
    verify_signature,
)

KEY = make_key()
BASE = base_url()


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch) -> AIDPHook:
    auth.clear_signer_cache()
    install_connection(
        monkeypatch, FakeConnection(host=HOST, extra=inline_extra(KEY, max_retries=3, retry_wait_max=5))
    )
    h = AIDPHook("aidp_test")
    h.sleeps = []  # type: ignore[attr-defined]
    h._sleep = h.sleeps.append  # type: ignore[attr-defined]
    return h


def run_body(key: str = "run1", status: str = "RUNNING") -> dict[str, Any]:
    return {"key": key, "jobKey": "job1", "state": {"status": status}}


# --- signing and request shape -------------------------------------------------------------------


def test_get_is_signed_and_carries_ids(hook: AIDPHook, requests_mock: Any) -> None:
    requests_mock.get(f"{BASE}/jobRuns/run%2F1", json=run_body("run/1"))
    run = hook.get_job_run("run/1")
    assert run.key == "run/1" and run.status == "RUNNING"
    req = requests_mock.last_request
    assert req.path_url == BASE[len(HOST) :] + "/jobRuns/run%2F1"
    path_url = req.url[len(HOST) :]
    params = verify_signature(
        method="GET", path_url=path_url, headers=req.headers, body=None, public_key=KEY.public_key
    )
    assert params["keyId"].endswith(KEY.fingerprint)
    assert re.fullmatch(r"[0-9A-F]{32}", req.headers["opc-request-id"])
    assert req.headers["user-agent"].startswith("airflow-provider-aidp/")
    assert req.headers["host"] == "aidp.test"


def test_create_job_run_body_token_and_signature(hook: AIDPHook, requests_mock: Any) -> None:
    requests_mock.post(f"{BASE}/jobRuns", json=run_body(status="PENDING"))
    run = hook.create_job_run("job1", {"p": "v", "n": 3}, retry_token="tok-123")  # type: ignore[dict-item]
    req = requests_mock.last_request
    assert json.loads(req.body) == {
        "jobKey": "job1",
        "parameters": [{"name": "p", "value": "v"}, {"name": "n", "value": "3"}],
    }
    assert req.headers["opc-retry-token"] == "tok-123"
    verify_signature(
        method="POST",
        path_url=req.url[len(HOST) :],
        headers=req.headers,
        body=req.body,
        public_key=KEY.public_key,
    )
    assert run.status == "PENDING"


def test_repair_uses_repair_tasks(hook: AIDPHook, requests_mock: Any) -> None:
    requests_mock.post(f"{BASE}/jobRuns/r1/actions/repair", json=run_body("r1"))
    hook.repair_job_run("r1", [{"taskKey": "t1"}], parameters={"a": "b"}, retry_token="tk")
    body = requests_mock.last_request.json()
    assert body == {"repairTasks": [{"taskKey": "t1"}], "parameters": [{"name": "a", "value": "b"}]}
    assert "repairMode" not in body and "taskKeys" not in body
    with pytest.raises(exc.AIDPConfigError):
        hook.repair_job_run("r1", [])


def test_job_crud_and_actions(hook: AIDPHook, requests_mock: Any) -> None:
    requests_mock.get(f"{BASE}/jobs/j1", json={"key": "j1", "name": "n"}, headers={"etag": "E1"})
    requests_mock.put(f"{BASE}/jobs/j1", json={"key": "j1"})
    requests_mock.post(f"{BASE}/jobs", json={"key": "j1"})
    requests_mock.delete(f"{BASE}/jobs/j1", status_code=204)
    requests_mock.post(f"{BASE}/jobs/j1/actions/cancelJobRuns", status_code=202)
    requests_mock.get(f"{BASE}/jobRuns", json={"items": [run_body("r9", "SUCCESS")]})  # the job's runs
    requests_mock.post(f"{BASE}/jobRuns/r1/actions/cancel", json=run_body("r1", "CANCELING"))
    requests_mock.get(
        f"{BASE}/taskRuns/t1", json={"key": "t1", "outputKey": "o1", "state": {"status": "SUCCESS"}}
    )
    requests_mock.post(f"{BASE}/taskRuns/t1/actions/fetchOutput", json={"key": "o1", "data": []})
    requests_mock.post(
        f"{BASE}/taskRuns/t1/outputs/o1/actions/export", json={"name": "n", "path": "p", "content": "<h1/>"}
    )
    job = hook.get_job("j1")
    assert (job.body(), job.etag) == ({"key": "j1", "name": "n"}, "E1")
    hook.update_job("j1", {"name": "n"}, if_match="E1")
    assert requests_mock.last_request.headers["if-match"] == "E1"
    assert hook.create_job({"name": "n"}).body() == {"key": "j1"}
    assert "opc-retry-token" in requests_mock.last_request.headers
    assert hook.delete_job("j1") is None
    assert hook.cancel_job_runs("j1") == []  # the job's active runs: none (r9 has ended)
    assert "opc-retry-token" in requests_mock.last_request.headers  # docs/architecture.md: tokens
    assert hook.cancel_job_run("r1").status == "CANCELING"
    assert "opc-retry-token" in requests_mock.last_request.headers
    assert hook.get_task_run("t1").output_key == "o1"
    assert hook.fetch_task_run_output("t1", "o1").key == "o1"
    assert requests_mock.last_request.json() == {"outputKey": "o1"}
    assert "opc-retry-token" in requests_mock.last_request.headers
    assert hook.export_task_run_output("t1", "o1", "IPYNB").content == "<h1/>"
    assert requests_mock.last_request.json() == {"format": "IPYNB"}


def test_a_cancel_answered_without_a_body_reads_the_run(hook: AIDPHook, requests_mock: Any) -> None:
    requests_mock.post(f"{BASE}/jobRuns/r1/actions/cancel", status_code=202, content=b"")
    requests_mock.get(f"{BASE}/jobRuns/r1", json=run_body("r1", "RUNNING"))
    assert hook.cancel_job_run("r1").status == "RUNNING"
    assert [r.method for r in requests_mock.request_history] == ["POST", "GET"]
    requests_mock.get(f"{BASE}/jobRuns/r2", status_code=200, content=b"")  # elsewhere: still an error
    with pytest.raises(exc.AIDPResponseError, match="empty body"):
        hook.get_job_run("r2")


def test_an_update_answered_with_no_content_reads_the_job(hook: AIDPHook, requests_mock: Any) -> None:
    requests_mock.put(f"{BASE}/jobs/j1", status_code=204, content=b"")
    requests_mock.get(f"{BASE}/jobs/j1", json={"key": "j1", "name": "etl"}, headers={"etag": "e2"})
    assert hook.update_job("j1", {"name": "etl"}, if_match="e1").body() == {"key": "j1", "name": "etl"}
    assert [r.method for r in requests_mock.request_history] == ["PUT", "GET"]
    assert requests_mock.request_history[0].headers["if-match"] == "e1"


def test_get_run_url(hook: AIDPHook) -> None:
    url = hook.get_run_url("run 1", "job1")
    assert "run%201" in url and "job1" in url and "ws1" in url


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, exc.AIDPApiError),
        (401, exc.AIDPAuthError),
        (403, exc.AIDPAuthError),
        (404, exc.AIDPNotFoundError),
        (409, exc.AIDPConflictError),
        (412, exc.AIDPPreconditionFailedError),
        (429, exc.AIDPRateLimitError),
        (500, exc.AIDPServerError),
        (501, exc.AIDPServerError),
        (503, exc.AIDPServerError),
    ],
)
def test_error_classes(hook: AIDPHook, requests_mock: Any, status: int, cls: type) -> None:
    requests_mock.get(
        f"{BASE}/jobRuns/r1",
        status_code=status,
        json={"code": "SomeCode", "message": "went wrong"},
        headers={"opc-request-id": "SERVERID"},
    )
    with pytest.raises(cls) as err:
        hook.get_job_run("r1")
    e = err.value
    assert type(e) is cls
    assert (e.status, e.code, e.opc_request_id, e.method) == (status, "SomeCode", "SERVERID", "GET")
    assert e.path == f"/20260430/aiDataPlatforms/{BASE.split('/aiDataPlatforms/')[1]}/jobRuns/r1"
    assert "went wrong" in str(e) and "SERVERID" in str(e)


def test_error_path_has_no_query(hook: AIDPHook, requests_mock: Any) -> None:
    requests_mock.get(f"{BASE}/taskRuns", status_code=400, json={"code": "Bad", "message": "m"})
    with pytest.raises(exc.AIDPApiError) as err:
        hook.list_task_runs("secret-run")
    assert "?" not in (err.value.path or "") and "secret-run" not in str(err.value)


def test_401_security_token_says_refresh(monkeypatch: pytest.MonkeyPatch, requests_mock: Any) -> None:
    auth.clear_signer_cache()
    extra = {
        "ai_data_platform_id": inline_extra(KEY)["ai_data_platform_id"],
        "workspace_key": "ws1",
        "auth_type": "security_token",
        "profile": "SESS",
    }
    install_connection(monkeypatch, FakeConnection(host=HOST, extra=extra))
    monkeypatch.setattr(auth, "get_signer", lambda config: lambda req: req)
    requests_mock.get(
        f"{BASE}/jobRuns/r1", status_code=401, json={"code": "NotAuthenticated", "message": "no"}
    )
    with pytest.raises(exc.AIDPAuthError, match=r"oci session refresh --profile SESS"):
        AIDPHook("aidp_test").get_job_run("r1")


@pytest.mark.parametrize(
    ("body", "headers", "fragment"),
    [
        (b"", {}, "empty body"),
        (b"<html><body>Bad gateway</body></html>", {"content-type": "text/html"}, "HTML"),
        (b'{"key": "r1", "state": {"sta', {"content-type": "application/json"}, "not valid JSON"),
        (b"[1, 2]", {"content-type": "application/json"}, "JSON object"),
        (b'{"state": {}}', {"content-type": "application/json"}, "JobRun"),
    ],
)
def test_bad_2xx_bodies_raise(
    hook: AIDPHook, requests_mock: Any, body: bytes, headers: dict, fragment: str
) -> None:
    requests_mock.get(f"{BASE}/jobRuns/r1", content=body, headers=headers)
    with pytest.raises(exc.AIDPResponseError, match=fragment):
        hook.get_job_run("r1")


def test_html_502_is_retried_then_server_error(hook: AIDPHook, requests_mock: Any) -> None:
    requests_mock.get(
        f"{BASE}/jobRuns/r1",
        status_code=502,
        text="<html>Bad Gateway</html>",
        headers={"content-type": "text/html"},
    )
    with pytest.raises(exc.AIDPServerError, match="non-JSON body") as err:
        hook.get_job_run("r1")
    assert err.value.status == 502 and requests_mock.call_count == 4  # 1 + max_retries=3


# --- retries ---------------------------------------------------------------------------------------


def test_retry_on_429_with_retry_after_seconds(hook: AIDPHook, requests_mock: Any) -> None:
    requests_mock.get(
        f"{BASE}/jobRuns/r1",
        [
            {
                "status_code": 429,
                "json": {"code": "TooManyRequests", "message": "slow"},
                "headers": {"retry-after": "3"},
            },
            {"status_code": 503, "json": {"code": "Unavailable", "message": "x"}},
            {"status_code": 200, "json": run_body()},
        ],
    )
    assert hook.get_job_run("r1").key == "run1"
    assert requests_mock.call_count == 3
    assert hook.sleeps[0] == 3.0  # type: ignore[attr-defined]
    assert 0 <= hook.sleeps[1] <= 2.0  # type: ignore[attr-defined]
    ids = {r.headers["opc-request-id"] for r in requests_mock.request_history}
    assert len(ids) == 1  # one logical call, one id across its attempts


def test_retry_after_is_capped_and_http_date(hook: AIDPHook, requests_mock: Any) -> None:
    later = email.utils.formatdate(time.time() + 3600, usegmt=True)
    requests_mock.get(
        f"{BASE}/jobRuns/r1",
        [{"status_code": 429, "headers": {"retry-after": later}, "json": {}}, {"json": run_body()}],
    )
    hook.get_job_run("r1")
    assert hook.sleeps == [5.0]  # type: ignore[attr-defined]  # capped at retry_wait_max
    assert 3500 < (parse_retry_after(later) or 0) <= 3600
    assert parse_retry_after("garbage") is None


def test_retry_budget_then_rate_limit_error(hook: AIDPHook, requests_mock: Any) -> None:
    requests_mock.get(f"{BASE}/jobRuns/r1", status_code=429, json={"code": "TooManyRequests", "message": "x"})
    with pytest.raises(exc.AIDPRateLimitError):
        hook.get_job_run("r1")
    assert requests_mock.call_count == 4 and len(hook.sleeps) == 3  # type: ignore[attr-defined]


@pytest.mark.parametrize("status", [400, 401, 404, 409, 501])
def test_no_retry_on_client_errors_and_501(hook: AIDPHook, requests_mock: Any, status: int) -> None:
    requests_mock.get(f"{BASE}/jobRuns/r1", status_code=status, json={"code": "C", "message": "m"})
    with pytest.raises(exc.AIDPApiError):
        hook.get_job_run("r1")
    assert requests_mock.call_count == 1


def test_connection_errors_and_timeouts_are_retried(hook: AIDPHook, requests_mock: Any) -> None:
    requests_mock.get(
        f"{BASE}/jobRuns/r1",
        [
            {"exc": requests.ConnectionError("reset")},
            {"exc": requests.ReadTimeout("slow")},
            {"json": run_body()},
        ],
    )
    assert hook.get_job_run("r1").key == "run1"
    requests_mock.get(f"{BASE}/jobRuns/r2", exc=requests.ConnectTimeout("down"))
    with pytest.raises(exc.AIDPTransportError, match="4 attempt"):
        hook.get_job_run("r2")


def test_post_without_token_is_not_retried(hook: AIDPHook, requests_mock: Any) -> None:
    requests_mock.post(
        f"{BASE}/taskRuns/t1/outputs/o1/actions/export", status_code=503, json={"code": "U", "message": "m"}
    )
    with pytest.raises(exc.AIDPServerError):
        hook.export_task_run_output("t1", "o1")
    assert requests_mock.call_count == 1
    assert "opc-retry-token" not in requests_mock.last_request.headers
    requests_mock.post(f"{BASE}/taskRuns/t2/outputs/o1/actions/export", exc=requests.ConnectionError("x"))
    with pytest.raises(exc.AIDPTransportError):
        hook.export_task_run_output("t2", "o1")
    assert requests_mock.call_count == 2


def test_post_with_token_is_retried_with_the_same_token(hook: AIDPHook, requests_mock: Any) -> None:
    requests_mock.post(
        f"{BASE}/jobRuns",
        [{"status_code": 503, "json": {}}, {"exc": requests.ConnectionError("x")}, {"json": run_body()}],
    )
    hook.create_job_run("job1", retry_token="same-token")
    assert [r.headers["opc-retry-token"] for r in requests_mock.request_history] == ["same-token"] * 3
    dates = [r.headers["authorization"] for r in requests_mock.request_history]
    assert len(dates) == 3  # each attempt is signed afresh


def test_limits_from_hook_args_override_connection(
    monkeypatch: pytest.MonkeyPatch, requests_mock: Any
) -> None:
    install_connection(monkeypatch, FakeConnection(host=HOST, extra=inline_extra(KEY, max_retries=9)))
    h = AIDPHook("aidp_test", max_retries=1, timeout=2.5)
    h._sleep = lambda s: None
    requests_mock.get(f"{BASE}/jobRuns/r1", status_code=500, json={})
    with pytest.raises(exc.AIDPServerError):
        h.get_job_run("r1")
    assert requests_mock.call_count == 2
    assert requests_mock.last_request.timeout == 2.5


def test_policy_backoff_is_bounded() -> None:
    policy = RetryPolicy(max_retries=10, wait_max=4.0)
    assert all(0 <= policy.delay(n) <= min(4.0, 2 ** (n - 1)) for n in range(1, 11) for _ in range(20))
    assert all(policy.resend_after(1, m, False, "lost") is not None for m in ("GET", "PUT", "DELETE"))
    assert policy.resend_after(1, "POST", False, "lost") is None
    assert policy.resend_after(1, "POST", True, "lost") is not None


# --- pagination ---------------------------------------------------------------------------------------


def test_pagination_follows_every_page_including_empty(hook: AIDPHook, requests_mock: Any) -> None:
    requests_mock.get(
        f"{BASE}/jobs",
        [
            {"json": {"items": [{"key": "a", "name": "x"}]}, "headers": {"opc-next-page": "p2"}},
            {"json": {"items": []}, "headers": {"opc-next-page": "p3"}},
            {"json": {"items": [{"key": "b", "name": "x"}, {"key": "c", "name": "y"}]}},
        ],
    )
    assert [j.key for j in hook.list_jobs(name="x")] == ["a", "b", "c"]
    pages = [r.qs.get("page") for r in requests_mock.request_history]
    assert pages == [None, ["p2"], ["p3"]]
    assert requests_mock.request_history[0].qs["displayname"] == ["x"]


def test_find_job_duplicate_and_filter(hook: AIDPHook, requests_mock: Any) -> None:
    requests_mock.get(
        f"{BASE}/jobs",
        [
            {"json": {"items": [{"key": "a", "name": "x", "path": "/p"}]}, "headers": {"opc-next-page": "2"}},
            {"json": {"items": [{"key": "b", "name": "x", "path": "/q"}, {"key": "c", "name": "xx"}]}},
        ],
    )
    with pytest.raises(exc.AIDPDuplicateJobError, match="a, b"):
        hook.find_job("x")


def test_a_job_listed_without_its_path_is_placed_by_its_definition(
    hook: AIDPHook, requests_mock: Any
) -> None:
    """A listing may leave ``path`` out: each job of the wanted name costs one GET for its folder;
    without a folder to match nothing more is read."""
    listing = {
        "items": [{"key": "j1", "name": "etl"}, {"key": "j2", "name": "etl"}, {"key": "j3", "name": "x"}]
    }
    requests_mock.get(f"{BASE}/jobs", json=listing)
    requests_mock.get(f"{BASE}/jobs/j1", json={"key": "j1", "name": "etl", "path": "/Workspace/b"})
    requests_mock.get(f"{BASE}/jobs/j2", json={"key": "j2", "name": "etl", "path": "/Workspace/a"})
    found = hook.find_job("etl", "/Workspace/a")
    assert found is not None and (found.key, found.path) == ("j2", "/Workspace/a")
    assert [r.path.rsplit("/", 1)[-1] for r in requests_mock.request_history] == ["jobs", "j1", "j2"]
    assert [j.key for j in hook.find_jobs("etl")] == ["j1", "j2"] and requests_mock.call_count == 4


def test_pagination_error_midway_raises(hook: AIDPHook, requests_mock: Any) -> None:
    requests_mock.get(
        f"{BASE}/taskRuns",
        [
            {"json": {"items": [{"key": "t1"}]}, "headers": {"opc-next-page": "p2"}},
            {"status_code": 404, "json": {"code": "NotAuthorizedOrNotFound", "message": "gone"}},
        ],
    )
    with pytest.raises(exc.AIDPNotFoundError):
        hook.list_task_runs("r1")


def test_pagination_limit_and_missing_items(hook: AIDPHook, requests_mock: Any) -> None:
    requests_mock.get(
        f"{BASE}/jobRuns",
        [
            {"json": {"items": [run_body("1"), run_body("2")]}, "headers": {"opc-next-page": "p2"}},
            {"json": {"items": [run_body("3"), run_body("4")]}, "headers": {"opc-next-page": "p3"}},
        ],
    )
    runs = hook.list_job_runs(job_keys=["job1"], statuses=["RUNNING", "QUEUED"], limit=3)
    assert [r.key for r in runs] == ["1", "2", "3"]
    assert requests_mock.request_history[0].qs["status"] == ["running", "queued"]
    requests_mock.get(f"{BASE}/taskRuns", json={"data": []})
    with pytest.raises(exc.AIDPResponseError, match="items"):
        hook.list_task_runs("r1")


def test_pagination_loop_is_detected(hook: AIDPHook, requests_mock: Any) -> None:
    requests_mock.get(f"{BASE}/jobs", json={"items": []}, headers={"opc-next-page": "same"})
    with pytest.raises(exc.AIDPResponseError, match="loop"):
        hook.list_jobs()


# --- test_connection ------------------------------------------------------------------------------------


def test_test_connection(hook: AIDPHook, requests_mock: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_aidp.hooks import diagnosis

    # aidp.test has no DNS record; the Test resolves the host before its (mocked) request
    monkeypatch.setattr(diagnosis, "_dns", lambda config, ws: diagnosis.Check("DNS", True, "mocked"))
    requests_mock.get(f"{BASE}/jobs", json={"items": []})
    ok, message = hook.test_connection()
    assert ok and "ws1" in message
    assert requests_mock.last_request.qs["limit"] == ["1"]
    requests_mock.get(
        f"{BASE}/jobs", status_code=401, json={"code": "NotAuthenticated", "message": "bad sig"}
    )
    ok, message = hook.test_connection()
    assert not ok and "Authentication failed" in message and "fingerprint" in message
    requests_mock.get(f"{BASE}/jobs", status_code=404, json={"code": "NotFound", "message": "no"})
    ok, message = hook.test_connection()
    assert not ok and "workspace_key" in message


def test_test_connection_reports_config_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    install_connection(monkeypatch, FakeConnection(host="http://aidp.example.com", extra=inline_extra(KEY)))
    ok, message = AIDPHook("aidp_test").test_connection()
    assert not ok and "https://" in message
