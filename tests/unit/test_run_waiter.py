"""The wait's decisions driven directly: looks in, events and delays out (no hook, no clock, no sleeping)."""

from __future__ import annotations

import logging
import random

import pytest

from airflow_provider_aidp.exceptions import AIDPNotFoundError, AIDPServerError
from airflow_provider_aidp.models.runs import JobRun
from airflow_provider_aidp.runs.wait import Wait


def run(status: str) -> JobRun:
    return JobRun(key="r1", jobKey="j1", state={"status": status})


def waiter(**kwargs: object) -> Wait:
    kwargs.setdefault("deadline", None)
    kwargs.setdefault("rng", random.Random(3))
    return Wait("r1", poll_interval=10.0, now=1000.0, **kwargs)  # type: ignore[arg-type]


def test_settle_first_then_poll_until_terminal() -> None:
    w = waiter(deadline=1001.5)
    assert w.settle(2.0, 1000.0) == 1.5  # the settling pause never outlasts the deadline
    pauses = {waiter(rng=random.Random(i)).settle(2.0, 1000.0) for i in range(50)}
    assert all(2.0 <= p <= 2.4 for p in pauses) and len(pauses) > 40  # jittered, never shorter
    assert waiter().settle(0.0, 1000.0) == 0.0 and not waiter().expired(1000.0)  # look at once
    w = waiter()
    assert w.seen(run("RUNNING"), 1000.0) is None
    assert 0 < w.delay <= 1.0
    done = w.seen(run("FAILED"), 1001.0)
    assert done is not None and done["event"] == "terminal" and done["run"]["jobKey"] == "j1"


def test_deadline_cancels_only_when_asked_and_reports_the_cancel() -> None:
    w = waiter(deadline=1060.0)
    assert not w.expired(1059.0)
    assert w.expired(1060.0) and w.cancel_on_timeout  # the loop cancels, then reports
    event = w.timed_out(1061.0, AIDPServerError("down", status=500))
    assert event["event"] == "timeout"
    assert event["canceled"] is False and "down" in event["cancel_error"]
    kept = waiter(deadline=1060.0, cancel_on_timeout=False)
    assert kept.expired(1070.0) and not kept.cancel_on_timeout  # no cancel is made
    event = kept.timed_out(1070.0)
    assert event["canceled"] is False and event["cancel_error"] is None
    assert waiter(deadline=1060.0).timed_out(1061.0, None)["canceled"] is True


def test_error_budget_logging_and_classification(caplog: pytest.LogCaptureFixture) -> None:
    w = waiter(max_poll_errors=2)
    with caplog.at_level(logging.INFO):
        assert w.failed(AIDPServerError("x", status=503), 1000.0) is None and w.delay > 0
        assert w.seen(run("RUNNING"), 1001.0) is None  # a good poll resets the budget
        assert w.seen(run("RUNNING"), 1002.0) is None
        for _ in range(2):
            assert w.failed(AIDPServerError("x", status=503), 1003.0) is None
        spent = w.failed(AIDPServerError("x", status=503), 1004.0)
    assert spent is not None and spent["event"] == "poll_error" and spent["errors"] == 3
    assert spent["status"] == "RUNNING"
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("AIDP job run r1 is RUNNING") == 1  # logged on change only
    assert sum("will retry" in m for m in messages) == 3  # forgiven errors are logged (sync and async)
    gone = waiter().failed(AIDPNotFoundError("gone", status=404), 1000.0)
    assert gone is not None and gone["event"] == "error" and "gone" in gone["message"]
