"""AIDPJobRunSensor: wait for an AIDP job run someone else started (e.g. a run key from XCom).

Same failure semantics and diagnostics as the run operator (``runs.report.finish``). The sensor
does not own the run, so it never cancels it: not on timeout, not on kill.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.configuration import conf
from airflow.sdk.bases.sensor import BaseSensorOperator

from airflow_provider_aidp.exceptions import AIDPConfigError, AIDPError, is_transient
from airflow_provider_aidp.links.aidp import RUN_URL_XCOM_KEY
from airflow_provider_aidp.operators.aidp import _AIDPRunTask
from airflow_provider_aidp.runs.report import DEFAULT_MAX_OUTPUT_CHARS
from airflow_provider_aidp.runs.wait import DEFAULT_MAX_POLL_ERRORS, Wait

if TYPE_CHECKING:
    from airflow.sdk import Context


class AIDPJobRunSensor(_AIDPRunTask, BaseSensorOperator):
    """Succeed when the run is SUCCESS; fail with the run's diagnostics on any other terminal status.

    :param run_key: the job run to watch (templated).
    :param workspace_key: workspace override; default is the connection's.
    :param aidp_conn_id: Airflow connection of type ``aidp``.
    :param deferrable: wait in the triggerer; default ``[operators] default_deferrable``.
    :param fetch_output: ``on_failure`` (default), ``always`` or ``never``.
    :param max_output_chars: per-output truncation in the log (0: no limit).
    :param max_poll_errors: consecutive transient errors tolerated in deferrable mode.

    ``mode="poke"`` / ``"reschedule"`` work as for any sensor; a transient API error during a
    poke is logged and the poke returns False (the sensor ``timeout`` bounds the wait).
    """

    template_fields: Sequence[str] = ("run_key", "workspace_key")

    def __init__(
        self,
        *,
        run_key: str,
        workspace_key: str | None = None,
        aidp_conn_id: str = "aidp_default",
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        fetch_output: str = "on_failure",
        max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
        max_poll_errors: int = DEFAULT_MAX_POLL_ERRORS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not run_key:
            raise AIDPConfigError(f"{self.task_id}: run_key is required.", field="run_key")
        self.run_key = run_key
        self._init_run_task(aidp_conn_id, workspace_key, fetch_output, max_output_chars)
        self.deferrable = deferrable
        self.max_poll_errors = max_poll_errors
        self._run_url: str | None = None

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        self._push_url(context, self._job_key_before_deferring())
        timeout = self.timeout.total_seconds() if isinstance(self.timeout, timedelta) else self.timeout
        deadline = None if not timeout else time.time() + float(timeout)
        self._defer_wait(
            self.run_key,
            float(self.poke_interval),
            deadline,
            self.max_poll_errors,
            cancel=False,
            created_at=self._started_at,
        )

    def poke(self, context: Context) -> bool:
        try:
            run = self.hook.get_job_run(self.run_key, created_at=self._started_at)
        except AIDPError as exc:
            if not is_transient(exc):
                raise
            self.log.warning("Polling AIDP job run %s failed (%s); will poke again.", self.run_key, exc)
            return False
        self._push_url(context, run.job_key)
        # One look through the shared wait decisions: they log the status and decide "terminal".
        wait = Wait(
            self.run_key, poll_interval=float(self.poke_interval), deadline=None, now=0.0, log=self.log
        )
        event = wait.seen(run, now=0.0)
        if event is None:
            return False
        self._finish_event(context, event)
        return True

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        return self._finish_event(context, event)

    def _job_key_before_deferring(self) -> str | None:
        """The run's job key for the console link (one GET); the wait itself starts in the triggerer."""
        try:
            return self.hook.get_job_run(self.run_key, created_at=self._started_at).job_key
        except AIDPError as exc:  # the trigger reports what is wrong with the run; the link waits
            self.log.warning("Could not read AIDP job run %s before deferring: %s", self.run_key, exc)
            return None

    def _push_url(self, context: Context, job_key: str | None) -> str:
        """Publish the console link (again only when it changed, e.g. once the job key is known)."""
        url = self.hook.get_run_url(self.run_key, job_key)
        if url != self._run_url:
            context["ti"].xcom_push(key=RUN_URL_XCOM_KEY, value=url)
            self.log.info("AIDP job run %s: %s", self.run_key, url)
            self._run_url = url
        return url

    def _finish_event(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        job_key = (event.get("run") or {}).get("jobKey")
        if job_key:
            run_url = self._push_url(context, job_key)
        else:  # no run in a timeout / polling-error event: keep the link published before deferring
            run_url = context["ti"].xcom_pull(task_ids=self.task_id, key=RUN_URL_XCOM_KEY)
        return self._finish(context, event, run_url or self.hook.get_run_url(self.run_key))
