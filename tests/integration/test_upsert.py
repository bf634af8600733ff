"""Job upsert against the emulator: the requests actually sent, observed in its recorder."""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_aidp.emulator import AIDPEmulator
from airflow_provider_aidp.exceptions import AIDPConfigError, AIDPConflictError, AIDPDuplicateJobError
from airflow_provider_aidp.hooks.aidp import AIDPHook
from airflow_provider_aidp.hooks.upsert import create_retry_token
from airflow_provider_aidp.models.jobs import load_spec

CLUSTER = {"clusterKey": "ck", "clusterName": "etl_cluster"}


def job_spec(name: str = "etl_daily.job", path: str = "/Workspace/Shared") -> dict[str, Any]:
    return {
        "name": name,
        "path": path,
        "description": "daily ETL",
        "maxConcurrentRuns": 1,
        "jobClusters": [dict(CLUSTER)],
        "schedule": {"quartzCronExpression": "0 0 2 * * ?", "timezoneId": "Europe/Paris"},
        "parameters": {"env": "prod"},
        "tasks": [
            {
                "type": "NOTEBOOK_TASK",
                "taskKey": "extract",
                "cluster": dict(CLUSTER),
                "notebookPath": "/Workspace/e.ipynb",
            },
            {
                "type": "PYTHON_TASK",
                "taskKey": "load",
                "dependsOn": ["extract"],
                "cluster": dict(CLUSTER),
                "filePath": "/Workspace/l.py",
                "maxRetries": 2,
            },
        ],
    }


@pytest.fixture
def emu(monkeypatch: pytest.MonkeyPatch) -> Iterator[AIDPEmulator]:
    with AIDPEmulator() as server:
        monkeypatch.setenv("AIRFLOW_CONN_AIDP_DEFAULT", server.connection_json(server.generate_api_key()))
        yield server


def writes(emu: AIDPEmulator) -> list[tuple[str, Any]]:
    return [(r.method, r) for r in emu.requests if r.method in ("POST", "PUT", "DELETE")]


def header(request: Any, name: str) -> str | None:
    return next((v for k, v in request.headers.items() if k.lower() == name), None)


def test_create_is_two_step_with_a_deterministic_retry_token(emu: AIDPEmulator) -> None:
    result = AIDPHook().upsert_job(job_spec())
    assert result.action == "created" and result.job_key
    sent = writes(emu)
    assert [m for m, _ in sent] == ["POST", "PUT"]
    post, put = sent[0][1], sent[1][1]
    assert post.json() == {"name": "etl_daily.job", "path": "/Workspace/Shared", "maxConcurrentRuns": 1}
    assert header(post, "opc-retry-token") == create_retry_token(load_spec(job_spec()))
    assert put.path.endswith(f"/jobs/{result.job_key}")
    assert put.json() == load_spec(job_spec()).to_wire("objects")
    assert '+  "name": "etl_daily.job",' in result.diff
    stored = next(j for j in emu.jobs() if j["key"] == result.job_key)
    assert [t["taskKey"] for t in stored["tasks"]] == ["extract", "load"]


def test_rerun_is_unchanged_and_sends_no_put(emu: AIDPEmulator, capfd: pytest.CaptureFixture[str]) -> None:
    hook = AIDPHook()
    first = hook.upsert_job(job_spec())
    before = len(emu.requests)
    capfd.readouterr()
    again = hook.upsert_job(job_spec())
    assert (again.action, again.job_key, again.diff) == ("unchanged", first.job_key, "")
    assert [r.method for r in emu.requests[before:]] == ["GET", "GET"]  # list + get, no write
    assert "is unchanged; nothing sent" in "".join(capfd.readouterr())


