"""Waiting for one AIDP job run: when to look again, which errors to outlast, and the one event a wait
ends with. Shared by the sync loop here (operators in a worker) and the async loop of
``AIDPJobRunTrigger`` (``triggers/aidp.py``): the two loops only look, sleep and cancel; every
decision is :class:`Wait`'s, so their behaviour cannot drift apart.

A polling error is never a job failure and never a reason to cancel; a passed deadline cancels
the run (if asked) and then reports ``timeout``.

The event is a plain JSON dict (it travels as a ``TriggerEvent`` payload through the metadata
DB); ``event`` is one of:

* ``terminal``   -- the run reached a terminal status (``status``), ``run`` is the JobRun JSON;
* ``timeout``    -- the wait deadline passed; ``canceled`` says whether the run was cancelled;
* ``poll_error`` -- polling kept failing with transient errors until the error budget was spent;
                    the run itself may be fine;
* ``error``      -- polling failed with a non-transient error (404, 403, 400...).
"""

from __future__ import annotations

import logging
import random
import time
from typing import TYPE_CHECKING, Any

from airflow_provider_aidp.exceptions import AIDPAuthError, is_transient
from airflow_provider_aidp.models.runs import JobRun, TaskRun, is_terminal

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_aidp.hooks.aidp import AIDPHook

TERMINAL, TIMEOUT, POLL_ERROR, ERROR = "terminal", "timeout", "poll_error", "error"

#: First poll comes quickly (short runs finish fast), then the interval grows to poll_interval.
FIRST_POLL_SECONDS = 1.0
GROWTH = 1.5
JITTER = 0.2
DEFAULT_MAX_POLL_ERRORS = 10

_log = logging.getLogger(__name__)


class PollSchedule:
    """Jittered, growing intervals bounded by ``poll_interval`` and the deadline: jitter spreads
    waits started together; growth keeps short runs snappy without hammering the API later."""

    def __init__(self, poll_interval: float, rng: random.Random | None = None) -> None:
        self.poll_interval = max(0.0, float(poll_interval))
        self._current = min(FIRST_POLL_SECONDS, self.poll_interval)
        self.rng = rng or random.Random()

    def next_delay(self, remaining: float | None = None) -> float:
        base = self._current
        self._current = min(self.poll_interval, max(self._current * GROWTH, FIRST_POLL_SECONDS))
        return _bounded(base * (1.0 - JITTER * self.rng.random()), remaining)

    def error_delay(self, errors: int, remaining: float | None = None) -> float:
        """Back off after a failed poll, never longer than the regular interval."""
        delay = min(self.poll_interval, FIRST_POLL_SECONDS * 2 ** max(0, errors - 1))
        return _bounded(delay * (1.0 - JITTER * self.rng.random()), remaining)


def _bounded(delay: float, remaining: float | None) -> float:
    return delay if remaining is None else max(0.0, min(delay, remaining))


