"""THE proof: Oracle's own SDK (aidp-python-client) pointed at the emulator works end to end.

Every call goes through the SDK's signer, URL building and model deserialisation, so a response
shape the real service would not produce (or the SDK could not read) fails here.
"""

from __future__ import annotations

import json

import pytest

from airflow_provider_aidp.emulator import AIDPEmulator, ApiKeyCredentials

sdk = pytest.importorskip("aidp_python_client.aidataplatform_dp")
from aidp_python_client.aidataplatform_dp import models  # noqa: E402
from aidp_python_client.aidataplatform_dp.workflow_client import WorkflowClient  # noqa: E402

PLATFORM = "ocid1.aidataplatform.oc1.iad.emulator"
WS = "emulator_ws"


def _client(emu: AIDPEmulator, creds: ApiKeyCredentials) -> WorkflowClient:
    import oci

    return WorkflowClient(
        creds.oci_config(), service_endpoint=emu.url, retry_strategy=oci.retry.NoneRetryStrategy()
    )


def _notebook(key: str, depends: list[str] = (), path: str | None = None) -> models.NotebookTask:  # type: ignore[assignment]
    return models.NotebookTask(
        task_key=key,
        run_if="ALL_SUCCESS",
        notebook_path=path or f"/Workspace/Shared/{key}.ipynb",
        source="WORKSPACE",
        cluster=models.JobCluster(cluster_key="ck1", cluster_name="demo_cluster"),
        depends_on=[models.DependsOn(task_key=d) for d in depends],
    )


def test_sdk_full_lifecycle(emu: AIDPEmulator) -> None:
    creds = emu.generate_api_key(pass_phrase="s3cret-phrase")
    client = _client(emu, creds)

    # create (name-only), get, update (full replace with if-match), get again
    created = client.create_job(
        PLATFORM, WS, models.CreateJobDetails(name="sdk.job", path="/Workspace/Shared", max_concurrent_runs=1)
    )
    assert isinstance(created.data, models.Job)
    job_key = created.data.key
    got = client.get_job(PLATFORM, WS, job_key)
    assert got.data.name == "sdk.job" and got.headers["etag"]
    details = models.UpdateJobDetails(
        name="sdk.job",
        path="/Workspace/Shared",
        max_concurrent_runs=1,
        job_clusters=[models.JobCluster(cluster_key="ck1", cluster_name="demo_cluster")],
        tasks=[_notebook("extract"), _notebook("load_fail", ["extract"]), _notebook("report", ["extract"])],
    )
    updated = client.update_job(PLATFORM, WS, job_key, details, if_match=got.headers["etag"])
    assert isinstance(updated.data, models.Job)
    assert [type(t) for t in updated.data.tasks] == [models.NotebookTask] * 3
    assert updated.data.tasks[1].depends_on[0].task_key == "extract"

    # list across pages
    for i in range(4):
        client.create_job(PLATFORM, WS, models.CreateJobDetails(name=f"filler{i}.job"))
    first = client.list_jobs(PLATFORM, WS, limit=2)
    assert isinstance(first.data, models.JobCollection) and len(first.data.items) == 2
    assert first.has_next_page and first.headers["opc-total-items"] == "5"
    import oci

    everything = oci.pagination.list_call_get_all_results(client.list_jobs, PLATFORM, WS, limit=2).data
    assert sorted(j.name for j in everything) == sorted(["sdk.job"] + [f"filler{i}.job" for i in range(4)])
    assert all(isinstance(j, models.JobSummary) for j in everything)

    # run, poll, task runs, output
    run = client.create_job_run(
        PLATFORM,
        WS,
        models.CreateJobRunDetails(
            job_key=job_key, parameters=[models.Parameter(name="day", value="2026-01-01")]
        ),
    ).data
    assert isinstance(run, models.JobRun) and run.state.status == "PENDING"
    emu.advance(30)
    run = client.get_job_run(PLATFORM, WS, run.key, should_include_task_run_summaries=True).data
    assert run.state.status == "FAILED"  # load_fail follows the default "fail" convention
    assert set(run.task_to_task_run_map) == {"extract", "load_fail", "report"}
    task_runs = client.list_task_runs(PLATFORM, WS, run.key).data
    assert isinstance(task_runs, models.TaskRunCollection)
    statuses = {t.task_key: t.state.status for t in task_runs.items}
    assert statuses == {"extract": "SUCCESS", "load_fail": "FAILED", "report": "SUCCESS"}
    tr = client.get_task_run(PLATFORM, WS, run.task_to_task_run_map["extract"]).data
    assert isinstance(tr, models.TaskRun) and isinstance(tr.task, models.NotebookTask) and tr.output_key
    output = client.fetch_output(
        PLATFORM, WS, tr.key, models.FetchOutputDetails(output_key=tr.output_key)
    ).data
    assert isinstance(output, models.TaskRunOutput)
    # The default reading answers a notebook task with ipynb JSON (field notes: "NOTEBOOK payload").
    assert isinstance(output.data[0], models.RunOutputData) and output.data[0].type == "NOTEBOOK"
    assert "cells" in json.loads(output.data[0].value)
    exported = client.export_task_run_output(
        PLATFORM, WS, tr.key, tr.output_key, models.ExportTaskRunOutputDetails(format="HTML")
    ).data
    assert isinstance(exported, models.ExportedTaskRunOutputContents) and "<html>" in exported.content

    # repair the failed task (it succeeds the second time because we script it)
    emu.script_task(task_key="load_fail", outcome="SUCCESS")
    repaired = client.repair_job_run(
        PLATFORM,
        WS,
        run.key,
        models.RepairJobRunDetails(repair_tasks=[models.RepairTaskDetails(task_key="load_fail")]),
    ).data
    assert isinstance(repaired, models.JobRun) and repaired.repair_key == 1
    emu.advance(30)
    repaired = client.get_job_run(PLATFORM, WS, run.key).data
    assert repaired.state.status == "SUCCESS"
    assert [h.type for h in repaired.repair_history] == ["ORIGINAL", "REPAIR"]
    assert all(isinstance(h, models.RepairHistory) for h in repaired.repair_history)
    assert repaired.repaired_tasks == ["load_fail"]

    # cancel a second run
    emu.script_task(task_key="extract", duration=600)
    run2 = client.create_job_run(PLATFORM, WS, models.CreateJobRunDetails(job_key=job_key)).data
    emu.advance(5)
    canceled = client.cancel_job_run(PLATFORM, WS, run2.key).data
    assert isinstance(canceled, models.JobRun) and canceled.state.status == "CANCELING"
    emu.advance(5)
    run2 = client.get_job_run(PLATFORM, WS, run2.key).data
    assert run2.state.status == "CANCELED"
    runs = client.list_job_runs(PLATFORM, WS, job_key=[job_key]).data
    assert isinstance(runs, models.JobRunCollection) and {r.state.status for r in runs.items} == {
        "SUCCESS",
        "CANCELED",
    }
    assert isinstance(runs.items[0], models.JobRunSummary)
    client.cancel_job_runs(PLATFORM, WS, job_key)
    client.delete_job(PLATFORM, WS, job_key)
    with pytest.raises(oci.exceptions.ServiceError) as err:
        client.get_job(PLATFORM, WS, job_key)
    assert err.value.status == 404