def test_same_spec_in_the_other_spelling_is_unchanged(emu: AIDPEmulator) -> None:
    hook = AIDPHook()
    hook.upsert_job(job_spec())
    snake = json.loads(json.dumps(job_spec()))
    snake["tasks"].reverse()
    snake["tasks"][0]["depends_on"] = [{"task_key": "extract"}]
    del snake["tasks"][0]["dependsOn"]
    snake["tasks"][1]["runIf"] = "ALL_SUCCESS"
    snake["parameters"] = [{"name": "env", "value": "prod"}]
    assert hook.upsert_job(snake).action == "unchanged"


def test_a_change_is_one_put_with_the_full_body_and_if_match(
    emu: AIDPEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    hook = AIDPHook()
    key = hook.upsert_job(job_spec()).job_key
    etag = hook.get_job(str(key)).etag
    changed = job_spec()
    changed["tasks"][1]["runIf"] = "ALL_DONE"
    del changed["description"]
    before = len(emu.requests)
    capfd.readouterr()
    result = hook.upsert_job(changed)
    logged = "".join(capfd.readouterr())
    assert result.action == "updated"
    puts = [r for r in emu.requests[before:] if r.method != "GET"]
    assert [r.method for r in puts] == ["PUT"]
    assert puts[0].json() == load_spec(changed).to_wire("objects")
    assert "description" not in puts[0].json()
    assert header(puts[0], "if-match") == etag
    assert '-      "runIf": "ALL_SUCCESS",' in result.diff and '+      "runIf": "ALL_DONE",' in result.diff
    assert '-  "description": "daily ETL",' in result.diff
    assert '+      "runIf": "ALL_DONE",' in logged
    assert hook.upsert_job(changed).action == "unchanged"


def test_dry_run_writes_nothing(emu: AIDPEmulator) -> None:
    hook = AIDPHook()
    created = hook.upsert_job(job_spec(), dry_run=True)
    assert (created.action, created.job_key, created.dry_run) == ("created", None, True)
    assert emu.jobs() == []
    key = hook.upsert_job(job_spec()).job_key
    changed = job_spec()
    changed["maxConcurrentRuns"] = 3
    before = len(emu.requests)
    result = hook.upsert_job(changed, dry_run=True)
    assert (result.action, result.job_key) == ("updated", key)
    assert '+  "maxConcurrentRuns": 3,' in result.diff
    assert all(r.method == "GET" for r in emu.requests[before:])


def test_la_surface_gets_plain_key_depends_on(monkeypatch: pytest.MonkeyPatch) -> None:
    with AIDPEmulator() as server:
        conn = server.connection_json(server.generate_api_key(), api_version="20240831")
        monkeypatch.setenv("AIRFLOW_CONN_AIDP_DEFAULT", conn)
        hook = AIDPHook()
        assert hook.get_config().depends_on_format == "keys"
        result = hook.upsert_job(job_spec())
        put = server.find_requests("PUT")[0]
        assert put.json()["tasks"][1]["dependsOn"] == ["extract"]
        assert hook.upsert_job(job_spec()).action == "unchanged"
        assert result.action == "created"


def _bulk(hook: AIDPHook, count: int) -> None:
    for i in range(count):
        hook.create_job({"name": f"bulk_{i:03d}", "path": "/Workspace/Bulk", "maxConcurrentRuns": 1})


def test_a_job_on_page_three_is_found(emu: AIDPEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """250 jobs, the target created last; with a service that ignores the name filter the hook
    must read three pages (100 + 100 + 51) to find it, and must not create a second one."""
    hook = AIDPHook()
    _bulk(hook, 250)
    key = hook.create_job({"name": "etl_daily.job", "path": "/Workspace/Shared", "maxConcurrentRuns": 1}).key
    emu.set_readings(name_filter="ignored")  # the service answers every job, whatever displayName says
    before = len(emu.requests)
    result = hook.upsert_job(job_spec())
    assert (result.action, result.job_key) == ("updated", key)
    lists = [r for r in emu.requests[before:] if r.method == "GET" and r.path.endswith("/jobs")]
    assert len(lists) == 3
    assert len(emu.jobs()) == 251


def test_two_jobs_with_the_same_name_and_path_is_an_error(emu: AIDPEmulator) -> None:
    hook = AIDPHook()
    head = {"name": "etl_daily.job", "path": "/Workspace/Shared", "maxConcurrentRuns": 1}
    keys = [hook.create_job(head).key for _ in range(2)]
    hook.create_job({**head, "path": "/Workspace/Other"})  # same name elsewhere: not a duplicate
    before = len(emu.requests)
    with pytest.raises(AIDPDuplicateJobError) as err:
        hook.upsert_job(job_spec())
    assert all(k in str(err.value) for k in keys)
    assert all(r.method == "GET" for r in emu.requests[before:])


BAD_SPECS = [
    ("name", "9lives", "name: '9lives' is not a valid AIDP name"),
    ("path", "/Users/me", "path: '/Users/me' must be under /Workspace/"),
    ("tasks/1/dependsOn", ["extrct"], "tasks[load].depends_on: unknown task key 'extrct'"),
    ("tasks/0/dependsOn", ["load"], "depends_on has a cycle: extract -> load -> extract"),
    ("tasks/1/taskKey", "extract", "task keys must be unique"),
    ("tasks/0/runIf", "MAYBE", "tasks[extract].run_if: 'MAYBE'"),
    (
        "tasks/0/cluster",
        {"clusterKey": "nope", "clusterName": "etl_cluster"},
        "'nope' is not a declared job cluster",
    ),
    ("jobClusters/0/clusterName", "8f14e45f-ceea-467f-a0e6-1d2c3b4a5e6f", "WORKFLOW_EXECUTION_0049"),
    ("tasks/0/notebookPath", None, "tasks[extract].notebook_path: required"),
    ("tasks/1/filePath", None, "tasks[load].file_path: required"),
    ("schedule/quartzCronExpression", "0 0 2 * *", "6 or 7 fields"),
    ("schedule/quartzCronExpression", "0 0/5 * * * ?", "5 minutes apart"),
    ("schedule/timezoneId", "Paris", "'Paris' is not an IANA time zone"),
    ("tasks/1/maxRetries", -3, "tasks[load].max_retries: -3 must not be negative"),
    ("tasks/1/timeoutSeconds", -1, "tasks[load].timeout_seconds: -1"),
]


@pytest.mark.parametrize(("path", "value", "expected"), BAD_SPECS, ids=[b[2][:30] for b in BAD_SPECS])
def test_every_rule_rejects_before_any_request(
    emu: AIDPEmulator, path: str, value: Any, expected: str
) -> None:
    spec = copy.deepcopy(job_spec())
    node: Any = spec
    parts = path.split("/")
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is None:
        del node[parts[-1]]
    else:
        node[parts[-1]] = value
    with pytest.raises(AIDPConfigError) as err:
        AIDPHook().upsert_job(spec)
    assert expected in str(err.value)
    assert emu.requests == []


def test_recreate_after_delete_is_not_fooled_by_the_replayed_retry_token(
    emu: AIDPEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Within the token's lifetime the service replays the first create (a job since deleted):
    the PUT then answers 404 and the upsert creates the job afresh with a new token. (A service
    that is consistent at once: no consistency_grace. With one, the PUT is asked again until the
    grace ends: test_a_job_not_visible_yet_is_waited_for_not_created_twice.)"""
    conn = json.loads(os.environ["AIRFLOW_CONN_AIDP_DEFAULT"])
    conn["extra"]["consistency_grace"] = 0
    monkeypatch.setenv("AIRFLOW_CONN_AIDP_DEFAULT", json.dumps(conn))
    hook = AIDPHook()
    first = hook.upsert_job(job_spec()).job_key
    hook.delete_job(str(first))
    before = len(emu.requests)
    again = hook.upsert_job(job_spec())
    assert again.action == "created" and again.job_key not in (None, first)
    sent = [r for r in emu.requests[before:] if r.method != "GET"]
    # The created job is read before its definition is sent (a replayed create may answer with a
    # job that exists, or is gone): the gone one gets no PUT, a fresh create gets the definition.
    assert [r.method for r in sent] == ["POST", "POST", "PUT"]
    assert header(sent[0], "opc-retry-token") == create_retry_token(load_spec(job_spec()))
    assert header(sent[1], "opc-retry-token") != header(sent[0], "opc-retry-token")
    assert sent[2].path.endswith(f"/jobs/{again.job_key}")
    assert [j["key"] for j in emu.jobs()] == [again.job_key]


def test_retry_token_follows_the_create_body() -> None:
    base = load_spec(job_spec())
    assert create_retry_token(base) == create_retry_token(load_spec(job_spec()))
    other = job_spec()
    other["maxConcurrentRuns"] = 2
    assert create_retry_token(load_spec(other)) != create_retry_token(base)
    assert create_retry_token(load_spec(job_spec(path="/Workspace/Other"))) != create_retry_token(base)


# --- eventual consistency (docs/emulator.md#readings: read_after_create_lag, listing_lag, unique_names) ---


def test_a_job_not_visible_yet_is_waited_for_not_created_twice(emu: AIDPEmulator) -> None:
    """Right after the create the job answers 404 for a while: the definition is sent once it is
    visible (within consistency_grace), and no second job is made."""
    emu.set_readings(read_after_create_lag=1.0)
    result = AIDPHook().upsert_job(job_spec())
    assert result.action == "created"
    assert [m for m, _ in writes(emu)] == ["POST", "PUT"]
    reads = [r for r in emu.requests if r.method == "GET" and r.path.endswith(f"/jobs/{result.job_key}")]
    assert reads[0].status == 404 and reads[-1].status == 200  # not visible, then visible
    assert [j["key"] for j in emu.jobs()] == [result.job_key]


def test_a_lagging_listing_does_not_make_a_second_job(emu: AIDPEmulator) -> None:
    """The second upsert does not see the first one's job in the listing yet: its create's retry
    token answers with that job, whose definition is compared instead of overwritten."""
    emu.set_readings(listing_lag=2.0)
    hook = AIDPHook()
    first = hook.upsert_job(job_spec())
    second = hook.upsert_job(job_spec())
    assert (second.action, second.job_key) == ("unchanged", first.job_key)
    assert [m for m, _ in writes(emu)] == ["POST", "PUT", "POST"]  # the last one replayed, no PUT
    assert [j["key"] for j in emu.jobs()] == [first.job_key]


def test_a_create_refused_because_another_writer_took_the_name_updates_that_job(emu: AIDPEmulator) -> None:
    """Another writer creates the job between this upsert's listing and its create (409 where names
    are unique): the upsert resolves the name to that job and makes it match the spec."""
    emu.set_readings(unique_names="folder", listing_lag=1.0)
    emu.inject_fault("name_taken", path="*/jobs", method="POST", times=1)
    result = AIDPHook().upsert_job(job_spec())
    assert result.action == "updated"
    (stored,) = emu.jobs()
    assert stored["key"] == result.job_key and [t["taskKey"] for t in stored["tasks"]] == ["extract", "load"]
    assert [(m, r.status) for m, r in writes(emu)] == [("POST", 409), ("PUT", 200)]


def test_a_name_taken_in_another_folder_fails_naming_it(emu: AIDPEmulator) -> None:
    """Where names are unique across the workspace, a job of that name elsewhere cannot be this
    spec's job: the upsert fails at once, naming it, and makes nothing."""
    emu.set_readings(unique_names="workspace")
    other = AIDPHook().create_job(
        {"name": "etl_daily.job", "path": "/Workspace/Other", "maxConcurrentRuns": 1}
    )
    started = time.monotonic()
    with pytest.raises(AIDPConflictError) as err:
        AIDPHook().upsert_job(job_spec())
    assert time.monotonic() - started < 10  # no wait for the consistency grace: the name is seen taken
    assert other.key in str(err.value) and "/Workspace/Other" in str(err.value)
    assert [j["key"] for j in emu.jobs()] == [other.key]
