"""AIDPCreateJobOperator / AIDPDeleteJobOperator through real Airflow (``dag.test()``) and the emulator."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_aidp.emulator import AIDPEmulator
from airflow_provider_aidp.exceptions import AIDPConfigError
from airflow_provider_aidp.operators.job_definition import AIDPCreateJobOperator, AIDPDeleteJobOperator
from tests.integration.aidp_run_support import build_dag, run_dag, xcoms
from tests.integration.test_upsert import job_spec

pytestmark = pytest.mark.usefixtures("airflow_db")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def emu(monkeypatch: pytest.MonkeyPatch) -> Iterator[AIDPEmulator]:
    with AIDPEmulator() as server:
        monkeypatch.setenv("AIRFLOW_CONN_AIDP_DEFAULT", server.connection_json(server.generate_api_key()))
        yield server


def test_create_then_unchanged_then_delete_through_dag_test(emu: AIDPEmulator) -> None:
    dag = build_dag(lambda: AIDPCreateJobOperator(task_id="define", spec=job_spec()))
    states, run_id = run_dag(dag)
    assert states == {"define": "success"}
    pushed = xcoms(dag, run_id, "define")
    key = pushed["return_value"]
    assert pushed == {"return_value": key, "job_key": key, "action": "created"}
    assert [j["key"] for j in emu.jobs()] == [key]
    assert [r.method for r in emu.requests if r.method != "GET"] == ["POST", "PUT"]

    again = build_dag(lambda: AIDPCreateJobOperator(task_id="define", spec=job_spec()))
    states, run_id = run_dag(again)
    assert states == {"define": "success"}
    assert xcoms(again, run_id, "define")["action"] == "unchanged"
    assert [r.method for r in emu.requests if r.method != "GET"] == ["POST", "PUT"]

    delete = build_dag(
        lambda: AIDPDeleteJobOperator(task_id="drop", job_name="etl_daily.job", job_path="/Workspace/Shared")
    )
    states, run_id = run_dag(delete)
    assert states == {"drop": "success"}
    assert xcoms(delete, run_id, "drop")["return_value"] == key
    assert emu.jobs() == []


def test_templated_spec_and_dry_run(emu: AIDPEmulator) -> None:
    spec = job_spec()
    spec["parameters"] = {"env": "{{ params.env }}", "day": "{{ ds }}"}

    def factory() -> None:
        AIDPCreateJobOperator(task_id="plan", spec=spec, dry_run=True, params={"env": "staging"})

    dag = build_dag(factory)
    states, run_id = run_dag(dag)
    assert states == {"plan": "success"}
    pushed = xcoms(dag, run_id, "plan")
    assert pushed["action"] == "created" and "job_key" not in pushed
    assert emu.jobs() == []
    assert all(r.method == "GET" for r in emu.requests)

    dag = build_dag(lambda: AIDPCreateJobOperator(task_id="apply", spec=spec, params={"env": "staging"}))
    states, _ = run_dag(dag)
    assert states == {"apply": "success"}
    assert emu.jobs()[0]["parameters"] == [
        {"name": "env", "value": "staging"},
        {"name": "day", "value": "2026-01-01"},
    ]


def test_spec_from_json_and_yaml_files_next_to_the_dag(emu: AIDPEmulator, tmp_path: Path) -> None:
    import yaml

    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "job.json").write_text(json.dumps(job_spec()))
    (tmp_path / "specs" / "job.yaml").write_text(yaml.safe_dump(job_spec(name="from_yaml.job")))

    def factory() -> None:
        from airflow.sdk.definitions._internal.contextmanager import DagContext

        DagContext.get_current().fileloc = str(tmp_path / "my_dag.py")  # type: ignore[union-attr]
        json_op = AIDPCreateJobOperator(task_id="json", spec="specs/job.json")
        yaml_op = AIDPCreateJobOperator(task_id="yaml", spec="specs/job.yaml")
        json_op >> yaml_op

    dag = build_dag(factory)
    dag.fileloc = str(tmp_path / "my_dag.py")
    states, _ = run_dag(dag)
    assert states == {"json": "success", "yaml": "success"}
    assert sorted(j["name"] for j in emu.jobs()) == ["etl_daily.job", "from_yaml.job"]


def test_static_spec_is_validated_when_the_dag_is_parsed() -> None:
    bad = job_spec()
    bad["tasks"][1]["dependsOn"] = ["extrct"]
    with pytest.raises(AIDPConfigError, match=r"tasks\[load\]\.depends_on: unknown task key 'extrct'"):
        build_dag(lambda: AIDPCreateJobOperator(task_id="define", spec=bad))
    with pytest.raises(AIDPConfigError, match=r"not a \.json/\.yaml/\.yml file path"):
        build_dag(lambda: AIDPCreateJobOperator(task_id="define", spec="job.txt"))
    with pytest.raises(AIDPConfigError, match="does not exist"):
        build_dag(lambda: AIDPCreateJobOperator(task_id="define", spec="/nonexistent/job.json"))
    templated = job_spec()
    templated["name"] = "{{ params.name }}"
    build_dag(lambda: AIDPCreateJobOperator(task_id="define", spec=templated))  # checked at run time


def test_templated_spec_is_validated_at_run_time_and_sends_nothing(emu: AIDPEmulator) -> None:
    spec = job_spec()
    spec["name"] = "{{ params.name }}"
    dag = build_dag(lambda: AIDPCreateJobOperator(task_id="define", spec=spec, params={"name": "bad name"}))
    states, _ = run_dag(dag)
    assert states == {"define": "failed"}
    assert emu.requests == []


def test_delete_by_key_and_missing_ok(emu: AIDPEmulator) -> None:
    from airflow_provider_aidp.hooks.aidp import AIDPHook

    key = AIDPHook().upsert_job(job_spec()).job_key
    dag = build_dag(
        lambda: (
            AIDPDeleteJobOperator(task_id="by_key", job_key=key)
            >> AIDPDeleteJobOperator(task_id="again_ok", job_key=key, missing_ok=True)
            >> AIDPDeleteJobOperator(task_id="by_name_ok", job_name="etl_daily.job", missing_ok=True)
        )
    )
    states, _ = run_dag(dag)
    assert states == {"by_key": "success", "again_ok": "success", "by_name_ok": "success"}
    assert emu.jobs() == []
    dag = build_dag(lambda: AIDPDeleteJobOperator(task_id="strict", job_key=str(key)))
    states, _ = run_dag(dag)
    assert states == {"strict": "failed"}


def test_delete_arguments_are_checked_at_parse_time() -> None:
    with pytest.raises(AIDPConfigError, match="exactly one of job_key or job_name"):
        AIDPDeleteJobOperator(task_id="x")
    with pytest.raises(AIDPConfigError, match="exactly one of job_key or job_name"):
        AIDPDeleteJobOperator(task_id="x", job_key="k", job_name="n")
    with pytest.raises(AIDPConfigError, match="job_path only narrows job_name"):
        AIDPDeleteJobOperator(task_id="x", job_key="k", job_path="/Workspace/x")


def test_importing_the_operators_stays_cheap() -> None:
    # (yaml is not in the list: Airflow itself imports it.)
    code = (
        "import sys; import airflow_provider_aidp.operators.job_definition as m; "
        "heavy = [n for n in ('airflow_provider_aidp.models.jobs', 'oci', 'aiohttp', 'hypothesis', "
        "'airflow_provider_aidp.hooks.aidp', 'airflow_provider_aidp.hooks.upsert') if n in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_example_dag_runs_against_the_emulator(emu: AIDPEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    try:  # Airflow >= 3.2
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:
        from airflow.models.dagbag import DagBag

    monkeypatch.syspath_prepend(str(REPO / "example_dags"))  # Airflow puts the DAG folder on sys.path

    bag = DagBag(dag_folder=str(REPO / "example_dags" / "example_aidp_job_definition.py"))
    assert bag.import_errors == {}
    dag: Any = bag.get_dag("example_aidp_job_definition")
    assert dag is not None and "job definition as code" in dag.doc_md
    assert isinstance(dag.get_task("define_churn_job"), AIDPCreateJobOperator)
    states, run_id = run_dag(dag)
    assert states == {"plan_churn_job": "success", "define_churn_job": "success", "report": "success"}
    assert xcoms(dag, run_id, "plan_churn_job")["action"] == "created"
    key = xcoms(dag, run_id, "define_churn_job")["job_key"]
    assert xcoms(dag, run_id, "report")["return_value"].endswith(f"({key}): created")
    (job,) = emu.jobs()
    assert job["schedule"]["quartzCronExpression"] == "0 30 4 * * ?"
    deps = {t["taskKey"]: [d["taskKey"] for d in t["dependsOn"]] for t in job["tasks"]}
    assert deps["score"] == ["usage_features", "billing_features"] and deps["publish"] == ["score"]
