"""Which finished job runs an event trigger has not reported yet: a watermark, free of I/O.

An event trigger must report each run of its jobs that reached a wanted terminal status exactly
once, whoever started it. The service's listing gives no cursor, so the trigger keeps a
:class:`Watermark`:

* ``end_ms``: the latest end time among the runs already handled (emitted or deliberately
  passed over, e.g. a ``FAILED`` run when only ``SUCCESS`` is watched);
* ``seen``: every run handled whose end time lies within ``lookback_ms`` of ``end_ms``, keyed by
  ``run key @ end time``;
* ``since_ms``: the bound of the listing: each poll lists only the runs *created* at or after it
  (the API filters and sorts by creation time, never by end time), so a poll costs what the last
  ``lookback`` brought, not the job's whole history;
* ``open``: the runs seen not finished yet (key -> creation time), followed until they finish
  however long before ``since_ms`` they were created: a listing of active runs shows them, and
  one that no longer does is confirmed by reading the run.

A run is *new* when it is terminal, ends after ``end_ms - lookback_ms`` and its ``key@end`` is not
in ``seen``. The lookback catches runs the service reports late (a run that ended before a run
already handled but showed up terminal afterwards); the ``key@end`` identity lets a repaired run,
which ends a second time, be reported again while a run listed twice (one page shifted under
us, or two polls) is reported once. The bound trails the newest run *listed* by ``lookback_ms``
(a server time, never the local clock): a run listed late, by up to the lookback, is still in the
window. Why nothing is missed: a run created before the bound was listed while inside it (it was
created before a run already listed, within the lookback), and was then either finished (handled)
or unfinished (``open``). What a bound cannot see: a run that finished before the bound passed its
creation and is then repaired, and whose repair starts and ends between two polls (docs say so).

Only the watched jobs' runs count: a run of another job must never be reported, nor move the mark
(the hook's listing already matches job keys; the watermark does not lean on that).

The watermark is plain JSON (:meth:`Watermark.to_json`) so the trigger can keep it in Airflow's
asset state store and resume from it after a triggerer restart. One saved without a bound (by an
earlier version) has bound 0: the next poll lists every run once, which moves the bound up.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_aidp.models.runs import TERMINAL_STATUSES, JobRunSummary

#: Default lookback: a run reported terminal up to an hour after a later run ended is still caught.
DEFAULT_LOOKBACK_SECONDS = 3600.0


@dataclass(frozen=True)
class FinishedRun:
    """A terminal run as the watermark sees it: identity, end time and the listing's fields."""

    key: str
    status: str
    end_ms: int
    summary: JobRunSummary

    @property
    def identity(self) -> str:
        return f"{self.key}@{self.end_ms}"


@dataclass(frozen=True)
class Watermark:
    end_ms: int
    seen: Mapping[str, int] = field(default_factory=dict)  # key@end -> end_ms
    since_ms: int = 0  # list runs created at or after this (epoch ms; 0: every run)
    open: Mapping[str, int] = field(default_factory=dict)  # unfinished run key -> created (ms)

    def to_json(self) -> dict[str, Any]:
        return {
            "end_ms": self.end_ms,
            "seen": dict(self.seen),
            "since_ms": self.since_ms,
            "open": dict(self.open),
        }

    @classmethod
    def from_json(cls, data: Any) -> Watermark | None:
        """The stored watermark, or ``None`` when ``data`` is missing or not one (then re-baseline)."""
        if not isinstance(data, dict) or not isinstance(data.get("end_ms"), int):
            return None
        seen, opened, since = data.get("seen") or {}, data.get("open") or {}, data.get("since_ms")
        if not isinstance(seen, dict) or not isinstance(opened, dict):
            return None
        return cls(
            int(data["end_ms"]),
            {str(k): int(v) for k, v in seen.items() if isinstance(v, int)},
            since if isinstance(since, int) else 0,
            {str(k): int(v) for k, v in opened.items() if isinstance(v, int)},
        )


