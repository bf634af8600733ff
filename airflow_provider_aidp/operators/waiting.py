"""The waiting half shared by the run and repair operators (and the sensor): the hook, the deferred
wait, the finish. Sync waits drive the wait core (``runs/waiter.py``) through
``runs.polling.wait_for_run``; deferred waits hand the same core to ``AIDPJobRunTrigger``.
"""

from __future__ import annotations

import time
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.configuration import conf
from airflow.sdk import BaseOperator

from airflow_provider_aidp import compat
from airflow_provider_aidp.exceptions import AIDPConfigError, AIDPError
from airflow_provider_aidp.links.aidp import RUN_URL_XCOM_KEY, AIDPJobRunLink
from airflow_provider_aidp.runs import finish, polling, report
from airflow_provider_aidp.runs.report import DEFAULT_MAX_OUTPUT_CHARS
from airflow_provider_aidp.runs.waiter import DEFAULT_MAX_POLL_ERRORS
from airflow_provider_aidp.triggers.aidp import AIDPJobRunTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_aidp.hooks.aidp import AIDPHook

#: XCom keys pushed by the run and repair operators (documented in docs/operators.md).
RUN_KEY_XCOM_KEY = "run_key"
JOB_KEY_XCOM_KEY = "job_key"
RUN_SUMMARY_XCOM_KEY = "run_summary"


def _seconds(value: float | timedelta | None, field: str) -> float | None:
    if value is None:
        return None
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds <= 0:
        raise AIDPConfigError(
            f"{field} must be a positive number of seconds (or a timedelta); got {value!r}."
        )
    return seconds


class _AIDPRunTask(BaseOperator):
    """What every task that waits on a run shares (run/repair operators, sensor): the hook, the
    trigger and the finish, so their deferral and failure semantics cannot drift apart."""

    operator_extra_links = (AIDPJobRunLink(),)
    ui_color = "#c74634"

    def _init_run_task(
        self, aidp_conn_id: str, workspace_key: str | None, fetch_output: str, max_output_chars: int
    ) -> None:
        self.aidp_conn_id = aidp_conn_id
        self.workspace_key = workspace_key
        self.fetch_output = report.validate_fetch_output(fetch_output)
        if max_output_chars < 0:
            raise AIDPConfigError("max_output_chars must be >= 0 (0 = no limit).", field="max_output_chars")
        self.max_output_chars = max_output_chars
        self._lineage: dict[str, Any] = {}  # run key + summary for OpenLineage (no XCom read needed)

    @cached_property
    def hook(self) -> AIDPHook:
        from airflow_provider_aidp.hooks.aidp import AIDPHook

        return AIDPHook(aidp_conn_id=self.aidp_conn_id, workspace_key=self.workspace_key)

    def _defer_wait(
        self,
        run_key: str,
        poll_interval: float,
        deadline: float | None,
        max_poll_errors: int,
        *,
        cancel: bool,
    ) -> None:
        """Wait in the triggerer; ``cancel``: the run is ours to cancel on timeout or a user's kill."""
        trigger = AIDPJobRunTrigger(
            run_key,
            aidp_conn_id=self.aidp_conn_id,
            workspace_key=self.workspace_key,
            poll_interval=poll_interval,
            deadline=deadline,
            max_poll_errors=max_poll_errors,
            cancel_on_timeout=cancel,
            cancel_on_kill=cancel,
        )
        self.defer(trigger=trigger, method_name="execute_complete")

    def _finish(self, context: Context, event: dict[str, Any], run_url: str | None) -> dict[str, Any]:
        """The summary pushed to XCom (failed runs too) and returned, or the one failure raised."""

        def push(summary: dict[str, Any]) -> None:
            self._lineage.update(run_key=summary.get("run_key"), summary=summary)
            context["ti"].xcom_push(key=RUN_SUMMARY_XCOM_KEY, value=summary)

        return finish.finish(
            self.hook,
            event,
            run_url=run_url,
            fetch_output=self.fetch_output,
            max_output_chars=self.max_output_chars,
            log=self.log,
            on_summary=push,
        )


