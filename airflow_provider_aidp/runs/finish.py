"""Turn a finished wait (an ``outcome`` event) into the Airflow task's result.

SUCCESS -> a summary (per-task status and duration) for the log and XCom. Anything else -> ONE
exception (formatted by ``runs/report.py``); task-run outputs are written to the Airflow log
(truncated, with a marker). The API reads this needs (task runs, outputs) happen here, not in the
formatting. Used by the run operator (sync and deferred), the repair operator and the sensor, so
their failure semantics cannot drift apart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from airflow_provider_aidp.exceptions import AIDPError, AIDPJobRunError, AIDPPollError, AIDPRunTimeoutError
from airflow_provider_aidp.models.runs import SUCCESS, JobRun, TaskRun
from airflow_provider_aidp.runs import outcome
from airflow_provider_aidp.runs.outputs import RenderedOutput, render
from airflow_provider_aidp.runs.report import (
    DEFAULT_MAX_OUTPUT_CHARS,
    build_summary,
    failure_message,
    format_summary,
    truncate,
    with_url,
)
from airflow_provider_aidp.runs.task_runs import latest_task_runs

if TYPE_CHECKING:
    from airflow_provider_aidp.hooks.aidp import AIDPHook


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
    if kind == outcome.TIMEOUT:
        raise AIDPRunTimeoutError(
            with_url(event["message"], run_url), run_key=run_key, canceled=bool(event.get("canceled"))
        )
    if kind in (outcome.POLL_ERROR, outcome.ERROR):
        raise AIDPPollError(with_url(event["message"], run_url), run_key=run_key, kind=str(kind))
    if kind != outcome.TERMINAL:
        raise AIDPError(f"Unexpected wait result for AIDP job run {run_key}: {event!r}")
    run = JobRun.model_validate(event["run"])
    task_runs = latest_task_runs(hook, run, log)
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
    message. A task run with no ``outputKey`` gets no fetch with a body the service may reject.
    """
    errors: dict[str, list[str]] = {}
    for task in task_runs:
        name = task.task_key or task.name or task.key
        rendered = _fetch(hook, task, name, log)
        if rendered is None:
            continue
        errors[task.key] = rendered.errors
        if not rendered.text:
            log.info("AIDP task %s (%s) produced no output.", name, task.status)
            continue
        marker = " (AIDP says this output is truncated)" if rendered.truncated else ""
        log.info(
            "Output of AIDP task %s (%s)%s:\n%s",
            name,
            task.status,
            marker,
            truncate(rendered.text, max_output_chars),
        )
    return errors


def _fetch(hook: AIDPHook, task: TaskRun, name: str, log: Any) -> RenderedOutput | None:
    try:
        output_key = task.output_key or hook.get_task_run(task.key).output_key
        if not output_key:
            log.info("AIDP task %s (%s) has no output key; no output to fetch.", name, task.status)
            return None
        return render(hook.fetch_task_run_output(task.key, output_key))
    except AIDPError as exc:
        log.warning("Could not fetch the output of AIDP task %s (%s): %s", name, task.key, exc)
        return None
