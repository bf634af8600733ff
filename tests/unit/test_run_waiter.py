"""The wait core driven directly: observations in, actions out (no hook, no clock, no sleeping)."""

from __future__ import annotations

import logging
import random

import pytest

from airflow_provider_aidp.exceptions import AIDPNotFoundError, AIDPServerError
from airflow_provider_aidp.models.runs import JobRun
from airflow_provider_aidp.runs.waiter import Cancel, Done, Poll, Sleep, Waiter


def run(status: str) -> JobRun:
    return JobRun(key="r1", jobKey="j1", state={"status": status})


def waiter(**kwargs: object) -> Waiter:
    kwargs.setdefault("deadline", None)
    return Waiter("r1", poll_interval=10.0, now=1000.0, rng=random.Random(3), **kwargs)  # type: ignore[arg-type]


def test_settle_first_then_poll_until_terminal() -> None:
    w = waiter(settle=2.0, deadline=1001.5)
    assert w.start(1000.0) == Sleep(1.5)  # the settling pause never outlasts the deadline
    assert waiter().start(1000.0) == Poll()
    w = waiter()
    nxt = w.observed(run("RUNNING"), 1000.0)
    assert isinstance(nxt, Sleep) and 0 < nxt.seconds <= 1.0
    done = w.observed(run("FAILED"), 1001.0)
    assert (
        isinstance(done, Done) and done.event["event"] == "terminal" and done.event["run"]["jobKey"] == "j1"
    )


def test_deadline_cancels_only_when_asked_and_reports_the_cancel() -> None:
    w = waiter(deadline=1060.0)
    assert w.due(1059.0) == Poll()
    assert w.due(1060.0) == Cancel()
    event = w.after(Cancel(), AIDPServerError("down", status=500), 1061.0)
    assert isinstance(event, Done) and event.event["event"] == "timeout"
    assert event.event["canceled"] is False and "down" in event.event["cancel_error"]
    kept = waiter(deadline=1060.0, cancel_on_timeout=False).due(1070.0)
    assert isinstance(kept, Done) and kept.event["canceled"] is False and kept.event["cancel_error"] is None
    assert waiter(deadline=1060.0).after(Cancel(), None, 1061.0).event["canceled"] is True  # type: ignore[union-attr]


def test_error_budget_logging_and_classification(caplog: pytest.LogCaptureFixture) -> None:
    w = waiter(max_poll_errors=2)
    with caplog.at_level(logging.INFO):
        assert isinstance(w.failed(AIDPServerError("x", status=503), 1000.0), Sleep)
        assert isinstance(w.observed(run("RUNNING"), 1001.0), Sleep)  # a good poll resets the budget
        assert isinstance(w.observed(run("RUNNING"), 1002.0), Sleep)
        for _ in range(2):
            assert isinstance(w.after(Poll(), AIDPServerError("x", status=503), 1003.0), Sleep)
        spent = w.failed(AIDPServerError("x", status=503), 1004.0)
    assert isinstance(spent, Done) and spent.event["event"] == "poll_error" and spent.event["errors"] == 3
    assert spent.event["status"] == "RUNNING"
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("AIDP job run r1 is RUNNING") == 1  # logged on change only
    assert sum("will retry" in m for m in messages) == 3  # forgiven errors are logged (sync and async)
    gone = waiter().failed(AIDPNotFoundError("gone", status=404), 1000.0)
    assert isinstance(gone, Done) and gone.event["event"] == "error" and "gone" in gone.event["message"]
