"""Plain in-memory records of jobs, runs and task runs, and their API (camelCase) renderings."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from .scripting import TaskScript
from .validation import render_task

Scope = tuple[str, str]  # (ai_data_platform_id, workspace_key)
CREATED_BY = "ocid1.user.oc1..emulator"
TERMINAL = frozenset(
    {
        "SUCCESS",
        "FAILED",
        "CANCELED",
        "TIMED_OUT",
        "SKIPPED",
        "INTERNAL_ERROR",
        "UPSTREAM_FAILED",
        "UPSTREAM_CANCELED",
        "EXCLUDED",
    }
)


def rfc3339(seconds: float) -> str:
    return (
        dt.datetime.fromtimestamp(seconds, dt.timezone.utc)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def ms(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1000)


def etag_of(body: dict[str, Any]) -> str:
    return hashlib.md5(json.dumps(body, sort_keys=True).encode()).hexdigest()


def drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def state_body(status: str, message: str | None, trace: str | None, canceled: bool) -> dict[str, Any]:
    """The ``state`` object of a run or task run (SDK ``JobRunState`` / ``TaskRunState``)."""
    return drop_none(
        {
            "status": status,
            "stateMessage": message,
            "errorTrace": trace,
            "isUserCanceledOrTimedOut": canceled or status == "TIMED_OUT" or None,
        }
    )


@dataclass
class JobRecord:
    key: str
    scope: Scope
    body: dict[str, Any]
    created: float
    updated: float
    #: real (monotonic) seconds at creation: the consistency readings count their lags from it
    created_mono: float = 0.0

    def render(self, api_version: str) -> dict[str, Any]:
        body = {k: v for k, v in self.body.items() if k != "tasks"}
        tasks = self.body.get("tasks")
        return drop_none(
            {
                **body,
                "key": self.key,
                "createdBy": CREATED_BY,
                "createdByName": "emulator",
                "updatedBy": CREATED_BY,
                "tasks": None if tasks is None else [render_task(t, api_version) for t in tasks],
                "timeCreated": rfc3339(self.created),
                "timeUpdated": rfc3339(self.updated),
            }
        )

    def summary(self) -> dict[str, Any]:
        clusters = self.body.get("jobClusters") or []
        return drop_none(
            {
                "key": self.key,
                "name": self.body.get("name"),
                "path": self.body.get("path"),
                "schedule": self.body.get("schedule"),
                "createdBy": CREATED_BY,
                "createdByName": "emulator",
                "timeCreated": rfc3339(self.created),
                "timeUpdated": rfc3339(self.updated),
                "clusters": [c.get("clusterKey") for c in clusters if c.get("clusterKey")],
                "jobClusters": clusters or None,
            }
        )


@dataclass
class TaskRunRecord:
    key: str
    run_key: str
    job_key: str
    task: dict[str, Any]
    script: TaskScript
    repair_key: int
    output_key: str
    created: float
    created_mono: float = 0.0  # real (monotonic) seconds at creation, for the consistency readings
    status: str = "PENDING"
    start: float | None = None
    planned_end: float | None = None
    planned_outcome: str = "SUCCESS"
    planned_message: str | None = None
    planned_trace: str | None = None
    end: float | None = None
    state_message: str | None = None
    error_trace: str | None = None
    user_canceled: bool = False
    attempt: int = 0  # retries of this task run (maxRetries): 0 = first attempt
    earlier_attempts: int = 0  # attempts of the same task in earlier task runs (before a repair)
    child: RunRecord | None = None  # the nested run of a JOB_TASK
    retries: list[dict[str, Any]] = field(default_factory=list)  # earlier attempts (TaskRunRetry)

    @property
    def task_key(self) -> str:
        return str(self.task["taskKey"])

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    def state(self) -> dict[str, Any]:
        return state_body(self.status, self.state_message, self.error_trace, self.user_canceled)

    def summary(self, root_key: str) -> dict[str, Any]:
        return drop_none(
            {
                "key": self.key,
                "name": self.task_key,
                "taskKey": self.task_key,
                "jobRunKey": self.run_key,
                "rootJobRunKey": root_key,
                "startTime": ms(self.start),
                "endTime": ms(self.end),
                "state": self.state(),
                "retryAttempt": self.earlier_attempts + self.attempt,
            }
        )

    def retry_record(self) -> dict[str, Any]:
        """The current attempt as a TaskRunRetry (kept when the task is retried)."""
        return drop_none(
            {
                "key": f"{self.key}-{self.attempt}",
                "name": f"{self.task_key}_attempt_{self.attempt}",
                "taskRunKey": self.key,
                "retryNumber": self.attempt,
                "startTime": ms(self.start),
                "endTime": ms(self.end),
                "state": self.state(),
                "outputKey": self.output_key,
                "version": 1,
            }
        )

    def render(self, api_version: str) -> dict[str, Any]:
        duration = None if self.start is None or self.end is None else int((self.end - self.start) * 1000)
        return drop_none(
            {
                **self.summary(self.run_key),
                "jobKey": self.job_key,
                "executionDuration": duration,
                "setupDuration": 0 if duration is not None else None,
                "cleanupDuration": 0 if duration is not None else None,
                "task": render_task(self.task, api_version),
                "outputKey": self.output_key,
                "version": 1,
                "externalId": f"spark-{self.key[:8]}",
            }
        )


@dataclass
class RunRecord:
    key: str
    scope: Scope
    job_key: str
    job_name: str
    number: int
    tasks: list[dict[str, Any]]
    job_body: dict[str, Any]
    parameters: list[dict[str, Any]]
    created: float
    attempt_start: float
    created_mono: float = 0.0  # real (monotonic) seconds at creation, for the consistency readings
    status: str = "PENDING"
    state_message: str | None = "Run is pending"
    error_trace: str | None = None
    start: float | None = None
    end: float | None = None
    cancel_at: float | None = None
    repair_key: int = 0
    waiting: bool = False  # queued behind maxConcurrentRuns (job queue enabled)
    parent_run_key: str | None = None  # set on the child run of a JOB_TASK
    parent_task_run_key: str | None = None
    root_run_key: str | None = None
    depth: int = 0
    task_runs: dict[str, TaskRunRecord] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    repaired_tasks: list[str] = field(default_factory=list)
    launched: str = "MANUAL"  # SCHEDULED when the job's schedule started it

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    def state(self) -> dict[str, Any]:
        return state_body(self.status, self.state_message, self.error_trace, self.cancel_at is not None)

    def summary(self) -> dict[str, Any]:
        return drop_none(
            {
                "key": self.key,
                "name": f"{self.job_name}_run_{self.number}",
                "jobKey": self.job_key,
                "jobName": self.job_name,
                "state": self.state(),
                "launched": self.launched,
                "startTime": ms(self.start),
                "endTime": ms(self.end),
                "executionDuration": self._duration(),
                "timeCreated": rfc3339(self.created),
                "timeUpdated": rfc3339(self.end or self.start or self.created),
                "createdBy": CREATED_BY,
                "createdByName": "emulator",
            }
        )

    def _duration(self) -> int | None:
        if self.start is None:
            return None
        return int(((self.end or self.start) - self.start) * 1000)

    def render(self, api_version: str, include_summaries: bool = False) -> dict[str, Any]:
        job_params = self.job_body.get("parameters") or []
        merged = {p["name"]: p for p in job_params} | {p["name"]: p for p in self.parameters}
        body = {
            **self.summary(),
            "rootJobRunKey": self.root_run_key or self.key,
            "parentJobRunKey": self.parent_run_key,
            "parentTaskRunKey": self.parent_task_run_key,
            "tasks": [render_task(t, api_version) for t in self.tasks],
            "maxConcurrentRuns": self.job_body.get("maxConcurrentRuns"),
            "parameters": self.parameters or None,
            "unifiedJobAndJobRunParameters": list(merged.values()) or None,
            "repairHistory": self.history or None,
            "repairKey": self.repair_key,
            "repairedTasks": self.repaired_tasks or None,
            "runDuration": self._duration(),
            "taskToTaskRunMap": {k: tr.key for k, tr in self.task_runs.items()},
            "timeoutSeconds": self.job_body.get("timeoutSeconds"),
            "systemParameters": {
                "job.id": self.job_key,
                "job.run_id": self.key,
                "job.repair_count": str(self.repair_key),
            },
            "version": 1,
        }
        if include_summaries:
            body["taskRunSummaryMap"] = {tr.key: tr.summary(self.key) for tr in self.task_runs.values()}
        return drop_none(body)

    def history_entry(self) -> dict[str, Any]:
        return drop_none(
            {
                "type": "ORIGINAL" if self.repair_key == 0 else "REPAIR",
                "key": self.repair_key,
                "state": self.state(),
                "startTime": ms(self.start),
                "endTime": ms(self.end),
                "taskToTaskRunMap": {k: tr.key for k, tr in self.task_runs.items()},
                "parameters": self.parameters or None,
                "repairedTasks": list(self.repaired_tasks) if self.repair_key else None,
            }
        )
