"""The run / task state machine, evaluated lazily: ``advance(run, now)`` brings a run up to date.

Nothing ticks in the background. Every read of a run first replays what would have happened up to
the current emulator time, so 1,000 pollers cost one cheap replay each and an idle emulator costs
nothing. A run's timeline (emulator seconds from the current attempt's start):

    PENDING (pending_s) -> QUEUED (queued_s) -> RUNNING: each task starts when its dependsOn
    upstreams are done and its runIf allows, runs for its scripted duration, ends with its
    scripted outcome -> run ends with the worst task outcome.

Cancel freezes task progress at the cancel time; ``cancel_s`` later running tasks become CANCELED,
unstarted ones UPSTREAM_CANCELED and the run CANCELED (CANCELING in between).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

from .records import RunRecord, TaskRunRecord
from .scripting import TaskScript


class World(Protocol):
    """What the state machine needs from the store: new scripts for retries, child runs for JOB_TASKs."""

    def rescript(self, run: RunRecord, task: dict[str, Any]) -> TaskScript: ...

    def spawn(self, run: RunRecord, tr: TaskRunRecord, at: float) -> RunRecord | str: ...


UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
FAILED = frozenset({"FAILED", "INTERNAL_ERROR", "TIMED_OUT", "UPSTREAM_FAILED"})
CANCELED = frozenset({"CANCELED", "UPSTREAM_CANCELED"})
NOT_RUN = frozenset({"EXCLUDED", "SKIPPED"})


@dataclass
class Timings:
    """Emulator-second durations of the phases every run goes through."""

    pending_s: float = 1.0
    queued_s: float = 1.0
    cancel_s: float = 1.0
    task_s: float = 3.0  # default task duration when no script gives one


def advance(run: RunRecord, now: float, timings: Timings, world: World | None = None) -> None:
    if run.done:
        return
    frozen = now if run.cancel_at is None else min(now, run.cancel_at)
    t0 = run.attempt_start + timings.pending_s + timings.queued_s
    if frozen < run.attempt_start + timings.pending_s:
        _set(run, "PENDING", "Run is pending")
    elif frozen < t0:
        _set(run, "QUEUED", "Waiting for cluster resources")
    else:
        if run.start is None:
            run.start = t0
        _set(run, "RUNNING", "Run is running")
        timeout = float(run.job_body.get("timeoutSeconds") or 0)
        deadline = t0 + timeout if timeout else None
        _progress_tasks(run, frozen if deadline is None else min(frozen, deadline), t0, timings, world)
        if deadline is not None and frozen >= deadline and not all(tr.done for tr in run.task_runs.values()):
            _finish_timeout(run, deadline)
            return
    if run.cancel_at is not None:
        if now >= run.cancel_at + timings.cancel_s:
            _finish_cancel(run, run.cancel_at + timings.cancel_s)
        else:
            _set(run, "CANCELING", "Cancel requested")
    elif run.status == "RUNNING" and all(tr.done for tr in run.task_runs.values()):
        _finish(run)


def _set(run: RunRecord, status: str, message: str) -> None:
    run.status, run.state_message = status, message


def _progress_tasks(run: RunRecord, now: float, t0: float, timings: Timings, world: World | None) -> None:
    changed = True
    while changed:
        changed = False
        for tr in run.task_runs.values():
            if tr.done:
                continue
            if tr.start is None and _try_start(run, tr, now, t0, timings, world):
                changed = True
            if tr.child is not None and not tr.done:
                advance(tr.child, now, timings, world)
                if tr.child.done:
                    _end_child_task(tr, tr.child)
                    changed = True
                continue
            if tr.start is not None and not tr.done and tr.planned_end is not None and tr.planned_end <= now:
                _end_task(tr, tr.planned_outcome, tr.planned_end, tr.planned_message, tr.planned_trace)
                _maybe_retry(run, tr, timings, world)
                changed = True


def _try_start(
    run: RunRecord, tr: TaskRunRecord, now: float, t0: float, timings: Timings, world: World | None
) -> bool:
    ups = [(dep, run.task_runs[dep["taskKey"]]) for dep in tr.task.get("dependsOn", [])]
    if any(not up.done for _, up in ups):
        return False
    ready = max([t0] + [up.end or t0 for _, up in ups])
    if ready > now:
        return False
    blocked = run_if_verdict(tr.task.get("runIf", "ALL_SUCCESS"), ups)
    if blocked:
        _end_task(
            tr,
            blocked,
            ready,
            f"Not run: {blocked.lower().replace('_', ' ')} (runIf {tr.task.get('runIf', 'ALL_SUCCESS')})",
            None,
        )
        return True
    tr.start = ready
    tr.status = "RUNNING"
    tr.state_message = "Task is running"
    if tr.task.get("type") == "JOB_TASK" and world is not None:
        child = world.spawn(run, tr, ready)
        if isinstance(child, str):
            _end_task(tr, "FAILED", ready, child, None)
        else:
            tr.child = child
        return True
    _plan(tr, timings)
    return True


def _end_child_task(tr: TaskRunRecord, child: RunRecord) -> None:
    status = (
        child.status
        if child.status in ("SUCCESS", "FAILED", "INTERNAL_ERROR", "TIMED_OUT", "CANCELED")
        else ("FAILED")
    )
    _end_task(
        tr,
        status,
        child.end or child.created,
        f"Nested job run {child.key}: {child.state_message}",
        child.error_trace,
    )


def _maybe_retry(run: RunRecord, tr: TaskRunRecord, timings: Timings, world: World | None) -> None:
    """Start the next attempt of a failed task whose ``maxRetries`` allows one."""
    retryable = tr.status in ("FAILED", "INTERNAL_ERROR") or (
        tr.status == "TIMED_OUT" and bool(tr.task.get("isRetryOnTimeout"))
    )
    if not retryable or tr.attempt >= int(tr.task.get("maxRetries") or 0) or tr.end is None:
        return
    tr.retries.append(tr.retry_record())
    tr.attempt += 1
    tr.start = tr.end + float(tr.task.get("minRetryIntervalMillis") or 0) / 1000
    tr.end, tr.error_trace = None, None
    tr.status, tr.state_message = "RUNNING", f"Retrying (attempt {tr.attempt})"
    if world is not None:
        tr.script = world.rescript(run, tr.task)
    _plan(tr, timings)


def _plan(tr: TaskRunRecord, timings: Timings) -> None:
    assert tr.start is not None
    script = tr.script
    cluster_name = (tr.task.get("cluster") or {}).get("clusterName")
    if isinstance(cluster_name, str) and UUID_RE.match(cluster_name):
        tr.planned_end = tr.start + min(0.5, timings.task_s)
        tr.planned_outcome = "FAILED"
        tr.planned_message = f"WORKFLOW_EXECUTION_0049 Cluster not found: {cluster_name}"
        tr.planned_trace = "WORKFLOW_EXECUTION_0049 Cluster not found"
        return
    duration = timings.task_s if script.duration is None else script.duration
    outcome = script.outcome
    timeout = tr.task.get("timeoutSeconds") or 0
    if timeout and duration > timeout:
        duration, outcome = float(timeout), "TIMED_OUT"
    tr.planned_end = tr.start + duration
    tr.planned_outcome = outcome
    tr.planned_message = script.state_message or _default_message(tr, outcome)
    tr.planned_trace = script.error_trace if outcome != "SUCCESS" else None


def _default_message(tr: TaskRunRecord, outcome: str) -> str:
    what = tr.task.get("notebookPath") or tr.task.get("filePath") or tr.task_key
    if outcome == "SUCCESS":
        return f"Successfully executed notebook {what}" if tr.task.get("notebookPath") else f"Executed {what}"
    if outcome == "TIMED_OUT":
        return f"Task {tr.task_key} timed out"
    return f"Task {tr.task_key} ended {outcome}"


def _end_task(tr: TaskRunRecord, status: str, end: float, message: str | None, trace: str | None) -> None:
    tr.status, tr.end, tr.state_message, tr.error_trace = status, end, message, trace


def run_if_verdict(run_if: str, ups: list) -> str | None:
    """None if the task runs, else the status it gets without running."""
    for dep, up in ups:
        wanted = dep.get("outcome")
        if wanted is not None and up.status == "SUCCESS" and str(up.script.condition_result) != str(wanted):
            return "EXCLUDED"
    statuses = [up.status for _, up in ups]
    if not statuses or run_if == "ALL_DONE":
        return None
    failed = [s for s in statuses if s in FAILED]
    canceled = [s for s in statuses if s in CANCELED]
    success = [s for s in statuses if s == "SUCCESS"]
    if run_if == "ALL_SUCCESS":
        if canceled:
            return "UPSTREAM_CANCELED"
        if failed:
            return "UPSTREAM_FAILED"
        return None if len(success) == len(statuses) else "EXCLUDED"
    if run_if == "NONE_FAILED":
        return "UPSTREAM_FAILED" if failed else ("UPSTREAM_CANCELED" if canceled else None)
    if run_if == "AT_LEAST_ONE_SUCCESS":
        return None if success else "UPSTREAM_FAILED"
    if run_if == "ALL_FAILED":
        return None if len(failed) == len(statuses) else "EXCLUDED"
    if run_if == "AT_LEAST_ONE_FAILED":
        return None if failed else "EXCLUDED"
    return None


def _finish(run: RunRecord) -> None:
    statuses = {tr.status for tr in run.task_runs.values()}
    ends = [tr.end for tr in run.task_runs.values() if tr.end is not None]
    run.end = max(ends, default=run.start)
    bad = [tr.task_key for tr in run.task_runs.values() if tr.status in FAILED | {"CANCELED"}]
    for status in ("INTERNAL_ERROR", "TIMED_OUT", "FAILED", "UPSTREAM_FAILED", "CANCELED"):
        if status in statuses:
            run.status = "FAILED" if status == "UPSTREAM_FAILED" else status
            run.state_message = f"Job run ended {run.status}: task(s) {', '.join(bad)} did not succeed"
            first = next((tr for tr in run.task_runs.values() if tr.error_trace), None)
            run.error_trace = first.error_trace if first else None
            break
    else:
        run.status, run.state_message, run.error_trace = "SUCCESS", "Job run succeeded", None
    _record_history(run)


def _finish_cancel(run: RunRecord, at: float) -> None:
    for tr in run.task_runs.values():
        if tr.done:
            continue
        if tr.child is not None and tr.child.cancel_at is None:
            tr.child.cancel_at = at
        if tr.start is not None:
            _end_task(tr, "CANCELED", at, "Task canceled by user", None)
        else:
            _end_task(tr, "UPSTREAM_CANCELED", at, "Not run: job run canceled", None)
        tr.user_canceled = True
    run.status, run.state_message, run.end = "CANCELED", "Job run canceled by user", at
    if run.start is None:
        run.start = at
    _record_history(run)


def _finish_timeout(run: RunRecord, at: float) -> None:
    """The job's ``timeoutSeconds`` elapsed: running tasks time out, unstarted ones are canceled."""
    for tr in run.task_runs.values():
        if tr.done:
            continue
        if tr.start is not None and tr.start <= at:
            _end_task(tr, "TIMED_OUT", at, "Job run timed out", None)
        else:
            _end_task(tr, "UPSTREAM_CANCELED", at, "Not run: job run timed out", None)
    run.status, run.end = "TIMED_OUT", at
    run.state_message = f"Job run exceeded its timeout of {run.job_body.get('timeoutSeconds')} s"
    _record_history(run)


def _record_history(run: RunRecord) -> None:
    entry = run.history_entry()
    if run.history and run.history[-1].get("key") == run.repair_key:
        run.history[-1] = entry
    else:
        run.history.append(entry)
