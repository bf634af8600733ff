"""The write-side job spec: what a DAG author declares and what we PUT to ``/jobs/{key}``.

Models mirror the SDK's ``CreateJobDetails`` / ``UpdateJobDetails`` (aidp-python-client 5.1.1):
snake_case attributes, camelCase JSON aliases, authors may write either. Pydantic checks the
*shape* (types, task union on ``type``, unknown keys); :func:`spec_problems` checks the *rules*
the service enforces late or cryptically, and reports every problem at once. :func:`load_spec`
does both and raises one :class:`AIDPConfigError` naming each field and its fix.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    AliasGenerator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic.alias_generators import to_camel, to_snake

from airflow_provider_aidp.exceptions import AIDPConfigError
from airflow_provider_aidp.models.runs import param_text
from airflow_provider_aidp.models.spec_rules import spec_problems

DependsOnFormat = Literal["objects", "keys"]
RUN_IF = (
    "ALL_SUCCESS",
    "ALL_DONE",
    "NONE_FAILED",
    "AT_LEAST_ONE_SUCCESS",
    "ALL_FAILED",
    "AT_LEAST_ONE_FAILED",
)
#: Validation context for bodies read back from the service: unknown (server-added) keys are dropped.
SERVER_CONTEXT = {"server": True}


class SpecModel(BaseModel):
    """camelCase on the wire, either spelling from authors; unknown keys are an author error."""

    model_config = ConfigDict(
        alias_generator=AliasGenerator(alias=to_camel),
        populate_by_name=True,
        extra="ignore",
        validate_default=False,
    )

    @model_validator(mode="before")
    @classmethod
    def _no_unknown_keys(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, Mapping) or (info.context or {}).get("server"):
            return data
        known = {name for name in cls.model_fields} | {f.alias for f in cls.model_fields.values() if f.alias}
        unknown = sorted(str(k) for k in data if k not in known)
        if unknown:
            fields = ", ".join(sorted(f.alias or n for n, f in cls.model_fields.items()))
            raise ValueError(f"unknown field(s) {', '.join(map(repr, unknown))}; known fields: {fields}")
        return data


def _scalar_text(value: Any) -> Any:
    """Parameter values are strings on the wire; let authors write 7 or true."""
    return param_text(value) if isinstance(value, bool | int | float) else value


class Parameter(SpecModel):
    name: str
    value: Annotated[str | None, BeforeValidator(_scalar_text)] = None


def _parameters(value: Any) -> Any:
    """``{"env": "prod"}`` is shorthand for ``[{"name": "env", "value": "prod"}]``."""
    if isinstance(value, Mapping):
        return [{"name": str(k), "value": v} for k, v in value.items()]
    return value


Parameters = Annotated[list[Parameter] | None, BeforeValidator(_parameters)]


class DependsOn(SpecModel):
    task_key: str
    outcome: str | None = None


def _depends_on(value: Any) -> Any:
    """Accept plain task keys (the LA surface form) as well as ``{"taskKey": ..}`` objects."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list):
        return [{"taskKey": item} if isinstance(item, str) else item for item in value]
    return value


class GitConfig(SpecModel):
    provider: str | None = None
    credential: str | None = None
    repository_url: str | None = None
    branch: str | None = None


class AutoScale(SpecModel):
    min_workers: int | None = None
    max_workers: int | None = None


class NewClusterConfiguration(SpecModel):
    num_workers: int | None = None
    auto_scale: AutoScale | None = None
    cluster_name: str | None = None
    spark_version: str | None = None
    spark_conf: str | None = None


class JobCluster(SpecModel):
    """A cluster the job uses: ``clusterKey`` + the cluster's real ``clusterName`` (not its UUID)."""

    cluster_key: str | None = None
    cluster_name: str | None = None
    new_cluster: NewClusterConfiguration | None = None


class Schedule(SpecModel):
    quartz_cron_expression: str
    timezone_id: str = "UTC"
    pause_status: str | None = None


class Continuous(SpecModel):
    pause_status: str | None = None


class Queue(SpecModel):
    is_enabled: bool


class Expression(SpecModel):
    key: str
    value: str


class TaskBase(SpecModel):
    task_key: str
    depends_on: Annotated[list[DependsOn], BeforeValidator(_depends_on)] = Field(default_factory=list)
    run_if: str = "ALL_SUCCESS"
    max_retries: int | None = None
    min_retry_interval_millis: int | None = None
    is_retry_on_timeout: bool | None = None


