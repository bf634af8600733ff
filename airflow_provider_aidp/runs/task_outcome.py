"""How one finished AIDP task run of a workflow task group becomes its Airflow task's result.

Every AIDP task status has one Airflow outcome (:data:`OUTCOMES`), so the grid shows the AIDP run as
it is: a task AIDP ran and finished is ``success`` or ``failed``, one AIDP did not run by design
(an if/else branch not taken, a task left out) is ``skipped``, one AIDP did not run because an
upstream task failed or was cancelled is ``upstream_failed``. Airflow itself sets that last state
(trigger rules mirror ``runIf``, see ``operators/workflow.py``) before the task runs; a task that
runs anyway and finds its AIDP task not run for an upstream's sake fails naming the upstream, so a
Clear repairs it. Unknown statuses are not terminal here, as everywhere (the wait goes on).

Pure functions of models plus :func:`finish_task`, which reads the task run in full and its output
through the hook; nothing here imports Airflow.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from airflow_provider_aidp.exceptions import AIDPError, AIDPPollError, AIDPRunTimeoutError, AIDPTaskRunError
from airflow_provider_aidp.models.runs import (
    CANCELED_STATUSES,
    FAILED_STATUSES,
    NOT_RUN_STATUSES,
    SUCCESS,
    TERMINAL_STATUSES,
    TaskRun,
)
from airflow_provider_aidp.runs import wait
from airflow_provider_aidp.runs.report import duration_seconds, log_outputs, trace_head, with_url

if TYPE_CHECKING:
    from airflow_provider_aidp.hooks.aidp import AIDPHook

#: Airflow outcomes of a workflow task.
SUCCEEDED, FAILED, SKIPPED, UPSTREAM_FAILED = "success", "failed", "skipped", "upstream_failed"

#: AIDP statuses meaning "not run because an upstream task failed / was cancelled".
NOT_RUN_FOR_UPSTREAM = frozenset({"UPSTREAM_FAILED", "UPSTREAM_CANCELED"})

#: Every terminal AIDP task status -> the Airflow state the grid shows for the task.
OUTCOMES: dict[str, str] = {
    SUCCESS: SUCCEEDED,
    **{s: FAILED for s in (FAILED_STATUSES | CANCELED_STATUSES) - NOT_RUN_FOR_UPSTREAM},
    **{s: UPSTREAM_FAILED for s in NOT_RUN_FOR_UPSTREAM},
    **{s: SKIPPED for s in NOT_RUN_STATUSES},
}
assert set(OUTCOMES) == TERMINAL_STATUSES, "every terminal status needs an Airflow outcome"


def outcome_of(status: str | None) -> str | None:
    """The Airflow outcome of a terminal AIDP task status; ``None`` while it is not terminal."""
    return OUTCOMES.get(status or "")


def task_summary(task_run: TaskRun, *, run_key: str, task_key: str, run_url: str | None) -> dict[str, Any]:
    """The JSON pushed to XCom as ``task_run`` (documented in docs/operators.md)."""
    return {
        "run_key": run_key,
        "task_key": task_key,
        "task_run_key": task_run.key,
        "status": task_run.status,
        "state_message": task_run.state.state_message,
        "duration_seconds": duration_seconds(
            task_run.start_time, task_run.end_time, task_run.execution_duration
        ),
        "run_url": run_url,
    }


def failure_message(
    task_run: TaskRun, *, run_key: str, task_key: str, run_url: str | None, errors: list[str]
) -> str:
    """One message: the task, its status and stateMessage, the errors its output reports, the start
    of its errorTrace, what to do (a Clear repairs it in the same run) and the run's link."""
    status = task_run.status or "unknown"
    head = f"AIDP task {task_key} (task run {task_run.key}) of job run {run_key} ended {status}"
    if task_run.state.state_message:
        head += f": {task_run.state.state_message}"
    lines = [head]
    trace = task_run.state.error_trace or ""
    lines += [f"    {e}" for e in errors if e not in head and e not in trace]
    if trace:
        lines.append("    " + trace_head(trace).replace("\n", "\n    "))
    if status in NOT_RUN_FOR_UPSTREAM:
        lines.append(
            "AIDP did not run it because an upstream AIDP task did not succeed, although the Airflow "
            "upstream tasks did (one was marked success by hand?). Clear the upstream task to repair it."
        )
    else:
        lines.append("Clearing this task repairs it in the same AIDP job run (no new run).")
    return with_url("\n".join(lines), run_url)


def finish_task(
    hook: AIDPHook,
    event: dict[str, Any],
    *,
    task_key: str,
    run_url: str | None,
    fetch_output: str,
    max_output_chars: int,
    log: logging.Logger | Any,
    on_summary: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[dict[str, Any], str]:
    """``(summary, outcome)`` for a task run that ended ``success`` or ``skipped``; otherwise log the
    output and diagnostics and raise one :class:`AIDPTaskRunError` (or the wait's own error)."""
    kind, run_key = event.get("event"), str(event.get("run_key"))
    if kind == wait.TIMEOUT:
        raise AIDPRunTimeoutError(with_url(event["message"], run_url), run_key=run_key, canceled=False)
    if kind in (wait.POLL_ERROR, wait.ERROR):
        raise AIDPPollError(with_url(event["message"], run_url), run_key=run_key, kind=str(kind))
    if kind != wait.TERMINAL:
        raise AIDPError(f"Unexpected wait result for AIDP task {task_key} of run {run_key}: {event!r}")
    task_run = TaskRun.model_validate(event["run"])
    outcome = outcome_of(task_run.status)
    if outcome in (FAILED, UPSTREAM_FAILED):
        task_run = _detailed(hook, task_run, log)
    errors: list[str] = []
    if fetch_output == "always" or (fetch_output == "on_failure" and outcome != SUCCEEDED):
        errors = log_outputs(hook, [task_run], max_output_chars=max_output_chars, log=log).get(
            task_run.key, []
        )
    summary = task_summary(task_run, run_key=run_key, task_key=task_key, run_url=run_url)
    took = "" if summary["duration_seconds"] is None else f" in {summary['duration_seconds']:.1f}s"
    log.info("AIDP task %s (task run %s) ended %s%s", task_key, task_run.key, task_run.status, took)
    if on_summary is not None:
        on_summary(summary)
    if outcome in (SUCCEEDED, SKIPPED):
        return summary, outcome
    message = failure_message(task_run, run_key=run_key, task_key=task_key, run_url=run_url, errors=errors)
    raise AIDPTaskRunError(message, run_key=run_key, task_key=task_key, status=str(task_run.status))


def _detailed(hook: AIDPHook, task_run: TaskRun, log: Any) -> TaskRun:
    """The task run read by key (its errorTrace and outputKey, which summaries may leave out)."""
    try:
        full = hook.get_task_run(task_run.key)
    except AIDPError as exc:
        log.warning("Could not read AIDP task run %s in full: %s", task_run.key, exc)
        return task_run
    data = task_run.model_dump(exclude_none=True)
    data.update(full.model_dump(exclude_none=True))
    return TaskRun.model_validate(data)
