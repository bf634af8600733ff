"""Formatting of a finished run: the summary (XCom ``run_summary``), the one failure message, traces.

Pure functions of models: no API calls here (``runs/finish.py`` reads the task runs and outputs
and calls these). The failure message names the run, each failed task, its ``stateMessage`` and
the start of its ``errorTrace``.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_aidp.exceptions import AIDPConfigError
from airflow_provider_aidp.models.runs import SUCCESS, JobRun, TaskRun
from airflow_provider_aidp.runs.outputs import strip_ansi
from airflow_provider_aidp.runs.task_runs import TASK_FAILED

FETCH_OUTPUT_CHOICES = ("on_failure", "always", "never")
DEFAULT_MAX_OUTPUT_CHARS = 20_000
TRACE_HEAD_CHARS = 600
TRUNCATION_MARKER = "... [truncated {omitted} more characters]"


def validate_fetch_output(value: str) -> str:
    if value not in FETCH_OUTPUT_CHOICES:
        raise AIDPConfigError(
            f"fetch_output must be one of {', '.join(FETCH_OUTPUT_CHOICES)}; got {value!r}.",
            field="fetch_output",
        )
    return value


def with_url(message: str, run_url: str | None) -> str:
    return f"{message} Run: {run_url}" if run_url else message


def duration_seconds(
    start_ms: int | None, end_ms: int | None, execution_ms: int | None = None
) -> float | None:
    if execution_ms is not None:
        return round(execution_ms / 1000.0, 3)
    if start_ms is not None and end_ms is not None:
        return round((end_ms - start_ms) / 1000.0, 3)
    return None


def build_summary(run: JobRun, task_runs: list[TaskRun], run_url: str | None) -> dict[str, Any]:
    """The JSON pushed to XCom as ``run_summary`` (documented in docs/operators.md)."""
    return {
        "run_key": run.key,
        "job_key": run.job_key,
        "status": run.status,
        "state_message": run.state.state_message,
        "duration_seconds": duration_seconds(run.start_time, run.end_time, run.execution_duration),
        "run_url": run_url,
        "tasks": [
            {
                "task_key": t.task_key or t.name or t.key,
                "task_run_key": t.key,
                "status": t.status,
                "state_message": t.state.state_message,
                "duration_seconds": duration_seconds(t.start_time, t.end_time, t.execution_duration),
            }
            for t in task_runs
        ],
    }


def format_summary(summary: dict[str, Any]) -> str:
    lines = []
    for task in summary["tasks"]:
        took = "" if task["duration_seconds"] is None else f" in {task['duration_seconds']:.1f}s"
        lines.append(f"  {task['task_key']}: {task['status']}{took}")
    return "\n".join(lines) or "  (no task runs reported)"


def failure_message(
    run: JobRun,
    task_runs: list[TaskRun],
    run_url: str | None,
    errors: dict[str, list[str]] | None = None,
) -> str:
    """One message: the run, each failed task (once) with its stateMessage, the errors its output
    reports (``ename: evalue``, keyed by task-run key in ``errors``) and the start of its errorTrace."""
    job = run.job_name or run.job_key or "?"
    if run.status == "SKIPPED":
        head = (
            f"AIDP job run {run.key} of job {job} was SKIPPED: another run of this job was already active "
            f"and the job's maxConcurrentRuns limit was reached, so AIDP did not start it."
        )
    else:
        head = f"AIDP job run {run.key} of job {job} ended {run.status}"
        if run.state.state_message:
            head += f": {run.state.state_message}"
    lines = [head]
    failed = [t for t in task_runs if t.status in TASK_FAILED]
    for task in failed:
        line = f"- task {task.task_key or task.name or task.key} {task.status}"
        if task.state.state_message:
            line += f": {task.state.state_message}"
        lines.append(line)
        trace = task.state.error_trace or ""
        for error in (errors or {}).get(task.key, []):
            if error not in line and error not in trace:
                lines.append(f"    {error}")
        if task.state.error_trace:
            lines.append("    " + trace_head(task.state.error_trace).replace("\n", "\n    "))
    others = [t for t in task_runs if t.status not in TASK_FAILED and t.status != SUCCESS]
    if others:
        lines.append(
            "Not run or not finished: " + ", ".join(f"{t.task_key or t.key} ({t.status})" for t in others)
        )
    if run.status != "SKIPPED" and not failed and run.state.error_trace:
        lines.append("    " + trace_head(run.state.error_trace).replace("\n", "\n    "))
    if run_url:
        lines.append(f"Run: {run_url}")
    return "\n".join(lines)


def trace_head(trace: str, limit: int = TRACE_HEAD_CHARS) -> str:
    """The start of a trace; when cut, its last line too (a Python traceback ends with the error)."""
    text = strip_ansi(trace).strip()
    head = truncate(text, limit)
    last = text.splitlines()[-1] if text else ""
    if head != text and last and last not in head:
        head += f"\n{last}"
    return head


def truncate(text: str, limit: int) -> str:
    if limit <= 0 or len(text) <= limit:
        return text
    return text[:limit] + TRUNCATION_MARKER.format(omitted=len(text) - limit)
