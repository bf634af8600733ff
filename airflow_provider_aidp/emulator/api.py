"""Handlers of the Workflow API resources, shared by both surfaces.

Each handler gets a :class:`Call` (parsed request) and returns ``(status, body, headers)``; the
app turns that into an HTTP response, so handlers stay plain, synchronous and easy to test.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from multidict import MultiMapping

from . import views
from .consistency import listed
from .errors import bad_request, not_found
from .outputs import output_data, output_text
from .paging import paginate, sort_items
from .records import RunRecord, etag_of, rfc3339
from .state import EmulatorState
from .validation import render_task, validate_create, validate_update

Result = tuple[int, Any, dict[str, str]]
STATUS_FILTER = frozenset(
    {
        "PENDING",
        "QUEUED",
        "RUNNING",
        "SKIPPED",
        "INTERNAL_ERROR",
        "BLOCKED",
        "SUCCESS",
        "FAILED",
        "CANCELED",
        "UPSTREAM_CANCELED",
        "UPSTREAM_FAILED",
        "EXCLUDED",
    }
)


@dataclass
class Call:
    state: EmulatorState
    api_version: str
    scope: tuple[str, str]
    method: str
    parts: list[str]  # resource path segments after the workspace, decoded
    query: MultiMapping[str]
    headers: MultiMapping[str]
    raw_body: bytes

    def json(self) -> Any:
        if not self.raw_body:
            return {}
        try:
            return json.loads(self.raw_body)
        except ValueError:
            raise bad_request("request body is not valid JSON") from None

    @property
    def path_key(self) -> str:
        return "/".join(self.parts)


def _listed(call: Call, items: list[Any]) -> list[Any]:
    """What a listing shows under the ``listing_lag`` reading (nothing created too recently)."""
    return listed(items, call.state.readings.listing_lag, call.state.store.monotonic())


def with_etag(body: dict[str, Any], status: int = 200) -> Result:
    return status, body, {"etag": etag_of(body)}


def _check_if_match(call: Call, current: str) -> None:
    wanted = call.headers.get("if-match")
    if wanted and wanted != "*" and wanted != current:
        from .errors import ApiError

        raise ApiError(412, "PreconditionFailed", "if-match does not match the resource's current etag")


def idempotent(fn: Callable[[Call], Result]) -> Callable[[Call], Result]:
    """Apply ``opc-retry-token`` semantics (24 h; same body replays, different body -> 409)."""

    def wrapper(call: Call) -> Result:
        token = call.headers.get("opc-retry-token")
        if call.state.readings.retry_tokens == "ignored":
            token = None  # reading: the service does not honour retry tokens
        body = call.json()
        replay = call.state.store.replay(call.scope, call.path_key, token, body)
        if replay is not None:
            status, result = replay
            return (status, result, {"etag": etag_of(result)} if isinstance(result, dict) else {})
        status, result, headers = fn(call)
        call.state.store.remember(call.scope, call.path_key, token, body, status, result)
        return status, result, headers

    return wrapper


# --- jobs ------------------------------------------------------------------------------------


def list_jobs(call: Call) -> Result:
    q = call.query
    jobs = _listed(call, call.state.store.list_jobs(call.scope))
    keys = set(q.getall("jobKey", []))
    jobs = [
        j
        for j in jobs
        if (not keys or j.key in keys)
        and ("displayName" not in q or views.name_matches(call.state.readings, q["displayName"], j.body))
        and ("displayNameContains" not in q or q["displayNameContains"] in str(j.body.get("name")))
        and ("path" not in q or views.path_matches(call.state.readings, q["path"], j.body))
    ]
    jobs = sort_items(jobs, q, lambda j: j.created, lambda j: str(j.body.get("name")))
    page, headers = _page(call, jobs)
    return 200, {"items": [views.job_summary(call.state.readings, j) for j in page]}, headers


@idempotent
def create_job(call: Call) -> Result:
    wanted = validate_create(call.json())
    job = call.state.store.create_job(call.scope, wanted, call.state.readings.unique_names)
    status, body, headers = with_etag(views.job(call.state.readings, job, call.api_version), 201)
    return status, body, {**headers, "location": job.key}


def get_job(call: Call) -> Result:
    job = call.state.store.get_job(call.scope, call.parts[1])
    return with_etag(views.job(call.state.readings, job, call.api_version))


def update_job(call: Call) -> Result:
    store = call.state.store
    with store.lock:
        job = store.get_job(call.scope, call.parts[1])
        _check_if_match(call, etag_of(views.job(call.state.readings, job, call.api_version)))
        body = validate_update(call.json(), call.api_version)
        job = store.replace_job(call.scope, job.key, body, call.state.readings.unique_names)
        if call.state.readings.update_answer == "no_content":
            return 204, None, {}
        return with_etag(views.job(call.state.readings, job, call.api_version))


def delete_job(call: Call) -> Result:
    store = call.state.store
    with store.lock:
        job = store.get_job(call.scope, call.parts[1])
        _check_if_match(call, etag_of(views.job(call.state.readings, job, call.api_version)))
        store.delete_job(call.scope, job.key)
    return 204, None, {}


@idempotent
def cancel_job_runs(call: Call) -> Result:
    if call.state.readings.cancel_job_runs_404(call.api_version):
        raise not_found(
            "no such resource: POST jobs/{key}/actions/cancelJobRuns (reading: not on this surface)"
        )
    call.state.store.cancel_job_runs(call.scope, call.parts[1])
    return 202, None, {}


def list_permissions(call: Call) -> Result:
    call.state.store.get_job(call.scope, call.parts[1])
    return 200, {"items": []}, {}


def manage_permission(call: Call) -> Result:
    call.state.store.get_job(call.scope, call.parts[1])
    return 204, None, {}


# --- runs ------------------------------------------------------------------------------------


def _run_view(call: Call, run: RunRecord) -> Result:
    asked = call.query.get("shouldIncludeTaskRunSummaries")
    body = run.render(call.api_version, include_summaries=call.state.readings.includes_summaries(asked))
    return with_etag(views.run(call.state.readings, body))


def _statuses(call: Call) -> set[str]:
    wanted = set(call.query.getall("status", []))
    bad = wanted - STATUS_FILTER
    if call.state.readings.queued_filter == "refused":
        bad |= wanted & {"QUEUED"}
    if bad:
        raise bad_request(f"status filter does not accept {sorted(bad)}")
    return wanted


def _page(call: Call, items: list[Any]) -> tuple[list[Any], dict[str, str]]:
    """One page under the ``page_size`` reading."""
    return paginate(items, call.query, *call.state.readings.page_limit())


def _created_window(call: Call) -> tuple[float, float]:
    """``timeCreatedGreaterThanOrEqualTo`` / ``...LessThanOrEqualTo`` as epoch ms (inclusive, at the
    millisecond a listing shows); ``(-inf, inf)`` under ``time_filter=ignored``."""
    bounds = []
    for name, default in (
        ("timeCreatedGreaterThanOrEqualTo", -math.inf),
        ("timeCreatedLessThanOrEqualTo", math.inf),
    ):
        value = call.query.get(name)
        if value is None or call.state.readings.time_filter == "ignored":
            bounds.append(default)
            continue
        try:
            when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise bad_request(f"{name} must be an RFC 3339 date-time, got {value!r}") from None
        if when.tzinfo is None:
            raise bad_request(f"{name} must carry a time zone (e.g. Z), got {value!r}")
        bounds.append(when.timestamp() * 1000)
    return bounds[0], bounds[1]


def list_job_runs(call: Call, *, recent: bool = False) -> Result:
    q = call.query
    keys = set(q.getall("jobKey", []))
    ignored = call.state.readings.run_list_filters
    if not keys and (recent or ignored == "job_key_required"):
        raise bad_request("jobKey is required", code="MissingParameter")
    statuses = _statuses(call)
    if not recent and ignored in ("job_key_ignored", "ignored"):
        keys = set()
    if not recent and ignored == "first_values_only":  # a repeated parameter counts once
        keys = set(q.getall("jobKey", [])[:1])
        statuses = set(q.getall("status", [])[:1])
    if ignored in ("status_ignored", "ignored"):
        statuses = set()
    low, high = _created_window(call)
    runs = [
        r
        for r in _listed(call, call.state.store.list_runs(call.scope))
        if (not keys or r.job_key in keys)
        and (not statuses or r.status in statuses)
        and ("displayName" not in q or r.summary()["name"] == q["displayName"])
        and low <= int(r.created * 1000) <= high
    ]
    runs = sort_items(runs, q, lambda r: r.created, lambda r: str(r.summary()["name"]))
    if call.state.readings.run_sort == "ignored":  # the service's own order, whatever was asked
        runs.sort(key=lambda r: r.key)
    if recent and "recordCount" in q:
        runs = runs[: int(q["recordCount"])]
    page, headers = _page(call, runs)
    headers.pop("opc-total-items", None)
    return 200, {"items": [views.run(call.state.readings, r.summary()) for r in page]}, headers


@idempotent
def create_job_run(call: Call) -> Result:
    body = call.json()
    if not isinstance(body, dict):
        raise bad_request("request body must be a JSON object")
    run = call.state.store.create_run(call.scope, body.get("jobKey"), body.get("parameters"))
    _status, out, headers = _run_view(call, run)
    return 201, out, {**headers, "location": run.key}


def get_job_run(call: Call) -> Result:
    return _run_view(call, call.state.store.get_run(call.scope, call.parts[1]))


def delete_job_run(call: Call) -> Result:
    call.state.store.delete_run(call.scope, call.parts[1])
    return 204, None, {}


@idempotent
def cancel_job_run(call: Call) -> Result:
    run = call.state.store.cancel_run(call.scope, call.parts[1])
    if call.state.readings.cancel_answer == "accepted":
        return 202, None, {"opc-work-request-id": f"ocid1.workrequest.oc1..{run.key}"}
    return _run_view(call, run)


@idempotent
def repair_job_run(call: Call) -> Result:
    body = call.json()
    if not isinstance(body, dict):
        raise bad_request("request body must be a JSON object")
    return _run_view(call, call.state.store.repair_run(call.scope, call.parts[1], body))


# --- task runs -------------------------------------------------------------------------------


def list_task_runs(call: Call) -> Result:
    readings = call.state.readings
    if readings.listing_404(call.api_version):
        raise not_found("no such resource: GET taskRuns (reading: no task-run listing on this surface)")
    run_key = call.query.get("jobRunKey")
    if not run_key:
        raise bad_request("jobRunKey is required")
    statuses = _statuses(call)
    latest = readings.listed_attempts == "latest"
    items = [
        tr
        for tr in _listed(call, call.state.store.task_runs_of(call.scope, run_key, latest=latest))
        if not statuses or tr.status in statuses
    ]
    items = sort_items(items, call.query, lambda t: t.created, lambda t: t.task_key)
    page, headers = _page(call, items)
    headers.pop("opc-total-items", None)
    return 200, {"items": [views.task_run(readings, tr.summary(run_key)) for tr in page]}, headers


def get_task_run(call: Call) -> Result:
    tr = call.state.store.get_task_run(call.scope, call.parts[1])
    body = tr.render(call.api_version)
    if call.query.get("shouldIncludeTaskRunRetries", "false").lower() == "true":
        body["retries"] = [*tr.retries, tr.retry_record()] if tr.retries else []
    return with_etag(views.task_run(call.state.readings, body))


def list_task_run_retries(call: Call) -> Result:
    tr = call.state.store.get_task_run(call.scope, call.parts[1])
    attempts = [*tr.retries, tr.retry_record()] if tr.retries else []
    items = [
        {**{k: v for k, v in a.items() if k not in ("taskRunKey", "version")}, "taskRunId": tr.key}
        for a in attempts
    ]
    page, headers = _page(call, items)
    headers.pop("opc-total-items", None)
    return 200, {"items": page}, headers


@idempotent
def fetch_output(call: Call) -> Result:
    tr = call.state.store.get_task_run(call.scope, call.parts[1])
    wanted = (call.json() or {}).get("outputKey")
    if wanted and wanted != tr.output_key:
        raise not_found(f"TaskRunOutput {wanted}")
    data = output_data(tr, call.state.readings)
    body = {
        "key": tr.output_key,
        "taskType": tr.task.get("type"),
        "isTruncated": False,
        "data": data,
        "outputParameters": [],
        "version": 1,
    }
    if tr.error_trace:
        body["errorTrace"] = tr.error_trace
    return with_etag(body)


def export_output(call: Call) -> Result:
    tr = call.state.store.get_task_run(call.scope, call.parts[1])
    if call.parts[3] != tr.output_key:
        raise not_found(f"TaskRunOutput {call.parts[3]}")
    fmt = (call.json() or {}).get("format") or "HTML"
    if fmt not in ("HTML", "IPYNB"):
        raise bad_request("format must be HTML or IPYNB")
    import html

    text = output_text(tr)
    if fmt == "HTML":
        content: Any = (
            f"<html><body><h1>{html.escape(tr.task_key)}</h1><pre>{html.escape(text)}</pre></body></html>"
        )
    else:
        content = json.dumps(
            {
                "cells": [
                    {
                        "cell_type": "code",
                        "source": [],
                        "outputs": [{"output_type": "stream", "name": "stdout", "text": [text]}],
                    }
                ],
                "nbformat": 4,
                "nbformat_minor": 5,
            }
        )
    path = tr.task.get("notebookPath") or tr.task.get("filePath") or f"/Workspace/{tr.task_key}"
    return with_etag(
        {"name": f"{tr.task_key}.{fmt.lower()}", "path": path, "content": content, "format": fmt}
    )


# --- routing ---------------------------------------------------------------------------------

Handler = Callable[[Call], Result]
ROUTES: list[tuple[str, tuple[str, ...], Handler]] = [
    ("GET", ("jobs",), list_jobs),
    ("POST", ("jobs",), create_job),
    ("GET", ("jobs", "*"), get_job),
    ("PUT", ("jobs", "*"), update_job),
    ("DELETE", ("jobs", "*"), delete_job),
    ("POST", ("jobs", "*", "actions", "cancelJobRuns"), cancel_job_runs),
    ("GET", ("jobs", "*", "permissions"), list_permissions),
    ("POST", ("jobs", "*", "actions", "managePermission"), manage_permission),
    ("GET", ("jobRuns",), list_job_runs),
    ("POST", ("jobRuns",), create_job_run),
    ("GET", ("recentJobRuns",), lambda c: list_job_runs(c, recent=True)),
    ("GET", ("jobRuns", "*"), get_job_run),
    ("DELETE", ("jobRuns", "*"), delete_job_run),
    ("POST", ("jobRuns", "*", "actions", "cancel"), cancel_job_run),
    ("POST", ("jobRuns", "*", "actions", "repair"), repair_job_run),
    ("GET", ("taskRuns",), list_task_runs),
    ("GET", ("taskRuns", "*"), get_task_run),
    ("GET", ("taskRuns", "*", "retries"), list_task_run_retries),
    ("POST", ("taskRuns", "*", "actions", "fetchOutput"), fetch_output),
    ("POST", ("taskRuns", "*", "outputs", "*", "actions", "export"), export_output),
]


def route(method: str, parts: list[str]) -> Handler | None:
    for m, pattern, handler in ROUTES:
        if (
            m == method
            and len(pattern) == len(parts)
            and all(p == "*" or p == s for p, s in zip(pattern, parts, strict=False))
        ):
            return handler
    return None


__all__ = ["ROUTES", "Call", "render_task", "rfc3339", "route"]
