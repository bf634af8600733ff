"""A small Quartz cron parser: enough to reject bad schedules before AIDP sees them.

AIDP schedules are Quartz expressions (``sec min hour day-of-month month day-of-week [year]``),
not Unix cron, and the service refuses anything firing more often than every 30 minutes. The
service's own error arrives only after the job has been half-written, so we check locally:
:func:`parse_quartz` raises ``ValueError`` with the field at fault, and
:func:`min_interval_seconds` computes the shortest gap between consecutive fire times.

Times are wall-clock times in the schedule's zone; DST jumps are ignored (they can only make a
single gap longer or shorter by an hour once, which the 30-minute rule does not care about).
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass

MONTHS = {m.upper(): i for i, m in enumerate(calendar.month_abbr) if m}
#: Quartz numbers days of the week 1-7 from Sunday.
DAYS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}

_FIELDS: list[tuple[str, int, int, dict[str, int]]] = [
    ("seconds", 0, 59, {}),
    ("minutes", 0, 59, {}),
    ("hours", 0, 23, {}),
    ("day-of-month", 1, 31, {}),
    ("month", 1, 12, MONTHS),
    ("day-of-week", 1, 7, DAYS),
    ("year", 1970, 2099, {}),
]

DayRule = Callable[[dt.date], bool]


@dataclass(frozen=True)
class QuartzCron:
    """A parsed expression: value sets for the time fields, a predicate for the day."""

    expression: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    months: frozenset[int]
    years: frozenset[int] | None
    day_rule: DayRule

    def fires_on(self, day: dt.date) -> bool:
        if day.month not in self.months or (self.years is not None and day.year not in self.years):
            return False
        return self.day_rule(day)


def _number(token: str, name: str, low: int, high: int, names: dict[str, int]) -> int:
    value = names.get(token.upper()) if names else None
    if value is None:
        if not token.isdigit():
            raise ValueError(f"{name} field: {token!r} is not a number{' or name' if names else ''}")
        value = int(token)
    if not low <= value <= high:
        raise ValueError(f"{name} field: {value} is outside {low}-{high}")
    return value


def _plain_item(item: str, name: str, low: int, high: int, names: dict[str, int]) -> set[int]:
    """``*``, ``n``, ``a-b``, with an optional ``/step``."""
    base, _, step_text = item.partition("/")
    step = 1
    if step_text:
        if not step_text.isdigit() or int(step_text) == 0:
            raise ValueError(f"{name} field: step {step_text!r} must be a positive number")
        step = int(step_text)
    if base in ("*", ""):
        if base == "" and not step_text:
            raise ValueError(f"{name} field: empty item")
        start, end = low, high
    elif "-" in base:
        a, _, b = base.partition("-")
        start, end = _number(a, name, low, high, names), _number(b, name, low, high, names)
    else:
        start = _number(base, name, low, high, names)
        end = high if step_text else start
    if start <= end:
        return set(range(start, end + 1, step))
    # Quartz allows wrap-around ranges such as FRI-MON or 22-2.
    span = list(range(start, high + 1)) + list(range(low, end + 1))
    return set(span[::step])


def _values(text: str, index: int) -> frozenset[int]:
    name, low, high, names = _FIELDS[index]
    result: set[int] = set()
    for item in text.split(","):
        result |= _plain_item(item, name, low, high, names)
    return frozenset(result)


def _last_day(day: dt.date) -> int:
    return calendar.monthrange(day.year, day.month)[1]


def _nearest_weekday(day: dt.date, target: int) -> int:
    """Quartz ``nW``: the weekday nearest to day ``target``, never leaving the month."""
    last = _last_day(day)
    target = min(target, last)
    weekday = dt.date(day.year, day.month, target).weekday()  # Mon=0
    if weekday == 5:
        return target - 1 if target > 1 else target + 2
    if weekday == 6:
        return target + 1 if target < last else target - 2
    return target


def _days_before_last(offset: int, day: dt.date) -> bool:
    return day.day == _last_day(day) - offset


def _is_nearest_weekday(target: int, day: dt.date) -> bool:
    return day.day == _nearest_weekday(day, target)


def _day_in(days: frozenset[int], day: dt.date) -> bool:
    return day.day in days


def _dow_in(days: frozenset[int], day: dt.date) -> bool:
    return _quartz_dow(day) in days


def _dom_rule(text: str) -> DayRule:
    rules: list[DayRule] = []
    for item in text.split(","):
        upper = item.upper()
        if upper == "L":
            rules.append(lambda d: d.day == _last_day(d))
        elif upper == "LW":
            rules.append(lambda d: d.day == _nearest_weekday(d, _last_day(d)))
        elif upper.startswith("L-"):
            offset = _number(upper[2:], "day-of-month", 0, 30, {})
            rules.append(functools.partial(_days_before_last, offset))
        elif upper.endswith("W"):
            target = _number(upper[:-1], "day-of-month", 1, 31, {})
            rules.append(functools.partial(_is_nearest_weekday, target))
        else:
            days = _plain_item(item, "day-of-month", 1, 31, {})
            rules.append(functools.partial(_day_in, frozenset(days)))
    return lambda d: any(rule(d) for rule in rules)


def _quartz_dow(day: dt.date) -> int:
    return (day.weekday() + 1) % 7 + 1  # Mon=0 -> 2, Sun=6 -> 1


def _nth_weekday(dow: int, nth: int, day: dt.date) -> bool:
    return _quartz_dow(day) == dow and (day.day - 1) // 7 + 1 == nth


def _last_weekday(dow: int, day: dt.date) -> bool:
    return _quartz_dow(day) == dow and day.day + 7 > _last_day(day)


def _dow_rule(text: str) -> DayRule:
    rules: list[DayRule] = []
    for item in text.split(","):
        upper = item.upper()
        if upper == "L":
            rules.append(lambda d: _quartz_dow(d) == 7)
        elif "#" in upper:
            dow_text, _, nth_text = upper.partition("#")
            dow = _number(dow_text, "day-of-week", 1, 7, DAYS)
            nth = _number(nth_text, "day-of-week", 1, 5, {})
            rules.append(functools.partial(_nth_weekday, dow, nth))
        elif upper.endswith("L"):
            dow = _number(upper[:-1], "day-of-week", 1, 7, DAYS)
            rules.append(functools.partial(_last_weekday, dow))
        else:
            days = _plain_item(item, "day-of-week", 1, 7, DAYS)
            rules.append(functools.partial(_dow_in, frozenset(days)))
    return lambda d: any(rule(d) for rule in rules)


def parse_quartz(expression: str) -> QuartzCron:
    """Parse a Quartz expression; ``ValueError`` names the field that is wrong."""
    parts = expression.split()
    if not 6 <= len(parts) <= 7:
        raise ValueError(
            f"a Quartz expression has 6 or 7 fields (sec min hour day-of-month month day-of-week "
            f"[year]); got {len(parts)}. Unix cron '0 2 * * *' is Quartz '0 0 2 * * ?'"
        )
    dom, dow = parts[3], parts[5]
    if (dom == "?") == (dow == "?"):
        raise ValueError(
            "exactly one of day-of-month (field 4) and day-of-week (field 6) must be '?', "
            "e.g. '0 0 2 * * ?' (every day at 02:00) or '0 0 2 ? * MON' (Mondays)"
        )
    for index in (0, 1, 2):
        if "?" in parts[index] or "L" in parts[index].upper() or "#" in parts[index]:
            raise ValueError(f"{_FIELDS[index][0]} field: '?', 'L' and '#' are not allowed here")
    day_rule = _dow_rule(dow) if dom == "?" else _dom_rule(dom)
    return QuartzCron(
        expression=expression,
        seconds=_values(parts[0], 0),
        minutes=_values(parts[1], 1),
        hours=_values(parts[2], 2),
        months=_values(parts[4], 4),
        years=_values(parts[6], 6) if len(parts) == 7 and parts[6] != "*" else None,
        day_rule=day_rule,
    )


def _firing_days(cron: QuartzCron, start_year: int, years: int) -> list[dt.date]:
    if cron.years is not None:
        chosen = sorted(y for y in cron.years if y >= start_year)[:years] or sorted(cron.years)[-years:]
    else:
        chosen = list(range(start_year, start_year + years))
    days: list[dt.date] = []
    for year in chosen:
        day = dt.date(year, 1, 1)
        while day.year == year:
            if cron.fires_on(day):
                days.append(day)
            day += dt.timedelta(days=1)
    return days


def min_interval_seconds(cron: QuartzCron, *, start_year: int = 2026, years: int = 4) -> float | None:
    """Shortest gap between consecutive fire times over ``years`` years; ``None`` if it fires < 2 times.

    Every firing day has the same time-of-day set, so the answer is the smaller of the shortest
    gap inside one day and the shortest gap from one firing day's last time to the next one's first.
    """
    times = sorted(h * 3600 + m * 60 + s for h in cron.hours for m in cron.minutes for s in cron.seconds)
    days = _firing_days(cron, start_year, years)
    gaps: list[float] = []
    if days and len(times) > 1:
        gaps.append(min(b - a for a, b in itertools.pairwise(times)))
    for a, b in itertools.pairwise(days):
        gaps.append((b - a).days * 86400 - times[-1] + times[0])
    return min(gaps) if gaps else None
