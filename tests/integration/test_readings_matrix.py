"""The main flows under every reading of the service the emulator can play, on both API surfaces.

Only the field notes were verified live; where they and Oracle's SDK leave a behaviour open, the
emulator plays each plausible reading (docs/emulator.md). Every test here runs once per
(reading, surface): upsert twice, run by job_name + job_path, a failing run's diagnostics,
repair_on_retry, the sensor and a deferred run, a workflow task group's failure and Clear = repair,
cancelling a job's runs, and the run-events
trigger watching one job while another runs (both list runs and must not trust the server's
``jobKey`` filter; the service lists runs alike on both surfaces, so these two run on one).
One in-process emulator serves the module with a fast clock; dag.test() is used where Airflow
itself is part of the flow (retries, deferral, XCom templating).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_aidp import compat
from airflow_provider_aidp.emulator import AIDPEmulator, Readings
from airflow_provider_aidp.emulator.validation import GA, LA
from airflow_provider_aidp.exceptions import AIDPJobRunError, AIDPRunTimeoutError
from airflow_provider_aidp.hooks.aidp import AIDPHook
from airflow_provider_aidp.operators.aidp import AIDPCancelJobRunOperator, AIDPRunJobOperator
from airflow_provider_aidp.sensors.aidp import AIDPJobRunSensor
from airflow_provider_aidp.triggers.run_events import AIDPJobRunEventTrigger
from tests.integration.aidp_run_support import FakeTI, build_dag, execute, run_dag, xcoms
from tests.integration.run_events_support import FAST, FakeAssetState, Watcher, settle
from tests.integration.workflow_support import chain_group, clear_and_resume

#: Seconds a created job, run or task run stays unreadable (read_after_create_lag) or unlisted
#: (listing_lag) in the consistency rows: longer than the flows' first polls, far below the grace.
LAG = 1.0
#: (id, readings) -- the default first, then one alternative reading at a time.
READINGS: list[tuple[str, dict[str, Any]]] = [
    ("default", {}),
    ("path=folder_and_name", {"path_filter": "folder_and_name"}),
    ("path=ignored", {"path_filter": "ignored"}),
    ("name=contains", {"name_filter": "contains"}),
    ("name=case_insensitive+path=ignored", {"name_filter": "case_insensitive", "path_filter": "ignored"}),
    ("name=ignored", {"name_filter": "ignored"}),
    ("job_list=key_and_name+path=ignored", {"job_list_fields": "key_and_name", "path_filter": "ignored"}),
    (
        "cancel=accepted+run_filters=job_key_required",
        {"cancel_answer": "accepted", "run_list_filters": "job_key_required"},
    ),
    ("filled_defaults", {"fill_defaults": True}),
    # Output formats and the run listing's window (run-event trigger): orthogonal, one row each.
    ("output=text+time_filter=ignored", {"output_format": "text", "time_filter": "ignored"}),
    ("output=html+run_sort=ignored", {"output_format": "html", "run_sort": "ignored"}),
    ("no_task_run_listing", {"no_task_run_listing": "all"}),
    ("listing=latest_only", {"listed_attempts": "latest"}),
    ("loose_types", {"loose_types": True}),
    ("unknown_statuses", {"unknown_statuses": True}),
    ("retry_tokens_ignored", {"retry_tokens": "ignored"}),
    # Orthogonal readings share a row (each touches other flows) to keep the matrix's cost down.
    (
        "update=no_content+repair_fields=no_repair_key",
        {"update_answer": "no_content", "repair_fields": "no_repair_key"},
    ),
    ("no_cancel_job_runs+repair_fields=none", {"no_cancel_job_runs": "all", "repair_fields": "none"}),
    # GET /jobRuns/{key}'s taskRunSummaryMap: when it comes, how it is keyed and shaped.
    (
        "summaries=never+no_listing_on_20240831",
        {"task_run_summaries": "never", "no_task_run_listing": "20240831"},
    ),
    ("summaries=by_task_key", {"task_run_summaries": "by_task_key"}),
    ("summaries=flat", {"task_run_summaries": "flat"}),
    # GET /jobRuns filters and page sizes (two readings per row, as test_trigger_sweep.py does).
    ("run_filters=ignored", {"run_list_filters": "ignored"}),
    (
        "run_filters=first_values_only+summaries=default_on",
        {"run_list_filters": "first_values_only", "task_run_summaries": "default_on"},
    ),
    (
        "run_filters=job_key_ignored+page=max100_reject",
        {"run_list_filters": "job_key_ignored", "page_size": "max100_reject"},
    ),
    (
        "run_filters=status_ignored+page=max100_clamp",
        {"run_list_filters": "status_ignored", "page_size": "max100_clamp"},
    ),
    # Eventual consistency (real seconds): reads by key and listings lag behind creates; names taken.
    ("read_lag+unique_names=folder", {"read_after_create_lag": LAG, "unique_names": "folder"}),
    ("listing_lag+unique_names=workspace", {"listing_lag": LAG, "unique_names": "workspace"}),
]
FOLDER = "/Workspace/Shared"
TASKS = ("extract", "transform", "load")
#: Longer than the failure message's trace head: the error line comes from the output / trace tail.
LONG_TRACE = (
    "Traceback (most recent call last):\n"
    + "".join(f'  File "cell {i}", line {i}, in step_{i}\n' for i in range(60))
    + "ValueError: bad rows in orders"
)


@pytest.fixture(scope="module")
def shared(airflow_db: Any) -> Iterator[tuple[AIDPEmulator, dict[str, str]]]:
    with AIDPEmulator(time_scale=100.0) as server:
        creds = server.generate_api_key()
        conns = {}
        for version in (GA, LA):
            conn = json.loads(server.connection_json(creds, api_version=version))
            conn["extra"]["max_retries"] = 1
            conns[version] = json.dumps(conn)
        yield server, conns


@pytest.fixture(params=[GA, LA])
def surface(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=[r for _, r in READINGS], ids=[i for i, _ in READINGS])
def emu(
    request: pytest.FixtureRequest,
    shared: tuple[AIDPEmulator, dict[str, str]],
    surface: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[AIDPEmulator]:
    server, conns = shared
    server.set_readings(Readings.from_dict(request.param))
    server.state.scripts.clear()
    monkeypatch.setenv("AIRFLOW_CONN_AIDP_DEFAULT", conns[surface])
    yield server
    server.set_readings(Readings())


def spec(name: str, **extra: Any) -> dict[str, Any]:
    """A three-task notebook job as a DAG author writes it (source, runIf, cluster name left out)."""
    return {
        "name": name,
        "path": FOLDER,
        "jobClusters": [{"clusterKey": "ck1", "clusterName": "demo_cluster"}],
        "tasks": [
            {
                "type": "NOTEBOOK_TASK",
                "taskKey": key,
                "cluster": {"clusterKey": "ck1"},
                "notebookPath": f"{FOLDER}/{key}.ipynb",
                "dependsOn": list(TASKS[:i][-1:]),
            }
            for i, key in enumerate(TASKS)
        ],
        **extra,
    }


def start(job_key: str) -> str:
    """A run started by a test's own hook call (set-up): the job may have been created a moment ago,
    which the caller says (created_at), as the operators do for the jobs they are handed."""
    return AIDPHook().create_job_run(job_key, created_at=time.time()).key


def status_of(emu: AIDPEmulator, run_key: str) -> str:
    """A run's status as the service holds it (not through a read that may lag)."""
    return str(next(r["state"]["status"] for r in emu.runs() if r["key"] == run_key))


