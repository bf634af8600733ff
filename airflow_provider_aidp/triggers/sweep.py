"""The triggerer-wide status sweep: one listing per cycle answers for every run a triggerer follows.

Every :class:`~airflow_provider_aidp.triggers.aidp.AIDPJobRunTrigger` of one connection +
workspace on one event loop shares one :class:`Sweeper` (like the shared session and the request
pacer). A trigger's wait loop looks at its run through a :class:`SweepWatch`:

* ``observe``: the answer comes from the latest cycle's listing when that speaks for the run,
  else the trigger waits for the next cycle or reads its run itself (the :class:`Board` decides
  which). A trigger that just started is found by a listing of the workspace's active runs (its
  kwargs hold no job key), which tells its job key. A terminal status always comes from the run's
  own GET.
* ``sleep``: the wait's pause, cut short when a cycle finds the run changed or gone from the
  active listing. While the sweep answers (its latest cycle succeeded), a trigger does not wake
  every poll interval to take an unchanged answer: it sleeps until the sweeper wakes it (its run
  changed, went missing, or the sweep failed or stalled), until its run's own GET is due, or until
  its deadline. Five thousand triggers waking once a second each, only to read "still RUNNING",
  would keep a triggerer's loop busy (and late) for nothing.

A cycle is one ``AIDPHook.a_list_active_run_states`` of the watched runs' jobs (the hook decides how to
ask the service for it); a failed cycle sends everyone back to per-run polling until a cycle
succeeds. Fewer than two watched runs: no listing at all. The ``status_sweep`` connection extra
(``off``) turns it off: each trigger polls its own run.

The rules that keep it exact:

* A listing never ends a wait. A run that is missing from the active listing, or listed with a
  terminal-looking status, is marked "own GET owed"; the trigger then reads the run itself and
  the wait core builds every terminal event from that GET.
* The server's filters are not trusted: runs are matched locally by key, so a listing that ignores
  ``jobKey`` or ``status`` (or reads them differently) only costs pages, never a wrong answer.
* Nothing stays on listings alone for long: an owed GET is made at most once per the run's own
  poll interval (a listing that keeps showing a finished run costs what per-run polling costs),
  and every run gets its own GET at least every :data:`VERIFY_POLLS` poll intervals (the first
  one spread over the second half of that period, so triggers that joined together do not all
  verify in the same second).
* A cycle that has not ended after :data:`STALL_POLLS` poll intervals (or, if longer, the time
  per-run polling would need to look at every watched run once at the connection's pacing)
  counts as failed for the triggers (they read their runs themselves) until a cycle succeeds
  again; the listing itself books its pacing slots ahead of their GETs (``Call.ahead``), so it is
  not starved by the fallback it is there to end.
* A cycle wakes its triggers :data:`WAKE_BATCH` at a time, yielding to the loop in between: a
  cycle that sees hundreds of runs end at once must not stall every other trigger meanwhile.
* Only listings that started after a trigger joined (and, for a listing by job, after its job
  key was known) speak for its run, and a failed cycle speaks for nobody (the triggers fall back
  to per-run polling until a cycle succeeds).
* A trigger that does not know its run's job key yet (every trigger when it starts: the trigger's
  kwargs have no job key) is covered by a listing of the workspace's active runs, without
  ``jobKey``; the listing tells the job key, later cycles list by job. A run such a listing does
  not show gets its own GET, which also tells the job key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import weakref
import zlib
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from airflow_provider_aidp.models.runs import ActiveRun, JobRun, JobRunSummary, is_terminal

if TYPE_CHECKING:
    from airflow_provider_aidp.hooks.aidp import AIDPHook

#: A new trigger (or job key) is listed this soon (seconds after the last cycle).
KICK_GAP_SECONDS = 1.0
KICK_GATHER_SECONDS = 0.25

_log = logging.getLogger(__name__)
_SWEEPERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str | None], Sweeper]] = (
    weakref.WeakKeyDictionary()
)


# --- the bookkeeping (no I/O, no clock) ---------------------------------------------------

#: A run gets its own GET at least this often (in its poll intervals), however the listing reads.
VERIFY_POLLS = 60
#: A cycle still running after this many (smallest) poll intervals stalls the sweep: its triggers
#: read their runs themselves until a cycle succeeds.
STALL_POLLS = 3
#: Triggers woken per loop iteration when a cycle brings news for many.
WAKE_BATCH = 20
#: Fewer watched runs than this on one connection: no listing, plain per-run polling (as before).
MIN_WATCHES = 2
#: A cycle runs every ``poll interval / CYCLES_PER_POLL`` (the smallest interval watched), so a run's
#: end is seen within half an interval; never more often than every ``MIN_CYCLE_SECONDS``.
CYCLES_PER_POLL = 2
MIN_CYCLE_SECONDS = 0.5


class Ask(Enum):
    """What a trigger's observation should do when the board has no listing answer for it."""

    GET = "get"  # read the run itself
    WAIT = "wait"  # a listing that speaks for the run is due: wait for the next cycle


