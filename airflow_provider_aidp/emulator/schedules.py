"""Job schedules: checks (Quartz cron + Java time-zone id, at most every 30 minutes) and firing.

A job with an ``UNPAUSED`` (or no ``pauseStatus``) schedule starts a run at every fire time of its
expression on the *emulator's* clock, so a sped-up or advanced clock fires a day's schedule in
seconds. Firing is lazy like the rest of the emulator (``Scheduler.due`` is asked on every read
of the store) and starts each due run at its own fire time, with ``launched: SCHEDULED``. A
paused schedule fires nothing and an unpaused one does not backfill the fire times it missed
while paused or before the job had the schedule.

The interval check is deliberately conservative and simple: it rejects expressions that fire more
than once per minute (seconds field not a single value) or more often than every 30 minutes
within an hour (minutes field ``*``, a step below 30, a range, or a list with a gap below 30).
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from airflow_provider_aidp.models.cron import QuartzCron, parse_quartz

from .errors import bad_request

MIN_INTERVAL_MINUTES = 30


def check_schedule(schedule: Any) -> None:
    if schedule is None:
        return
    if not isinstance(schedule, dict):
        raise bad_request("schedule must be an object {quartzCronExpression, timezoneId}")
    expr, tz = schedule.get("quartzCronExpression"), schedule.get("timezoneId")
    if not isinstance(expr, str) or not isinstance(tz, str):
        raise bad_request("schedule.quartzCronExpression and schedule.timezoneId are required")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise bad_request(
            f"schedule.timezoneId {tz!r} is not a known time zone (e.g. UTC, US/Pacific)"
        ) from None
    if schedule.get("pauseStatus") not in (None, "PAUSED", "UNPAUSED"):
        raise bad_request("schedule.pauseStatus must be PAUSED or UNPAUSED")
    fields = expr.split()
    if len(fields) not in (6, 7):
        raise bad_request(
            "schedule.quartzCronExpression must have 6 or 7 fields: "
            "seconds minutes hours day-of-month month day-of-week [year]"
        )
    if _too_frequent(fields[0], fields[1]):
        raise bad_request(f"schedule interval must be at least {MIN_INTERVAL_MINUTES} minutes: {expr!r}")


def _too_frequent(seconds: str, minutes: str) -> bool:
    if not seconds.isdigit():
        return True
    if minutes == "*" or "-" in minutes:
        return True
    if "/" in minutes:
        step = minutes.split("/", 1)[1]
        return not step.isdigit() or int(step) < MIN_INTERVAL_MINUTES
    if "," in minutes:
        values = sorted(int(v) for v in minutes.split(",") if v.isdigit())
        if not values:
            return True
        gaps = [b - a for a, b in itertools.pairwise(values)] + [60 - values[-1] + values[0]]
        return min(gaps) < MIN_INTERVAL_MINUTES
    return not minutes.isdigit()


#: How far ahead a fire time is looked for (expressions with a year list may never fire again).
HORIZON_DAYS = 5 * 366
#: Most runs one read may start for one job (a clock advanced by years must not hang a request).
MAX_FIRES_PER_READ = 1000


def next_fire(cron: QuartzCron, zone: ZoneInfo, after: float) -> float | None:
    """The first fire time strictly after ``after`` (epoch seconds), or ``None`` within the horizon."""
    times = sorted((h, m, s) for h in cron.hours for m in cron.minutes for s in cron.seconds)
    day = dt.datetime.fromtimestamp(after, zone).date()
    for _ in range(HORIZON_DAYS):
        if cron.fires_on(day):
            for h, m, s in times:
                at = dt.datetime(day.year, day.month, day.day, h, m, s, tzinfo=zone).timestamp()
                if at > after:
                    return at
        day += dt.timedelta(days=1)
    return None


@dataclass
class _Cursor:
    after: float  # every fire time up to here has been started (or deliberately skipped)


class Scheduler:
    """Remembers, per job, up to when its schedule has fired; answers which runs are due."""

    def __init__(self) -> None:
        self._cursors: dict[str, _Cursor] = {}

    def reset(self, job_key: str, now: float) -> None:
        """A job was created or replaced: its (new) schedule fires from ``now`` on, no backfill."""
        self._cursors[job_key] = _Cursor(now)

    def forget(self, job_key: str) -> None:
        self._cursors.pop(job_key, None)

    def clear(self) -> None:
        self._cursors.clear()

    def due(self, jobs: dict[str, dict[str, Any]], now: float) -> list[tuple[float, str]]:
        """``(fire time, job key)`` of every run due by ``now``, oldest first; advances the cursors."""
        fires: list[tuple[float, str]] = []
        for key, body in jobs.items():
            schedule = body.get("schedule")
            cursor = self._cursors.setdefault(key, _Cursor(now))
            if not isinstance(schedule, dict) or schedule.get("pauseStatus") == "PAUSED":
                cursor.after = max(cursor.after, now)
                continue
            fires += [(at, key) for at in self._fires(schedule, cursor, now)]
        return sorted(fires)

    @staticmethod
    def _fires(schedule: dict[str, Any], cursor: _Cursor, now: float) -> list[float]:
        try:
            cron = parse_quartz(str(schedule.get("quartzCronExpression")))
            zone = ZoneInfo(str(schedule.get("timezoneId")))
        except (ValueError, ZoneInfoNotFoundError):
            cursor.after = max(cursor.after, now)
            return []
        out: list[float] = []
        at = next_fire(cron, zone, cursor.after)
        while at is not None and at <= now and len(out) < MAX_FIRES_PER_READ:
            out.append(at)
            cursor.after = at
            at = next_fire(cron, zone, at)
        if at is None or at > now:
            cursor.after = max(cursor.after, now)
        return out
