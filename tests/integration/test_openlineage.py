"""OpenLineage for AIDP runs through the real OpenLineage listener and its file transport.

Skipped when the ``openlineage`` extra is not installed (the import-cost test covers that case).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("airflow.providers.openlineage")

from airflow_provider_aidp.emulator import AIDPEmulator
from airflow_provider_aidp.emulator.connection import DEFAULT_PLATFORM_ID, DEFAULT_REGION
from airflow_provider_aidp.openlineage import namespace, run_id
from airflow_provider_aidp.operators.aidp import AIDPRepairJobRunOperator, AIDPRunJobOperator
from tests.integration.aidp_run_support import (
    TIME_SCALE,
    build_dag,
    create_job,
    notebook_task,
    run_dag,
    xcoms,
)

NS = namespace(DEFAULT_REGION, DEFAULT_PLATFORM_ID)


@pytest.fixture
def lineage_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Route the OpenLineage listener to a fresh file transport (one JSON event per line)."""
    from airflow.providers.openlineage import conf
    from airflow.providers.openlineage.plugins import listener

    out = tmp_path / "lineage.jsonl"
    transport = {"type": "file", "log_file_path": str(out), "append": True}
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__TRANSPORT", json.dumps(transport))
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__DISABLED", "false")
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__NAMESPACE", "airflow_it")

    def reset() -> None:
        for name in dir(conf):
            clear = getattr(getattr(conf, name), "cache_clear", None)
            if clear is not None:
                clear()
        listener._openlineage_listener = None

    reset()
    # The provider's plugin registers its listener once per process, when first loaded: if an
    # earlier test loaded it without a transport it registered none. Register a fresh one (built
    # from the configuration above) with both listener managers, and restore them afterwards.
    from airflow.listeners.listener import get_listener_manager as core_manager
    from airflow.sdk.listener import get_listener_manager as task_manager

    fresh = listener.get_openlineage_listener()
    managers = [core_manager(), task_manager()]
    previous = []
    for manager in managers:
        old = [p for p in manager.pm.get_plugins() if isinstance(p, listener.OpenLineageListener)]
        for plugin in old:
            manager.pm.unregister(plugin)
        manager.add_listener(fresh)
        previous.append(old)
    yield out
    for manager, old in zip(managers, previous, strict=True):
        manager.pm.unregister(fresh)
        for plugin in old:
            manager.add_listener(plugin)
    reset()


@pytest.fixture
def emu(airflow_db: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[AIDPEmulator]:
    with AIDPEmulator(time_scale=TIME_SCALE) as server:
        monkeypatch.setenv("AIRFLOW_CONN_AIDP_DEFAULT", server.connection_json(server.generate_api_key()))
        yield server


def events(path: Path) -> list[dict[str, Any]]:
    assert path.exists(), "the OpenLineage listener wrote nothing"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def aidp_events(path: Path) -> list[dict[str, Any]]:
    return [e for e in events(path) if e["job"]["namespace"] == NS]


def airflow_task_event(path: Path, task_id: str, state: str) -> dict[str, Any]:
    found = [e for e in events(path) if e["job"]["name"].endswith(f".{task_id}") and e["eventType"] == state]
    assert len(found) == 1, [(e["job"]["name"], e["eventType"]) for e in events(path)]
    return found[0]


def run_job(emu: AIDPEmulator, name: str) -> tuple[str | None, str]:
    """Run a two-task job through ``dag.test()``; (task state, AIDP run key)."""
    job_key = create_job(emu, name, [notebook_task("extract"), notebook_task("load", depends=["extract"])])
    dag = build_dag(lambda: AIDPRunJobOperator(task_id="run", job_key=job_key, poll_interval=0.1))
    states, run = run_dag(dag)
    return states["run"], xcoms(dag, run, "run")["run_key"]


def test_successful_run_links_the_task_to_the_aidp_run(emu: AIDPEmulator, lineage_file: Path) -> None:
    state, run_key = run_job(emu, "lineage.ok")
    assert state == "success"

    task = airflow_task_event(lineage_file, "run", "COMPLETE")
    assert task["run"]["facets"]["externalQuery"]["externalQueryId"] == run_key
    assert task["run"]["facets"]["externalQuery"]["source"] == NS

    pair = aidp_events(lineage_file)
    assert [e["eventType"] for e in pair] == ["START", "COMPLETE"]
    assert {e["job"]["name"] for e in pair} == {"emulator_ws/lineage.ok"}
    assert pair[0]["job"]["facets"]["jobType"]["integration"] == "AIDP"
    assert {e["run"]["runId"] for e in pair} == {run_id(run_key)}
    parent = pair[1]["run"]["facets"]["parent"]
    assert parent["run"]["runId"] == task["run"]["runId"]
    assert parent["root"]["run"]["runId"]  # the DAG run's lineage run
    assert (parent["job"]["namespace"], parent["job"]["name"]) == (
        task["job"]["namespace"],
        task["job"]["name"],
    )
    assert "errorMessage" not in pair[1]["run"]["facets"]
    assert pair[0]["eventTime"] <= pair[1]["eventTime"]


def test_failed_run_and_its_repair_report_the_failed_tasks(emu: AIDPEmulator, lineage_file: Path) -> None:
    emu.script_task(task_key="load", outcome="FAILED", state_message="table locked", times=1)
    state, run_key = run_job(emu, "lineage.bad")
    assert state == "failed"

    task = airflow_task_event(lineage_file, "run", "FAIL")
    assert task["run"]["facets"]["externalQuery"]["externalQueryId"] == run_key
    pair = aidp_events(lineage_file)
    assert [e["eventType"] for e in pair] == ["START", "FAIL"]
    error = pair[1]["run"]["facets"]["errorMessage"]["message"]
    assert "load: FAILED table locked" in error and "extract" not in error
    assert pair[1]["run"]["facets"]["parent"]["run"]["runId"] == task["run"]["runId"]

    lineage_file.unlink()
    repair = build_dag(lambda: AIDPRepairJobRunOperator(task_id="repair", run_key=run_key, poll_interval=0.1))
    states, _ = run_dag(repair)
    assert states == {"repair": "success"}
    pair = aidp_events(lineage_file)
    assert [e["eventType"] for e in pair] == ["START", "COMPLETE"]
    assert {e["run"]["runId"] for e in pair} == {run_id(run_key)}


def test_lineage_problems_never_fail_the_task(
    emu: AIDPEmulator, lineage_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The AIDP run cannot be read (404): the task's facets still come back, with a warning."""
    from airflow_provider_aidp.openlineage import operator_lineage

    op = AIDPRunJobOperator(task_id="run", job_key="k")
    op._lineage["run_key"] = "no-such-run"
    facets = operator_lineage(op, task_instance=None, failed=False)
    assert facets.run_facets["externalQuery"].externalQueryId == "no-such-run"
    assert "could not emit the events of AIDP job run no-such-run" in caplog.text
    assert not lineage_file.exists()
    assert operator_lineage(AIDPRunJobOperator(task_id="x", job_key="k"), None, failed=True).run_facets == {}