def new_job(emu: AIDPEmulator, **extra: Any) -> tuple[str, str]:
    name = f"m_{uuid.uuid4().hex[:10]}"
    return name, str(AIDPHook().upsert_job(spec(name, **extra)).job_key)


def summary_tasks(summary: dict[str, Any]) -> dict[str, str]:
    """task key -> status, asserting each task appears once."""
    keys = [t["task_key"] for t in summary["tasks"]]
    assert sorted(keys) == sorted(TASKS), summary
    return {t["task_key"]: t["status"] for t in summary["tasks"]}


def test_upsert_twice_leaves_one_job_and_sends_no_second_put(emu: AIDPEmulator) -> None:
    hook = AIDPHook()
    name = f"m_{uuid.uuid4().hex[:10]}"
    if emu.readings.unique_names != "workspace":  # there, a second job of that name cannot exist
        hook.create_job({"name": name, "path": "/Workspace/Other", "maxConcurrentRuns": 1})  # same name
    first = hook.upsert_job(spec(name))
    mark = emu.requests[-1].seq
    second = hook.upsert_job(spec(name))
    if emu.readings.listing_lag:  # a dry run cannot create to find out: it needs the job listed
        time.sleep(emu.readings.listing_lag)
    dry = hook.upsert_job(spec(name), dry_run=True)
    writes = [r for r in emu.requests if r.seq > mark and r.method != "GET"]
    assert first.action == "created" and second.action == dry.action == "unchanged"
    if emu.readings.listing_lag and writes:  # the job was not listed yet: its create was replayed
        assert [(r.method, r.path) for r in writes] == [("POST", writes[0].path)], writes
        assert writes[0].path.endswith("/jobs") and writes[0].status in (200, 201)
        writes = []
    assert second.job_key == first.job_key and writes == [] and dry.diff == ""
    mine = [j for j in emu.jobs() if j["name"] == name and j.get("path") == FOLDER]
    assert len(mine) == 1 and mine[0]["tasks"][0]["source"] == "WORKSPACE"
    assert mine[0]["tasks"][0]["cluster"] == {"clusterKey": "ck1", "clusterName": "demo_cluster"}
    slash = hook.upsert_job({**spec(name), "path": FOLDER + "/"}, dry_run=True)  # the same folder
    assert (slash.action, slash.job_key) == ("unchanged", first.job_key)
    changed = hook.upsert_job(spec(name, description="nightly"), dry_run=True)
    edits = [x for x in changed.diff.splitlines() if x[:1] in "+-" and x[:3] not in ("+++", "---")]
    assert changed.action == "updated" and edits == ['+  "description": "nightly",']


