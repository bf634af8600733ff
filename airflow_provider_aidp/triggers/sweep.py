"""The triggerer-wide status sweep: one listing per cycle answers for every run a triggerer follows.

Every :class:`~airflow_provider_aidp.triggers.aidp.AIDPJobRunTrigger` of one connection +
workspace on one event loop shares one :class:`Sweeper` (like the shared session and the request
pacer). A trigger's wait is the usual wait core (``runs/waiter.py``) driven by ``adrive``; only its
``observe`` and ``sleep`` come from a :class:`SweepWatch`:

* ``observe``: the answer comes from the latest cycle's listing when that speaks for the run,
  else the trigger waits for the next cycle or reads its run itself (``runs/sweep.py`` decides
  which). A trigger that just started is found by a listing of the workspace's active runs (its
  kwargs hold no job key), which tells its job key. A terminal status always comes from the run's
  own GET.
* ``sleep``: the wait core's pause, cut short when a cycle finds the run changed or gone from the
  active listing.

A cycle lists the watched runs' jobs' active runs (repeated ``jobKey`` and ``status``, every
page; without ``jobKey`` while some run's job is not known). A failed cycle sends everyone back
to per-run polling until a cycle succeeds; the wait core's error budget counts only the
triggers' own requests. Fewer than two watched runs: no listing at all.
The ``status_sweep`` connection extra (``off``) turns it off: each trigger polls its own run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from airflow_provider_aidp.runs.sweep import LISTED_STATUSES, Ask, Board, chunks

if TYPE_CHECKING:
    from airflow_provider_aidp.hooks.aidp import AIDPHook
    from airflow_provider_aidp.models.runs import JobRun

#: Page size asked for first (the emulator's and many OCI lists' maximum). A 400 that names
#: ``limit`` makes the sweeper ask for the page size the field notes saw served (100), one that names
#: ``QUEUED`` leaves that status out of the filter (SDK 5.0.0 added it: an older service refuses it;
#: such runs get their own GET); a 400 that names neither does the first, then the second.
PAGE_SIZE = 1000
FALLBACK_PAGE_SIZE = 100
#: A new trigger (or job key) is listed this soon (seconds after the last cycle).
KICK_GAP_SECONDS = 1.0
KICK_GATHER_SECONDS = 0.25

_log = logging.getLogger(__name__)
_SWEEPERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str | None], Sweeper]] = (
    weakref.WeakKeyDictionary()
)


class Sweeper:
    """The cycles of one connection + workspace on one event loop, and the wake-ups they cause."""

    def __init__(self, conn_id: str, workspace_key: str | None) -> None:
        self.conn_id, self.workspace_key = conn_id, workspace_key
        self.board = Board()
        self.page_size = PAGE_SIZE
        self.statuses = LISTED_STATUSES
        self._wakes: dict[int, asyncio.Future[None]] = {}  # done: the watch was woken
        self._cycle_done: asyncio.Future[None] | None = None  # done when the running cycle ends
        self._kick = asyncio.Event()
        self._last_cycle = -float("inf")
        self._task: asyncio.Task[None] | None = None

    # --- watches ------------------------------------------------------------------------

    def add(self, wid: int, run_key: str, poll_interval: float) -> None:
        self.board.add(wid, run_key, poll_interval, time.time())
        self._wakes[wid] = asyncio.get_running_loop().create_future()
        self._kick.set()  # a run whose job is not known yet: list the workspace soon
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"aidp-sweep-{self.conn_id}"
            )

    def remove(self, wid: int) -> None:
        self.board.remove(wid)
        self._wakes.pop(wid, None)
        if not self.board.watches:
            self._kick.set()  # let the sweeper see it is idle and end now

    def got(self, wid: int, run: JobRun) -> None:
        if self.board.got(wid, run, time.time()):
            self._kick.set()

    async def answer(self, wid: int, deadline: float | None = None) -> Ask | JobRun:
        """A listing's answer for watch ``wid`` (waiting for the next cycle if one is due), or GET.

        The wait for a cycle ends by the trigger's ``deadline``: a timeout fires when it did
        without the sweep (the poll at the deadline is the run's own GET).
        """
        if self._wakes[wid].done():
            self._wakes[wid] = asyncio.get_running_loop().create_future()
        verdict = self.board.ask(wid, time.time())
        until = time.time() + self.board.watches[wid].poll_interval
        if deadline is not None:
            until = min(until, deadline)
        while verdict is Ask.WAIT:  # cycles until one answers for the run (at most a poll interval)
            if self._cycle_done is None:
                self._cycle_done = asyncio.get_running_loop().create_future()
            await _until(self._cycle_done, until - time.time())
            verdict = self.board.ask(wid, time.time(), waited=True)
            if verdict is Ask.WAIT and time.time() >= until:
                verdict = Ask.GET
        return verdict

    async def sleep(self, wid: int, seconds: float) -> None:
        """The wait core's pause, ended early when a cycle wakes watch ``wid``."""
        await _until(self._wakes[wid], seconds)

    # --- cycles -------------------------------------------------------------------------

    async def _run(self) -> None:
        from airflow_provider_aidp.hooks.aidp import AIDPHook

        hook = AIDPHook(aidp_conn_id=self.conn_id, workspace_key=self.workspace_key)
        async with hook.session_lease():
            while self.board.watches:
                await self._pause()
                if not self.board.watches:
                    break
                await (self._cycle(hook) if self.board.sweeping else self._skip())
            self._task = None  # a watch added from now on starts a new task

    async def _pause(self) -> None:
        """Sleep one cycle; a kick (new trigger or job key, last watch gone) shortens it to
        KICK_GAP_SECONDS after the last cycle, and KICK_GATHER_SECONDS after the kick (triggers
        that start together, e.g. after a triggerer restart, join one listing)."""
        self._kick.clear()
        until = self._last_cycle + self.board.cycle_seconds()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._kick.wait(), max(0.0, until - time.time()))
        if self._kick.is_set() and self.board.watches:
            gap = max(self._last_cycle + KICK_GAP_SECONDS - time.time(), KICK_GATHER_SECONDS)
            await asyncio.sleep(max(0.0, gap))

    async def _cycle(self, hook: AIDPHook) -> None:
        started = self._last_cycle = time.time()
        keys = self.board.scope()
        try:
            listing = []
            for part in [[]] if keys is None else chunks(keys):
                listing += await hook.a_list_runs_of_jobs(part, self.statuses, page_size=self.page_size)
        except Exception as exc:
            self._failed(exc)
        else:
            covered = None if keys is None else set(keys)
            for wid in self.board.listed(listing, covered, started, time.time()):
                if not self._wakes[wid].done():
                    self._wakes[wid].set_result(None)
        self._finish()

    async def _skip(self) -> None:
        self._last_cycle = time.time()
        self._finish()

    def _failed(self, exc: Exception) -> None:
        from airflow_provider_aidp.exceptions import AIDPApiError

        self.board.failed()
        if isinstance(exc, AIDPApiError) and exc.status == 400:
            self._ask_less(exc.message.lower())
        _log.warning(
            "AIDP status sweep of %d job(s) failed (%s: %s); triggers poll their own runs this cycle.",
            len(self.board.job_keys()),
            type(exc).__name__,
            exc,
        )

    def _ask_less(self, refusal: str) -> None:
        """After a 400: drop what the refusal names; else, one step per refusal, the page size and
        then ``QUEUED``. A refused ``jobKey``-less listing changes nothing (later cycles list by job)."""
        if "jobkey" in refusal:
            return
        if "limit" in refusal or ("queued" not in refusal and self.page_size > FALLBACK_PAGE_SIZE):
            self.page_size = min(self.page_size, FALLBACK_PAGE_SIZE)
        else:
            self.statuses = tuple(s for s in self.statuses if s != "QUEUED")

    def _finish(self) -> None:
        done, self._cycle_done = self._cycle_done, None
        if done is not None:
            done.set_result(None)


