"""Readings: how the emulator fills the gaps the field notes and Oracle's SDK leave open.

Only ``/work/shared/seeds`` (the field notes) was verified against the live service; Oracle's SDK
documents shapes but not every behaviour. Where both leave a behaviour open, the emulator can play
each plausible reading, so tests prove the provider works under all of them instead of under the
one the client happens to assume. ``Readings()`` is the most likely reading (docs/emulator.md says
why, reading by reading, with the source line that makes each alternative plausible).

Set them with ``AIDPEmulator(readings=Readings(...))`` or ``readings={"path_filter": ...}``, the CLI
flag ``--reading name=value`` (repeatable), a scenario file's ``"readings"`` key, or
``PUT /_emulator/readings`` at run time.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

#: ``GET /jobs?path=X`` keeps jobs whose folder is X | whose folder + "/" + name is X | ignores X.
PATH_FILTERS = ("folder", "folder_and_name", "ignored")
#: ``GET /jobs?displayName=X`` keeps jobs named exactly X | whose name contains X | named X in any
#: letter case | ignores X.
NAME_FILTERS = ("exact", "contains", "case_insensitive", "ignored")
#: ``fetchOutput`` data of a notebook task: ipynb JSON (field notes) | plain text | HTML.
OUTPUT_FORMATS = ("notebook", "text", "html")
#: How ``fetchOutput`` encodes each data item's ``value``: as text | base64 | gzip, deflate (zlib)
#: or bzip2, then base64 (SDK ``RunOutputData``: ``isBase64``, ``compression`` GZIP | DEFLATE |
#: COMPRESS | BZIP2).
OUTPUT_ENCODINGS = ("plain", "base64", "gzip", "deflate", "bzip2")
#: Which surfaces answer ``GET /taskRuns`` (the listing) with 404.
NO_LISTING = ("none", "20260430", "20240831", "all")
#: ``status=QUEUED`` in a listing filter: accepted | refused with 400 (SDK 5.0.0: "the status list
#: filters now accept QUEUED"; a service built on an older model refuses it).
QUEUED_FILTERS = ("accepted", "refused")
#: Which repair fields a run carries: ``repairKey`` and ``repairHistory`` | no ``repairKey`` (SDK
#: 5.1.1 added it; an older service lacks it) | neither.
REPAIR_FIELDS = ("all", "no_repair_key", "none")
#: Which surfaces answer ``POST /jobs/{key}/actions/cancelJobRuns`` with 404 (as the field notes saw
#: ``POST /jobs/{key}/actions/run`` do on ``20240831``).
NO_CANCEL_JOB_RUNS = NO_LISTING
#: What ``GET /taskRuns?jobRunKey=`` returns after a repair: every attempt | only the latest.
LISTED_ATTEMPTS = ("all", "latest")
#: ``opc-retry-token``: honoured as the SDK documents | ignored (every POST acts anew).
RETRY_TOKENS = ("honoured", "ignored")
#: The status a queued run (and a not-yet-started task) reports when ``unknown_statuses`` is on.
UNKNOWN_RUN_STATUS = "WAITING_FOR_RESOURCES"
#: Which of ``GET /jobRuns``' repeated ``jobKey`` / ``status`` filters the server applies; or it
#: applies both and answers 400 without a ``jobKey`` (as ``recentJobRuns`` and ``taskRuns`` do); or
#: it reads only the first value of each repeated parameter.
RUN_LIST_FILTERS = (
    "applied",
    "status_ignored",
    "job_key_ignored",
    "ignored",
    "job_key_required",
    "first_values_only",
)
#: ``GET /jobRuns?sortBy=...&sortOrder=...``: runs in that order | in the service's own order (by
#: key, unrelated to time), whatever ``sortBy`` and ``sortOrder`` say.
RUN_SORTS = ("applied", "ignored")
#: ``GET /jobRuns?timeCreatedGreaterThanOrEqualTo=...&timeCreatedLessThanOrEqualTo=...``: only runs
#: created in that window | every run, as if the parameters were not there.
TIME_FILTERS = ("applied", "ignored")
#: ``POST /jobRuns/{key}/actions/cancel`` answers the run (200, as the SDK's model says) | 202
#: Accepted with no body and an ``opc-work-request-id`` (the cancel is a work request).
CANCEL_ANSWERS = ("run", "accepted")
#: Largest ``limit`` a list serves: up to 1000, larger -> 400 | at most 100 (larger is served as
#: 100, with a next page) | at most 100, larger -> 400.
PAGE_SIZES = ("max1000", "max100_clamp", "max100_reject")
UNKNOWN_TASK_STATUS = "NOT_STARTED"
#: ``GET /jobRuns/{key}``'s ``taskRunSummaryMap`` (SDK: untyped ``dict(str, object)``; "when
#: ``shouldIncludeTaskRunSummaries`` is omitted, a server-side default applies"): only when asked,
#: keyed by task-run key | also when not asked (the default is on) | never (the flag is ignored) |
#: keyed by task key | flat summaries (``status`` etc. at the top, no ``state`` object).
TASK_RUN_SUMMARIES = ("on_request", "default_on", "never", "by_task_key", "flat")
#: ``GET /jobs`` items: the SDK's ``JobSummary`` (with ``path``) | only ``key`` and ``name`` (a
#: listing that leaves the folder to ``GET /jobs/{key}``).
JOB_LIST_FIELDS = ("full", "key_and_name")
#: ``PUT /jobs/{key}`` answers 200 with the job and its ``etag`` (the SDK's model) | 204 No Content.
UPDATE_ANSWERS = ("job", "no_content")
#: Where a job's name must be unique (a taken name answers 409 ``Conflict``): nowhere (the SDK's
#: ``Job.name``: "display name, not unique") | in its folder (``path``) | in the workspace.
UNIQUE_NAMES = ("none", "folder", "workspace")


@dataclass
class Readings:
    """One choice per open behaviour; the defaults are the most likely reading."""

    path_filter: str = "folder"
    name_filter: str = "exact"
    fill_defaults: bool = False
    output_format: str = "notebook"
    output_encoding: str = "plain"
    no_task_run_listing: str = "none"
    listed_attempts: str = "all"
    loose_types: bool = False
    unknown_statuses: bool = False
    retry_tokens: str = "honoured"
    run_list_filters: str = "applied"
    run_sort: str = "applied"
    time_filter: str = "applied"
    page_size: str = "max1000"
    cancel_answer: str = "run"
    task_run_summaries: str = "on_request"
    job_list_fields: str = "full"
    update_answer: str = "job"
    no_cancel_job_runs: str = "none"
    repair_fields: str = "all"
    queued_filter: str = "accepted"
    #: Real seconds after its creation during which a job, run or task run read by key is a 404.
    read_after_create_lag: float = 0.0
    #: Real seconds after its creation before a job, run or task run appears in its listing.
    listing_lag: float = 0.0
    unique_names: str = "none"

    def __post_init__(self) -> None:
        for name, allowed in CHOICES.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"reading {name} must be one of {list(allowed)}, got {value!r}")
        for name in BOOLEANS:
            value = getattr(self, name)
            if isinstance(value, str):
                setattr(self, name, _bool(name, value))
        for name in SECONDS:
            setattr(self, name, _seconds(name, getattr(self, name)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Readings:
        return cls().updated(data)

    def updated(self, data: dict[str, Any]) -> Readings:
        """A copy with ``data`` applied (unknown names are an error naming the known ones)."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown reading(s) {unknown}; known: {sorted(known)}")
        return dataclasses.replace(self, **data)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def page_limit(self) -> tuple[int, bool]:
        """(largest page served, whether a larger ``limit`` is clamped rather than refused)."""
        return {"max1000": (1000, False), "max100_clamp": (100, True), "max100_reject": (100, False)}[
            self.page_size
        ]

    def includes_summaries(self, asked: str | None) -> bool:
        """Whether a run's GET carries ``taskRunSummaryMap``, given ``shouldIncludeTaskRunSummaries``."""
        if self.task_run_summaries == "never":
            return False
        if self.task_run_summaries == "default_on":
            return (asked or "true").lower() != "false"
        return (asked or "false").lower() == "true"

    def listing_404(self, api_version: str) -> bool:
        return self.no_task_run_listing in ("all", api_version)

    def cancel_job_runs_404(self, api_version: str) -> bool:
        return self.no_cancel_job_runs in ("all", api_version)


