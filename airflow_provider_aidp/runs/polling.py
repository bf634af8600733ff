"""The two thin drivers of the wait core (``runs/waiter.py``): one sync loop, one async loop.

They only perform the core's actions -- sleep, observe, cancel -- and hand back what happened;
every decision (schedule, error budget, deadline, logging) is the core's. ``observe`` and
``cancel`` are plain callables, so the operators pass ``hook.get_job_run`` and the trigger passes
``hook.a_get_job_run``; anything else that can answer "what is this run now" can drive a wait.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from airflow_provider_aidp.models.runs import JobRun
from airflow_provider_aidp.runs.waiter import Action, Done, Poll, Sleep, Waiter

if TYPE_CHECKING:
    from airflow_provider_aidp.hooks.aidp import AIDPHook


def _perform(
    action: Action, observe: Callable[[], Any], cancel: Callable[[], Any], sleep: Callable[[float], None]
) -> Any:
    """Do one action; a failed call's exception is its result (the core classifies it)."""
    if isinstance(action, Sleep):
        return sleep(action.seconds)
    try:
        return observe() if isinstance(action, Poll) else cancel()
    except Exception as exc:
        return exc


async def _aperform(
    action: Action,
    observe: Callable[[], Awaitable[Any]],
    cancel: Callable[[], Awaitable[Any]],
    sleep: Callable[[float], Awaitable[Any]],
) -> Any:
    """:func:`_perform` on the event loop; ``asyncio.CancelledError`` passes through untouched."""
    if isinstance(action, Sleep):
        return await sleep(action.seconds)
    try:
        return await (observe() if isinstance(action, Poll) else cancel())
    except Exception as exc:
        return exc


def drive(
    waiter: Waiter,
    observe: Callable[[], JobRun],
    cancel: Callable[[], Any],
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> dict[str, Any]:
    """Run the wait synchronously; return its ``runs.outcome`` event."""
    action = waiter.start(clock())
    while not isinstance(action, Done):
        action = waiter.after(action, _perform(action, observe, cancel, sleep), clock())
    return action.event


async def adrive(
    waiter: Waiter,
    observe: Callable[[], Awaitable[JobRun]],
    cancel: Callable[[], Awaitable[Any]],
    *,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    clock: Callable[[], float] = time.time,
) -> dict[str, Any]:
    """Run the wait on the event loop (the trigger's driver). ``sleep`` may end early (a status
    sweep wakes the trigger whose run changed)."""
    action = waiter.start(clock())
    while not isinstance(action, Done):
        action = waiter.after(action, await _aperform(action, observe, cancel, sleep), clock())
    return action.event


def wait_for_run(
    hook: AIDPHook,
    run_key: str,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
    **options: Any,
) -> dict[str, Any]:
    """Poll one run (one GET per poll) until terminal, deadline or spent error budget; ``options``
    are the :class:`Waiter`'s (``poll_interval``, ``deadline``, ``max_poll_errors``, ...)."""
    waiter = Waiter(run_key, now=clock(), **options)
    observe, cancel = (lambda: hook.get_job_run(run_key)), (lambda: hook.cancel_job_run(run_key))
    return drive(waiter, observe, cancel, sleep=sleep, clock=clock)
