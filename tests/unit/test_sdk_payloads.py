"""The bodies we send deserialize into Oracle's SDK models, and carry no field the SDK does not know."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_aidp.models.jobs import load_spec

pytest.importorskip("aidp_python_client.aidataplatform_dp")
oci = pytest.importorskip("oci")

CLUSTER = {"clusterKey": "ck", "clusterName": "etl_cluster"}
TASKS: dict[str, dict[str, Any]] = {
    "NOTEBOOK_TASK": {
        "notebookPath": "/Workspace/Shared/a.ipynb",
        "source": "WORKSPACE",
        "cluster": CLUSTER,
        "parameters": {"day": "1"},
        "timeoutSeconds": 60,
        "isStreaming": False,
    },
    "PYTHON_TASK": {
        "filePath": "/Workspace/Shared/a.py",
        "cluster": CLUSTER,
        "commandLineArguments": "--x 1",
        "source": "GIT_PROVIDER",
        "gitConfig": {"provider": "GITHUB", "repositoryUrl": "https://x/y.git", "branch": "main"},
    },
    "JAR_TASK": {
        "mainClass": "com.example.Main",
        "dependentLibraries": ["/Workspace/lib.jar"],
        "cluster": CLUSTER,
        "parameters": [{"name": "a", "value": "b"}],
    },
    "IF_ELSE_TASK": {"expressions": [{"key": "a", "value": "1"}], "condition": "EQUAL_TO"},
    "JOB_TASK": {"jobKey": "other-job", "parameters": {"p": 1}, "timeoutSeconds": 5},
    "AGENT_TASK": {"agentKey": "agent1", "prompt": "summarise", "parameters": {"q": "x"}},
}


def _spec(task_type: str) -> dict[str, Any]:
    return {
        "name": "sdk.check",
        "path": "/Workspace/Shared",
        "description": "d",
        "maxConcurrentRuns": 2,
        "timeoutSeconds": 3600,
        "schedule": {
            "quartzCronExpression": "0 0 3 ? * MON-FRI",
            "timezoneId": "UTC",
            "pauseStatus": "PAUSED",
        },
        "queue": {"isEnabled": True},
        "parameters": {"env": "dev"},
        "gitConfig": {"provider": "GITLAB", "branch": "main"},
        "runAs": "someone",
        "jobClusters": [
            CLUSTER,
            {
                "clusterKey": "nc",
                "newCluster": {"numWorkers": 2, "autoScale": {"minWorkers": 1, "maxWorkers": 3}},
            },
        ],
        "tasks": [
            {
                "type": "NOTEBOOK_TASK",
                "taskKey": "first",
                "notebookPath": "/Workspace/f.ipynb",
                "cluster": CLUSTER,
            },
            {
                "type": task_type,
                "taskKey": "t",
                "dependsOn": ["first"],
                "maxRetries": 1,
                "minRetryIntervalMillis": 1000,
                "isRetryOnTimeout": True,
                **TASKS[task_type],
            },
        ],
    }


@pytest.fixture(scope="module")
def deserialize() -> Any:
    from aidp_python_client.aidataplatform_dp.workflow_client import WorkflowClient

    signer_cls = oci.auth.signers.InstancePrincipalsSecurityTokenSigner
    client = WorkflowClient(
        {"region": "us-ashburn-1"},
        signer=signer_cls.__new__(signer_cls),
        service_endpoint="http://127.0.0.1:9",
    )
    return lambda body, type_name: client.base_client.deserialize_response_data(
        json.dumps(body).encode(), type_name
    )


def unknown_fields(body: Any, model: Any, where: str = "") -> list[str]:
    """Keys in ``body`` that the SDK model (recursively) has no attribute for."""
    if isinstance(body, list):
        return [
            u
            for i, (b, m) in enumerate(zip(body, model, strict=True))
            for u in unknown_fields(b, m, f"{where}[{i}]")
        ]
    if not isinstance(body, dict) or not hasattr(model, "attribute_map"):
        return []
    json_to_attr = {v: k for k, v in model.attribute_map.items()}
    out = [f"{where}.{k}" for k in body if k not in json_to_attr]
    for key, value in body.items():
        if key in json_to_attr:
            out += unknown_fields(value, getattr(model, json_to_attr[key]), f"{where}.{key}")
    return out


@pytest.mark.parametrize("task_type", sorted(TASKS))
@pytest.mark.parametrize("sdk_type", ["UpdateJobDetails", "CreateJobDetails"])
def test_full_body_is_an_sdk_model(deserialize: Any, task_type: str, sdk_type: str) -> None:
    spec = load_spec(_spec(task_type))
    body = spec.to_wire("objects")
    model = deserialize(body, sdk_type)
    assert unknown_fields(body, model) == []
    task = model.tasks[1]
    assert (
        type(task).__name__
        == {
            "NOTEBOOK_TASK": "NotebookTask",
            "PYTHON_TASK": "PythonTask",
            "JAR_TASK": "JarTask",
            "IF_ELSE_TASK": "IfElseTask",
            "JOB_TASK": "JobTask",
            "AGENT_TASK": "AgentTask",
        }[task_type]
    )
    assert task.run_if == "ALL_SUCCESS"
    assert task.depends_on[0].task_key == "first"
    assert model.name == "sdk.check" and model.max_concurrent_runs == 2
    # Nothing the SDK maps to "unknown enum value".
    assert "UNKNOWN_ENUM_VALUE" not in json.dumps(oci.util.to_dict(model))


def test_create_head_is_an_sdk_model(deserialize: Any) -> None:
    head = load_spec(_spec("NOTEBOOK_TASK")).head()
    model = deserialize(head, "CreateJobDetails")
    assert unknown_fields(head, model) == []
    assert (model.name, model.path, model.max_concurrent_runs) == ("sdk.check", "/Workspace/Shared", 2)
    assert model.tasks is None


def test_unknown_field_detector_catches_a_stray_key(deserialize: Any) -> None:
    body = load_spec(_spec("PYTHON_TASK")).to_wire()
    body["tasks"][1]["taskType"] = "PYTHON_TASK"
    assert unknown_fields(body, deserialize(body, "UpdateJobDetails")) == [".tasks[1].taskType"]
