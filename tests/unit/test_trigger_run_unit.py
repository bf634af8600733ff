"""AIDPJobRunTrigger edge cases with a fake async hook: failures of cancel, restart semantics."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_aidp.exceptions import AIDPServerError
from airflow_provider_aidp.models.runs import JobRun
from airflow_provider_aidp.triggers.aidp import AIDPJobRunTrigger


class FakeAsyncHook:
    aidp_conn_id, workspace_key = "fake", None

    def __init__(self, statuses: list[Any], cancel_error: Exception | None = None) -> None:
        self.statuses = list(statuses)
        self.cancel_error = cancel_error
        self.gets = 0
        self.cancels = 0
        self.leases = 0

    async def a_get_job_run(self, run_key: str, **_: Any) -> JobRun:
        self.gets += 1
        item = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        if isinstance(item, BaseException):
            raise item
        return JobRun(key=run_key, state={"status": item})

    async def a_get_config(self) -> Any:
        """The status sweep is on (the default); a trigger alone on its connection never lists."""
        return SimpleNamespace(status_sweep="on")

    @contextlib.asynccontextmanager
    async def session_lease(self) -> AsyncIterator[None]:
        self.leases += 1
        yield

    async def a_cancel_job_run(self, run_key: str, **_: Any) -> JobRun:
        self.cancels += 1
        if self.cancel_error:
            raise self.cancel_error
        return JobRun(key=run_key, state={"status": "CANCELING"})


def trigger_with(hook: FakeAsyncHook, **kwargs: Any) -> AIDPJobRunTrigger:
    trigger = AIDPJobRunTrigger("r1", poll_interval=0.01, **kwargs)
    trigger._hook = lambda: hook  # type: ignore[method-assign]
    return trigger


async def test_failed_cancel_at_the_deadline_is_reported_not_raised() -> None:
    hook = FakeAsyncHook(["RUNNING"], cancel_error=AIDPServerError("down", status=500))
    event = await trigger_with(hook, deadline=time.time() + 0.05).wait(hook)  # type: ignore[arg-type]
    assert event["event"] == "timeout" and event["canceled"] is False and "down" in event["cancel_error"]
    assert "tried to cancel" in event["message"] and hook.cancels == 1


async def test_on_kill_swallows_cancel_errors() -> None:
    hook = FakeAsyncHook(["RUNNING"], cancel_error=AIDPServerError("down", status=500))
    await trigger_with(hook).on_kill()
    assert hook.cancels == 1


async def test_cancelled_task_and_cleanup_never_cancel_the_run() -> None:
    hook = FakeAsyncHook(["RUNNING"])
    trigger = trigger_with(hook)
    task = asyncio.ensure_future(trigger.wait(hook))  # type: ignore[arg-type]
    while hook.gets < 2:
        await asyncio.sleep(0.005)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await trigger.cleanup()
    assert hook.cancels == 0


async def test_past_deadline_does_not_poll_at_all() -> None:
    hook = FakeAsyncHook(["RUNNING"])
    event = await trigger_with(hook, deadline=time.time() - 1, cancel_on_timeout=False).wait(hook)  # type: ignore[arg-type]
    assert event["event"] == "timeout" and hook.gets == 0 and hook.cancels == 0


async def test_error_budget_resets_after_a_good_poll() -> None:
    err = AIDPServerError("x", status=502)
    hook = FakeAsyncHook([err, err, "RUNNING", err, err, "SUCCESS"])
    event = await trigger_with(hook, max_poll_errors=2).wait(hook)  # type: ignore[arg-type]
    assert event["event"] == "terminal" and event["status"] == "SUCCESS" and hook.gets == 6
