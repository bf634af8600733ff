"""The task runs of a job run, one per task (its latest attempt), read from the run itself.

The field notes name ``GET .../jobRuns/{key}`` as the way to a run's "task-to-task-run mapping";
the SDK's ``JobRun`` carries ``taskToTaskRunMap`` (task key -> task-run key, the current attempt)
and, when asked with ``shouldIncludeTaskRunSummaries``, ``taskRunSummaryMap``. That is the source
here. The ``taskRuns`` listing is only a fallback: on some surface it may not exist (404), and it
may keep superseded attempts after a repair, so it is reduced to the latest attempt per task, and
its ``jobRunKey`` filter is checked locally (``runs/listed.py``): another run's task runs are dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from airflow_provider_aidp.exceptions import AIDPError
from airflow_provider_aidp.models.runs import FAILED_STATUSES, JobRun, TaskRun
from airflow_provider_aidp.runs.listed import of_run

if TYPE_CHECKING:
    from airflow_provider_aidp.hooks.aidp import AIDPHook

#: Task statuses that count as "this task failed" (UPSTREAM_* are consequences, listed apart).
TASK_FAILED = (FAILED_STATUSES - {"UPSTREAM_FAILED"}) | {"CANCELED"}


def with_summaries(hook: AIDPHook, run: JobRun) -> JobRun:
    """The run with its task-run summaries: ``run`` itself if it has them, else one GET."""
    if run.task_run_summary_map:
        return run
    return hook.get_job_run(run.key, include_task_runs=True)


def latest_task_runs(hook: AIDPHook, run: JobRun, log: Any, *, detail_failed: bool = True) -> list[TaskRun]:
    """One task run per task (the latest attempt), failed ones read in full; execution order."""
    try:
        run = with_summaries(hook, run)
    except AIDPError as exc:
        log.warning("Could not read AIDP job run %s with its task runs: %s", run.key, exc)
    task_runs = from_run(run)
    if task_runs is None or any(t.status is None for t in task_runs):
        task_runs = _fallback(hook, run, task_runs or [], log)
    if detail_failed:
        task_runs = [_detailed(hook, t, log) if t.status in TASK_FAILED else t for t in task_runs]
    task_runs.sort(key=lambda t: (t.start_time is None, t.start_time or 0, t.task_key or ""))
    return task_runs


def from_run(run: JobRun) -> list[TaskRun] | None:
    """Task runs named by the run's ``taskToTaskRunMap`` (state from ``taskRunSummaryMap``), or None."""
    mapping = run.task_to_task_run_map
    summaries = run.task_run_summary_map or {}
    if not mapping:
        if not summaries:
            return None
        return latest_per_task(_parse(s, k) for k, s in summaries.items())
    out = []
    for task_key, tr_key in mapping.items():
        summary = summaries.get(tr_key) or summaries.get(task_key)
        parsed = _parse(summary, tr_key) if isinstance(summary, dict) else None
        if parsed is None or parsed.key != tr_key:
            parsed = TaskRun(key=tr_key, task_key=task_key)
        elif not parsed.task_key:
            parsed.task_key = task_key
        out.append(parsed)
    return out


def _parse(summary: Any, key: str) -> TaskRun | None:
    if not isinstance(summary, dict):
        return None
    try:
        return TaskRun.model_validate({"key": key, **summary})
    except ValidationError:
        return None


def latest_per_task(task_runs: Iterable[TaskRun | None]) -> list[TaskRun]:
    """Keep each task's latest attempt: highest ``retryAttempt``, then latest start."""
    best: dict[str, TaskRun] = {}
    for tr in task_runs:
        if tr is None:
            continue
        name = tr.task_key or tr.name or tr.key
        current = best.get(name)
        if current is None or _order(tr) > _order(current):
            best[name] = tr
    return list(best.values())


def _order(tr: TaskRun) -> tuple[int, int]:
    return (tr.retry_attempt or 0, tr.start_time or 0)


def _fallback(hook: AIDPHook, run: JobRun, known: list[TaskRun], log: Any) -> list[TaskRun]:
    """States the run did not carry: from the listing, else one GET per task run of the map."""
    wanted = {t.key for t in known}
    try:
        listed = of_run(hook.list_task_runs(run.key), run.key)  # the server may ignore jobRunKey
    except AIDPError as exc:
        log.info("No task-run listing for AIDP job run %s (%s); reading task runs one by one", run.key, exc)
        return [_detailed(hook, t, log) if t.status is None else t for t in known]
    if wanted:  # the map names the current attempts: the listing only fills in their states
        by_key = {t.key: t for t in listed}
        return [_merge(t, by_key[t.key]) if t.key in by_key else _detailed(hook, t, log) for t in known]
    return latest_per_task(listed)


def _detailed(hook: AIDPHook, task_run: TaskRun, log: Any) -> TaskRun:
    try:
        return _merge(task_run, hook.get_task_run(task_run.key))
    except AIDPError as exc:
        log.warning("Could not read AIDP task run %s: %s", task_run.key, exc)
        return task_run


def _merge(known: TaskRun, full: TaskRun) -> TaskRun:
    data = known.model_dump(exclude_none=True)
    data.update(full.model_dump(exclude_none=True))
    return TaskRun.model_validate(data)


def failed_task_keys(hook: AIDPHook, run: JobRun, log: Any) -> list[str]:
    """Task keys whose latest attempt failed (``UPSTREAM_*`` ones follow via include_downstream)."""
    return [
        t.task_key
        for t in latest_task_runs(hook, run, log, detail_failed=False)
        if t.status in TASK_FAILED and t.task_key
    ]