def test_run_by_name_costs_one_post_the_polls_and_one_get(emu: AIDPEmulator) -> None:
    name, job_key = new_job(emu)
    for decoy in (f"{name}_backfill", name.upper()):  # what a loose displayName filter also returns
        AIDPHook().create_job({"name": decoy, "path": FOLDER, "maxConcurrentRuns": 1})
    mark = emu.requests[-1].seq
    op = AIDPRunJobOperator(task_id="t", job_name=name, job_path=FOLDER, poll_interval=0.1)
    result, ti, _ = execute(op)
    assert result == ti.xcoms["run_key"] and ti.xcoms["job_key"] == job_key, result
    lagging = bool(emu.readings.read_after_create_lag)  # a 404 there is "not visible yet", asked again
    after = [r for r in emu.requests if r.seq > mark and not (lagging and r.status == 404)]
    post_at = [i for i, r in enumerate(after) if r.method == "POST"]
    assert len(post_at) == 1 and after[post_at[0]].path.endswith("/jobRuns")
    rest = after[post_at[0] + 1 :]
    polls = [r for r in rest if r.path.endswith(f"/jobRuns/{result}")]
    task_reads = [r for r in rest if r not in polls]
    assert all(r.method == "GET" for r in rest), rest
    assert sum("shouldIncludeTaskRunSummaries" in r.query for r in polls) <= 1
    if emu.readings.task_run_summaries == "never":  # the run names its task runs but not their states
        listing = [r for r in task_reads if r.path.endswith("/taskRuns")]
        assert all("/taskRuns" in r.path for r in task_reads) and len(listing) == 1, task_reads
        assert len(task_reads) == 1 or len(task_reads) == 1 + len(TASKS), task_reads  # listing, else each
    else:
        assert not task_reads and not any("/taskRuns" in r.path for r in after), task_reads
    assert set(summary_tasks(ti.xcoms["run_summary"]).values()) == {"SUCCESS"}