def _iso_ms(value: Any) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        return int(dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def end_ms_of(run: JobRunSummary) -> int | None:
    """The run's end time; failing that, another *stable* server time (never the local clock).

    A terminal run without ``endTime`` would otherwise get a new identity on every poll and be
    reported again once it left the lookback window.
    """
    extra = run.model_extra or {}
    for value in (run.end_time, _iso_ms(extra.get("timeUpdated")), run.start_time):
        if isinstance(value, int):
            return value
    return run.time_created


def finished(runs: Iterable[JobRunSummary], job_keys: Collection[str]) -> list[FinishedRun]:
    """The terminal runs of ``job_keys`` in a listing, one per key (a key listed twice counts once).

    A run listed without a job key is kept (it cannot be checked).
    """
    out: dict[str, FinishedRun] = {}
    for run in (r for r in runs if r.job_key is None or r.job_key in job_keys):
        end = end_ms_of(run)
        if run.status in TERMINAL_STATUSES and end is not None:
            out[run.key] = FinishedRun(run.key, str(run.status), end, run)
    return list(out.values())


def baseline(
    runs: Iterable[JobRunSummary], lookback_ms: int, *, job_keys: Collection[str], since_ms: int = 0
) -> Watermark:
    """The first watermark: every run already finished counts as handled (history is not replayed);
    ``runs`` are every run created since ``since_ms`` and every active run (any creation time)."""
    runs = list(runs)
    return follow(
        _advance(Watermark(0, since_ms=since_ms), finished(runs, job_keys), lookback_ms),
        runs,
        lookback_ms,
        job_keys=job_keys,
    )


def bound(newest_created_ms: int | None, lookback_ms: int) -> int:
    """The first listing's bound: ``lookback_ms`` before the newest run's creation (0 when there is
    no run yet: every run the next poll lists is new)."""
    return 0 if newest_created_ms is None else max(0, newest_created_ms - lookback_ms)


def needs_active(mark: Watermark) -> bool:
    """Whether the poll must also list the active runs: some unfinished run was created before the
    bound (a long run), so the bounded listing no longer shows it."""
    return any(c < mark.since_ms for c in mark.open.values())


def owed(mark: Watermark, listed: Iterable[JobRunSummary]) -> list[str]:
    """The unfinished runs no listing of this poll showed: each is read by key (it finished, or it
    is in a status the active listing cannot filter by)."""
    shown = {r.key for r in listed}
    return sorted(k for k in mark.open if k not in shown)


def follow(
    mark: Watermark, runs: Iterable[JobRunSummary], lookback_ms: int, *, job_keys: Collection[str]
) -> Watermark:
    """``mark`` after a poll that looked at ``runs`` (in the order looked at: a later look wins):
    every unfinished run of the watched jobs is followed, and the bound moves up to ``lookback_ms``
    before the newest run listed (never down)."""
    last: dict[str, JobRunSummary] = {}
    for run in runs:
        if run.job_key is None or run.job_key in job_keys:
            last[run.key] = run
    opened = {k: r.time_created or 0 for k, r in last.items() if r.status not in TERMINAL_STATUSES}
    created = [r.time_created for r in last.values() if r.time_created is not None]
    since = max([mark.since_ms, *(c - lookback_ms for c in created)])
    return dataclasses.replace(mark, since_ms=since, open=opened)


def select(
    mark: Watermark,
    runs: Iterable[JobRunSummary],
    statuses: Iterable[str],
    lookback_ms: int,
    *,
    job_keys: Collection[str],
) -> tuple[list[FinishedRun], Watermark]:
    """The watched jobs' runs to report now (oldest end first) and the watermark once they are."""
    floor = mark.end_ms - lookback_ms
    fresh = [r for r in finished(runs, job_keys) if r.end_ms > floor and r.identity not in mark.seen]
    wanted = set(statuses)
    emit = sorted((r for r in fresh if r.status in wanted), key=lambda r: (r.end_ms, r.key))
    return emit, _advance(mark, fresh, lookback_ms)


def record(mark: Watermark, run: FinishedRun, lookback_ms: int) -> Watermark:
    """``mark`` with one more run handled (called after each event, so a failure mid-batch
    never reports the same run twice in this process)."""
    return _advance(mark, [run], lookback_ms)


def _advance(mark: Watermark, runs: list[FinishedRun], lookback_ms: int) -> Watermark:
    end = max([mark.end_ms, *(r.end_ms for r in runs)])
    seen = {**mark.seen, **{r.identity: r.end_ms for r in runs}}
    return dataclasses.replace(
        mark, end_ms=end, seen={k: v for k, v in seen.items() if v > end - lookback_ms}
    )