class ClusterTask(TaskBase):
    """Tasks that run code on a Spark cluster (``cluster`` is required in practice)."""

    source: str | None = None
    git_config: GitConfig | None = None
    cluster: JobCluster | None = None
    timeout_seconds: int | None = None
    is_streaming: bool | None = None


class NotebookTask(ClusterTask):
    type: Literal["NOTEBOOK_TASK"]
    notebook_path: str | None = None
    parameters: Parameters = None


class PythonTask(ClusterTask):
    type: Literal["PYTHON_TASK"]
    file_path: str | None = None
    command_line_arguments: str | None = None


class JarTask(ClusterTask):
    type: Literal["JAR_TASK"]
    main_class: str | None = None
    dependent_libraries: list[str] | None = None
    command_line_arguments: str | None = None
    parameters: Parameters = None


class IfElseTask(TaskBase):
    type: Literal["IF_ELSE_TASK"]
    expressions: list[Expression] | None = None
    condition: str | None = None
    parameters: Parameters = None


class JobTask(TaskBase):
    type: Literal["JOB_TASK"]
    job_key: str | None = None
    parameters: Parameters = None
    timeout_seconds: int | None = None


class AgentTask(TaskBase):
    type: Literal["AGENT_TASK"]
    agent_key: str | None = None
    prompt: str | None = None
    parameters: Parameters = None


Task = Annotated[
    NotebookTask | PythonTask | JarTask | IfElseTask | JobTask | AgentTask,
    Field(discriminator="type"),
]
#: Task types the field notes send with ``"source": "WORKSPACE"`` (the default here, overridable).
WORKSPACE_SOURCED = ("NOTEBOOK_TASK", "PYTHON_TASK")
TASK_TYPES = ("NOTEBOOK_TASK", "PYTHON_TASK", "JAR_TASK", "IF_ELSE_TASK", "JOB_TASK", "AGENT_TASK")


class JobSpec(SpecModel):
    """A whole job definition, the body of ``PUT /jobs/{key}``."""

    name: str
    path: str | None = None
    description: str | None = None
    max_concurrent_runs: int = 1
    timeout_seconds: int | None = None
    schedule: Schedule | None = None
    continuous: Continuous | None = None
    queue: Queue | None = None
    parameters: Parameters = None
    job_clusters: list[JobCluster] = Field(default_factory=list)
    tasks: list[Task] = Field(default_factory=list)
    git_config: GitConfig | None = None
    run_as: str | None = None

    def head(self) -> dict[str, Any]:
        """The name-only body of the first create step (``POST /jobs`` rejects inline tasks)."""
        body: dict[str, Any] = {
            "name": self.name,
            "path": self.path,
            "maxConcurrentRuns": self.max_concurrent_runs,
        }
        return {k: v for k, v in body.items() if v is not None}

    def to_wire(self, depends_on_format: DependsOnFormat = "objects") -> dict[str, Any]:
        """The full body for ``PUT /jobs/{key}``, shaped like the field notes' live-verified bodies.

        camelCase, no nulls; every task carries ``runIf`` and ``dependsOn`` (``[]`` when none), a
        workspace-sourced notebook/python task ``"source": "WORKSPACE"`` and its ``cluster`` both
        ``clusterKey`` and ``clusterName`` (taken from ``jobClusters`` when only the key is given).
        """
        body = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        names = {c.get("clusterKey"): c.get("clusterName") for c in body.get("jobClusters", [])}
        for task in body.get("tasks", []):
            task["runIf"] = task.get("runIf") or "ALL_SUCCESS"
            deps = task.get("dependsOn", [])
            if depends_on_format == "keys":
                task["dependsOn"] = [d["taskKey"] for d in deps]
            else:
                task["dependsOn"] = deps
            if task["type"] in WORKSPACE_SOURCED and "source" not in task and not self._git(task):
                task["source"] = "WORKSPACE"
            cluster = task.get("cluster")
            if (
                isinstance(cluster, dict)
                and not cluster.get("clusterName")
                and names.get(cluster.get("clusterKey"))
            ):
                cluster["clusterName"] = names[cluster.get("clusterKey")]
        return body

    def _git(self, task: Mapping[str, Any]) -> bool:
        """The task's code comes from git (its own git_config or the job's), not the workspace."""
        return bool(task.get("gitConfig")) or self.git_config is not None

    def to_json(self, depends_on_format: DependsOnFormat = "objects") -> str:
        return json.dumps(self.to_wire(depends_on_format), indent=2, sort_keys=True)