@dataclass
class Watch:
    """One watched run. Times are epoch seconds; ``-inf`` means never."""

    run_key: str
    poll_interval: float
    added_at: float  # listings that started after this (and after the job key was known) speak for it
    job_key: str | None = None
    job_known_at: float = -math.inf
    status: str | None = None  # as last told to the trigger (GET or listing)
    got_at: float = -math.inf  # last own GET that answered
    listed: ActiveRun | JobRunSummary | None = None  # the latest listing entry showing it active
    listed_at: float = -math.inf  # when that listing started
    owed_get: bool = False  # a listing did not show it active: its own GET must confirm
    covered: bool = False  # a cycle has answered for it (listed it, or failed) since it joined
    woken: bool = False  # the trigger was woken since its last observation
    waiting: bool = False  # the trigger waits for a cycle to answer for its run
    verify_at: float = math.inf  # its own GET is due then, whatever the listings say


class Board:
    """Every watched run of one connection + workspace on one event loop (no I/O, no clock)."""

    def __init__(self) -> None:
        #: By watch id (one per trigger: two triggers may wait for the same run).
        self.watches: dict[int, Watch] = {}
        #: The latest cycle succeeded (and has not stalled since): triggers may sleep until woken.
        self.answering = False
        #: When the latest successful cycle started: its answers are current, however old.
        self.current_since = -math.inf
        #: The connection's pacing, requests/s (0: none), for :meth:`stall_seconds`.
        self.rate = 0.0
        self._stall = STALL_POLLS * MIN_CYCLE_SECONDS * CYCLES_PER_POLL

    def add(self, wid: int, run_key: str, poll_interval: float, now: float) -> Watch:
        watch = self.watches[wid] = Watch(run_key, max(0.0, float(poll_interval)), now)
        # The first own GET falls in the second half of the verify period, spread by run key.
        spread = 0.5 + 0.5 * zlib.crc32(run_key.encode()) / 2**32
        watch.verify_at = now + VERIFY_POLLS * watch.poll_interval * spread
        return watch

    def remove(self, wid: int) -> None:
        self.watches.pop(wid, None)

    @property
    def sweeping(self) -> bool:
        """Whether a listing pays: at least :data:`MIN_WATCHES` watched runs."""
        return len(self.watches) >= MIN_WATCHES

    def job_keys(self) -> list[str]:
        return sorted({w.job_key for w in self.watches.values() if w.job_key})

    def scope(self) -> list[str] | None:
        """The job keys to list, or ``None``: list the workspace's active runs (no ``jobKey``),
        because some watched run's job is not known yet (a trigger that just started, e.g. after a
        triggerer restart: one listing finds a thousand of them instead of a GET each)."""
        return None if any(w.job_key is None for w in self.watches.values()) else self.job_keys()

    def cycle_seconds(self) -> float:
        return max(MIN_CYCLE_SECONDS, self._smallest_interval() / CYCLES_PER_POLL)

    def stall_seconds(self) -> float:
        """How long a cycle may run before its triggers stop waiting for it: :data:`STALL_POLLS`
        poll intervals, and never less than per-run polling needs to look at every run once at the
        connection's pacing (``rate`` requests/s): falling back sooner would be slower, not faster,
        and would bury the listing that ends the stall under thousands of GETs."""
        polls = STALL_POLLS * max(MIN_CYCLE_SECONDS * CYCLES_PER_POLL, self._smallest_interval())
        return max(polls, len(self.watches) / self.rate) if self.rate > 0 else polls

    def _smallest_interval(self) -> float:
        return min([w.poll_interval for w in self.watches.values()] or [MIN_CYCLE_SECONDS])

    @property
    def stall(self) -> float:
        """:meth:`stall_seconds` as of the latest cycle (computing it walks every watch)."""
        return self._stall

    def parks(self, wid: int) -> bool:
        """Whether watch ``wid`` may sleep until the sweeper wakes it (or its own GET is due): the
        sweep answers, i.e. every cycle covers it and wakes it for any news."""
        return self.sweeping and self.answering and wid in self.watches

    # --- what the trigger saw ---------------------------------------------------------------

    def got(self, wid: int, run: JobRun, now: float) -> bool:
        """The trigger read its run itself. True when the job key is new to the board (list soon)."""
        watch = self.watches[wid]
        watch.status, watch.got_at, watch.owed_get, watch.woken = run.status, now, False, False
        watch.verify_at = now + VERIFY_POLLS * watch.poll_interval
        if watch.job_key is None and run.job_key:
            watch.job_key, watch.job_known_at = run.job_key, now
            return sum(1 for w in self.watches.values() if w.job_key == run.job_key) == 1
        return False

    def ask(self, wid: int, now: float, *, waited: bool = False) -> Ask | JobRun:
        """The trigger's next observation: a listing's (non-terminal) answer, or GET / WAIT."""
        watch = self.watches[wid]
        watch.woken = False
        if not self.sweeping or watch.owed_get or now >= watch.verify_at:
            return Ask.GET
        # An answer stands for one poll interval; the latest cycle's as long as its successor may
        # run before it stalls (a slow cycle must not send thousands of triggers to their GETs).
        age, current = now - watch.listed_at, watch.listed_at >= self.current_since
        lasts = max(watch.poll_interval, self._stall) if current else watch.poll_interval
        if watch.listed is not None and age <= lasts:
            watch.status = watch.listed.status
            return JobRun.model_validate(
                {"key": watch.run_key, "jobKey": watch.job_key, "state": {"status": watch.listed.status}}
            )
        # No fresh answer: wait for a cycle, unless one already answered since the trigger joined
        # (its answer aged out, or it failed): then the trigger reads its run itself.
        return Ask.GET if waited and watch.covered else Ask.WAIT

    # --- what a cycle's listing means -------------------------------------------------------

    def listed(
        self,
        listing: Iterable[ActiveRun | JobRunSummary],
        job_keys: set[str] | None,
        started: float,
        now: float,
    ) -> list[int]:
        """Apply one cycle's listing (every page) of ``job_keys`` (``None``: the whole workspace);
        return the watch ids to wake: those it has news for, and those waiting for an answer.

        A watched run the listing covers is *active* when the listing holds its key with a
        non-terminal status (unknown statuses count as not finished, as everywhere); otherwise
        its own GET is owed. Wakes: a changed active status (answered from the listing, no
        request) and an owed GET, the latter at most once per the run's own poll interval.
        """
        by_key = {s.key: s for s in listing}
        wake = []
        self.answering, self.current_since, self._stall = True, started, self.stall_seconds()
        for wid, watch in self.watches.items():
            if job_keys is not None and watch.job_key not in job_keys:
                continue
            known = watch.job_known_at if job_keys is not None else -math.inf
            if max(watch.added_at, watch.got_at, known) > started:
                continue  # the listing is older than what the trigger knows
            watch.covered = True
            summary = by_key.get(watch.run_key)
            if summary is not None and not is_terminal(summary.status) and not watch.owed_get:
                if watch.job_key is None and summary.job_key:
                    watch.job_key, watch.job_known_at = summary.job_key, started
                watch.listed, watch.listed_at = summary, started
                news = summary.status != watch.status
            else:
                watch.listed, watch.owed_get = None, True
                news = now - watch.got_at >= watch.poll_interval
            if (news or watch.waiting) and not watch.woken:
                watch.woken = True
                wake.append(wid)
        return wake

    def failed(self) -> None:
        """A cycle's listing failed (or stalled): until a listing succeeds, every trigger reads its
        run itself (per-run polling, with the wait core's error budget)."""
        self.answering = False
        for watch in self.watches.values():
            watch.listed, watch.covered = None, True