def test_a_run_past_its_timeout_is_cancelled_and_the_cancel_operator_sees_a_run_end(
    emu: AIDPEmulator,
) -> None:
    (name, job_key), (other_name, other_key) = new_job(emu), new_job(emu)
    for job in (name, other_name):
        emu.script_task(job_name=job, task_key="extract", duration=3600)
    op = AIDPRunJobOperator(task_id="t", job_key=job_key, poll_interval=0.1, timeout=0.5)
    result, ti, _ = execute(op)
    assert isinstance(result, AIDPRunTimeoutError) and result.canceled, result
    second = start(other_key)
    cancel = AIDPCancelJobRunOperator(
        task_id="c", run_key=second, wait_for_termination=True, poll_interval=0.1
    )
    assert execute(cancel)[0] == [second]
    assert status_of(emu, ti.xcoms["run_key"]) == status_of(emu, second) == "CANCELED"


def test_failing_run_names_each_failed_task_once_with_its_error_and_logs_its_output(
    emu: AIDPEmulator,
) -> None:
    name, job_key = new_job(emu)
    emu.script_task(
        job_name=name,
        task_key="transform",
        outcome="FAILED",
        state_message="transform failed",
        error_trace=LONG_TRACE,
        output="rows read: 10",
    )
    result, ti, lines = execute(AIDPRunJobOperator(task_id="t", job_key=job_key, poll_interval=0.1))
    assert isinstance(result, AIDPJobRunError), result
    message = str(result)
    assert message.count("- task transform FAILED: transform failed") == 1
    assert message.count("- task ") == 1 and "ValueError: bad rows in orders" in message
    (output,) = [line for line in lines if line.startswith("Output of AIDP task transform")]
    assert "rows read: 10" in output and "ValueError: bad rows in orders" in output
    assert '"cells"' not in output and "\x1b[" not in output and "<pre>" not in output
    assert summary_tasks(ti.xcoms["run_summary"]) == {
        "extract": "SUCCESS",
        "transform": "FAILED",
        "load": "UPSTREAM_FAILED",
    }


@pytest.mark.parametrize(
    ("encoding", "fmt"),
    [("base64", "notebook"), ("gzip", "notebook"), ("deflate", "text"), ("bzip2", "html")],
)
def test_task_output_reads_the_same_in_every_encoding(
    shared: tuple[AIDPEmulator, dict[str, str]], monkeypatch: pytest.MonkeyPatch, encoding: str, fmt: str
) -> None:
    """``fetchOutput`` values may come base64-encoded and compressed (SDK ``isBase64``, ``compression``):
    the log shows the same text as for a plain value, and the failure message the same error."""
    emu, conns = shared
    monkeypatch.setenv("AIRFLOW_CONN_AIDP_DEFAULT", conns[GA])

    def failing_output(output_encoding: str) -> tuple[str, str]:
        emu.set_readings(Readings(output_format=fmt, output_encoding=output_encoding))
        name, job_key = new_job(emu)
        emu.script_task(
            job_name=name, task_key="extract", outcome="FAILED", error_trace=LONG_TRACE, output="rows: 7"
        )
        result, _, lines = execute(AIDPRunJobOperator(task_id="t", job_key=job_key, poll_interval=0.1))
        (output,) = [line for line in lines if line.startswith("Output of AIDP task extract")]
        body = str(result).splitlines()[1:-1]  # the message without the lines naming run and URL
        return output, "\n".join(body)

    try:
        plain, encoded = failing_output("plain"), failing_output(encoding)
    finally:
        emu.set_readings(Readings())
    assert encoded == plain and "rows: 7" in plain[0] and "ValueError: bad rows in orders" in plain[1]
    requests = [r for r in emu.requests if r.path.endswith("/actions/fetchOutput")]
    assert requests[-1].status == 200