async def _until(event: asyncio.Future[None], seconds: float) -> None:
    """Wait until ``event`` is done or ``seconds`` pass, whichever comes first.

    A future and a timer, no task: ``asyncio.wait_for`` would start a task per call, and a thousand
    triggers sleep about once a second each.
    """
    loop = asyncio.get_running_loop()
    mine: asyncio.Future[None] = loop.create_future()

    def done(_: object = None) -> None:
        if not mine.done():
            mine.set_result(None)

    timer = loop.call_later(max(0.0, seconds), done)
    event.add_done_callback(done)
    try:
        await mine
    finally:
        timer.cancel()
        event.remove_done_callback(done)


def sweeper_for(conn_id: str, workspace_key: str | None) -> Sweeper:
    """The running loop's sweeper of (connection id, workspace)."""
    per_loop = _SWEEPERS.setdefault(asyncio.get_running_loop(), {})
    sweeper = per_loop.get((conn_id, workspace_key))
    if sweeper is None:
        sweeper = per_loop[(conn_id, workspace_key)] = Sweeper(conn_id, workspace_key)
    return sweeper


class SweepWatch:
    """One trigger's ``observe`` and ``sleep`` for the wait core (see the module docstring)."""

    def __init__(
        self, hook: AIDPHook, run_key: str, poll_interval: float, deadline: float | None = None
    ) -> None:
        self.hook, self.run_key, self.poll_interval, self.deadline = hook, run_key, poll_interval, deadline
        self.sweeper: Sweeper | None = None
        self._decided = False

    async def observe(self) -> JobRun:
        if not self._decided:  # the first poll reads the connection (as a GET would) and joins
            if (await self.hook.a_config()).status_sweep == "on":
                self.sweeper = sweeper_for(self.hook.aidp_conn_id, self.hook.workspace_key)
                self.sweeper.add(id(self), self.run_key, self.poll_interval)
            self._decided = True
        if self.sweeper is not None:
            verdict = await self.sweeper.answer(id(self), self.deadline)
            if verdict is not Ask.GET:
                assert not isinstance(verdict, Ask)
                return verdict
        run = await self.hook.a_get_job_run(self.run_key)
        if self.sweeper is not None:
            self.sweeper.got(id(self), run)
        return run

    async def sleep(self, seconds: float) -> Any:
        if self.sweeper is None:
            return await asyncio.sleep(seconds)
        return await self.sweeper.sleep(id(self), seconds)

    def close(self) -> None:
        if self.sweeper is not None:
            self.sweeper.remove(id(self))
            self.sweeper = None


@contextlib.asynccontextmanager
async def watching(
    hook: AIDPHook, run_key: str, poll_interval: float, deadline: float | None = None
) -> AsyncIterator[SweepWatch]:
    """A :class:`SweepWatch` that leaves its sweeper however the wait ends (done, cancelled, error)."""
    watch = SweepWatch(hook, run_key, poll_interval, deadline)
    try:
        yield watch
    finally:
        watch.close()
