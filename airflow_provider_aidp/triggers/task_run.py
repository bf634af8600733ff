"""AIDPTaskRunTrigger: wait in the triggerer for one AIDP task of a job run (a workflow task group's).

The tasks of an ``AIDPWorkflowTaskGroup`` are the AIDP tasks of ONE job run, so their triggers share
one read of that run: every trigger of the run on the triggerer's loop (same connection and
workspace) looks through one :class:`RunReader`, which reads the run with its task runs
(``GET /jobRuns/{key}?shouldIncludeTaskRunSummaries=true``, plus what the hook needs under other
readings of the service) at most once per look that needs a newer reading: a look is answered by any
reading that started after the trigger's previous one (or, for its first look, after it started).
Ten tasks of one run polling every 30 s cost about one GET per 30 s, not ten. (The triggerer-wide
status sweep, ``triggers/sweep.py``, lists *runs*; a listing carries no task states, so it cannot
answer for a task and these triggers do not join it.)

The trigger never cancels anything: the run belongs to the group, not to one of its tasks. Kwargs are
JSON primitives (connection *id*, never credentials), so it survives a triggerer restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_aidp.models.runs import JobRun, TaskRun, is_terminal
from airflow_provider_aidp.runs.wait import DEFAULT_MAX_POLL_ERRORS, ERROR, Wait
from airflow_provider_aidp.triggers.aidp import SETTLE_SECONDS

if TYPE_CHECKING:
    from airflow_provider_aidp.hooks.aidp import AIDPHook

_READERS: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str, str | None, str], RunReader]
] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Reading:
    """One read of a run: when it started (epoch s), the run and its task runs (latest attempt each)."""

    started: float
    run: JobRun
    task_runs: list[TaskRun]

    def task_run(self, task_key: str) -> TaskRun | None:
        return next((t for t in self.task_runs if (t.task_key or t.name) == task_key), None)


class RunReader:
    """The shared reads of one run on one event loop (see the module docstring)."""

    def __init__(self, run_key: str) -> None:
        self.run_key = run_key
        self.users = 0
        self._latest: Reading | None = None
        self._pending: asyncio.Future[Reading] | None = None
        self._pending_started = -float("inf")

    async def read(self, hook: AIDPHook, newer_than: float, created_at: float | None) -> Reading:
        """A reading that started after ``newer_than``: the latest, the one under way, or a new one."""
        if self._latest is not None and self._latest.started > newer_than:
            return self._latest
        if self._pending is None or self._pending_started <= newer_than:
            started = time.time()
            self._pending_started = started
            self._pending = asyncio.ensure_future(self._read(hook, started, created_at))
        # shield: one trigger being cancelled (its task killed) must not cancel the others' read
        return await asyncio.shield(self._pending)

    async def _read(self, hook: AIDPHook, started: float, created_at: float | None) -> Reading:
        run = await hook.a_get_job_run(self.run_key, include_task_runs=True, created_at=created_at)
        task_runs = await hook.a_get_task_runs(run, detail_failed=False)
        reading = Reading(started, run, task_runs)
        if self._latest is None or started > self._latest.started:
            self._latest = reading
        return reading


@contextlib.asynccontextmanager
async def reading(conn_id: str, workspace_key: str | None, run_key: str) -> AsyncIterator[RunReader]:
    """The running loop's reader of ``run_key`` (shared), released however the wait ends."""
    per_loop = _READERS.setdefault(asyncio.get_running_loop(), {})
    key = (conn_id, workspace_key, run_key)
    reader = per_loop.get(key)
    if reader is None:
        reader = per_loop[key] = RunReader(run_key)
    reader.users += 1
    try:
        yield reader
    finally:
        reader.users -= 1
        if reader.users == 0 and per_loop.get(key) is reader:
            del per_loop[key]