# --- the cycles ---------------------------------------------------------------------------------


class Sweeper:
    """The cycles of one connection + workspace on one event loop, and the wake-ups they cause."""

    def __init__(self, conn_id: str, workspace_key: str | None) -> None:
        self.conn_id, self.workspace_key = conn_id, workspace_key
        self.board = Board()
        self._wakes: dict[int, asyncio.Future[None]] = {}  # done: the watch was woken
        self._kick = asyncio.Event()
        self._last_cycle = -float("inf")
        self._task: asyncio.Task[None] | None = None
        self._waking: set[asyncio.Task[None]] = set()  # wake-ups in progress (kept referenced)

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
        elif not self.board.sweeping:
            self._wake_now(list(self._wakes))  # too few to list: the one left polls its run itself

    def got(self, wid: int, run: JobRun) -> None:
        if self.board.got(wid, run, time.time()):
            self._kick.set()

    async def answer(self, wid: int, deadline: float | None = None) -> Ask | JobRun:
        """A listing's answer for watch ``wid`` (waiting for a cycle that covers it), or GET.

        A trigger waiting for a cycle is woken by it (in its batch), by a failed or stalled cycle,
        or gives up after :data:`STALL_POLLS` poll intervals (one after a failure or a stall: then
        it polls its run itself until a cycle succeeds); the wait also ends by the trigger's
        ``deadline``: a timeout fires when it did without the sweep (the poll at the deadline is
        the run's own GET).
        """
        self._renew(wid)
        verdict = self.board.ask(wid, time.time())
        if verdict is not Ask.WAIT:
            return verdict
        watch = self.board.watches[wid]
        # While the sweep answers, a cycle in flight may take until it would count as stalled;
        # after a failure or a stall, one poll interval (then the run's own GET, per-run polling).
        wait = max(watch.poll_interval, self.board.stall) if self.board.answering else watch.poll_interval
        until = time.time() + wait
        if deadline is not None:
            until = min(until, deadline)
        watch.waiting = True
        try:
            while verdict is Ask.WAIT:
                await _until(self._wakes[wid], until - time.time())
                self._renew(wid)
                verdict = self.board.ask(wid, time.time(), waited=True)
                if verdict is Ask.WAIT and time.time() >= until:
                    verdict = Ask.GET
        finally:
            watch.waiting = False
        return verdict

    def _renew(self, wid: int) -> None:
        if self._wakes[wid].done():
            self._wakes[wid] = asyncio.get_running_loop().create_future()

    async def sleep(self, wid: int, seconds: float, deadline: float | None = None) -> None:
        """The wait core's pause, ended early when a cycle wakes watch ``wid``. While the sweep
        answers for the run, the pause lasts until a cycle wakes it (news, failure, stall) or its
        own GET is due, bounded by ``deadline``: an unchanged run costs its trigger no wake-up."""
        if self.board.parks(wid):
            now = time.time()
            seconds = self.board.watches[wid].verify_at - now
            if deadline is not None:
                seconds = min(seconds, deadline - now)
        await _until(self._wakes[wid], max(0.0, seconds))

    # --- cycles -------------------------------------------------------------------------

    async def _run(self) -> None:
        from airflow_provider_aidp.hooks.aidp import AIDPHook

        hook = AIDPHook(aidp_conn_id=self.conn_id, workspace_key=self.workspace_key)
        try:
            async with hook.session_lease():
                self.board.rate = (await hook.a_get_config()).max_requests_per_second
                while self.board.watches:
                    await self._pause()
                    if not self.board.watches:
                        break
                    await (self._cycle(hook) if self.board.sweeping else self._skip())
        finally:  # however it ends (cancelled with its loop, or a bug): nobody waits on it
            self._task = None  # a watch added from now on starts a new task
            self.board.failed()
            self._wake_now(list(self._wakes))

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
        stall = asyncio.get_running_loop().call_later(self.board.stall_seconds(), self._stalled)
        try:
            listing = await hook.a_list_active_run_states(keys)
        except Exception as exc:
            self._failed(exc)
            await self._wake(list(self._wakes))
        else:
            covered = None if keys is None else set(keys)
            await self._wake(self.board.listed(listing, covered, started, time.time()))
        finally:
            stall.cancel()

    async def _skip(self) -> None:
        self._last_cycle = time.time()

    def _failed(self, exc: Exception) -> None:
        self.board.failed()
        _log.warning(
            "AIDP status sweep of %d job(s) failed (%s: %s); triggers poll their own runs this cycle.",
            len(self.board.job_keys()),
            type(exc).__name__,
            exc,
        )

    def _stalled(self) -> None:
        """The running cycle took longer than its triggers may wait: they read their runs themselves
        (the listing goes on, and the next cycle that succeeds takes them back)."""
        _log.warning(
            "AIDP status sweep: a listing is taking longer than %.0fs; triggers poll their own runs "
            "until one succeeds.",
            self.board.stall_seconds(),
        )
        self.board.failed()
        task = asyncio.get_running_loop().create_task(self._wake(list(self._wakes)))
        self._waking.add(task)  # referenced until done
        task.add_done_callback(self._waking.discard)

    async def _wake(self, wids: list[int]) -> None:
        """Wake watches :data:`WAKE_BATCH` at a time, yielding to the loop between batches: each
        woken trigger takes its answer or sends its GET before the next batch is woken."""
        for i in range(0, len(wids), WAKE_BATCH):
            if i:  # one pass of the loop runs the wake callbacks, the next the woken triggers
                await asyncio.sleep(0)
                await asyncio.sleep(0)
            self._wake_now(wids[i : i + WAKE_BATCH])

    def _wake_now(self, wids: list[int]) -> None:
        for wid in wids:
            wake = self._wakes.get(wid)
            if wake is not None and not wake.done():
                wake.set_result(None)


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
        self,
        hook: AIDPHook,
        run_key: str,
        poll_interval: float,
        deadline: float | None = None,
        created_at: float | None = None,
    ) -> None:
        self.hook, self.run_key, self.poll_interval, self.deadline = hook, run_key, poll_interval, deadline
        self.created_at = created_at
        self.sweeper: Sweeper | None = None
        self._decided = False

    async def observe(self) -> JobRun:
        if not self._decided:  # the first poll reads the connection (as a GET would) and joins
            if (await self.hook.a_get_config()).status_sweep == "on":
                self.sweeper = sweeper_for(self.hook.aidp_conn_id, self.hook.workspace_key)
                self.sweeper.add(id(self), self.run_key, self.poll_interval)
            self._decided = True
        if self.sweeper is not None:
            verdict = await self.sweeper.answer(id(self), self.deadline)
            if verdict is not Ask.GET:
                assert not isinstance(verdict, Ask)
                return verdict
        run = await self.hook.a_get_job_run(self.run_key, created_at=self.created_at)
        if self.sweeper is not None:
            self.sweeper.got(id(self), run)
        return run

    async def sleep(self, seconds: float) -> Any:
        if self.sweeper is None:
            return await asyncio.sleep(seconds)
        return await self.sweeper.sleep(id(self), seconds, self.deadline)

    def close(self) -> None:
        if self.sweeper is not None:
            self.sweeper.remove(id(self))
            self.sweeper = None


@contextlib.asynccontextmanager
async def watching(
    hook: AIDPHook,
    run_key: str,
    poll_interval: float,
    deadline: float | None = None,
    created_at: float | None = None,
) -> AsyncIterator[SweepWatch]:
    """A :class:`SweepWatch` that leaves its sweeper however the wait ends (done, cancelled, error)."""
    watch = SweepWatch(hook, run_key, poll_interval, deadline, created_at)
    try:
        yield watch
    finally:
        watch.close()