def test_repair_on_retry_sensor_and_deferred_run_through_dag_test(emu: AIDPEmulator) -> None:
    name, job_key = new_job(emu)
    _, other_key = new_job(emu)
    # try 1: extract fails; try 2 repairs extract, then transform fails; try 3 repairs transform only.
    # (A task run takes its script when created, so transform's first use goes to its not-run attempt.)
    emu.script_task(job_name=name, task_key="extract", outcome="FAILED", times=1)
    emu.script_task(job_name=name, task_key="transform", outcome="FAILED", times=2)
    mark = emu.requests[-1].seq
    dag = build_dag(
        lambda: (
            AIDPRunJobOperator(
                task_id="repairing",
                job_key=job_key,
                poll_interval=0.1,
                retries=2,
                retry_delay=0,
                repair_on_retry=True,
            )
            >> AIDPJobRunSensor(
                task_id="sensor",
                run_key="{{ ti.xcom_pull(task_ids='repairing', key='run_key') }}",
                poke_interval=0.1,
            )
        ),
        lambda: AIDPRunJobOperator(task_id="deferred", job_key=other_key, poll_interval=0.1, deferrable=True),
    )
    states, run_id = run_dag(dag)
    assert states == {"repairing": "success", "sensor": "success", "deferred": "success"}
    runs = [r for r in emu.find_requests("POST", path="*/jobRuns") if r.seq > mark]
    posted = sorted(r.json()["jobKey"] for r in runs)
    if compat.HAS_TASK_STATE_STORE:  # a retry reattaches from the stored run key: no second POST
        assert posted == sorted([job_key, other_key])
    else:  # < 3.3: each retry re-POSTs with the same opc-retry-token and gets the same run back
        assert sorted(set(posted)) == sorted([job_key, other_key])
        assert len({r.headers["opc-retry-token"] for r in runs if r.json()["jobKey"] == job_key}) == 1
    repairs = [r for r in emu.find_requests("POST", path="*/actions/repair") if r.seq > mark]
    repaired = [[t["taskKey"] for t in r.json()["repairTasks"]] for r in repairs]
    if compat.HAS_TASK_STATE_STORE or emu.readings.retry_tokens == "honoured":
        assert repaired == [["extract"], ["transform"]]
    else:  # < 3.3 and tokens ignored: nothing remembers the failed run, each retry starts a new one
        assert repaired == [] and posted.count(job_key) == 3  # README "Running and waiting" says so
    for task_id in ("repairing", "sensor", "deferred"):
        summary = xcoms(dag, run_id, task_id)["run_summary"]
        assert set(summary_tasks(summary).values()) == {"SUCCESS"}, (task_id, summary)


#: The readings a workflow task group's flow depends on beyond what the flows above cover: how task
#: runs are read (summaries, listings, attempts), repairs (fields, tokens), types, consistency.
WORKFLOW_READINGS = [
    (i, r)
    for i, r in READINGS
    if i == "default"
    or {
        "task_run_summaries",
        "no_task_run_listing",
        "listed_attempts",
        "repair_fields",
        "retry_tokens",
        "loose_types",
        "unknown_statuses",
        "read_after_create_lag",
        "listing_lag",
    }
    & set(r)
]


#: On the GA surface each; on LA too where the surface changes what is sent or read (dependsOn as
#: plain keys in the job, no task-run listing there).
WORKFLOW_CASES = [(i, r, GA) for i, r in WORKFLOW_READINGS] + [
    (i, r, LA) for i, r in WORKFLOW_READINGS if i in ("default", "summaries=never+no_listing_on_20240831")
]


@pytest.mark.parametrize(
    ("emu", "surface"),
    [(r, s) for _, r, s in WORKFLOW_CASES],
    ids=[f"{i}-{s}" for i, _, s in WORKFLOW_CASES],
    indirect=True,
)
def test_workflow_group_fails_then_a_clear_repairs_the_same_run(emu: AIDPEmulator) -> None:
    """A workflow task group reads task runs (summaries, listings, attempts) and repairs by token:
    the middle task fails, a Clear with its downstream repairs both in the one run."""
    name = f"m_{uuid.uuid4().hex[:10]}"
    emu.script_task(job_name=name, task_key="transform", outcome="FAILED", times=1)
    dag = build_dag(chain_group(name, keys=TASKS))
    states, run_id = run_dag(dag)
    assert (states["etl.transform"], states["etl.load"]) == ("failed", "upstream_failed"), states
    (run,) = [r for r in emu.runs() if r.get("jobName") == name]
    states = clear_and_resume(dag, run_id, ["etl.transform"], downstream=True)
    assert set(states.values()) == {"success"}, states
    assert [r["key"] for r in emu.runs() if r.get("jobName") == name] == [run["key"]]
    assert len(emu.find_requests("POST", path=f"*/jobRuns/{run['key']}/actions/repair")) == 1
    assert status_of(emu, run["key"]) == "SUCCESS"


