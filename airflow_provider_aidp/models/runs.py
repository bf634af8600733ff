"""Response models for job runs, task runs and their outputs, plus run-status classification.

These are read-side models: they accept unknown fields (the service adds fields over time) and
unknown status values (a newer service than this provider), and keep them.  Python names are
snake_case; JSON names are the API's camelCase via aliases; either may be used to build one.
"""

from __future__ import annotations

from typing import Any

from pydantic import AliasGenerator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class ResponseModel(BaseModel):
    """Base of every model read from the API: camelCase aliases, unknown fields kept."""

    model_config = ConfigDict(
        alias_generator=AliasGenerator(alias=to_camel),
        populate_by_name=True,
        extra="allow",
        frozen=False,
    )

    def to_api(self) -> dict[str, Any]:
        """The JSON shape the API uses (camelCase, no unset fields)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


# --- status classification -------------------------------------------------------------------

SUCCESS = "SUCCESS"
#: Still moving: keep polling.
ACTIVE_STATUSES = frozenset({"PENDING", "QUEUED", "RUNNING", "BLOCKED", "CANCELING", "PAUSED_MAINTENANCE"})
#: Ended and unsuccessful.
FAILED_STATUSES = frozenset({"FAILED", "INTERNAL_ERROR", "TIMED_OUT", "UPSTREAM_FAILED"})
CANCELED_STATUSES = frozenset({"CANCELED", "UPSTREAM_CANCELED"})
NOT_RUN_STATUSES = frozenset({"SKIPPED", "EXCLUDED"})
TERMINAL_STATUSES = frozenset({SUCCESS}) | FAILED_STATUSES | CANCELED_STATUSES | NOT_RUN_STATUSES
KNOWN_STATUSES = ACTIVE_STATUSES | TERMINAL_STATUSES


def is_terminal(status: str | None) -> bool:
    """True when a run or task run will not change state again.

    An unknown status (newer than this provider) is treated as *not* terminal: the caller keeps
    polling and its wait timeout bounds the damage, which is safer than failing a healthy run.
    """
    return status in TERMINAL_STATUSES


def is_active(status: str | None) -> bool:
    """True for every status that is not terminal, including unknown and missing ones."""
    return not is_terminal(status)


# --- models ----------------------------------------------------------------------------------


class State(ResponseModel):
    status: str | None = None
    state_message: str | None = None
    error_trace: str | None = None
    is_user_canceled_or_timed_out: bool | None = None


class Parameter(ResponseModel):
    name: str
    value: str | None = None


class JobSummary(ResponseModel):
    key: str
    name: str | None = None
    path: str | None = None


class Job(ResponseModel):
    """A full job definition as GET /jobs/{key} returns it (the write-side spec lives in models.jobs)."""

    key: str
    name: str | None = None
    path: str | None = None
    max_concurrent_runs: int | None = None
    tasks: list[dict[str, Any]] | None = None
    job_clusters: list[dict[str, Any]] | None = None
    parameters: list[Parameter] | None = None


class RepairHistory(ResponseModel):
    type: str | None = None
    key: int | None = None
    state: State | None = None
    task_to_task_run_map: dict[str, str] | None = None
    repaired_tasks: list[str] | None = None


class JobRun(ResponseModel):
    key: str
    name: str | None = None
    job_key: str | None = None
    job_name: str | None = None
    root_job_run_key: str | None = None
    state: State = Field(default_factory=State)
    task_to_task_run_map: dict[str, str] | None = None
    task_run_summary_map: dict[str, Any] | None = None
    parameters: list[Parameter] | None = None
    repair_history: list[RepairHistory] | None = None
    repair_key: int | None = None
    repaired_tasks: list[str] | None = None
    start_time: int | None = None
    end_time: int | None = None
    execution_duration: int | None = None
    run_duration: int | None = None

    @property
    def status(self) -> str | None:
        return self.state.status


class JobRunSummary(ResponseModel):
    key: str
    name: str | None = None
    job_key: str | None = None
    state: State = Field(default_factory=State)
    start_time: int | None = None
    end_time: int | None = None

    @property
    def status(self) -> str | None:
        return self.state.status


class TaskRun(ResponseModel):
    """A task run (GET /taskRuns/{key}) or a task-run summary (GET /taskRuns?jobRunKey=...)."""

    key: str
    name: str | None = None
    task_key: str | None = None
    job_run_key: str | None = None
    state: State = Field(default_factory=State)
    start_time: int | None = None
    end_time: int | None = None
    execution_duration: int | None = None
    retry_attempt: int | None = None
    output_key: str | None = None
    task: dict[str, Any] | None = None

    @property
    def status(self) -> str | None:
        return self.state.status


class RunOutputData(ResponseModel):
    type: str | None = None
    value: str | None = None
    is_base64: bool | None = None
    compression: str | None = None
    charset: str | None = None
    length: str | None = None


class OutputParameter(ResponseModel):
    name: str
    value: str | None = None


class TaskRunOutput(ResponseModel):
    key: str | None = None
    task_type: str | None = None
    is_truncated: bool | None = None
    error_trace: str | None = None
    data: list[RunOutputData] = Field(default_factory=list)
    output_parameters: list[OutputParameter] | None = None


class ExportedTaskRunOutputContents(ResponseModel):
    name: str | None = None
    path: str | None = None
    content: Any = None
    format: str | None = None
