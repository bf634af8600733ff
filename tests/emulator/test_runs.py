"""The run / task state machine over the manual clock: dependsOn, runIf, scripts, cancel, repair."""

from __future__ import annotations

import json

from airflow_provider_aidp.emulator import AIDPEmulator

from .conftest import Api, task


def test_status_progression(emu: AIDPEmulator, api: Api) -> None:
    key = api.create_job(tasks=[task("a"), task("b", depends=["a"])])
    run = api.run(key)
    assert run["state"]["status"] == "PENDING" and set(run["taskToTaskRunMap"]) == {"a", "b"}
    seen = []
    for _ in range(12):
        status = api.get_run(run["key"])["state"]["status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        emu.advance(1)
    assert seen == ["PENDING", "QUEUED", "RUNNING", "SUCCESS"]
    done = api.get_run(run["key"])
    assert done["endTime"] - done["startTime"] == 6000  # two 3 s tasks in sequence
    statuses = api.task_statuses(run["key"])
    assert statuses == {"a": "SUCCESS", "b": "SUCCESS"}


def test_dependency_order_is_respected(emu: AIDPEmulator, api: Api) -> None:
    key = api.create_job(tasks=[task("a"), task("b", depends=["a"])])
    run = api.run(key)
    emu.advance(2.5)  # running: a started, b waits
    assert api.task_statuses(run["key"]) == {"a": "RUNNING", "b": "PENDING"}
    emu.advance(3)
    assert api.task_statuses(run["key"]) == {"a": "SUCCESS", "b": "RUNNING"}


def test_default_fail_convention_and_run_if(emu: AIDPEmulator, api: Api) -> None:
    key = api.create_job(
        tasks=[
            task("extract", path="/Workspace/demo/fail_extract.ipynb"),
            task("load", depends=["extract"]),
            task("cleanup", depends=["extract"], run_if="ALL_DONE"),
            task("alert", depends=["extract"], run_if="AT_LEAST_ONE_FAILED"),
            task("happy", depends=["extract"], run_if="NONE_FAILED"),
        ]
    )
    run = api.run(key)
    emu.advance(60)
    assert api.task_statuses(run["key"]) == {
        "extract": "FAILED",
        "load": "UPSTREAM_FAILED",
        "cleanup": "SUCCESS",
        "alert": "SUCCESS",
        "happy": "UPSTREAM_FAILED",
    }
    final = api.get_run(run["key"])
    assert final["state"]["status"] == "FAILED" and "extract" in final["state"]["stateMessage"]
    tr = api("GET", f"/taskRuns/{final['taskToTaskRunMap']['extract']}").json()
    assert "Traceback" in tr["state"]["errorTrace"]


def test_scripts_by_task_key_and_path(emu: AIDPEmulator, api: Api) -> None:
    emu.script_task(path="*/transform*", outcome="INTERNAL_ERROR", state_message="executor lost", duration=10)
    emu.script_task(
        task_key="report", output="42 rows", state_message="Successfully executed notebook report"
    )
    key = api.create_job(
        tasks=[task("transform"), task("report"), task("x", run_if="ALL_FAILED", depends=["transform"])]
    )
    run = api.run(key)
    emu.advance(5)
    assert api.task_statuses(run["key"])["transform"] == "RUNNING"
    emu.advance(20)
    statuses = api.task_statuses(run["key"])
    assert statuses == {"transform": "INTERNAL_ERROR", "report": "SUCCESS", "x": "SUCCESS"}
    final = api.get_run(run["key"])
    assert final["state"]["status"] == "INTERNAL_ERROR"
    report_tr = final["taskToTaskRunMap"]["report"]
    tr = api("GET", f"/taskRuns/{report_tr}").json()
    out = api(
        "POST", f"/taskRuns/{report_tr}/actions/fetchOutput", json={"outputKey": tr["outputKey"]}
    ).json()
    assert out["data"][0]["type"] == "NOTEBOOK" and out["taskType"] == "NOTEBOOK_TASK"
    (stream,) = json.loads(out["data"][0]["value"])["cells"][0]["outputs"]
    assert stream["text"] == ["42 rows"]
    assert tr["state"]["stateMessage"] == "Successfully executed notebook report"


def test_counted_script_then_default(emu: AIDPEmulator, api: Api) -> None:
    emu.script_task(task_key="a", outcome="FAILED", times=1)
    key = api.create_job(tasks=[task("a")], maxConcurrentRuns=5)
    r1, r2 = api.run(key), api.run(key)
    emu.advance(30)
    assert api.get_run(r1["key"])["state"]["status"] == "FAILED"
    assert api.get_run(r2["key"])["state"]["status"] == "SUCCESS"


def test_timeout_and_cluster_uuid(emu: AIDPEmulator, api: Api) -> None:
    slow = task("slow_one", timeoutSeconds=10)
    uuid_cluster = task("bad_cluster")
    uuid_cluster["cluster"] = {"clusterKey": "ck1", "clusterName": "6f1c2a9e-3b7d-4c1e-9a55-0c6b8f2d1e77"}
    key = api.create_job(tasks=[slow, uuid_cluster], maxConcurrentRuns=2)
    run = api.run(key)
    emu.advance(100)
    final = api.get_run(run["key"])
    trs = {k: api("GET", f"/taskRuns/{v}").json() for k, v in final["taskToTaskRunMap"].items()}
    assert trs["slow_one"]["state"]["status"] == "TIMED_OUT"
    assert trs["slow_one"]["executionDuration"] == 10_000
    assert trs["bad_cluster"]["state"]["status"] == "FAILED"
    assert "WORKFLOW_EXECUTION_0049 Cluster not found" in trs["bad_cluster"]["state"]["stateMessage"]


def test_max_concurrent_runs_skips(emu: AIDPEmulator, api: Api) -> None:
    key = api.create_job(tasks=[task("a")])  # maxConcurrentRuns 1
    first = api.run(key)
    second = api.run(key)
    assert second["state"]["status"] == "SKIPPED" and second["taskToTaskRunMap"] == {}
    emu.advance(30)
    assert api.get_run(first["key"])["state"]["status"] == "SUCCESS"
    assert api.run(key)["state"]["status"] == "PENDING"  # a slot is free again


def test_if_else_outcome_excludes_untaken_branch(emu: AIDPEmulator, api: Api) -> None:
    emu.script_task(task_key="check", condition_result="false")
    cond = {
        "type": "IF_ELSE_TASK",
        "taskKey": "check",
        "runIf": "ALL_SUCCESS",
        "expressions": [{"key": "a", "value": "1 == 1"}],
        "condition": "a",
        "dependsOn": [],
    }
    yes = task("yes_branch")
    yes["dependsOn"] = [{"taskKey": "check", "outcome": "true"}]
    no = task("no_branch")
    no["dependsOn"] = [{"taskKey": "check", "outcome": "false"}]
    key = api.create_job(tasks=[cond, yes, no])
    run = api.run(key)
    emu.advance(60)
    assert api.task_statuses(run["key"]) == {
        "check": "SUCCESS",
        "yes_branch": "EXCLUDED",
        "no_branch": "SUCCESS",
    }
    assert api.get_run(run["key"])["state"]["status"] == "SUCCESS"


def test_cancel(emu: AIDPEmulator, api: Api) -> None:
    key = api.create_job(tasks=[task("a"), task("b", depends=["a"]), task("c", depends=["b"])])
    run = api.run(key)
    emu.advance(6)  # a done, b running
    canceled = api("POST", f"/jobRuns/{run['key']}/actions/cancel").json()
    assert canceled["state"]["status"] == "CANCELING"
    emu.advance(100)  # frozen: b does not finish after the cancel
    final = api.get_run(run["key"])
    assert final["state"]["status"] == "CANCELED" and final["state"]["isUserCanceledOrTimedOut"] is True
    assert api.task_statuses(run["key"]) == {"a": "SUCCESS", "b": "CANCELED", "c": "UPSTREAM_CANCELED"}


def test_cancel_all_runs_of_a_job(emu: AIDPEmulator, api: Api) -> None:
    key = api.create_job(tasks=[task("a")], maxConcurrentRuns=3)
    runs = [api.run(key) for _ in range(3)]
    assert api("POST", f"/jobs/{key}/actions/cancelJobRuns").status_code == 202
    emu.advance(5)
    assert {api.get_run(r["key"])["state"]["status"] for r in runs} == {"CANCELED"}


def test_repair_default_and_chosen_tasks(emu: AIDPEmulator, api: Api) -> None:
    emu.script_task(task_key="b", outcome="FAILED", times=1)
    key = api.create_job(tasks=[task("a"), task("b", depends=["a"]), task("c", depends=["b"])])
    run = api.run(key)
    assert api("POST", f"/jobRuns/{run['key']}/actions/repair", json={}).status_code == 409  # still active
    emu.advance(60)
    failed = api.get_run(run["key"])
    assert failed["state"]["status"] == "FAILED"
    old_map = failed["taskToTaskRunMap"]
    repaired = api("POST", f"/jobRuns/{run['key']}/actions/repair", json={}).json()  # failed + downstream
    assert repaired["repairKey"] == 1 and repaired["state"]["status"] == "PENDING"
    assert sorted(repaired["repairedTasks"]) == ["b", "c"]
    assert (
        repaired["taskToTaskRunMap"]["a"] == old_map["a"]
        and repaired["taskToTaskRunMap"]["b"] != old_map["b"]
    )
    emu.advance(60)
    done = api.get_run(run["key"])
    assert done["state"]["status"] == "SUCCESS"
    assert [(h["type"], h["key"], h["state"]["status"]) for h in done["repairHistory"]] == [
        ("ORIGINAL", 0, "FAILED"),
        ("REPAIR", 1, "SUCCESS"),
    ]
    # chosen with downstream
    again = api(
        "POST",
        f"/jobRuns/{run['key']}/actions/repair",
        json={"repairTasks": [{"taskKey": "a", "shouldIncludeDownstream": True}]},
    ).json()
    assert sorted(again["repairedTasks"]) == ["a", "b", "c"] and again["repairKey"] == 2
    bad = api("POST", f"/jobRuns/{run['key']}/actions/repair", json={"repairTasks": [{"taskKey": "zzz"}]})
    assert bad.status_code in (400, 409)


def test_outputs_and_export(emu: AIDPEmulator, api: Api) -> None:
    emu.set_readings(output_format="text")  # the notebook reading is covered in test_readings.py
    key = api.create_job(tasks=[task("a")])
    run = api.run(key)
    tr_key = run["taskToTaskRunMap"]["a"]
    early = api("POST", f"/taskRuns/{tr_key}/actions/fetchOutput", json={}).json()
    assert early["data"] == []
    emu.advance(30)
    tr = api("GET", f"/taskRuns/{tr_key}").json()
    out = api("POST", f"/taskRuns/{tr_key}/actions/fetchOutput", json={"outputKey": tr["outputKey"]}).json()
    assert "Successfully executed notebook" in out["data"][0]["value"]
    html = api(
        "POST", f"/taskRuns/{tr_key}/outputs/{tr['outputKey']}/actions/export", json={"format": "HTML"}
    )
    assert html.status_code == 200 and html.json()["format"] == "HTML" and "<html>" in html.json()["content"]
    ipynb = api(
        "POST", f"/taskRuns/{tr_key}/outputs/{tr['outputKey']}/actions/export", json={"format": "IPYNB"}
    )
    assert '"nbformat": 4' in ipynb.json()["content"]
    assert api("POST", f"/taskRuns/{tr_key}/outputs/wrong/actions/export", json={}).status_code == 404
    assert api("GET", "/taskRuns").status_code == 400  # jobRunKey is required


def test_list_runs_filters_and_parameters(emu: AIDPEmulator, api: Api) -> None:
    key = api.create_job(
        tasks=[task("a")],
        maxConcurrentRuns=2,
        parameters=[{"name": "env", "value": "dev"}, {"name": "day", "value": "x"}],
    )
    r1 = api.run(key, parameters=[{"name": "day", "value": "2026-01-01"}])
    emu.advance(30)
    api.run(key)
    body = api.get_run(r1["key"])
    assert {p["name"]: p["value"] for p in body["unifiedJobAndJobRunParameters"]} == {
        "env": "dev",
        "day": "2026-01-01",
    }
    assert len(api("GET", "/jobRuns", params={"jobKey": key}).json()["items"]) == 2
    done = api("GET", "/jobRuns", params={"jobKey": key, "status": "SUCCESS"}).json()["items"]
    assert [r["key"] for r in done] == [r1["key"]]
    assert api("GET", "/jobRuns", params={"status": "TIMED_OUT"}).status_code == 400
    assert len(api("GET", "/recentJobRuns", params={"jobKey": key}).json()["items"]) == 2
    assert api("GET", "/recentJobRuns").status_code == 400
    with_summaries = api(
        "GET", f"/jobRuns/{r1['key']}", params={"shouldIncludeTaskRunSummaries": "true"}
    ).json()
    assert list(with_summaries["taskRunSummaryMap"]) == [r1["taskToTaskRunMap"]["a"]]


def test_task_retries(emu: AIDPEmulator, api: Api) -> None:
    emu.script_task(task_key="flaky", outcome="FAILED", state_message="transient", times=2)
    key = api.create_job(
        tasks=[
            task("flaky", maxRetries=3, minRetryIntervalMillis=2000),
            task("never", maxRetries=1, path="/Workspace/fail_always.ipynb"),
        ]
    )
    run = api.run(key)
    emu.advance(60)
    final = api.get_run(run["key"])
    trs = {
        k: api("GET", f"/taskRuns/{v}", params={"shouldIncludeTaskRunRetries": "true"}).json()
        for k, v in final["taskToTaskRunMap"].items()
    }
    assert trs["flaky"]["state"]["status"] == "SUCCESS" and trs["flaky"]["retryAttempt"] == 2
    assert [r["state"]["status"] for r in trs["flaky"]["retries"]] == ["FAILED", "FAILED", "SUCCESS"]
    assert trs["never"]["state"]["status"] == "FAILED" and trs["never"]["retryAttempt"] == 1
    listed = api("GET", f"/taskRuns/{trs['flaky']['key']}/retries").json()["items"]
    assert [r["retryNumber"] for r in listed] == [0, 1, 2]
    # 3 s fail + 2 s wait + 3 s fail + 2 s wait + 3 s success
    assert trs["flaky"]["endTime"] - final["startTime"] == 13_000
    assert final["state"]["status"] == "FAILED"
    assert (
        api("PUT", f"/jobs/{key}", json={"name": "etl.job", "tasks": [task("a", maxRetries=11)]}).status_code
        == 400
    )


def test_queue_enabled_waits_instead_of_skipping(emu: AIDPEmulator, api: Api) -> None:
    key = api.create_job(tasks=[task("a")], queue={"isEnabled": True})
    first, second = api.run(key), api.run(key)
    assert second["state"]["status"] == "QUEUED"
    emu.advance(4)
    assert api.get_run(second["key"])["state"]["status"] == "QUEUED"  # first still running
    emu.advance(2)  # first ended at 5 s
    assert api.get_run(first["key"])["state"]["status"] == "SUCCESS"
    emu.advance(10)
    done = api.get_run(second["key"])
    assert done["state"]["status"] == "SUCCESS"
    assert done["startTime"] >= api.get_run(first["key"])["endTime"]


def test_job_timeout(emu: AIDPEmulator, api: Api) -> None:
    emu.script_task(task_key="long", duration=100)
    key = api.create_job(tasks=[task("long"), task("after", depends=["long"])], timeoutSeconds=20)
    run = api.run(key)
    emu.advance(21)  # 2 s pending+queued, 19 s into the 20 s budget
    assert api.get_run(run["key"])["state"]["status"] == "RUNNING"
    emu.advance(5)
    final = api.get_run(run["key"])
    assert final["state"]["status"] == "TIMED_OUT" and final["state"]["isUserCanceledOrTimedOut"] is True
    assert final["endTime"] - final["startTime"] == 20_000
    assert api.task_statuses(run["key"]) == {"long": "TIMED_OUT", "after": "UPSTREAM_CANCELED"}


def test_job_task_runs_a_nested_job(emu: AIDPEmulator, api: Api) -> None:
    child_key = api.create_job(name="child.job", tasks=[task("inner")], maxConcurrentRuns=5)
    parent_key = api.create_job(
        name="parent.job",
        tasks=[
            {
                "type": "JOB_TASK",
                "taskKey": "nested",
                "runIf": "ALL_SUCCESS",
                "jobKey": child_key,
                "dependsOn": [],
            },
            task("after", depends=["nested"]),
        ],
    )
    run = api.run(parent_key)
    emu.advance(4)  # parent running (t0 = 2 s), child pending/queued
    runs = api("GET", "/jobRuns", params={"jobKey": child_key}).json()["items"]
    assert len(runs) == 1
    child = api.get_run(runs[0]["key"])
    assert child["parentJobRunKey"] == run["key"] and child["rootJobRunKey"] == run["key"]
    assert child["parentTaskRunKey"] == run["taskToTaskRunMap"]["nested"]
    assert api.task_statuses(run["key"])["nested"] == "RUNNING"
    emu.advance(30)
    assert api.get_run(child["key"])["state"]["status"] == "SUCCESS"
    assert api.task_statuses(run["key"]) == {"nested": "SUCCESS", "after": "SUCCESS"}
    # a failing child fails the JOB_TASK; an unknown job key fails it at once
    emu.script_task(task_key="inner", outcome="FAILED")
    failed = api.run(parent_key)
    emu.advance(30)
    assert api.task_statuses(failed["key"]) == {"nested": "FAILED", "after": "UPSTREAM_FAILED"}
    assert api("DELETE", f"/jobs/{child_key}").status_code == 204
    orphan = api.run(parent_key)
    emu.advance(30)
    tr = api("GET", f"/taskRuns/{orphan['taskToTaskRunMap']['nested']}").json()
    assert tr["state"]["status"] == "FAILED" and "not found" in tr["state"]["stateMessage"]


def test_self_nesting_is_bounded(emu: AIDPEmulator, api: Api) -> None:
    key = api.create_job(name="loop.job", maxConcurrentRuns=100)
    body = {
        "name": "loop.job",
        "maxConcurrentRuns": 100,
        "tasks": [{"type": "JOB_TASK", "taskKey": "me", "runIf": "ALL_SUCCESS", "jobKey": key}],
    }
    assert api("PUT", f"/jobs/{key}", json=body).status_code == 200
    run = api.run(key)
    emu.advance(3600)
    assert api.get_run(run["key"])["state"]["status"] == "FAILED"
    assert len(api("GET", "/jobRuns", params={"jobKey": key}).json()["items"]) == 6
