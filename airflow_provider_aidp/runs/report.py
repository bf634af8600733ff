"""How a finished wait becomes the Airflow task's result: a summary, or ONE failure message.

SUCCESS -> a summary (per-task status and duration) for the log and XCom ``run_summary``.
Anything else -> one exception naming the run, each failed task, its ``stateMessage``, the errors
its output reports and the start of its ``errorTrace``; task-run outputs go to the Airflow log
(truncated, with a marker). :func:`finish` makes the API reads this needs (through the hook);
the rest are pure functions of models. Used by the run operator (sync and deferred), the repair
operator and the sensor, so their failure semantics cannot drift apart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from airflow_provider_aidp.exceptions import (
    AIDPConfigError,
    AIDPError,
    AIDPJobRunError,
    AIDPPollError,
    AIDPRunTimeoutError,
)
from airflow_provider_aidp.models.outputs import strip_ansi
from airflow_provider_aidp.models.runs import SUCCESS, TASK_FAILED_STATUSES, JobRun, TaskRun
from airflow_provider_aidp.runs import wait

if TYPE_CHECKING:
    from airflow_provider_aidp.hooks.aidp import AIDPHook

TASK_FAILED = TASK_FAILED_STATUSES

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


def finish(
    hook: AIDPHook,
    event: dict[str, Any],
    *,
    run_url: str | None,
    fetch_output: str = "on_failure",
    max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
    log: logging.Logger | Any,
    on_summary: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Return the run summary on SUCCESS; otherwise log diagnostics and raise one clear error.

    ``on_summary`` receives the summary of every terminal run (failed ones too) before raising.
    """
    kind = event.get("event")
    run_key = str(event.get("run_key"))
    if kind == wait.TIMEOUT:
        raise AIDPRunTimeoutError(
            with_url(event["message"], run_url), run_key=run_key, canceled=bool(event.get("canceled"))
        )
    if kind in (wait.POLL_ERROR, wait.ERROR):
        raise AIDPPollError(with_url(event["message"], run_url), run_key=run_key, kind=str(kind))
    if kind != wait.TERMINAL:
        raise AIDPError(f"Unexpected wait result for AIDP job run {run_key}: {event!r}")
    run = JobRun.model_validate(event["run"])
    task_runs = hook.get_task_runs(run)
    succeeded = run.status == SUCCESS
    errors: dict[str, list[str]] = {}
    if fetch_output == "always" or (fetch_output == "on_failure" and not succeeded):
        wanted = task_runs if fetch_output == "always" else [t for t in task_runs if t.status != SUCCESS]
        errors = log_outputs(hook, wanted, max_output_chars=max_output_chars, log=log)
    summary = build_summary(run, task_runs, run_url)
    log.info("AIDP job run %s ended %s:\n%s", run.key, run.status, format_summary(summary))
    if on_summary is not None:
        on_summary(summary)
    if not succeeded:
        raise AIDPJobRunError(
            failure_message(run, task_runs, run_url, errors), run_key=run.key, status=str(run.status)
        )
    return summary


def log_outputs(
    hook: AIDPHook, task_runs: list[TaskRun], *, max_output_chars: int, log: Any
) -> dict[str, list[str]]:
    """Write each task run's output, as text, to the Airflow log; a failed fetch is a warning.

    Returns the errors each output reports (``ename: evalue``), by task-run key, for the failure
    message. A task run with no output key gets no fetch.
    """
    errors: dict[str, list[str]] = {}
    for task in task_runs:
        name = task.task_key or task.name or task.key
        try:
            rendered = hook.read_task_run_output(task)
        except AIDPError as exc:
            log.warning("Could not fetch the output of AIDP task %s (%s): %s", name, task.key, exc)
            continue
        if rendered is None:
            log.info("AIDP task %s (%s) has no output key; no output to fetch.", name, task.status)
            continue
        errors[task.key] = rendered.errors
        if not rendered.text:
            log.info("AIDP task %s (%s) produced no output.", name, task.status)
            continue
        marker = " (AIDP says this output is truncated)" if rendered.truncated else ""
        text = truncate(rendered.text, max_output_chars)
        log.info("Output of AIDP task %s (%s)%s:\n%s", name, task.status, marker, text)
    return errors
