"""The ONE wait core: an I/O-free state machine that says what to do next while a run is waited on.

Fed observations (a ``JobRun``, an error, the time), it returns actions (sleep, poll, cancel,
done); the poll schedule, error budget, deadline and logging are decided here once, and the
drivers in ``runs/polling.py`` only perform the actions. A polling error is never a job failure
and never a reason to cancel; a passed deadline cancels (if asked) and then reports ``timeout``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import Any

from airflow_provider_aidp.exceptions import (
    AIDPApiError,
    AIDPAuthError,
    AIDPRateLimitError,
    AIDPResponseError,
    AIDPServerError,
    AIDPTransportError,
)
from airflow_provider_aidp.models.runs import JobRun, is_terminal
from airflow_provider_aidp.runs import outcome

#: First poll comes quickly (short runs finish fast), then the interval grows to poll_interval.
FIRST_POLL_SECONDS = 1.0
GROWTH = 1.5
JITTER = 0.2
DEFAULT_MAX_POLL_ERRORS = 10

_log = logging.getLogger(__name__)


class PollSchedule:
    """Jittered, growing intervals bounded by ``poll_interval`` and the deadline: jitter spreads
    triggers started together; growth keeps short runs snappy without hammering the API later."""

    def __init__(self, poll_interval: float, rng: random.Random | None = None) -> None:
        self.poll_interval = max(0.0, float(poll_interval))
        self._current = min(FIRST_POLL_SECONDS, self.poll_interval)
        self._rng = rng or random.Random()

    def next_delay(self, remaining: float | None = None) -> float:
        base = self._current
        self._current = min(self.poll_interval, max(self._current * GROWTH, FIRST_POLL_SECONDS))
        return _bounded(base * (1.0 - JITTER * self._rng.random()), remaining)

    def error_delay(self, errors: int, remaining: float | None = None) -> float:
        """Back off after a failed poll, never longer than the regular interval."""
        delay = min(self.poll_interval, FIRST_POLL_SECONDS * 2 ** max(0, errors - 1))
        return _bounded(delay * (1.0 - JITTER * self._rng.random()), remaining)


def _bounded(delay: float, remaining: float | None) -> float:
    return delay if remaining is None else max(0.0, min(delay, remaining))


class ErrorBudget:
    """Counts consecutive transient polling errors; a successful poll resets it. A 401 is forgiven
    once in a row (the token may just have rotated); a second one in a row is a real auth problem."""

    def __init__(self, max_errors: int) -> None:
        self.max_errors = max(0, int(max_errors))
        self.errors = 0
        self._last_was_401 = False

    def success(self) -> None:
        self.errors = 0
        self._last_was_401 = False

    def is_transient(self, exc: BaseException) -> bool:
        if isinstance(exc, AIDPAuthError):
            transient = exc.status == 401 and not self._last_was_401
            self._last_was_401 = exc.status == 401
            return transient
        self._last_was_401 = False
        return is_transient_error(exc)

    def record(self) -> bool:
        """Count one transient error; False once the budget is spent."""
        self.errors += 1
        return self.errors <= self.max_errors


def is_transient_error(exc: BaseException) -> bool:
    """Errors worth polling again for: rate limits, 5xx (not 501), no answer, garbled answer."""
    if isinstance(exc, AIDPRateLimitError | AIDPTransportError | AIDPResponseError):
        return True
    if isinstance(exc, AIDPServerError):
        return exc.status != 501
    if isinstance(exc, AIDPApiError):
        return False
    if isinstance(exc, TimeoutError | asyncio.TimeoutError | ConnectionError):
        return True
    # aiohttp / requests transport errors, checked by module name so neither is imported here.
    module = type(exc).__module__ or ""
    return module.startswith(("aiohttp", "requests", "urllib3")) or isinstance(exc, OSError)


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Poll:
    """Observe the run once (one GET, or a shared listing's answer) and report it back."""


@dataclass(frozen=True)
class Cancel:
    """The deadline passed and the run is ours to cancel: cancel it and report how that went."""


@dataclass(frozen=True)
class Done:
    event: dict[str, Any]  # a ``runs.outcome`` event


Action = Sleep | Poll | Cancel | Done


class Waiter:
    """The wait for one run as a state machine; every method takes the current time (epoch s).

    :param deadline: absolute epoch seconds after which the wait times out (``None``: never).
    :param settle: seconds to sleep before the first poll (the trigger's settling pause).
    :param log: where status changes, forgiven errors and the timeout cancel are logged.
    """

    def __init__(
        self,
        run_key: str,
        *,
        poll_interval: float,
        deadline: float | None,
        now: float,
        max_poll_errors: int = DEFAULT_MAX_POLL_ERRORS,
        cancel_on_timeout: bool = True,
        settle: float = 0.0,
        log: logging.Logger | Any = None,
        rng: random.Random | None = None,
    ) -> None:
        self.run_key = run_key
        self.deadline = deadline
        self.cancel_on_timeout = cancel_on_timeout
        self.schedule = PollSchedule(poll_interval, rng)
        self.budget = ErrorBudget(max_poll_errors)
        self.status: str | None = None
        self._settle = min(settle, self.schedule.poll_interval)
        self._started = now
        self._log = log or _log

    def remaining(self, now: float) -> float | None:
        return None if self.deadline is None else self.deadline - now

    def start(self, now: float) -> Action:
        """The settling pause, else the first poll (or the timeout)."""
        if self._settle > 0:
            return Sleep(_bounded(self._settle, self.remaining(now)))
        return self.due(now)

    def due(self, now: float) -> Action:
        """A sleep ended: poll again, unless the deadline has passed."""
        remaining = self.remaining(now)
        if remaining is None or remaining > 0:
            return Poll()
        return Cancel() if self.cancel_on_timeout else self.cancelled(None, now)

    def after(self, action: Action, result: Any, now: float) -> Action:
        """A driver performed ``action``; ``result`` is the poll's JobRun or the exception the poll or
        cancel raised (``None`` after a sleep or a cancel that went through)."""
        if isinstance(action, Sleep):
            return self.due(now)
        error = result if isinstance(result, BaseException) else None
        if isinstance(action, Cancel):
            return self.cancelled(error, now)
        return self.failed(error, now) if error is not None else self.observed(result, now)

    def observed(self, run: JobRun, now: float) -> Action:
        """Done when the run is terminal, else sleep until the next poll."""
        self.budget.success()
        if run.status != self.status:
            self._log.info("AIDP job run %s is %s", self.run_key, run.status)
        self.status = run.status
        if is_terminal(run.status):
            return Done(outcome.terminal(self.run_key, run.status, run.to_api()))
        return Sleep(self.schedule.next_delay(self.remaining(now)))

    def failed(self, exc: BaseException, now: float) -> Action:
        """A poll raised: forgive a transient error within the budget, else end the wait."""
        last_error = describe(exc)
        if not self.budget.is_transient(exc):
            return Done(outcome.error(self.run_key, self.status, last_error=last_error))
        if not self.budget.record():
            errors = self.budget.errors
            return Done(outcome.poll_error(self.run_key, self.status, errors=errors, last_error=last_error))
        self._log.warning("Polling AIDP job run %s failed (%s); will retry.", self.run_key, last_error)
        return Sleep(self.schedule.error_delay(self.budget.errors, self.remaining(now)))

    def cancelled(self, error: BaseException | None, now: float) -> Done:
        """The deadline passed (after the cancel, if one was due): report the timeout."""
        canceled = self.cancel_on_timeout and error is None
        if canceled:
            self._log.info("Wait deadline passed; cancelled AIDP job run %s", self.run_key)
        cancel_error = None if error is None else describe(error)
        waited = now - self._started
        return Done(
            outcome.timeout(
                self.run_key, self.status, canceled=canceled, cancel_error=cancel_error, waited_seconds=waited
            )
        )
