"""AIDPWorkflowTaskGroup through real Airflow (``dag.test()``) against the emulator.

A group's success and failure DAGs (deferred and polling), the job it upserts (idempotent across DAG
runs), the launch's exactly-once start (a worker crash after its POST), and Clear = repair: a cleared
failed task (with or without its downstream) and a retried one repair the SAME AIDP run with one
request; a cleared launch starts a new run.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_aidp.emulator import AIDPEmulator
from airflow_provider_aidp.operators.workflow import (
    AIDPNotebookTaskOperator,
    AIDPTaskOperator,
    AIDPWorkflowTaskGroup,
    _AIDPWorkflowLaunchOperator,
)
from airflow_provider_aidp.runs.identity import TaskIdentity
from tests.integration.aidp_run_support import (
    LOGICAL_DATE,
    TIME_SCALE,
    build_dag,
    register_dag,
    run_dag,
    scrubbed,
    task_states,
    xcoms,
)
from tests.integration.workflow_support import (
    CLUSTERS,
    FOLDER,
    chain_group,
    clear_and_resume,
    job_key_of,
    job_name,
    repairs,
    requests,
    run_posts,
    runs_of_job,
    task_statuses,
)

IDS = ["etl.launch", "etl.extract", "etl.transform", "etl.load"]


@pytest.fixture(scope="module")
def shared_emu(airflow_db: Any) -> Iterator[AIDPEmulator]:
    with AIDPEmulator(time_scale=TIME_SCALE) as server, pytest.MonkeyPatch.context() as mp:
        creds = server.generate_api_key()
        conn = json.loads(server.connection_json(creds))
        conn["extra"]["max_retries"] = 1
        mp.setenv("AIRFLOW_CONN_AIDP_DEFAULT", json.dumps(conn))
        yield server


@pytest.fixture
def emu(shared_emu: AIDPEmulator) -> Iterator[AIDPEmulator]:
    yield from scrubbed(shared_emu)


def states(dag: Any, run_id: str) -> dict[str, str | None]:
    return task_states(dag.dag_id, run_id)


def failing_run(emu: AIDPEmulator, deferrable: bool = True, **task_args: Any) -> tuple[Any, str, str, str]:
    """A group of three whose middle task fails once: (dag, DAG run id, job name, AIDP run key)."""
    name = job_name()
    emu.script_task(
        job_name=name, task_key="transform", outcome="FAILED", error_trace="ValueError: bad rows", times=1
    )
    dag = build_dag(chain_group(name, deferrable=deferrable, **task_args))
    found, run_id = run_dag(dag)
    assert found == {
        "etl.launch": "success",
        "etl.extract": "success",
        "etl.transform": "failed",
        "etl.load": "upstream_failed",
    }
    (aidp_run,) = runs_of_job(emu, name)
    return dag, run_id, name, aidp_run["key"]


# --- one run, each task following its AIDP task -------------------------------------------------


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferred", "polling"])
def test_the_group_runs_as_one_aidp_run_and_each_task_follows_its_aidp_task(
    emu: AIDPEmulator, deferrable: bool
) -> None:
    name = job_name()
    dag = build_dag(chain_group(name, deferrable=deferrable))
    found, run_id = run_dag(dag)
    assert found == dict.fromkeys(IDS, "success")
    (aidp_run,) = runs_of_job(emu, name)
    assert aidp_run["state"]["status"] == "SUCCESS"
    job_key = job_key_of(emu, name)
    assert len(run_posts(emu, job_key)) == 1
    # the run's parameters came from the group's templated run_parameters
    assert aidp_run["parameters"] == [{"name": "day", "value": LOGICAL_DATE.strftime("%Y-%m-%d")}]
    launch = xcoms(dag, run_id, "etl.launch")
    assert launch["run_key"] == aidp_run["key"] and launch["job_key"] == job_key
    load = xcoms(dag, run_id, "etl.load")
    assert load["task_run"]["task_key"] == "load" and load["task_run"]["status"] == "SUCCESS"
    assert load["task_run"]["task_run_key"] == aidp_run["taskToTaskRunMap"]["load"]
    assert load["run_url"] == launch["run_url"] and load["return_value"] == load["task_run"]


def test_the_failed_task_fails_with_its_diagnostics_and_its_downstream_is_upstream_failed(
    emu: AIDPEmulator,
) -> None:
    dag, run_id, _, run_key = failing_run(emu)
    assert task_statuses(emu, run_key) == {
        "extract": "SUCCESS",
        "transform": "FAILED",
        "load": "UPSTREAM_FAILED",
    }
    summary = xcoms(dag, run_id, "etl.transform")["task_run"]
    assert summary["status"] == "FAILED" and summary["run_key"] == run_key
    assert not repairs(emu, run_key)


def test_a_second_dag_run_changes_nothing_in_the_job(emu: AIDPEmulator) -> None:
    name = job_name()
    factory = chain_group(name)
    dag = build_dag(factory)
    assert run_dag(dag)[0] == dict.fromkeys(IDS, "success")
    job_key = job_key_of(emu, name)
    puts_before = len(requests(emu, "PUT", f"/jobs/{job_key}"))
    register_dag(dag)
    next_day = LOGICAL_DATE + dt.timedelta(days=1)
    second = dag.test(logical_date=next_day, run_after=next_day)
    assert states(dag, second.run_id) == dict.fromkeys(IDS, "success")
    assert len(requests(emu, "PUT", f"/jobs/{job_key}")) == puts_before == 1  # the create's PUT only
    assert len(requests(emu, "POST", "/jobs")) >= 1 and job_key_of(emu, name) == job_key
    assert len(runs_of_job(emu, name)) == 2  # one run per DAG run


def test_a_worker_crash_after_the_launchs_post_reattaches_to_the_one_run(
    emu: AIDPEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = _AIDPWorkflowLaunchOperator._start_or_reattach

    def crash_on_first_try(self: Any, context: Any, *args: Any) -> Any:
        run = original(self, context, *args)
        if context["ti"].try_number == 1:
            raise RuntimeError("simulated worker crash between POST /jobRuns and storing the run key")
        return run

    monkeypatch.setattr(_AIDPWorkflowLaunchOperator, "_start_or_reattach", crash_on_first_try)
    name = job_name()

    def build() -> None:
        with AIDPWorkflowTaskGroup(
            group_id="etl",
            job_name=name,
            job_path=FOLDER,
            job_clusters=CLUSTERS,
            launch_kwargs={"retries": 1, "retry_delay": 0},
        ):
            AIDPNotebookTaskOperator(
                task_id="only", notebook_path=f"{FOLDER}/a.ipynb", cluster_key="wf", poke_interval=0.2
            )

    dag = build_dag(build)
    found, run_id = run_dag(dag)
    assert found == {"etl.launch": "success", "etl.only": "success"}
    posts = run_posts(emu, job_key_of(emu, name))
    assert len(posts) == 2 and len({p.headers["opc-retry-token"] for p in posts}) == 1
    assert posts[0].headers["opc-retry-token"] == TaskIdentity(dag.dag_id, run_id, "etl.launch").retry_token()
    assert len(runs_of_job(emu, name)) == 1


# --- Clear = repair ------------------------------------------------------------------------------


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferred", "polling"])
def test_clearing_the_failed_task_with_its_downstream_repairs_the_same_run_once(
    emu: AIDPEmulator, deferrable: bool
) -> None:
    dag, run_id, name, run_key = failing_run(emu, deferrable)
    found = clear_and_resume(dag, run_id, ["etl.transform"], downstream=True)
    assert found == dict.fromkeys(IDS, "success")
    (repair,) = repairs(emu, run_key)  # one repair request...
    assert repair.json()["repairTasks"] == [
        {"taskKey": "transform", "shouldIncludeDownstream": True, "shouldIncludeUpstream": False}
    ]
    assert len(runs_of_job(emu, name)) == 1  # ...in the same run, no second run
    assert len(run_posts(emu, job_key_of(emu, name))) == 1
    assert task_statuses(emu, run_key) == dict.fromkeys(("extract", "transform", "load"), "SUCCESS")
    # the repair's token is the group's, per run and repair generation
    assert repair.headers["opc-retry-token"] == TaskIdentity(dag.dag_id, run_id, "etl").retry_token(
        "repair", f"{run_key}#0"
    )
    # each task ended with the task run it followed: the repaired ones
    for key in ("transform", "load"):
        summary = xcoms(dag, run_id, f"etl.{key}")["task_run"]
        assert summary["status"] == "SUCCESS"
        assert summary["task_run_key"] == runs_of_job(emu, name)[0]["taskToTaskRunMap"][key]


def test_clearing_only_the_failed_task_repairs_only_it(emu: AIDPEmulator) -> None:
    dag, run_id, _, run_key = failing_run(emu)
    found = clear_and_resume(dag, run_id, ["etl.transform"], downstream=False)
    assert found["etl.transform"] == "success" and found["etl.load"] == "upstream_failed"
    (repair,) = repairs(emu, run_key)
    assert repair.json()["repairTasks"] == [
        {"taskKey": "transform", "shouldIncludeDownstream": False, "shouldIncludeUpstream": False}
    ]
    assert task_statuses(emu, run_key)["load"] == "UPSTREAM_FAILED"  # as Airflow shows it
    # clearing the downstream task later repairs it (its try was made after its task run ended)
    found = clear_and_resume(dag, run_id, ["etl.load"], downstream=False)
    assert found["etl.load"] == "success" and len(repairs(emu, run_key)) == 2


def test_a_repaired_task_that_fails_again_fails_and_a_second_clear_repairs_again(emu: AIDPEmulator) -> None:
    dag, run_id, name, run_key = failing_run(emu)
    emu.script_task(job_name=name, task_key="transform", outcome="FAILED", times=1)
    found = clear_and_resume(dag, run_id, ["etl.transform"], downstream=True)
    assert found["etl.transform"] == "failed" and found["etl.load"] == "upstream_failed"
    assert len(repairs(emu, run_key)) == 1
    found = clear_and_resume(dag, run_id, ["etl.transform"], downstream=True)
    assert found == dict.fromkeys(IDS, "success")
    tokens = [r.headers["opc-retry-token"] for r in repairs(emu, run_key)]
    assert len(tokens) == 2 and tokens[0] != tokens[1]  # one token per repair generation
    assert len(runs_of_job(emu, name)) == 1


def test_a_downstream_task_whose_repaired_task_run_fails_reports_it_without_repairing_again(
    emu: AIDPEmulator,
) -> None:
    dag, run_id, name, run_key = failing_run(emu)
    emu.script_task(job_name=name, task_key="load", outcome="FAILED", times=1)
    found = clear_and_resume(dag, run_id, ["etl.transform"], downstream=True)
    assert found["etl.transform"] == "success" and found["etl.load"] == "failed"
    assert len(repairs(emu, run_key)) == 1  # load followed the task run transform's repair made


def test_a_retry_repairs_instead_of_failing(emu: AIDPEmulator) -> None:
    name = job_name()
    emu.script_task(job_name=name, task_key="transform", outcome="FAILED", times=1)
    dag = build_dag(chain_group(name, retries=1, retry_delay=dt.timedelta(0)))
    found, _ = run_dag(dag)
    assert found == dict.fromkeys(IDS, "success")
    (aidp_run,) = runs_of_job(emu, name)
    (repair,) = repairs(emu, aidp_run["key"])
    assert repair.json()["repairTasks"][0]["shouldIncludeDownstream"] is True  # load was waiting on it


def test_clearing_the_launch_starts_a_new_run_on_purpose(emu: AIDPEmulator) -> None:
    dag, run_id, name, run_key = failing_run(emu)
    found = clear_and_resume(dag, run_id, ["etl.launch"], downstream=True)
    assert found == dict.fromkeys(IDS, "success")
    runs = runs_of_job(emu, name)
    assert len(runs) == 2 and not repairs(emu, run_key)
    assert xcoms(dag, run_id, "etl.launch")["run_key"] != run_key


def test_two_failed_siblings_cleared_together_repair_one_after_the_other(emu: AIDPEmulator) -> None:
    name = job_name()
    for key in ("left", "right"):
        emu.script_task(job_name=name, task_key=key, outcome="FAILED", times=1)

    def build() -> None:
        with AIDPWorkflowTaskGroup(group_id="etl", job_name=name, job_path=FOLDER, job_clusters=CLUSTERS):
            ops = {
                key: AIDPNotebookTaskOperator(
                    task_id=key, notebook_path=f"{FOLDER}/{key}.ipynb", cluster_key="wf", poke_interval=0.2
                )
                for key in ("start", "left", "right", "join")
            }
            ops["start"] >> [ops["left"], ops["right"]] >> ops["join"]

    dag = build_dag(build)
    found, run_id = run_dag(dag)
    assert (found["etl.left"], found["etl.right"], found["etl.join"]) == (
        "failed",
        "failed",
        "upstream_failed",
    )
    (aidp_run,) = runs_of_job(emu, name)
    found = clear_and_resume(dag, run_id, ["etl.left", "etl.right"], downstream=True)
    assert set(found.values()) == {"success"}
    sent = repairs(emu, aidp_run["key"])
    assert len(sent) == 2 and len({r.headers["opc-retry-token"] for r in sent}) == 2
    assert len(runs_of_job(emu, name)) == 1


# --- other task types, and AIDP's not-run statuses ------------------------------------------------


def test_any_task_type_and_a_skipped_aidp_task_is_a_skipped_airflow_task(emu: AIDPEmulator) -> None:
    name = job_name()
    emu.script_task(job_name=name, task_key="maybe", outcome="SKIPPED")

    def build() -> None:
        with AIDPWorkflowTaskGroup(group_id="etl", job_name=name, job_path=FOLDER, job_clusters=CLUSTERS):
            jar = AIDPTaskOperator(
                task_id="jar",
                task_config={
                    "type": "JAR_TASK",
                    "main_class": "com.example.Main",
                    "cluster": {"cluster_key": "wf"},
                },
                poke_interval=0.2,
            )
            maybe = AIDPNotebookTaskOperator(
                task_id="maybe", notebook_path=f"{FOLDER}/m.ipynb", cluster_key="wf", poke_interval=0.2
            )
            after = AIDPNotebookTaskOperator(
                task_id="after", notebook_path=f"{FOLDER}/a.ipynb", cluster_key="wf", poke_interval=0.2
            )
            jar >> maybe >> after

    dag = build_dag(build)
    found, _ = run_dag(dag)
    assert found == {
        "etl.launch": "success",
        "etl.jar": "success",
        "etl.maybe": "skipped",
        "etl.after": "skipped",
    }
    (aidp_run,) = runs_of_job(emu, name)
    assert task_statuses(emu, aidp_run["key"]) == {"jar": "SUCCESS", "maybe": "SKIPPED", "after": "EXCLUDED"}


def test_reschedule_mode_follows_and_repairs_too(emu: AIDPEmulator) -> None:
    dag, run_id, name, run_key = failing_run(emu, deferrable=False, mode="reschedule")
    found = clear_and_resume(dag, run_id, ["etl.transform"], downstream=True)
    assert found == dict.fromkeys(IDS, "success")
    assert len(repairs(emu, run_key)) == 1 and len(runs_of_job(emu, name)) == 1
