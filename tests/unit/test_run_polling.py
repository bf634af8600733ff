"""Poll schedule, error classification and the sync wait loop (with a scripted fake hook)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from airflow_provider_aidp.exceptions import (
    AIDPAuthError,
    AIDPNotFoundError,
    AIDPRateLimitError,
    AIDPResponseError,
    AIDPServerError,
    AIDPTransportError,
)
from airflow_provider_aidp.exceptions import is_transient as is_transient_error
from airflow_provider_aidp.models.runs import JobRun
from airflow_provider_aidp.runs.wait import ErrorBudget, PollSchedule, wait_for_run


def test_schedule_grows_to_the_bound_with_jitter_and_respects_the_deadline() -> None:
    schedule = PollSchedule(10.0, random.Random(1))
    delays = [schedule.next_delay() for _ in range(12)]
    assert delays[0] <= 1.0 and all(0 < d <= 10.0 for d in delays)
    assert max(delays) > 7.0  # reached the bound (minus jitter)
    assert len(set(delays)) == len(delays)  # jittered
    assert schedule.next_delay(remaining=0.25) <= 0.25
    assert PollSchedule(0.1).next_delay() <= 0.1


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (AIDPRateLimitError("x", status=429), True),
        (AIDPServerError("x", status=503), True),
        (AIDPServerError("x", status=501), False),
        (AIDPTransportError("reset"), True),
        (AIDPResponseError("html", status=200), True),
        (AIDPNotFoundError("x", status=404), False),
        (TimeoutError(), True),
        (ConnectionResetError(), True),
        (ValueError("bug"), False),
    ],
)
def test_classification(exc: BaseException, transient: bool) -> None:
    assert is_transient_error(exc) is transient


def test_one_401_is_forgiven_two_in_a_row_are_not() -> None:
    budget = ErrorBudget(10)
    auth = AIDPAuthError("x", status=401)
    assert budget.is_transient(auth) and not budget.is_transient(auth)
    budget.success()
    assert budget.is_transient(auth)
    assert not budget.is_transient(AIDPAuthError("x", status=403))


class FakeHook:
    """Answers get_job_run from a script of statuses / exceptions; records cancels."""

    def __init__(self, script: list[Any]) -> None:
        self.script = list(script)
        self.gets = 0
        self.cancelled: list[str] = []

    def get_job_run(self, run_key: str, **_: Any) -> JobRun:
        self.gets += 1
        item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(item, BaseException):
            raise item
        return JobRun(key=run_key, state={"status": item})

    def cancel_job_run(self, run_key: str, **_: Any) -> JobRun:
        self.cancelled.append(run_key)
        return JobRun(key=run_key, state={"status": "CANCELING"})


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def __call__(self) -> float:
        return self.now


def wait(hook: FakeHook, clock: FakeClock, **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("deadline", None)
    return wait_for_run(hook, "r1", poll_interval=5, sleep=clock.sleep, clock=clock, **kwargs)  # type: ignore[arg-type]


def test_terminal_after_transient_errors_one_get_per_poll() -> None:
    hook, clock = (
        FakeHook([AIDPServerError("x", status=500), "RUNNING", AIDPTransportError("r"), "FAILED"]),
        FakeClock(),
    )
    event = wait(hook, clock, max_poll_errors=1)
    assert event["event"] == "terminal" and event["status"] == "FAILED" and event["run"]["key"] == "r1"
    assert hook.gets == 4 and not hook.cancelled


def test_budget_counts_consecutive_errors_and_never_cancels() -> None:
    hook, clock = FakeHook(["RUNNING", AIDPServerError("x", status=503)]), FakeClock()
    event = wait(hook, clock, max_poll_errors=3, deadline=clock.now + 10_000)
    assert event["event"] == "poll_error" and event["errors"] == 4 and event["status"] == "RUNNING"
    assert hook.gets == 5 and not hook.cancelled


def test_deadline_cancels_then_times_out_and_cancel_failure_is_reported() -> None:
    hook, clock = FakeHook(["RUNNING"]), FakeClock()
    event = wait(hook, clock, deadline=clock.now + 60)
    assert event["event"] == "timeout" and event["canceled"] and hook.cancelled == ["r1"]

    class NoCancel(FakeHook):
        def cancel_job_run(self, run_key: str, **_: Any) -> JobRun:
            raise AIDPServerError("down", status=500)

    broken = NoCancel(["RUNNING"])
    event = wait(broken, FakeClock(), deadline=FakeClock().now + 60)
    assert event["event"] == "timeout" and not event["canceled"] and "down" in event["cancel_error"]


def test_unknown_status_keeps_polling_and_non_transient_error_stops() -> None:
    hook, clock = FakeHook(["SOMETHING_NEW", AIDPNotFoundError("gone", status=404)]), FakeClock()
    event = wait(hook, clock)
    assert event["event"] == "error" and "gone" in event["message"] and event["status"] == "SOMETHING_NEW"
