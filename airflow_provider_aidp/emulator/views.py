"""How answers look under the active :class:`~.readings.Readings` (applied to rendered JSON).

The records render the SDK's documented shape; these functions bend that shape the way an
alternative reading of the service would: defaults filled into jobs, times as RFC 3339 strings,
numbers where the SDK says string, status values the SDK does not list.
"""

from __future__ import annotations

from typing import Any

from .readings import (
    UNKNOWN_RUN_STATUS,
    UNKNOWN_TASK_STATUS,
    Readings,
    fill_job_defaults,
    iso_times,
    matches_name,
    matches_path,
)
from .records import JobRecord


def name_matches(readings: Readings, wanted: str, body: dict[str, Any]) -> bool:
    return matches_name(readings.name_filter, wanted, body.get("name"))


def path_matches(readings: Readings, wanted: str, body: dict[str, Any]) -> bool:
    return matches_path(readings.path_filter, wanted, body.get("path"), body.get("name"))


def job_summary(readings: Readings, record: JobRecord) -> dict[str, Any]:
    """A ``GET /jobs`` item: the SDK's ``JobSummary``, or only its key and name."""
    body = record.summary()
    if readings.job_list_fields == "key_and_name":
        return {k: v for k, v in body.items() if k in ("key", "name")}
    return body


def job(readings: Readings, record: JobRecord, api_version: str) -> dict[str, Any]:
    body = record.render(api_version)
    return fill_job_defaults(body) if readings.fill_defaults else body


def run(readings: Readings, body: dict[str, Any]) -> dict[str, Any]:
    """A JobRun (or JobRunSummary) body, with its task-run summaries, under ``readings``."""
    out = _bend(
        readings, body, ("QUEUED", UNKNOWN_RUN_STATUS), ("executionDuration", "runDuration", "repairKey")
    )
    if readings.repair_fields != "all":
        out.pop("repairKey", None)
    if readings.repair_fields == "none":
        out.pop("repairHistory", None)
    summaries = out.get("taskRunSummaryMap")
    if isinstance(summaries, dict):
        out["taskRunSummaryMap"] = _summary_map(
            readings, {k: task_run(readings, v) for k, v in summaries.items()}
        )
    return out


def _summary_map(readings: Readings, summaries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The ``taskRunSummaryMap`` as keyed (task-run key, or task key) and shaped (state object, or flat)."""
    if readings.task_run_summaries == "by_task_key":
        return {str(s.get("taskKey")): s for s in summaries.values()}
    if readings.task_run_summaries == "flat":
        return {k: _flat(s) for k, s in summaries.items()}
    return summaries


def _flat(summary: dict[str, Any]) -> dict[str, Any]:
    """An untyped summary with the state's fields at the top level (``status``, ``stateMessage``)."""
    out = {k: v for k, v in summary.items() if k != "state"}
    state = summary.get("state")
    return {**out, **state} if isinstance(state, dict) else out


def task_run(readings: Readings, body: dict[str, Any]) -> dict[str, Any]:
    """A TaskRun (or TaskRunSummary) body under ``readings``."""
    return _bend(readings, body, ("PENDING", UNKNOWN_TASK_STATUS), ("retryAttempt", "executionDuration"))


def _bend(
    readings: Readings, body: dict[str, Any], renamed: tuple[str, str], numbers: tuple[str, ...]
) -> dict[str, Any]:
    """``renamed`` status reported as an unknown one; times as strings and ``numbers`` as text."""
    out = dict(body)
    if readings.unknown_statuses:
        out["state"] = _restate(out.get("state"), *renamed)
    if readings.loose_types:
        out = iso_times(out)
        for name in numbers:
            if isinstance(out.get(name), int):
                out[name] = str(out[name])
    return out


def _restate(state: Any, known: str, unknown: str) -> Any:
    if isinstance(state, dict) and state.get("status") == known:
        return {**state, "status": unknown}
    return state