class _AIDPRunWaitOperator(_AIDPRunTask):
    """Sync polling or deferral, cancel on kill; subclasses start (or find) a run, call :meth:`_wait_for`."""

    def __init__(
        self,
        *,
        workspace_key: str | None = None,
        aidp_conn_id: str = "aidp_default",
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 30.0,
        timeout: float | timedelta | None = None,
        cancel_on_kill: bool = True,
        fetch_output: str = "on_failure",
        max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
        max_poll_errors: int = DEFAULT_MAX_POLL_ERRORS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._init_run_task(aidp_conn_id, workspace_key, fetch_output, max_output_chars)
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = _seconds(poll_interval, "poll_interval") or 30.0
        self.timeout = _seconds(timeout, "timeout")
        self.cancel_on_kill = cancel_on_kill
        if max_poll_errors < 0:
            raise AIDPConfigError("max_poll_errors must be >= 0.", field="max_poll_errors")
        self.max_poll_errors = max_poll_errors
        self._active_run_key: str | None = None

    def _follow(self, context: Context, run_key: str, job_key: str | None) -> str:
        """Publish the run (XComs ``run_key``/``run_url``/``job_key``, log) before any wait, then wait."""
        run_url = self.hook.get_run_url(run_key, job_key)
        self._lineage["run_key"] = run_key
        ti = context["ti"]
        ti.xcom_push(key=RUN_KEY_XCOM_KEY, value=run_key)
        ti.xcom_push(key=RUN_URL_XCOM_KEY, value=run_url)
        if job_key:
            ti.xcom_push(key=JOB_KEY_XCOM_KEY, value=job_key)
        self.log.info("AIDP job run %s: %s", run_key, run_url)
        if self.wait_for_completion:
            self._wait_for(context, run_key, run_url)
        return run_key

    # --- waiting ---------------------------------------------------------------------------

    def _wait_for(self, context: Context, run_key: str, run_url: str) -> dict[str, Any]:
        deadline = None if self.timeout is None else time.time() + self.timeout
        if self.deferrable:
            deadline = self._within_execution_timeout(context, deadline)
            if self.cancel_on_kill and not compat.HAS_TRIGGER_ON_KILL:
                self.log.info(compat.NO_TRIGGER_ON_KILL_NOTE)
            self._defer_wait(
                run_key, self.poll_interval, deadline, self.max_poll_errors, cancel=self.cancel_on_kill
            )
        # Left set if an exception escapes (e.g. AirflowTaskTimeout from execution_timeout): the task
        # runner calls on_kill() *after* execute unwound, and on_kill must still know the run.
        self._active_run_key = run_key
        event = polling.wait_for_run(
            self.hook,
            run_key,
            poll_interval=self.poll_interval,
            deadline=deadline,
            max_poll_errors=self.max_poll_errors,
            cancel_on_timeout=self.cancel_on_kill,
            log=self.log,
        )
        self._active_run_key = None
        return self._finish(context, event, run_url)

    def _within_execution_timeout(self, context: Context, deadline: float | None) -> float | None:
        """Airflow times a deferred task out at start_date + execution_timeout WITHOUT calling any
        on_kill; end the trigger's wait (and cancel the run) no later than that, or it is orphaned."""
        start = getattr(context["ti"], "start_date", None)
        if self.execution_timeout is None or start is None:
            return deadline
        limit = start.timestamp() + self.execution_timeout.total_seconds()
        return limit if deadline is None else min(deadline, limit)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> str:
        """Resume after the trigger fired: same result and diagnostics as the sync path."""
        run_key = str(event.get("run_key"))
        self._lineage["run_key"] = run_key
        run_url = context["ti"].xcom_pull(task_ids=self.task_id, key=RUN_URL_XCOM_KEY)
        self._finish(context, event, run_url)
        return run_key

    # --- OpenLineage (called by the OpenLineage provider's listener; extra "openlineage") -------

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Link the task's lineage run to the AIDP job run (see ``airflow_provider_aidp.openlineage``)."""
        from airflow_provider_aidp.openlineage import operator_lineage

        return operator_lineage(self, task_instance, failed=False)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        from airflow_provider_aidp.openlineage import operator_lineage

        return operator_lineage(self, task_instance, failed=True)

    def on_kill(self) -> None:
        """The sync path was killed while waiting: cancel the run (if cancel_on_kill)."""
        run_key = self._active_run_key
        if not run_key or not self.cancel_on_kill:
            return
        try:
            self.hook.cancel_job_run(run_key)
            self.log.info("Cancelled AIDP job run %s", run_key)
        except AIDPError as exc:
            self.log.warning("Could not cancel AIDP job run %s: %s", run_key, exc)
