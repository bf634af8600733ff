"""The job an AIDPWorkflowTaskGroup's tasks make, checked when the DAG file is parsed (no request).

One AIDP task per operator, ``dependsOn`` from the Airflow edges inside the group, ``runIf`` from
trigger rules, the group's clusters and parameters; the launch task upstream of the group's roots;
every mistake an ``AIDPConfigError`` naming the field.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from airflow.sdk import DAG
from airflow.sdk.bases.operator import BaseOperator

from airflow_provider_aidp.exceptions import AIDPConfigError
from airflow_provider_aidp.operators.workflow import (
    AIDPNotebookTaskOperator,
    AIDPPythonTaskOperator,
    AIDPTaskOperator,
    AIDPWorkflowTaskGroup,
)

CLUSTERS = [{"cluster_key": "etl", "cluster_name": "etl_cluster"}]


def group_dag(build: Any, **group_args: Any) -> tuple[DAG, AIDPWorkflowTaskGroup]:
    with DAG("wf_spec", schedule=None, start_date=dt.datetime(2026, 1, 1)) as dag:
        args = {
            "group_id": "etl",
            "job_name": "daily_etl",
            "job_path": "/Workspace/Shared/etl",
            "job_clusters": CLUSTERS,
            **group_args,
        }
        with AIDPWorkflowTaskGroup(**args) as group:
            build()
    return dag, group


def notebook(task_id: str, **kwargs: Any) -> AIDPNotebookTaskOperator:
    return AIDPNotebookTaskOperator(
        task_id=task_id, notebook_path=f"/Workspace/Shared/etl/{task_id}.ipynb", cluster_key="etl", **kwargs
    )


def diamond() -> None:
    extract = notebook("extract", parameters={"limit": 10})
    clean = AIDPPythonTaskOperator(
        task_id="clean",
        file_path="/Workspace/Shared/etl/clean.py",
        command_line_arguments="--fast",
        cluster_key="etl",
    )
    enrich = notebook("enrich", trigger_rule="all_done")
    load = AIDPTaskOperator(
        task_id="load",
        task_config={
            "type": "JAR_TASK",
            "main_class": "com.example.Load",
            "cluster": {"cluster_key": "etl"},
            "max_retries": 2,
        },
    )
    extract >> [clean, enrich] >> load


def test_the_group_makes_one_task_per_operator_with_edges_rules_clusters_and_parameters() -> None:
    dag, group = group_dag(
        diamond, parameters={"env": "prod"}, max_concurrent_runs=3, job_spec={"timeout_seconds": 3600}
    )
    wire = group.spec().to_wire("objects")
    assert (wire["name"], wire["path"], wire["maxConcurrentRuns"], wire["timeoutSeconds"]) == (
        "daily_etl",
        "/Workspace/Shared/etl",
        3,
        3600,
    )
    assert wire["parameters"] == [{"name": "env", "value": "prod"}]
    assert wire["jobClusters"] == [{"clusterKey": "etl", "clusterName": "etl_cluster"}]
    tasks = {t["taskKey"]: t for t in wire["tasks"]}
    assert set(tasks) == {"extract", "clean", "enrich", "load"}
    assert tasks["extract"]["dependsOn"] == []
    assert [d["taskKey"] for d in tasks["load"]["dependsOn"]] == ["clean", "enrich"]
    assert tasks["enrich"]["runIf"] == "ALL_DONE" and tasks["load"]["runIf"] == "ALL_SUCCESS"
    assert tasks["extract"]["type"] == "NOTEBOOK_TASK"
    assert tasks["extract"]["parameters"] == [{"name": "limit", "value": "10"}]
    assert tasks["extract"]["cluster"] == {"clusterKey": "etl", "clusterName": "etl_cluster"}
    assert tasks["clean"]["commandLineArguments"] == "--fast" and tasks["clean"]["source"] == "WORKSPACE"
    assert tasks["load"]["mainClass"] == "com.example.Load" and tasks["load"]["maxRetries"] == 2
    # the launch task is inside the group, upstream of its roots only, and runs the job by name
    launch = dag.get_task("etl.launch")
    assert launch.downstream_task_ids == {"etl.extract"}
    assert dag.get_task("etl.clean").upstream_task_ids == {"etl.extract"}


def test_the_la_surface_gets_plain_task_keys() -> None:
    _, group = group_dag(diamond)
    load = next(t for t in group.spec().to_wire("keys")["tasks"] if t["taskKey"] == "load")
    assert load["dependsOn"] == ["clean", "enrich"]


def test_edges_to_the_group_land_on_the_launch_and_from_its_leaves() -> None:
    with DAG("wf_edges", schedule=None, start_date=dt.datetime(2026, 1, 1)) as dag:
        before = BaseOperator(task_id="before")
        with AIDPWorkflowTaskGroup(
            group_id="etl", job_name="j", job_path="/Workspace/W", job_clusters=CLUSTERS
        ) as group:
            notebook("a") >> notebook("b")
        after = BaseOperator(task_id="after")
        before >> group >> after
    assert dag.get_task("etl.launch").upstream_task_ids == {"before"}
    assert dag.get_task("after").upstream_task_ids == {"etl.b"}
    assert dag.get_task("etl.a").upstream_task_ids == {"etl.launch"}


def test_run_parameters_are_templated_on_the_launch() -> None:
    dag, _ = group_dag(lambda: notebook("a"), run_parameters={"day": "{{ ds }}"})
    launch = dag.get_task("etl.launch")
    assert launch.parameters == {"day": "{{ ds }}"} and "parameters" in launch.template_fields


@pytest.mark.parametrize(
    ("build", "field", "says"),
    [
        (lambda: BaseOperator(task_id="plain"), "task_id", "holds only AIDP task operators"),
        (
            lambda: AIDPNotebookTaskOperator.partial(task_id="mapped", cluster_key="etl").expand(
                notebook_path=["/a.ipynb", "/b.ipynb"]
            ),
            "task_id",
            "not mapped",
        ),
        (lambda: notebook("bad-key"), "task_key", "pass task_key="),
        (lambda: notebook("a", task_key="9lives"), "task_key", "starting with a letter"),
        (lambda: notebook("a", trigger_rule="none_skipped"), "trigger_rule", "has no AIDP runIf"),
        (
            lambda: notebook("a", task_config={"depends_on": ["b"]}),
            "task_config",
            "the Airflow edges inside the group",
        ),
        (
            lambda: notebook("a", parameters={"day": "{{ ds }}"}),
            "task_config",
            "run_parameters",
        ),
        (lambda: AIDPTaskOperator(task_id="a", task_config={"main_class": "x"}), "task_config", "'type'"),
        (
            lambda: AIDPNotebookTaskOperator(task_id="a", notebook_path="/x.ipynb"),
            "cluster_key",
            "exactly one of cluster_key",
        ),
    ],
    ids=[
        "not-aidp",
        "mapped",
        "task-id-not-a-name",
        "task-key-not-a-name",
        "rule",
        "owned-field",
        "jinja",
        "no-type",
        "no-cluster",
    ],
)
def test_mistakes_fail_when_the_dag_is_parsed(build: Any, field: str, says: str) -> None:
    with pytest.raises(AIDPConfigError) as err:
        group_dag(build)
    assert err.value.field == field and says in str(err.value)


def test_the_spec_models_check_the_job_and_list_every_problem() -> None:
    def build() -> None:
        AIDPNotebookTaskOperator(task_id="a", notebook_path="/x.ipynb", cluster_key="nope")
        AIDPTaskOperator(task_id="b", task_config={"type": "PYTHON_TASK", "cluster": {"cluster_key": "etl"}})

    with pytest.raises(AIDPConfigError) as err:
        group_dag(build)
    text = str(err.value)
    assert "tasks[a].cluster" in text and "nope" in text and "tasks[b].file_path" in text


def test_an_aidp_task_operator_outside_a_group_is_refused() -> None:
    with (
        DAG("wf_alone", schedule=None, start_date=dt.datetime(2026, 1, 1)),
        pytest.raises(AIDPConfigError, match="inside an AIDPWorkflowTaskGroup"),
    ):
        notebook("a")


def test_the_group_refuses_job_fields_it_owns() -> None:
    with pytest.raises(AIDPConfigError, match="job_spec must not set") as err:
        group_dag(lambda: notebook("a"), job_spec={"tasks": []})
    assert err.value.field == "job_spec"