class AIDPTaskRunTrigger(BaseTrigger):
    """Follow one AIDP task of a job run until its task run is terminal, the deadline passes or polling
    fails; the event is ``runs/wait.py``'s, with ``run`` holding the *task run* and ``task_key`` added.

    :param run_key: the AIDP job run.
    :param task_key: the AIDP task (of that run's job) to follow: its latest task run.
    :param skip_task_run_keys: task runs that are not the one to follow (replaced by a repair this
        task's try just sent: until the run shows the new one, the old one may still be its latest).
    :param aidp_conn_id: Airflow connection id (the hook reads credentials in the triggerer).
    :param workspace_key: workspace override (else the connection's).
    :param poll_interval: upper bound of the (jittered, growing) polling interval, seconds.
    :param deadline: absolute epoch seconds after which the wait times out; ``None`` waits forever.
    :param max_poll_errors: consecutive transient polling errors tolerated before ``poll_error``.
    :param created_at: when this provider created the run or the repair (epoch s): a run that does not
        answer yet, or does not show the task's new task run yet, is asked again within the
        connection's ``consistency_grace`` of it.
    """

    def __init__(
        self,
        run_key: str,
        task_key: str,
        *,
        skip_task_run_keys: list[str] | None = None,
        aidp_conn_id: str = "aidp_default",
        workspace_key: str | None = None,
        poll_interval: float = 30.0,
        deadline: float | None = None,
        max_poll_errors: int = DEFAULT_MAX_POLL_ERRORS,
        created_at: float | None = None,
    ) -> None:
        super().__init__()
        self.run_key = run_key
        self.task_key = task_key
        self.skip_task_run_keys = list(skip_task_run_keys or [])
        self.aidp_conn_id = aidp_conn_id
        self.workspace_key = workspace_key
        self.poll_interval = float(poll_interval)
        self.deadline = None if deadline is None else float(deadline)
        self.max_poll_errors = int(max_poll_errors)
        self.created_at = None if created_at is None else float(created_at)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Every ``__init__`` parameter, read from its attribute (a new one cannot be left out)."""
        names = list(inspect.signature(AIDPTaskRunTrigger.__init__).parameters)[1:]
        return f"{type(self).__module__}.{type(self).__qualname__}", {n: getattr(self, n) for n in names}

    def _hook(self) -> AIDPHook:
        from airflow_provider_aidp.hooks.aidp import AIDPHook

        return AIDPHook(aidp_conn_id=self.aidp_conn_id, workspace_key=self.workspace_key)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = self._hook()
        async with (
            hook.session_lease(),
            reading(self.aidp_conn_id, self.workspace_key, self.run_key) as reader,
        ):
            event = await self.wait(hook, reader)
        yield TriggerEvent(event)

    async def wait(self, hook: AIDPHook, reader: RunReader) -> dict[str, Any]:
        """Look, decide, sleep (``runs/wait.py``'s :class:`Wait` decides) until the task run is terminal."""
        wait = Wait(
            self.run_key,
            poll_interval=self.poll_interval,
            deadline=self.deadline,
            now=time.time(),
            max_poll_errors=self.max_poll_errors,
            cancel_on_timeout=False,
            log=self.log,
            label=f"AIDP task {self.task_key} of job run {self.run_key}",
        )
        seen = time.time()  # only readings that started after the trigger did (then: after the last one)
        await asyncio.sleep(wait.settle(SETTLE_SECONDS, time.time()))
        while not wait.expired(time.time()):
            try:
                grace = (await hook.a_get_config()).consistency_grace
                found = await reader.read(hook, seen, self.created_at)
                seen = found.started
                event = self.look(wait, found, grace)
            except Exception as exc:
                event = wait.failed(exc, time.time())
            if event is not None:
                return {**event, "task_key": self.task_key}
            await asyncio.sleep(wait.delay)
        return {**wait.timed_out(time.time()), "task_key": self.task_key}

    def look(self, wait: Wait, found: Reading, grace: float) -> dict[str, Any] | None:
        """One reading through the wait's decisions: the task's task run (a skipped one counts as not
        there yet); a run that ended without one, ``grace`` seconds after ``created_at``, is an ``error``."""
        task_run = found.task_run(self.task_key)
        if task_run is not None and task_run.key in self.skip_task_run_keys:
            task_run = None
        if task_run is not None:
            return wait.seen(task_run, time.time())
        lagging = self.created_at is not None and time.time() - self.created_at < grace
        if is_terminal(found.run.status) and not lagging:
            message = (
                f"AIDP job run {self.run_key} ended {found.run.status} without a new run of task "
                f"{self.task_key}" + (" (its repair did not show)" if self.skip_task_run_keys else "")
            )
            return {"event": ERROR, "run_key": self.run_key, "status": found.run.status, "message": message}
        # Not there yet (no status: the wait logs nothing and polls on).
        return wait.seen(TaskRun(key="", task_key=self.task_key), time.time())
