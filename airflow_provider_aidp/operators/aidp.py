"""Operators that run, cancel and repair AIDP Workflow job runs (waiting: ``operators/waiting.py``).

Exactly once: the run operator stores the run key in ``task_state_store`` (Airflow >= 3.3) before
it waits or defers, and on every Airflow version sends a deterministic ``opc-retry-token`` derived
from the task instance, so a retry reattaches to the run a previous try started.

Why not Airflow 3.3's ``ResumableJobMixin``: it stores a bare external id, resubmits a failed job
from scratch and covers only the sync path. We need more: the stored key carries the *clear
generation* (a cleared task starts a new run), a failed run may be *repaired* in place
(``repair_on_retry``), and a worker that dies between the POST and the store (the window the mixin
leaves open) is closed by the retry token, whose answer starts a chain of resubmissions/repairs we
follow. So the ~40 lines below stay ours. Nothing here imports ``oci`` or ``aiohttp``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_aidp import compat
from airflow_provider_aidp.exceptions import (
    AIDPApiError,
    AIDPConfigError,
    AIDPConflictError,
    AIDPError,
    AIDPNotFoundError,
)
from airflow_provider_aidp.models.runs import SUCCESS, is_active, is_terminal, string_parameters
from airflow_provider_aidp.operators.job_definition import AIDPCreateJobOperator, AIDPDeleteJobOperator
from airflow_provider_aidp.operators.waiting import (  # XCom keys re-exported (their documented home)
    JOB_KEY_XCOM_KEY,
    RUN_KEY_XCOM_KEY,
    RUN_SUMMARY_XCOM_KEY,
    _AIDPRunWaitOperator,
    _seconds,
)
from airflow_provider_aidp.runs import polling
from airflow_provider_aidp.runs.identity import TaskIdentity
from airflow_provider_aidp.runs.task_runs import failed_task_keys

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

#: task_state_store key holding {"run_key", "job_key", "generation"} across retries.
STATE_STORE_KEY = "aidp_job_run"


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
        run = self._start_or_reattach(context, job_key, parameters, identity, store)
        if store is not None:
            store.set(
                STATE_STORE_KEY, {"run_key": run.key, "job_key": job_key, "generation": identity.generation}
            )
        return self._follow(context, run.key, job_key)

    def _resolve_job_key(self) -> str:
        if self.job_key:
            return self.job_key
        assert self.job_name is not None
        job = self.hook.find_job(self.job_name, self.job_path)
        if job is None:
            where = f" in folder {self.job_path!r}" if self.job_path else ""
            raise AIDPConfigError(
                f"No AIDP job named {self.job_name!r}{where} in workspace {self.hook.workspace!r}. "
                "Check job_name/job_path, or pass job_key.",
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
    ) -> JobRun:
        """This try's run: the stored one (or what follows it), else what the retry token returns."""
        previous = self._stored_run_key(store, identity)
        if previous is not None:
            return self._usable_or_next(self.hook.get_job_run(previous), job_key, parameters, identity)
        run = self.hook.create_job_run(job_key, parameters, retry_token=identity.retry_token())
        # A retry whose previous try crashed before storing the key gets that try's run back from
        # the token: follow its chain of resubmissions / repairs to the newest link.
        try_number = int(getattr(context["ti"], "try_number", 1) or 1)
        for _ in range(try_number if try_number > 1 else 0):
            current = self.hook.get_job_run(run.key)
            run = self._usable_or_next(current, job_key, parameters, identity)
            if run.key == current.key:  # reattached, or repaired in place
                return run
        self.log.info("Started AIDP job run %s of job %s", run.key, job_key)
        return run

    def _usable_or_next(
        self, run: JobRun, job_key: str, parameters: dict[str, str] | None, identity: TaskIdentity
    ) -> JobRun:
        """Reattach to a run that is still going or succeeded; after a failure, repair or resubmit."""
        if is_active(run.status) or run.status == SUCCESS:
            self.log.info("Reattaching to AIDP job run %s (%s) from a previous try", run.key, run.status)
            return run
        return self._after_failed(run, job_key, parameters, identity)

    def _stored_run_key(self, store: Any, identity: TaskIdentity) -> str | None:
        if store is None:
            return None
        stored = store.get(STATE_STORE_KEY)
        if not isinstance(stored, dict) or not stored.get("run_key"):
            return None
        if stored.get("generation") != identity.generation:
            self.log.info("Task was cleared since run %s was started; starting a new run", stored["run_key"])
            return None
        return str(stored["run_key"])

    def _after_failed(
        self, run: JobRun, job_key: str, parameters: dict[str, str] | None, identity: TaskIdentity
    ) -> JobRun:
        """The previous try's run failed: repair it (repair_on_retry) or deliberately start a new one."""
        if self.repair_on_retry:
            tasks = failed_task_keys(self.hook, run, self.log)
            if tasks:
                self.log.info("repair_on_retry: repairing tasks %s of AIDP job run %s", tasks, run.key)
                token = identity.retry_token("repair", f"{run.key}#{run.repair_generation}")
                body = repair_tasks_body(tasks, include_downstream=True)
                return self.hook.repair_job_run(run.key, body, retry_token=token)
            self.log.info(
                "repair_on_retry: run %s has no failed tasks to repair; starting a new run", run.key
            )
        self.log.info("Previous AIDP job run %s ended %s; starting a new run", run.key, run.status)
        token = identity.retry_token("run", previous_run_key=run.key)
        try:
            return self.hook.create_job_run(job_key, parameters, retry_token=token)
        except AIDPConflictError as exc:
            raise AIDPConfigError(
                f"AIDP refused the resubmission token for run {run.key}: {exc}. The job-run parameters "
                "differ between tries; make them deterministic for the task instance.",
                field="parameters",
            ) from exc


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
        run_keys = [self.run_key] if self.run_key else self._active_runs()
        if self.run_key:
            self._cancel_one(self.run_key)
        else:
            assert self.job_key is not None
            self._cancel_job(self.job_key, run_keys)
        if self.wait_for_termination:
            for run_key in run_keys:
                self._wait_terminal(run_key)
        return run_keys

    def _active_runs(self) -> list[str]:
        """The job's active runs; the job key is matched locally (the server may ignore ``jobKey``)."""
        from airflow_provider_aidp.runs.listed import of_jobs

        assert self.job_key is not None
        listed = of_jobs(self.hook.list_job_runs(job_key=self.job_key), [self.job_key])
        return [r.key for r in listed if is_active(r.status)]

    def _cancel_job(self, job_key: str, run_keys: list[str]) -> None:
        """``cancelJobRuns``; where a surface lacks that action (404, as ``/jobs/{key}/actions/run``
        is on ``20240831``) but the job exists, cancel its active runs one by one."""
        try:
            self.hook.cancel_job_runs(job_key)
        except AIDPNotFoundError:
            self.hook.get_job(job_key)  # a job that does not exist fails here, with its own 404
            self.log.info(
                "No cancelJobRuns action here; cancelling the runs of AIDP job %s one by one", job_key
            )
            for run_key in run_keys:
                self._cancel_one(run_key)
        self.log.info("Requested cancellation of all runs of AIDP job %s: %s", job_key, run_keys)

    def _cancel_one(self, run_key: str) -> None:
        try:
            self.hook.cancel_job_run(run_key)
            self.log.info("Requested cancellation of AIDP job run %s", run_key)
        except AIDPApiError as exc:
            if exc.status not in (400, 409):
                raise
            status = self.hook.get_job_run(run_key).status
            if not is_terminal(status):
                raise
            self.log.info("AIDP job run %s already ended (%s); nothing to cancel", run_key, status)

    def _wait_terminal(self, run_key: str) -> None:
        deadline = None if self.timeout is None else time.time() + self.timeout
        event = polling.wait_for_run(
            self.hook,
            run_key,
            poll_interval=self.poll_interval,
            deadline=deadline,
            cancel_on_timeout=False,
            log=self.log,
        )
        if event["event"] != "terminal":
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
        run = self.hook.get_job_run(self.run_key)
        if not is_terminal(run.status):
            raise AIDPConfigError(
                f"AIDP job run {run.key} is {run.status}; only a finished run can be repaired.",
                field="run_key",
            )
        tasks = list(self.task_keys) if self.task_keys else failed_task_keys(self.hook, run, self.log)
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
        return self._follow(context, repaired.key, repaired.job_key or run.job_key)