def _where(loc: tuple[int | str, ...], data: Any) -> str:
    """``('tasks', 1, 'NOTEBOOK_TASK', 'notebookPath')`` -> ``tasks[load].notebook_path``."""
    out = ""
    node = data
    for part in loc:
        if isinstance(part, int):
            key = (
                node[part].get("taskKey") or node[part].get("task_key") if _is_task_list(node, part) else None
            )
            out += f"[{key or part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            continue
        if part in TASK_TYPES or part.startswith("function-"):
            continue
        node = node.get(part) if isinstance(node, Mapping) else None
        out += ("." if out else "") + to_snake(part)
    return out or "spec"


def _is_task_list(node: Any, index: int) -> bool:
    return isinstance(node, list) and index < len(node) and isinstance(node[index], Mapping)


def load_spec(data: JobSpec | Mapping[str, Any]) -> JobSpec:
    """Parse and validate a spec; every problem is listed in one :class:`AIDPConfigError`."""
    if isinstance(data, JobSpec):
        spec = data
    elif isinstance(data, Mapping):
        try:
            spec = JobSpec.model_validate(dict(data))
        except ValidationError as err:
            lines = [_error_line(e, data) for e in err.errors()]
            raise AIDPConfigError(_message(data.get("name"), lines), field="spec") from None
    else:
        raise AIDPConfigError(
            f"A job spec must be a dict, a JobSpec or a .json/.yaml file path; got {type(data).__name__}.",
            field="spec",
        )
    problems = spec_problems(spec)
    if problems:
        raise AIDPConfigError(_message(spec.name, problems), field="spec")
    return spec


def _error_line(error: Any, data: Any) -> str:
    """One pydantic error as ``field: problem``; a task without ``type`` says how to write it."""
    where = _where(error["loc"], data)
    if error.get("type") == "union_tag_not_found":
        task = error.get("input")
        if isinstance(task, Mapping) and ("taskType" in task or "task_type" in task):
            return (
                f"{where}.type: missing; the task type field is 'type', not 'taskType' "
                f'(rename it, e.g. "type": "NOTEBOOK_TASK")'
            )
        return f"{where}.type: required; one of {', '.join(TASK_TYPES)}"
    return f"{where}: {error['msg']}"


def _message(name: Any, lines: list[str]) -> str:
    head = f"Job spec {name!r} is invalid" if name else "Job spec is invalid"
    return f"{head} ({len(lines)} problem{'s' if len(lines) != 1 else ''}):\n" + "\n".join(
        f"  - {line}" for line in lines
    )


def spec_from_server(body: Mapping[str, Any]) -> JobSpec:
    """A job as GET returns it, as a spec: server-added fields dropped, our defaults applied."""
    return JobSpec.model_validate(dict(body), context=SERVER_CONTEXT)


#: Values a server may fill in for fields the body left out: the same as leaving them out. The
#: diff drops them on both sides, so a defaults-filling server does not look like a change.
JOB_DEFAULTS: dict[str, Any] = {"description": "", "timeoutSeconds": 0, "queue": {"isEnabled": False}}
TASK_DEFAULTS: dict[str, Any] = {
    "maxRetries": 0,
    "minRetryIntervalMillis": 0,
    "isRetryOnTimeout": False,
    "timeoutSeconds": 0,
    "isStreaming": False,
    "source": "WORKSPACE",
}


def canonical(spec: JobSpec) -> dict[str, Any]:
    """A comparable form of what the spec owns: objects for dependsOn, order-free lists sorted,
    and empty values and service defaults dropped (the same on both sides of a diff)."""
    body = _without_defaults(spec.to_wire("objects"), JOB_DEFAULTS)
    if isinstance(body.get("path"), str):  # "/Workspace/Shared/" and "/Workspace/Shared" are one folder
        body["path"] = body["path"].rstrip("/") or "/"
    body["tasks"] = sorted(
        (_without_defaults(t, TASK_DEFAULTS) for t in body.get("tasks", [])), key=lambda t: t["taskKey"]
    )
    body["jobClusters"] = sorted(body.get("jobClusters", []), key=lambda c: json.dumps(c, sort_keys=True))
    for task in body["tasks"]:
        task["dependsOn"] = sorted(task["dependsOn"], key=lambda d: d["taskKey"])
    return _drop_empty(body)


def _without_defaults(body: dict[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in defaults or defaults[k] != v}


def _drop_empty(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_empty(v) for k, v in value.items() if v not in ([], {}, None)}
    if isinstance(value, list):
        return [_drop_empty(v) for v in value]
    return value