CHOICES: dict[str, tuple[str, ...]] = {
    "path_filter": PATH_FILTERS,
    "name_filter": NAME_FILTERS,
    "output_format": OUTPUT_FORMATS,
    "output_encoding": OUTPUT_ENCODINGS,
    "no_task_run_listing": NO_LISTING,
    "listed_attempts": LISTED_ATTEMPTS,
    "retry_tokens": RETRY_TOKENS,
    "run_list_filters": RUN_LIST_FILTERS,
    "run_sort": RUN_SORTS,
    "time_filter": TIME_FILTERS,
    "page_size": PAGE_SIZES,
    "cancel_answer": CANCEL_ANSWERS,
    "task_run_summaries": TASK_RUN_SUMMARIES,
    "job_list_fields": JOB_LIST_FIELDS,
    "update_answer": UPDATE_ANSWERS,
    "no_cancel_job_runs": NO_CANCEL_JOB_RUNS,
    "repair_fields": REPAIR_FIELDS,
    "queued_filter": QUEUED_FILTERS,
    "unique_names": UNIQUE_NAMES,
}
BOOLEANS = ("fill_defaults", "loose_types", "unknown_statuses")
SECONDS = ("read_after_create_lag", "listing_lag")


def _bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"reading {name} must be true or false, got {value!r}")


