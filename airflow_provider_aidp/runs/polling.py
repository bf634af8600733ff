"""When to poll and which polling errors to forgive; the synchronous wait loop.

The trigger runs the same schedule and classification asynchronously (``triggers/aidp.py``).
Rules that matter to users: a polling error is never a job failure and never a reason to
cancel; a wait deadline cancels (if asked) and then reports ``timeout``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from airflow_provider_aidp.exceptions import (
    AIDPApiError,
    AIDPAuthError,
    AIDPRateLimitError,
    AIDPResponseError,
    AIDPServerError,
    AIDPTransportError,
)
from airflow_provider_aidp.models.runs import is_terminal
from airflow_provider_aidp.runs import outcome

if TYPE_CHECKING:
    from airflow_provider_aidp.hooks.aidp import AIDPHook

#: First poll comes quickly (short runs finish fast), then the interval grows to poll_interval.
FIRST_POLL_SECONDS = 1.0
GROWTH = 1.5
JITTER = 0.2
DEFAULT_MAX_POLL_ERRORS = 10


class PollSchedule:
    """Jittered, growing intervals bounded by ``poll_interval`` and by the deadline.

    Jitter spreads thousands of triggers started together; growth keeps short runs snappy
    without hammering the API during long ones.
    """

    def __init__(self, poll_interval: float, rng: random.Random | None = None) -> None:
        self.poll_interval = max(0.0, float(poll_interval))
        self._current = min(FIRST_POLL_SECONDS, self.poll_interval)
        self._rng = rng or random.Random()

    def next_delay(self, remaining: float | None = None) -> float:
        base = self._current
        self._current = min(self.poll_interval, max(self._current * GROWTH, FIRST_POLL_SECONDS))
        delay = base * (1.0 - JITTER * self._rng.random())
        if remaining is not None:
            delay = min(delay, max(0.0, remaining))
        return delay

    def error_delay(self, errors: int, remaining: float | None = None) -> float:
        """Back off after a failed poll, never longer than the regular interval."""
        delay = min(self.poll_interval, FIRST_POLL_SECONDS * 2 ** max(0, errors - 1))
        delay *= 1.0 - JITTER * self._rng.random()
        if remaining is not None:
            delay = min(delay, max(0.0, remaining))
        return delay


class ErrorBudget:
    """Counts consecutive transient polling errors; a successful poll resets it.

    A 401 is forgiven once in a row (the hook re-signs / the token may just have rotated);
    a second consecutive 401 is a real auth problem.
    """

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
    return _is_client_transport_error(exc)


def _is_client_transport_error(exc: BaseException) -> bool:
    """aiohttp / requests transport errors, checked by module name so neither is imported here."""
    module = type(exc).__module__ or ""
    return module.startswith(("aiohttp", "requests", "urllib3")) or isinstance(exc, OSError)


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def wait_for_run(
    hook: AIDPHook,
    run_key: str,
    *,
    poll_interval: float,
    deadline: float | None,
    max_poll_errors: int = DEFAULT_MAX_POLL_ERRORS,
    cancel_on_timeout: bool = True,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
    on_status: Callable[[str | None], None] | None = None,
) -> dict[str, Any]:
    """Poll one run until terminal, deadline or spent error budget; return an ``outcome`` event.

    One GET per poll. ``deadline`` is absolute epoch seconds (``None``: wait forever).
    """
    schedule = PollSchedule(poll_interval)
    budget = ErrorBudget(max_poll_errors)
    started = clock()
    status: str | None = None
    while True:
        remaining = None if deadline is None else deadline - clock()
        if remaining is not None and remaining <= 0:
            return _timeout_sync(hook, run_key, status, cancel_on_timeout, clock() - started)
        try:
            run = hook.get_job_run(run_key)
        except Exception as exc:  # classified below, never swallowed silently
            if not budget.is_transient(exc):
                return outcome.error(run_key, status, last_error=describe(exc))
            if not budget.record():
                return outcome.poll_error(run_key, status, errors=budget.errors, last_error=describe(exc))
            sleep(schedule.error_delay(budget.errors, remaining))
            continue
        budget.success()
        if run.status != status and on_status is not None:
            on_status(run.status)
        status = run.status
        if is_terminal(status):
            return outcome.terminal(run_key, status, run.to_api())
        sleep(schedule.next_delay(None if deadline is None else deadline - clock()))


def _timeout_sync(
    hook: AIDPHook, run_key: str, status: str | None, cancel: bool, waited: float
) -> dict[str, Any]:
    cancel_error = None
    if cancel:
        try:
            hook.cancel_job_run(run_key)
        except Exception as exc:  # reported in the timeout message
            cancel_error = describe(exc)
    return outcome.timeout(
        run_key,
        status,
        canceled=cancel and cancel_error is None,
        cancel_error=cancel_error,
        waited_seconds=waited,
    )
