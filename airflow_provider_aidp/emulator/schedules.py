"""Job schedule checks: a Quartz cron expression plus a Java time-zone id, at most every 30 minutes.

The interval check is deliberately conservative and simple: it rejects expressions that fire more
than once per minute (seconds field not a single value) or more often than every 30 minutes
within an hour (minutes field ``*``, a step below 30, a range, or a list with a gap below 30).
"""

from __future__ import annotations

import itertools
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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
