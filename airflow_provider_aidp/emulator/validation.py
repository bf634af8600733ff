"""The service's live-verified rules for job bodies (field notes + SDK), as 400 errors.

dependsOn forms differ by surface: GA (``20260430``) takes the SDK's objects
``[{"taskKey": "a", "outcome": "true"}]``; LA (``20240831``) takes plain task-key strings
``["a"]``. Bodies are normalised to the object form for storage and rendered back in the form of
the surface that reads them.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import bad_request
from .schedules import check_schedule

NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.]*$")
PARAM_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")
TASK_TYPES = frozenset(
    {
        "NOTEBOOK_TASK",
        "PYTHON_TASK",
        "SPARK_SUBMIT_TASK",
        "IF_ELSE_TASK",
        "JOB_TASK",
        "JAR_TASK",
        "AGENT_TASK",
    }
)
CLUSTER_TASKS = frozenset({"NOTEBOOK_TASK", "PYTHON_TASK", "JAR_TASK"})
RUN_IF = frozenset(
    {"ALL_SUCCESS", "ALL_DONE", "NONE_FAILED", "AT_LEAST_ONE_SUCCESS", "ALL_FAILED", "AT_LEAST_ONE_FAILED"}
)
GA, LA = "20260430", "20240831"


def require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_request("request body must be a JSON object")
    return body


def check_name(body: dict[str, Any]) -> None:
    name = body.get("name")
    if name is None:
        raise bad_request("name must not be null")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise bad_request(
            f"Invalid resource name {name!r}: use letters, digits, '_' and '.', starting with a letter"
        )


def check_parameters(params: Any, where: str) -> None:
    if params is None:
        return
    if not isinstance(params, list):
        raise bad_request(f"{where} must be a list of {{name, value}}")
    for i, p in enumerate(params):
        if (
            not isinstance(p, dict)
            or not isinstance(p.get("name"), str)
            or not PARAM_NAME_RE.match(p["name"])
        ):
            raise bad_request(f"{where}[{i}].name is invalid: letters, digits, '_', '-', '.'")


def validate_create(body: Any) -> dict[str, Any]:
    """POST /jobs: name-only create. Inline tasks are rejected like the live service does."""
    body = require_object(body)
    if "displayName" in body:
        raise bad_request("Invalid resource name: use 'name', not 'displayName'")
    if body.get("tasks"):
        raise bad_request("Invalid Task type: create the job with a name-only body, then PUT the tasks")
    check_name(body)
    check_parameters(body.get("parameters"), "parameters")
    _check_max_concurrent(body)
    check_schedule(body.get("schedule"))
    return body


def validate_update(body: Any, api_version: str) -> dict[str, Any]:
    """PUT /jobs/{key}: full replace; returns the body with dependsOn normalised to objects."""
    body = require_object(body)
    check_name(body)
    check_parameters(body.get("parameters"), "parameters")
    _check_max_concurrent(body)
    check_schedule(body.get("schedule"))
    tasks = body.get("tasks") or []
    if not isinstance(tasks, list):
        raise bad_request("tasks must be a list")
    normalised = [_validate_task(t, i, api_version) for i, t in enumerate(tasks)]
    _check_graph(normalised)
    return {**body, "tasks": normalised}


def _check_max_concurrent(body: dict[str, Any]) -> None:
    value = body.get("maxConcurrentRuns")
    if value is not None and (
        not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 1000
    ):
        raise bad_request("maxConcurrentRuns must be an integer between 1 and 1000")


def _validate_task(task: Any, i: int, api_version: str) -> dict[str, Any]:
    where = f"tasks[{i}]"
    if not isinstance(task, dict):
        raise bad_request(f"{where} must be an object")
    if "taskType" in task:
        raise bad_request(f"Invalid Task type: {where} uses 'taskType'; the discriminator is 'type'")
    ttype = task.get("type")
    if ttype not in TASK_TYPES:
        raise bad_request(f"Invalid Task type {ttype!r} in {where}: one of {sorted(TASK_TYPES)}")
    key = task.get("taskKey")
    if not isinstance(key, str) or not NAME_RE.match(key):
        raise bad_request(
            f"{where}.taskKey is required: letters, digits, '_' and '.', starting with a letter"
        )
    run_if = task.get("runIf")
    if run_if not in RUN_IF:
        raise bad_request(f"{where}.runIf is required: one of {sorted(RUN_IF)}")
    if ttype in CLUSTER_TASKS and not isinstance(task.get("cluster"), dict):
        raise bad_request(f"{where}.cluster is required for {ttype} ({{clusterKey, clusterName}})")
    if ttype == "JOB_TASK" and not isinstance(task.get("jobKey"), str):
        raise bad_request(f"{where}.jobKey is required for JOB_TASK (the key of the job to run)")
    check_parameters(task.get("parameters"), f"{where}.parameters")
    _check_int(task, "maxRetries", 0, 10, where)
    _check_int(task, "minRetryIntervalMillis", 0, 600_000, where)
    _check_int(task, "timeoutSeconds", 0, 10**9, where)
    return {**task, "dependsOn": _normalise_depends_on(task.get("dependsOn"), where, api_version)}


def _check_int(task: dict[str, Any], name: str, low: int, high: int, where: str) -> None:
    value = task.get(name)
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high
    ):
        raise bad_request(f"{where}.{name} must be an integer between {low} and {high}")


def _normalise_depends_on(value: Any, where: str, api_version: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise bad_request(f"{where}.dependsOn must be a list")
    out: list[dict[str, Any]] = []
    for dep in value:
        if api_version == LA:
            if not isinstance(dep, str):
                raise bad_request(f"{where}.dependsOn on the {LA} surface is a list of task-key strings")
            out.append({"taskKey": dep})
        else:
            if not isinstance(dep, dict) or not isinstance(dep.get("taskKey"), str):
                raise bad_request(
                    f'{where}.dependsOn on the {GA} surface is a list of objects {{"taskKey", "outcome"}}'
                )
            out.append({k: v for k, v in dep.items() if k in ("taskKey", "outcome") and v is not None})
    return out


def _check_graph(tasks: list[dict[str, Any]]) -> None:
    keys = [t["taskKey"] for t in tasks]
    if len(set(keys)) != len(keys):
        raise bad_request("taskKey values must be unique within a job")
    known = set(keys)
    edges = {t["taskKey"]: [d["taskKey"] for d in t["dependsOn"]] for t in tasks}
    for key, ups in edges.items():
        for up in ups:
            if up not in known:
                raise bad_request(f"task {key!r} dependsOn unknown task {up!r}")
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        if state.get(node) == 2:
            return
        if state.get(node) == 1:
            raise bad_request(f"dependsOn has a cycle: {' -> '.join([*trail, node])}")
        state[node] = 1
        for up in edges[node]:
            visit(up, [*trail, node])
        state[node] = 2

    for key in keys:
        visit(key, [])


def render_task(task: dict[str, Any], api_version: str) -> dict[str, Any]:
    """A stored task in the form of the surface reading it."""
    if api_version == LA:
        return {**task, "dependsOn": [d["taskKey"] for d in task.get("dependsOn", [])]}
    return task