class ErrorBudget:
    """Counts consecutive transient polling errors; a successful poll resets it. Expired credentials
    are forgiven once in a row (a token may just have rotated); twice in a row is a real problem."""

    def __init__(self, max_errors: int) -> None:
        self.max_errors = max(0, int(max_errors))
        self.errors = 0
        self._last_expired = False

    def success(self) -> None:
        self.errors = 0
        self._last_expired = False

    def is_transient(self, exc: BaseException) -> bool:
        if isinstance(exc, AIDPAuthError):
            transient = exc.credentials_expired and not self._last_expired
            self._last_expired = exc.credentials_expired
            return transient
        self._last_expired = False
        return is_transient(exc)

    def record(self) -> bool:
        """Count one transient error; False once the budget is spent."""
        self.errors += 1
        return self.errors <= self.max_errors


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class Wait:
    """The state of one wait. Every method takes the current time (epoch seconds).

    :param deadline: absolute epoch seconds after which the wait times out (``None``: never).
    :param log: where status changes, forgiven errors and the timeout cancel are logged.
    :param label: what is waited for, in log lines and messages (default ``AIDP job run <key>``);
        a wait for one task run of a run (``triggers/task_run.py``) names the task. What :meth:`seen`
        looks at only needs a ``status`` and ``to_api()``: a ``JobRun`` or a ``TaskRun``.
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
        log: logging.Logger | Any = None,
        rng: random.Random | None = None,
        label: str | None = None,
    ) -> None:
        self.run_key = run_key
        self.label = label or f"AIDP job run {run_key}"
        self.deadline = deadline
        self.cancel_on_timeout = cancel_on_timeout
        self.schedule = PollSchedule(poll_interval, rng)
        self.budget = ErrorBudget(max_poll_errors)
        self.status: str | None = None
        #: Seconds to sleep before the next look (set by :meth:`seen` and :meth:`failed`).
        self.delay = 0.0
        self._started = now
        self._log = log or _log

    def remaining(self, now: float) -> float | None:
        return None if self.deadline is None else self.deadline - now

    def settle(self, seconds: float, now: float) -> float:
        """A pause before the first look (never longer than a poll interval or the time left),
        jittered upwards like the polls (``seconds`` is a minimum, see ``SETTLE_SECONDS``):
        thousands of triggers a triggerer restart starts together must not all take their first
        look in the same instant."""
        pause = min(seconds * (1.0 + JITTER * self.schedule.rng.random()), self.schedule.poll_interval)
        return _bounded(pause, self.remaining(now))

    def expired(self, now: float) -> bool:
        remaining = self.remaining(now)
        return remaining is not None and remaining <= 0

    def seen(self, run: JobRun | TaskRun, now: float) -> dict[str, Any] | None:
        """The run as looked at: the ``terminal`` event, or None (then sleep :attr:`delay`)."""
        self.budget.success()
        if run.status != self.status:
            self._log.info("%s is %s", self.label, run.status)
        self.status = run.status
        if is_terminal(run.status):
            return {"event": TERMINAL, "run_key": self.run_key, "status": run.status, "run": run.to_api()}
        self.delay = self.schedule.next_delay(self.remaining(now))
        return None

    def failed(self, exc: BaseException, now: float) -> dict[str, Any] | None:
        """A look raised: None (a transient error within the budget: sleep :attr:`delay`), else the
        ``error`` or ``poll_error`` event."""
        last_error = describe(exc)
        if not self.budget.is_transient(exc):
            message = f"Polling {self.label} failed: {last_error}. The run was not cancelled."
            return {"event": ERROR, "run_key": self.run_key, "status": self.status, "message": message}
        if not self.budget.record():
            errors = self.budget.errors
            message = (
                f"Could not poll {self.label}: {errors} consecutive transient errors "
                f"(last: {last_error}). The run itself was NOT reported failed by AIDP and was not "
                f"cancelled (last known status {self.status or 'unknown'}); check it in the console."
            )
            return {
                "event": POLL_ERROR,
                "run_key": self.run_key,
                "status": self.status,
                "errors": errors,
                "message": message,
            }
        self._log.warning("Polling %s failed (%s); will retry.", self.label, last_error)
        self.delay = self.schedule.error_delay(self.budget.errors, self.remaining(now))
        return None

    def timed_out(self, now: float, cancel_error: BaseException | None = None) -> dict[str, Any]:
        """The ``timeout`` event, after the loop cancelled the run (when ``cancel_on_timeout``);
        ``cancel_error`` is what that cancel raised."""
        canceled = self.cancel_on_timeout and cancel_error is None
        if canceled:
            self._log.info("Wait deadline passed; cancelled AIDP job run %s", self.run_key)
        error = None if cancel_error is None else describe(cancel_error)
        what = "cancelled it" if canceled else "left it running"
        if error:
            what = f"tried to cancel it but the cancel failed ({error})"
        waited = now - self._started
        message = (
            f"{self.label} did not finish within the wait timeout ({waited:.0f}s; "
            f"last status {self.status or 'unknown'}); the provider {what}."
        )
        return {
            "event": TIMEOUT,
            "run_key": self.run_key,
            "status": self.status,
            "canceled": canceled,
            "cancel_error": error,
            "message": message,
        }


def wait_for_run(
    hook: AIDPHook,
    run_key: str,
    *,
    created_at: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
    **options: Any,
) -> dict[str, Any]:
    """Poll one run (one GET per look) until terminal, deadline or spent error budget; ``options``
    are :class:`Wait`'s (``poll_interval``, ``deadline``, ``max_poll_errors``, ...). The async twin
    of this loop is ``AIDPJobRunTrigger._wait``."""
    wait = Wait(run_key, now=clock(), **options)
    while not wait.expired(clock()):
        try:
            event = wait.seen(hook.get_job_run(run_key, created_at=created_at), clock())
        except Exception as exc:
            event = wait.failed(exc, clock())
        if event is not None:
            return event
        sleep(wait.delay)
    error = None
    if wait.cancel_on_timeout:
        try:
            hook.cancel_job_run(run_key, created_at=created_at)
        except Exception as exc:
            error = exc
    return wait.timed_out(clock(), error)
