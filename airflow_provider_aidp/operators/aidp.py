"""Operators that run, cancel and repair AIDP Workflow job runs, and wait for them.

The deferrable path, end to end: :meth:`AIDPRunJobOperator.execute` starts (or finds) the run
through the hook, publishes it (XCom, log, extra link) and defers with ``AIDPJobRunTrigger``
(``triggers/aidp.py``); the trigger's event comes back to :meth:`_AIDPRunWaitOperator.execute_complete`,
which finishes through ``runs/report.py``. Waiting in the worker instead is the same decisions in
``runs/wait.py``'s loop.

Exactly once: the run operator stores the run key in ``task_state_store`` (Airflow >= 3.3) before
it waits or defers, and on every Airflow version sends a deterministic ``opc-retry-token`` derived
from the task instance, so a retry reattaches to the run a previous try started.

Why not Airflow 3.3's ``ResumableJobMixin``: it stores a bare external id, resubmits a failed job
from scratch and covers only the sync path. We need more: the stored key carries the *clear
generation* (a cleared task starts a new run), a failed run may be *repaired* in place
(``repair_on_retry``), and a worker that dies between the POST and the store (the window the mixin
leaves open) is closed by the retry token, whose answer starts a chain of resubmissions/repairs we
follow. Nothing here imports ``oci`` or ``aiohttp``, and nothing here reads an HTTP status.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.configuration import conf
from airflow.sdk import BaseOperator

from airflow_provider_aidp import compat
from airflow_provider_aidp.exceptions import AIDPConfigError, AIDPError, AIDPRetryTokenConflictError
from airflow_provider_aidp.links.aidp import RUN_URL_XCOM_KEY, AIDPJobRunLink
from airflow_provider_aidp.models.runs import (
    SUCCESS,
    TASK_FAILED_STATUSES,
    is_active,
    is_terminal,
    string_parameters,
)
from airflow_provider_aidp.operators.job_definition import AIDPCreateJobOperator, AIDPDeleteJobOperator
from airflow_provider_aidp.runs import report
from airflow_provider_aidp.runs.identity import TaskIdentity
from airflow_provider_aidp.runs.report import DEFAULT_MAX_OUTPUT_CHARS
from airflow_provider_aidp.runs.wait import DEFAULT_MAX_POLL_ERRORS, TERMINAL, wait_for_run
from airflow_provider_aidp.triggers.aidp import AIDPJobRunTrigger

# The job-definition operators live in their own module; re-exported so DAGs have one import path.
__all__ = [
    "JOB_KEY_XCOM_KEY",
    "RUN_KEY_XCOM_KEY",
    "RUN_SUMMARY_XCOM_KEY",
    "AIDPCancelJobRunOperator",
    "AIDPCreateJobOperator",
    "AIDPDeleteJobOperator",
    "AIDPRepairJobRunOperator",
    "AIDPRunJobOperator",
]

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_aidp.hooks.aidp import AIDPHook
    from airflow_provider_aidp.models.runs import JobRun

#: XCom keys pushed by the run and repair operators (documented in docs/operators.md).
RUN_KEY_XCOM_KEY = "run_key"
JOB_KEY_XCOM_KEY = "job_key"
RUN_SUMMARY_XCOM_KEY = "run_summary"
#: task_state_store key holding {"run_key", "job_key", "generation", "created_at", "try"} across retries.
STATE_STORE_KEY = "aidp_job_run"


def _seconds(value: float | timedelta | None, field: str) -> float | None:
    if value is None:
        return None
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds <= 0:
        raise AIDPConfigError(
            f"{field} must be a positive number of seconds (or a timedelta); got {value!r}.", field=field
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

    @cached_property
    def _started_at(self) -> float:
        """When this task first asked about its run: a key handed down from upstream names a run or
        job created no later, so the hook gives it the same time to become visible as its own."""
        return time.time()

    def _defer_wait(
        self,
        run_key: str,
        poll_interval: float,
        deadline: float | None,
        max_poll_errors: int,
        *,
        cancel: bool,
        created_at: float | None,
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
            created_at=created_at,
        )
        self.defer(trigger=trigger, method_name="execute_complete")

    def _finish(self, context: Context, event: dict[str, Any], run_url: str | None) -> dict[str, Any]:
        """The summary pushed to XCom (failed runs too) and returned, or the one failure raised."""

        def push(summary: dict[str, Any]) -> None:
            self._lineage.update(run_key=summary.get("run_key"), summary=summary)
            context["ti"].xcom_push(key=RUN_SUMMARY_XCOM_KEY, value=summary)

        return report.finish(
            self.hook,
            event,
            run_url=run_url,
            fetch_output=self.fetch_output,
            max_output_chars=self.max_output_chars,
            log=self.log,
            on_summary=push,
        )


class _AIDPRunWaitOperator(_AIDPRunTask):
    """Sync polling or deferral, cancel on kill; subclasses start (or find) a run, call :meth:`_follow`."""

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

    def _follow(self, context: Context, run_key: str, job_key: str | None, created_at: float | None) -> str:
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
            self._wait_for(context, run_key, run_url, created_at)
        return run_key

    def _wait_for(
        self, context: Context, run_key: str, run_url: str, created_at: float | None
    ) -> dict[str, Any]:
        deadline = None if self.timeout is None else time.time() + self.timeout
        if self.deferrable:
            deadline = self._within_execution_timeout(context, deadline)
            if self.cancel_on_kill and not compat.HAS_TRIGGER_ON_KILL:
                self.log.info(compat.NO_TRIGGER_ON_KILL_NOTE)
            self._defer_wait(
                run_key,
                self.poll_interval,
                deadline,
                self.max_poll_errors,
                cancel=self.cancel_on_kill,
                created_at=created_at,
            )
        # Left set if an exception escapes (e.g. AirflowTaskTimeout from execution_timeout): the task
        # runner calls on_kill() *after* execute unwound, and on_kill must still know the run.
        self._active_run_key = run_key
        event = wait_for_run(
            self.hook,
            run_key,
            created_at=created_at,
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


class AIDPRunJobOperator(_AIDPRunWaitOperator):
    """Start a run of an AIDP Workflow job and (optionally) wait for it.

    :param job_key: the job to run. Exactly one of ``job_key`` and ``job_name`` is required.
    :param job_name: look the job up by name (and ``job_path``) in the workspace instead.
    :param job_path: the job's folder, to disambiguate ``job_name``.
    :param parameters: job-run parameters (highest precedence: job run > task > job).
    :param workspace_key: workspace override; default is the connection's ``workspace_key``.
    :param aidp_conn_id: Airflow connection of type ``aidp``.
    :param wait_for_completion: wait for a terminal status (else return right after starting).
    :param deferrable: wait in the triggerer; default ``[operators] default_deferrable``.
    :param poll_interval: upper bound of the polling interval, seconds.
    :param timeout: wait limit (seconds or timedelta); on expiry the run is cancelled
        (if ``cancel_on_kill``) and the task fails.
    :param cancel_on_kill: cancel the run when the task is killed or the wait times out.
    :param repair_on_retry: on a retry after a failed run, repair that run's failed tasks instead
        of starting a new run.
    :param fetch_output: write task-run outputs to the log ``on_failure`` (failed tasks),
        ``always`` (every task) or ``never``.
    :param max_output_chars: truncate each output in the log to this many characters (0: no limit).
    :param max_poll_errors: consecutive transient polling errors tolerated before failing with a
        polling error (never reported as a job failure).

    Returns the run key. XCom: ``run_key``, ``run_url``, ``job_key`` (before waiting) and
    ``run_summary`` (when the run is terminal).
    """

    template_fields: Sequence[str] = ("job_key", "job_name", "job_path", "parameters", "workspace_key")
    template_fields_renderers = {"parameters": "json"}

    def __init__(
        self,
        *,
        job_key: str | None = None,
        job_name: str | None = None,
        job_path: str | None = None,
        parameters: dict[str, Any] | None = None,
        repair_on_retry: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if bool(job_key) == bool(job_name):
            raise AIDPConfigError(
                f"{self.task_id}: give exactly one of job_key or job_name (got "
                f"{'both' if job_key else 'neither'}).",
                field="job_key",
            )
        if job_path and not job_name:
            raise AIDPConfigError(f"{self.task_id}: job_path is only used with job_name.", field="job_path")
        self.job_key = job_key
        self.job_name = job_name
        self.job_path = job_path
        self.parameters = parameters
        self.repair_on_retry = repair_on_retry

    def execute(self, context: Context) -> str:
        parameters = string_parameters(self.parameters)
        job_key = self._resolve_job_key()
        identity = TaskIdentity.from_context(context)
        store = compat.task_state_store(context, self.log)
        run, created_at = self._start_or_reattach(context, job_key, parameters, identity, store)
        if store is not None:
            stored = {"run_key": run.key, "job_key": job_key, "generation": identity.generation}
            store.set(STATE_STORE_KEY, {**stored, "created_at": created_at, "try": identity.attempt})
        return self._follow(context, run.key, job_key, created_at)

    def _resolve_job_key(self) -> str:
        if self.job_key:
            return self.job_key
        assert self.job_name is not None
        job = self.hook.find_job(self.job_name, self.job_path, expected=True)
        if job is None:
            where = f" in folder {self.job_path!r}" if self.job_path else ""
            raise AIDPConfigError(
                f"No AIDP job named {self.job_name!r}{where} in workspace {self.hook.get_workspace()!r} "
                "(listed again for the connection's consistency_grace). Check job_name/job_path, or pass "
                "job_key.",
                field="job_name",
            )
        self.log.info("Job %r is %s", self.job_name, job.key)
        return job.key

    # --- exactly once ----------------------------------------------------------------------

    def _start_or_reattach(
        self,
        context: Context,
        job_key: str,
        parameters: dict[str, str] | None,
        identity: TaskIdentity,
        store: Any,
    ) -> tuple[JobRun, float]:
        """This try's run and when it was created: the stored one (or what follows it), else a new one
        or, where an earlier try of this generation may have posted, what the retry token answers.
        Logs once what happened: started, reattached, or replaced (the task was cleared)."""
        stored = store.get(STATE_STORE_KEY) if store is not None else None
        stored = stored if isinstance(stored, dict) and stored.get("run_key") else None
        if stored is not None and stored.get("generation") == identity.generation:
            created_at = float(stored.get("created_at") or self._started_at)
            run = self.hook.get_job_run(str(stored["run_key"]), created_at=created_at)
            if is_active(run.status) or run.status == SUCCESS:
                by = f"try {stored['try']}" if stored.get("try") else "an earlier try"
                self.log.info("Reattached to AIDP job run %s (%s), which %s started", run.key, run.status, by)
                return run, created_at
            return self._after_failed(run, job_key, parameters, identity)
        created_at = time.time()
        run = self.hook.create_job_run(
            job_key, parameters, retry_token=identity.retry_token(), created_at=self._started_at
        )
        if stored is not None:
            self.log.info(
                "Task was cleared since AIDP job run %s was started; started a new run %s of job %s",
                stored["run_key"],
                run.key,
                job_key,
            )
        elif identity.attempt == 1:
            self.log.info("Started AIDP job run %s of job %s", run.key, job_key)
        else:
            return self._token_answer(run, job_key, parameters, identity, created_at)
        return run, created_at

    def _token_answer(
        self,
        run: JobRun,
        job_key: str,
        parameters: dict[str, str] | None,
        identity: TaskIdentity,
        created_at: float,
    ) -> tuple[JobRun, float]:
        """A retry with no stored run key (Airflow < 3.3, or the earlier try died before storing it):
        the retry token answers with the run an earlier try of this generation started, if one got
        that far. Follow its chain of resubmissions / repairs to the newest link."""
        self.log.info(
            "AIDP answered this task instance's retry token with job run %s (%s): the run an earlier try "
            "started, or a new one if no earlier try got that far",
            run.key,
            run.status,
        )
        for _ in range(identity.attempt):
            current = self.hook.get_job_run(run.key, created_at=created_at)  # the answer may be a replay
            if is_active(current.status) or current.status == SUCCESS:
                return current, created_at
            run, created_at = self._after_failed(current, job_key, parameters, identity)
            if run.key == current.key:  # repaired in place
                return run, created_at
        return run, created_at

    def _after_failed(
        self, run: JobRun, job_key: str, parameters: dict[str, str] | None, identity: TaskIdentity
    ) -> tuple[JobRun, float]:
        """The previous try's run failed: repair it (repair_on_retry) or deliberately start a new one."""
        if self.repair_on_retry:
            tasks = [
                t.task_key
                for t in self.hook.get_task_runs(run, detail_failed=False)
                if t.status in TASK_FAILED_STATUSES and t.task_key
            ]
            if tasks:
                self.log.info("repair_on_retry: repairing tasks %s of AIDP job run %s", tasks, run.key)
                token = identity.retry_token("repair", f"{run.key}#{run.repair_generation}")
                body = repair_tasks_body(tasks, include_downstream=True)
                return self.hook.repair_job_run(run.key, body, retry_token=token), time.time()
            self.log.info(
                "repair_on_retry: run %s has no failed tasks to repair; starting a new run", run.key
            )
        token = identity.retry_token("run", previous_run_key=run.key)
        created_at = time.time()
        try:
            new = self.hook.create_job_run(
                job_key, parameters, retry_token=token, created_at=self._started_at
            )
        except AIDPRetryTokenConflictError as exc:
            raise AIDPConfigError(
                f"AIDP refused the resubmission token for run {run.key}: {exc}. The job-run parameters "
                "differ between tries; make them deterministic for the task instance.",
                field="parameters",
            ) from exc
        self.log.info("Previous AIDP job run %s ended %s; started a new run %s", run.key, run.status, new.key)
        return new, created_at


