"""The bookkeeping of a triggerer-wide status sweep: which runs are watched, what a listing means.

One triggerer may follow thousands of AIDP runs on one connection. Instead of one
``GET jobRuns/{key}`` per run per poll, a sweeper (``triggers/sweep.py``) lists the active runs of
the watched runs' jobs once per cycle; this module decides, without any I/O, what that listing
says about each watched run and what each trigger's next observation should be.

The rules that keep it exact:

* A listing never ends a wait. A run that is missing from the active listing, or listed with a
  terminal-looking status, is marked "own GET owed"; the trigger then reads the run itself and
  the wait core builds every terminal event from that GET.
* The server's filters are not trusted: runs are matched locally by key, so a listing that ignores
  ``jobKey`` or ``status`` (or reads them differently) only costs pages, never a wrong answer.
* Nothing stays on listings alone for long: an owed GET is made at most once per the run's own
  poll interval (a listing that keeps showing a finished run costs what per-run polling costs),
  and every run gets its own GET at least every :data:`VERIFY_POLLS` poll intervals.
* Only listings that started after a trigger joined (and, for a listing by job, after its job
  key was known) speak for its run, and a failed cycle speaks for nobody (the triggers fall back
  to per-run polling until a cycle succeeds).
* A trigger that does not know its run's job key yet (every trigger when it starts: the trigger's
  kwargs have no job key) is covered by a listing of the workspace's active runs, without
  ``jobKey``; the listing tells the job key, later cycles list by job. A run such a listing does
  not show gets its own GET, which also tells the job key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from airflow_provider_aidp.models.runs import ACTIVE_STATUSES, JobRun, JobRunSummary, is_terminal

#: The API's ``status`` filter accepts these active statuses (CANCELING and PAUSED_MAINTENANCE are
#: not in its enum: such runs are missing from the listing and get their own GET at run cadence).
LISTED_STATUSES: tuple[str, ...] = tuple(
    s for s in ("PENDING", "QUEUED", "RUNNING", "BLOCKED") if s in ACTIVE_STATUSES
)
#: A run gets its own GET at least this often (in its poll intervals), however the listing reads.
VERIFY_POLLS = 60
#: Fewer watched runs than this on one connection: no listing, plain per-run polling (as before).
MIN_WATCHES = 2
#: A cycle runs every ``poll interval / CYCLES_PER_POLL`` (the smallest interval watched), so a run's
#: end is seen within half an interval; never more often than every ``MIN_CYCLE_SECONDS``.
CYCLES_PER_POLL = 2
MIN_CYCLE_SECONDS = 0.5
#: Job keys per listing request (repeated ``jobKey`` parameters keep the URL well under 8 KB).
JOB_KEYS_PER_LISTING = 50


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
    listed: JobRunSummary | None = None  # the latest listing entry showing it active
    listed_at: float = -math.inf  # when that listing started
    owed_get: bool = False  # a listing did not show it active: its own GET must confirm
    covered: bool = False  # a cycle has answered for it (listed it, or failed) since it joined
    woken: bool = False  # the trigger was woken since its last observation


class Board:
    """Every watched run of one connection + workspace on one event loop (no I/O, no clock)."""

    def __init__(self) -> None:
        #: By watch id (one per trigger: two triggers may wait for the same run).
        self.watches: dict[int, Watch] = {}

    def add(self, wid: int, run_key: str, poll_interval: float, now: float) -> Watch:
        watch = self.watches[wid] = Watch(run_key, max(0.0, float(poll_interval)), now)
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
        intervals = [w.poll_interval for w in self.watches.values()] or [MIN_CYCLE_SECONDS]
        return max(MIN_CYCLE_SECONDS, min(intervals) / CYCLES_PER_POLL)

    # --- what the trigger saw ---------------------------------------------------------------

    def got(self, wid: int, run: JobRun, now: float) -> bool:
        """The trigger read its run itself. True when the job key is new to the board (list soon)."""
        watch = self.watches[wid]
        watch.status, watch.got_at, watch.owed_get, watch.woken = run.status, now, False, False
        if watch.job_key is None and run.job_key:
            watch.job_key, watch.job_known_at = run.job_key, now
            return sum(1 for w in self.watches.values() if w.job_key == run.job_key) == 1
        return False

    def ask(self, wid: int, now: float, *, waited: bool = False) -> Ask | JobRun:
        """The trigger's next observation: a listing's (non-terminal) answer, or GET / WAIT."""
        watch = self.watches[wid]
        watch.woken = False
        if not self.sweeping or watch.owed_get:
            return Ask.GET
        if now - max(watch.got_at, watch.added_at) >= VERIFY_POLLS * watch.poll_interval:
            return Ask.GET
        if watch.listed is not None and now - watch.listed_at <= watch.poll_interval:
            watch.status = watch.listed.status
            # Built from the validated summary's parts (cheap): a thousand triggers answered by
            # one cycle must not stall the triggerer's loop.
            return JobRun(key=watch.run_key, job_key=watch.job_key, state=watch.listed.state)
        # No fresh answer: wait for a cycle, unless one already answered since the trigger joined
        # (its answer aged out, or it failed): then the trigger reads its run itself.
        return Ask.GET if waited and watch.covered else Ask.WAIT

    # --- what a cycle's listing means -------------------------------------------------------

    def listed(
        self, listing: list[JobRunSummary], job_keys: set[str] | None, started: float, now: float
    ) -> list[int]:
        """Apply one cycle's listing (every page) of ``job_keys`` (``None``: the whole workspace);
        return the watch ids to wake.

        A watched run the listing covers is *active* when the listing holds its key with a
        non-terminal status (unknown statuses count as not finished, as everywhere); otherwise
        its own GET is owed. Wakes: a changed active status (answered from the listing, no
        request) and an owed GET, the latter at most once per the run's own poll interval.
        """
        by_key = {s.key: s for s in listing}
        wake = []
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
            if news and not watch.woken:
                watch.woken = True
                wake.append(wid)
        return wake

    def failed(self) -> None:
        """A cycle's listing failed: until a listing succeeds, every trigger reads its run itself
        (per-run polling, with the wait core's error budget)."""
        for watch in self.watches.values():
            watch.listed, watch.covered = None, True


def chunks(keys: list[str], size: int = JOB_KEYS_PER_LISTING) -> list[list[str]]:
    return [keys[i : i + size] for i in range(0, len(keys), size)]