#: Run listings read the same on both surfaces: the two listing flows below run once per reading.
LISTING_SURFACE = pytest.mark.parametrize("surface", [GA], indirect=True)


@LISTING_SURFACE
def test_cancel_by_job_cancels_and_waits_for_that_jobs_runs_only(emu: AIDPEmulator) -> None:
    name, job_key = new_job(emu, maxConcurrentRuns=2)
    other_name, other_key = new_job(emu)
    for job in (name, other_name):
        emu.script_task(job_name=job, task_key="extract", duration=1000)
    hook = AIDPHook()
    mine = {start(job_key) for _ in range(2)}
    other = start(other_key)
    if emu.readings.listing_lag:  # a lagging listing cannot name runs it does not show yet
        time.sleep(emu.readings.listing_lag)
    try:
        op = AIDPCancelJobRunOperator(
            task_id="c", job_key=job_key, wait_for_termination=True, poll_interval=0.1, timeout=5
        )
        result, _, _ = execute(op)
        assert not isinstance(result, Exception), result  # e.g. a timeout waiting for the other run
        assert sorted(result) == sorted(mine), result  # not the other job's run
        assert {status_of(emu, k) for k in mine} == {"CANCELED"}
        assert status_of(emu, other) == "RUNNING"
    finally:
        hook.cancel_job_run(other, created_at=time.time())


@LISTING_SURFACE
async def test_run_events_trigger_reports_the_watched_jobs_runs_only(emu: AIDPEmulator) -> None:
    name, job_key = new_job(emu)
    _, other_key = new_job(emu)
    state = FakeAssetState()
    # Two statuses: a server that reads one value of a repeated ``status`` must not hide SUCCESS.
    trigger = AIDPJobRunEventTrigger(job_names=[name], folder=FOLDER, statuses=["SUCCESS", "FAILED"], **FAST)
    watcher = Watcher(trigger, state)
    try:
        await settle(state, 1)  # baselined
        other = await asyncio.to_thread(start, other_key)
        await asyncio.sleep(0.1)  # the other job's run ends first: reported first if it leaks
        mine = await asyncio.to_thread(start, job_key)
        event = await watcher.next()
        assert (event["run_key"], event["job_key"]) == (mine, job_key), (event, other)
        assert await watcher.quiet(0.3) == []
    finally:
        await watcher.stop()


@pytest.mark.parametrize("surface", [GA], indirect=True)
@pytest.mark.parametrize("tokens", ["honoured", "ignored"])
def test_crash_between_post_and_saving_the_key_without_a_state_store(
    shared: tuple[AIDPEmulator, dict[str, str]], surface: str, tokens: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Airflow < 3.3 has no task_state_store: only the retry token links a retry to the lost run.

    A service that ignores retry tokens therefore starts a second run (with maxConcurrentRuns 1
    the service SKIPs it instead and the retry fails); README says so.
    """
    emu, conns = shared
    monkeypatch.setenv("AIRFLOW_CONN_AIDP_DEFAULT", conns[surface])
    emu.set_readings(Readings(retry_tokens=tokens))
    try:
        _, job_key = new_job(emu, maxConcurrentRuns=2)
        op = AIDPRunJobOperator(task_id="t", job_key=job_key, wait_for_completion=False, retries=1)
        first_try = FakeTI(op)
        op.execute({"ti": first_try})  # type: ignore[arg-type]  # ... and the worker dies here
        retry = FakeTI(op, try_number=2)
        retry.run_id = first_try.run_id  # the same task instance, retried
        op.execute({"ti": retry})  # type: ignore[arg-type]
        runs = [r for r in emu.runs() if r["jobKey"] == job_key]
        assert len(runs) == (1 if tokens == "honoured" else 2)
        assert (retry.xcoms["run_key"] == first_try.xcoms["run_key"]) == (tokens == "honoured")
    finally:
        emu.set_readings(Readings())