def repair_tasks_body(
    task_keys: list[str], *, include_downstream: bool, include_upstream: bool = False
) -> list[dict[str, Any]]:
    flags = {"shouldIncludeDownstream": include_downstream, "shouldIncludeUpstream": include_upstream}
    return [{"taskKey": key, **flags} for key in task_keys]


class AIDPCancelJobRunOperator(BaseOperator):
    """Cancel one job run (``run_key``) or every active run of a job (``job_key``).

    :param wait_for_termination: wait until the run(s) reach a terminal status.
    :param poll_interval: seconds between checks while waiting.
    :param timeout: how long to wait for termination (seconds or timedelta).
    """

    template_fields: Sequence[str] = ("run_key", "job_key", "workspace_key")

    def __init__(
        self,
        *,
        run_key: str | None = None,
        job_key: str | None = None,
        workspace_key: str | None = None,
        aidp_conn_id: str = "aidp_default",
        wait_for_termination: bool = False,
        poll_interval: float = 10.0,
        timeout: float | timedelta | None = 600.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if bool(run_key) == bool(job_key):
            raise AIDPConfigError(
                f"{self.task_id}: give exactly one of run_key (one run) or job_key (all runs of a job).",
                field="run_key",
            )
        self.run_key = run_key
        self.job_key = job_key
        self.workspace_key = workspace_key
        self.aidp_conn_id = aidp_conn_id
        self.wait_for_termination = wait_for_termination
        self.poll_interval = _seconds(poll_interval, "poll_interval") or 10.0
        self.timeout = _seconds(timeout, "timeout")

    @cached_property
    def hook(self) -> AIDPHook:
        from airflow_provider_aidp.hooks.aidp import AIDPHook

        return AIDPHook(aidp_conn_id=self.aidp_conn_id, workspace_key=self.workspace_key)

    def execute(self, context: Context) -> list[str]:
        started_at = time.time()  # a key from upstream names a run created no later
        if self.run_key:
            run = self.hook.cancel_job_run(self.run_key, created_at=started_at)
            self.log.info("Requested cancellation of AIDP job run %s (now %s)", run.key, run.status)
            run_keys = [self.run_key]
        else:
            assert self.job_key is not None
            run_keys = self.hook.cancel_job_runs(self.job_key)
            self.log.info("Requested cancellation of all runs of AIDP job %s: %s", self.job_key, run_keys)
        if self.wait_for_termination:
            for run_key in run_keys:
                self._wait_terminal(run_key, started_at)
        return run_keys

    def _wait_terminal(self, run_key: str, created_at: float) -> None:
        deadline = None if self.timeout is None else time.time() + self.timeout
        event = wait_for_run(
            self.hook,
            run_key,
            created_at=created_at,
            poll_interval=self.poll_interval,
            deadline=deadline,
            cancel_on_timeout=False,
            log=self.log,
        )
        if event["event"] != TERMINAL:
            raise AIDPError(event.get("message") or f"Waiting for AIDP job run {run_key} failed: {event}")
        self.log.info("AIDP job run %s is %s", run_key, event["status"])


class AIDPRepairJobRunOperator(_AIDPRunWaitOperator):
    """Repair (re-run chosen tasks of) a finished AIDP job run and optionally wait for it.

    :param run_key: the root job run to repair.
    :param task_keys: tasks to re-run; ``None`` means every failed task of the run.
    :param include_downstream: also re-run each chosen task's downstream tasks.
    :param include_upstream: also re-run each chosen task's upstream tasks.
    :param parameters: job-run parameters for the repair.

    Waiting, deferral, timeout, cancellation and XComs are as for :class:`AIDPRunJobOperator`.
    """

    template_fields: Sequence[str] = ("run_key", "task_keys", "parameters", "workspace_key")

    def __init__(
        self,
        *,
        run_key: str,
        task_keys: list[str] | None = None,
        include_downstream: bool = True,
        include_upstream: bool = False,
        parameters: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not run_key:
            raise AIDPConfigError(f"{self.task_id}: run_key is required.", field="run_key")
        self.run_key = run_key
        self.task_keys = task_keys
        self.include_downstream = include_downstream
        self.include_upstream = include_upstream
        self.parameters = parameters

    def execute(self, context: Context) -> str:
        parameters = string_parameters(self.parameters)
        run = self.hook.get_job_run(self.run_key, created_at=self._started_at)
        if not is_terminal(run.status):
            raise AIDPConfigError(
                f"AIDP job run {run.key} is {run.status}; only a finished run can be repaired.",
                field="run_key",
            )
        tasks = list(self.task_keys) if self.task_keys else self._failed_tasks(run)
        if not tasks:
            raise AIDPConfigError(
                f"AIDP job run {run.key} ({run.status}) has no failed tasks; pass task_keys to choose tasks.",
                field="task_keys",
            )
        identity = TaskIdentity.from_context(context)
        token = identity.retry_token("repair", f"{run.key}#{run.repair_generation}")
        body = repair_tasks_body(
            tasks, include_downstream=self.include_downstream, include_upstream=self.include_upstream
        )
        repaired = self.hook.repair_job_run(run.key, body, parameters=parameters, retry_token=token)
        self.log.info("Repairing tasks %s of AIDP job run %s", tasks, repaired.key)
        return self._follow(context, repaired.key, repaired.job_key or run.job_key, None)

    def _failed_tasks(self, run: JobRun) -> list[str]:
        task_runs = self.hook.get_task_runs(run, detail_failed=False)
        return [t.task_key for t in task_runs if t.status in TASK_FAILED_STATUSES and t.task_key]
