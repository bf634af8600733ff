"""AIDPJobRunTrigger: wait for one AIDP job run in the triggerer, asynchronously.

The deferrable path, end to end: ``AIDPRunJobOperator.execute`` starts the run and defers with
this trigger; :meth:`AIDPJobRunTrigger.wait` loops over the shared decisions of
``runs/wait.py``, looking at the run through the status sweep (``triggers/sweep.py``: one listing
answers for many runs) or its own ``GET``; the event it yields resumes the operator in
``execute_complete``, which finishes through ``runs/report.py``.

Kwargs are JSON primitives only (connection *id*, never credentials), so a trigger survives a
triggerer restart: the new process deserializes it and resumes polling the same run. Cancelling
the run happens only on a user's kill (``on_kill``, Airflow >= 3.3) or when the wait deadline
passes -- never in ``cleanup()`` and never on ``asyncio.CancelledError``, both of which also fire
on a triggerer restart.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_aidp.runs.wait import DEFAULT_MAX_POLL_ERRORS, Wait, describe

if TYPE_CHECKING:
    from airflow_provider_aidp.hooks.aidp import AIDPHook

#: Seconds the trigger waits before its first poll. An event fired within about a second of the
#: task deferring can make Airflow 3.3's scheduler mark the task "killed externally"
#: (apache/airflow#67287); a run that has just been started is not finished that soon anyway.
SETTLE_SECONDS = 2.0


class AIDPJobRunTrigger(BaseTrigger):
    """Follow one run until it is terminal, the deadline passes or polling fails.

    When other triggers of the connection share the triggerer's loop, the triggerer-wide status
    sweep (``triggers/sweep.py``, connection extra ``status_sweep``) answers its polls from one
    listing of active runs; its own ``GET /jobRuns/{run_key}`` answers every terminal poll (and
    every poll when it is alone on its connection or the sweep is off).

    :param run_key: the AIDP job run to watch.
    :param aidp_conn_id: Airflow connection id (the hook reads credentials in the triggerer).
    :param workspace_key: workspace override (else the connection's).
    :param poll_interval: upper bound of the (jittered, growing) polling interval, seconds.
    :param deadline: absolute epoch seconds after which the wait times out; ``None`` waits forever.
    :param max_poll_errors: consecutive transient polling errors tolerated before ``poll_error``.
    :param cancel_on_timeout: cancel the run when the deadline passes.
    :param cancel_on_kill: cancel the run when a user kills the deferred task (Airflow >= 3.3).
    :param created_at: when the operator started the run (epoch seconds): a run that does not answer
        yet so soon after (the service is eventually consistent) is asked again, not reported gone.
    """

    def __init__(
        self,
        run_key: str,
        *,
        aidp_conn_id: str = "aidp_default",
        workspace_key: str | None = None,
        poll_interval: float = 30.0,
        deadline: float | None = None,
        max_poll_errors: int = DEFAULT_MAX_POLL_ERRORS,
        cancel_on_timeout: bool = True,
        cancel_on_kill: bool = True,
        created_at: float | None = None,
    ) -> None:
        super().__init__()
        self.run_key = run_key
        self.aidp_conn_id = aidp_conn_id
        self.workspace_key = workspace_key
        self.poll_interval = float(poll_interval)
        self.deadline = None if deadline is None else float(deadline)
        self.max_poll_errors = int(max_poll_errors)
        self.cancel_on_timeout = bool(cancel_on_timeout)
        self.cancel_on_kill = bool(cancel_on_kill)
        self.created_at = None if created_at is None else float(created_at)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Every ``__init__`` parameter, read from its attribute, so a restarted triggerer resumes as is
        (a new parameter cannot be left out)."""
        names = list(inspect.signature(AIDPJobRunTrigger.__init__).parameters)[1:]
        return f"{type(self).__module__}.{type(self).__qualname__}", {n: getattr(self, n) for n in names}

    def _hook(self) -> AIDPHook:
        from airflow_provider_aidp.hooks.aidp import AIDPHook

        return AIDPHook(aidp_conn_id=self.aidp_conn_id, workspace_key=self.workspace_key)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = self._hook()
        async with hook.session_lease():
            event = await self.wait(hook)
        yield TriggerEvent(event)

    async def wait(self, hook: AIDPHook) -> dict[str, Any]:
        """Look, decide, sleep until the run is terminal, the deadline passes or polling fails: the
        async twin of ``runs.wait.wait_for_run`` (the same :class:`Wait` decides). Each look goes
        through the status sweep (``triggers/sweep.py``), which answers from a listing shared by
        the triggerer's waits or reads the run itself."""
        from airflow_provider_aidp.triggers.sweep import watching

        wait = Wait(
            self.run_key,
            poll_interval=self.poll_interval,
            deadline=self.deadline,
            now=time.time(),
            max_poll_errors=self.max_poll_errors,
            cancel_on_timeout=self.cancel_on_timeout,
            log=self.log,
        )
        await asyncio.sleep(wait.settle(SETTLE_SECONDS, time.time()))
        async with watching(hook, self.run_key, self.poll_interval, self.deadline, self.created_at) as watch:
            while not wait.expired(time.time()):
                try:
                    event = wait.seen(await watch.observe(), time.time())
                except Exception as exc:
                    event = wait.failed(exc, time.time())
                if event is not None:
                    return event
                await watch.sleep(wait.delay)
        error = None
        if wait.cancel_on_timeout:
            try:
                await hook.a_cancel_job_run(self.run_key, created_at=self.created_at)
            except Exception as exc:
                error = exc
        return wait.timed_out(time.time(), error)

    async def on_kill(self) -> None:
        """A user marked the deferred task failed/success or cleared it: cancel the run (if configured).

        Called by the Airflow >= 3.3 triggerer only for user actions, never on restart or redistribution.
        """
        if not self.cancel_on_kill:
            self.log.info("Task killed; leaving AIDP job run %s running (cancel_on_kill=False)", self.run_key)
            return
        hook = self._hook()
        try:
            async with hook.session_lease():
                await hook.a_cancel_job_run(self.run_key, created_at=self.created_at)
            self.log.info("Task killed by a user; cancelled AIDP job run %s", self.run_key)
        except Exception as exc:  # the triggerer would only log it anyway
            self.log.warning("Could not cancel AIDP job run %s: %s", self.run_key, describe(exc))