def test_sdk_sees_401_with_an_unregistered_key(emu: AIDPEmulator) -> None:
    import oci

    from airflow_provider_aidp.emulator import generate_api_key

    client = _client(emu, generate_api_key())
    with pytest.raises(oci.exceptions.ServiceError) as err:
        client.list_jobs(PLATFORM, WS)
    assert err.value.status == 401 and err.value.code == "NotAuthenticated"


def test_sdk_reads_retries_recent_runs_and_la_shapes(emu: AIDPEmulator) -> None:
    creds = emu.generate_api_key()
    client = _client(emu, creds)
    job_key = client.create_job(PLATFORM, WS, models.CreateJobDetails(name="retry.job")).data.key
    flaky = _notebook("flaky")
    flaky.max_retries = 1
    client.update_job(PLATFORM, WS, job_key, models.UpdateJobDetails(name="retry.job", tasks=[flaky]))
    emu.script_task(task_key="flaky", outcome="FAILED", times=1)
    run = client.create_job_run(PLATFORM, WS, models.CreateJobRunDetails(job_key=job_key)).data
    emu.advance(60)
    tr_key = client.get_job_run(PLATFORM, WS, run.key).data.task_to_task_run_map["flaky"]
    tr = client.get_task_run(PLATFORM, WS, tr_key, should_include_task_run_retries=True).data
    assert tr.state.status == "SUCCESS" and tr.retry_attempt == 1
    assert all(isinstance(r, models.TaskRunRetry) for r in tr.retries) and len(tr.retries) == 2
    retries = client.list_task_run_retries(PLATFORM, WS, tr_key).data
    assert isinstance(retries, models.TaskRunRetryCollection) and len(retries.items) == 2
    assert isinstance(retries.items[0], models.TaskRunRetrySummary)
    recent = client.list_recent_job_runs(PLATFORM, WS, [job_key]).data
    assert isinstance(recent, models.JobRunCollection) and recent.items[0].key == run.key
    perms = client.list_job_permissions(PLATFORM, WS, job_key).data
    assert isinstance(perms, models.JobPermissionCollection)
