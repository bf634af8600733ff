"""Eventual consistency: when a client sees what was just created, and where a job name is taken.

Three readings (readings.py, docs/emulator.md#readings) play what a replicated service may do:

* ``read_after_create_lag``: for that many seconds after a job, run or task run is created, every
  client request naming it by key answers 404 ``NotAuthorizedOrNotFound``, exactly as if it did
  not exist (the store's client lookups ask :func:`fresh`);
* ``listing_lag``: for that many seconds it is left out of its listing (:func:`listed`);
* ``unique_names``: a job name already taken in the folder or the workspace is refused with 409
  ``Conflict`` on create, and on a rename onto it (:func:`check_name_free`).

Lags count real (monotonic) seconds, not the emulator's scripted clock: they model replication
delay as a client lives it, so a test on a manual clock (``time_scale=0``) still sees them pass
and advancing that clock does not end them. Only the client's view lags: the service itself
(runs progressing, schedules firing, a JOB_TASK starting its job, ``cancelJobRuns``) works on its
current state, and the name check sees every job, visible to the client yet or not.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from .errors import ApiError
from .records import JobRecord, RunRecord, TaskRunRecord

Record = TypeVar("Record", JobRecord, RunRecord, TaskRunRecord)


def fresh(record: JobRecord | RunRecord | TaskRunRecord, seconds: float, now: float) -> bool:
    """Whether ``record`` was created less than ``seconds`` real seconds before ``now``."""
    return seconds > 0 and now - record.created_mono < seconds


def listed(items: list[Record], seconds: float, now: float) -> list[Record]:
    """The items a listing shows under ``listing_lag=seconds``: those created long enough ago."""
    if seconds <= 0:
        return items
    return [item for item in items if not fresh(item, seconds, now)]


def slot(reading: str, body: dict[str, Any]) -> tuple[Any, ...]:
    """What must be unique under ``unique_names=reading``: nothing, (name, folder) or (name,)."""
    if reading == "folder":
        return (body.get("name"), body.get("path"))
    if reading == "workspace":
        return (body.get("name"),)
    return ()


def check_name_free(
    reading: str, jobs: Iterable[JobRecord], body: dict[str, Any], except_key: str | None = None
) -> None:
    """409 ``Conflict`` when another of ``jobs`` (one workspace's) holds the name ``body`` wants."""
    wanted = slot(reading, body)
    if not wanted:
        return
    for job in jobs:
        if job.key != except_key and slot(reading, job.body) == wanted:
            raise conflict(reading, body, job)


def conflict(reading: str, body: dict[str, Any], holder: JobRecord) -> ApiError:
    """The 409 naming the name and the folder it is taken in."""
    name, folder = body.get("name"), holder.body.get("path")
    where = f"in folder {folder!r}" if reading == "folder" else f"in this workspace (in folder {folder!r})"
    return ApiError(409, "Conflict", f"A job named {name!r} already exists {where}; job names must be unique")