def _seconds(name: str, value: Any) -> float:
    """A lag in seconds: a finite number >= 0 (a string from the CLI or a scenario file is parsed)."""
    try:
        if isinstance(value, bool):
            raise ValueError
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"reading {name} must be a number of seconds >= 0 (e.g. 2.5), got {value!r}")
    return seconds


def parse_assignments(items: list[str]) -> dict[str, Any]:
    """``["path_filter=ignored", "fill_defaults=true"]`` (the CLI's ``--reading``) -> a dict."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--reading takes name=value, got {item!r}")
        out[name.strip()] = value.strip()
    return out


# --- what each reading changes in an answer ----------------------------------------------------

#: Job fields a defaults-filling server adds when the body left them out.
JOB_DEFAULTS: dict[str, Any] = {
    "description": "",
    "timeoutSeconds": 0,
    "parameters": [],
    "jobClusters": [],
    "tasks": [],
    "queue": {"isEnabled": False},
}
#: Task fields a defaults-filling server adds when the body left them out.
TASK_DEFAULTS: dict[str, Any] = {
    "runIf": "ALL_SUCCESS",
    "dependsOn": [],
    "maxRetries": 0,
    "minRetryIntervalMillis": 0,
    "isRetryOnTimeout": False,
    "timeoutSeconds": 0,
}
CLUSTER_TASK_DEFAULTS: dict[str, Any] = {"source": "WORKSPACE", "isStreaming": False, "parameters": []}


def fill_job_defaults(body: dict[str, Any]) -> dict[str, Any]:
    """The job as a server that fills every optional field with its default would answer it."""
    out = {**JOB_DEFAULTS, **body}
    out["tasks"] = [fill_task_defaults(t) for t in out.get("tasks") or []]
    return out


def fill_task_defaults(task: dict[str, Any]) -> dict[str, Any]:
    defaults = dict(TASK_DEFAULTS)
    if task.get("type") in ("NOTEBOOK_TASK", "PYTHON_TASK", "JAR_TASK"):
        defaults.update(CLUSTER_TASK_DEFAULTS)
        if task.get("type") == "PYTHON_TASK":
            defaults.pop("parameters")
    out = {**defaults, **task}
    if isinstance(out.get("cluster"), dict):
        out["cluster"] = {"clusterId": f"cid-{out['cluster'].get('clusterKey')}", **out["cluster"]}
    return out


def iso_times(body: dict[str, Any]) -> dict[str, Any]:
    """``startTime``/``endTime`` as RFC 3339 strings instead of epoch milliseconds."""
    from .records import rfc3339

    out = dict(body)
    for name in ("startTime", "endTime"):
        if isinstance(out.get(name), int):
            out[name] = rfc3339(out[name] / 1000)
    return out


def matches_name(reading: str, wanted: str, name: Any) -> bool:
    """Whether a job named ``name`` passes the ``displayName`` filter under ``reading``."""
    name = str(name)
    if reading == "contains":
        return wanted in name
    if reading == "case_insensitive":
        return name.casefold() == wanted.casefold()
    return reading == "ignored" or name == wanted


def matches_path(reading: str, wanted: str, folder: Any, name: Any) -> bool:
    """Whether a job in ``folder`` named ``name`` passes the ``path`` filter under ``reading``."""
    if reading == "ignored":
        return True
    if reading == "folder_and_name":
        return f"{folder}/{name}" == wanted
    return folder == wanted
