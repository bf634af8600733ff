"""AIDPHook: the public API of the AIDP Workflow API for one ``aidp`` connection.

Every method has an async twin named ``a_<method>`` with the same parameters and return type.
Both run the same operation of ``hooks/service.py`` (where every reading of the service is
handled): the sync method drives it with ``requests``, the async one with the ``aiohttp``
session, signer and pacer shared per (connection id, event loop). Answers are typed models;
errors are ``AIDPError`` subclasses. ``oci`` and ``aiohttp`` load only when a request is sent
(DAG files import this module through the operators).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_aidp import compat
from airflow_provider_aidp.compat import BaseHook
from airflow_provider_aidp.exceptions import AIDPConfigError, AIDPError
from airflow_provider_aidp.hooks import auth
from airflow_provider_aidp.hooks.connection import DEFAULT_CONN_ID, AIDPConnectionConfig
from airflow_provider_aidp.hooks.service import Op, Pause, Service, profile_for
from airflow_provider_aidp.hooks.transport import (
    USER_AGENT,
    ApiResponse,
    AsyncState,
    Call,
    RetryPolicy,
    close_async_sessions,
    conclude,
    lease,
    plan_request,
    send_async,
    send_sync,
    shared_state,
)

if TYPE_CHECKING:
    import requests

    from airflow_provider_aidp.hooks.upsert import UpsertResult
    from airflow_provider_aidp.models.outputs import RenderedOutput
    from airflow_provider_aidp.models.runs import (
        ActiveRun,
        ExportedTaskRunOutputContents,
        Job,
        JobRun,
        JobRunSummary,
        JobSummary,
        TaskRun,
        TaskRunOutput,
    )

T = TypeVar("T")


class AIDPHook(BaseHook):
    """Talk to the AIDP Workflow API of one workspace through an ``aidp`` connection.

    :param aidp_conn_id: the Airflow connection (type ``aidp``).
    :param workspace_key: workspace override (else the connection's ``workspace_key``).
    :param max_retries: retries of one call (attempts = max_retries + 1); else the connection's.
    :param timeout: seconds per attempt; else the connection's.
    :param retry_wait_max: longest wait between attempts, seconds; else the connection's.

    ``created_at`` (epoch seconds), where a method takes it: when this provider created the job or
    run, so that a 404 within the connection's ``consistency_grace`` of it reads as "not visible
    yet" (the service is eventually consistent) and is asked again instead of failing.
    """

    conn_name_attr = "aidp_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = "aidp"
    hook_name = "Oracle AI Data Platform"

    def __init__(
        self,
        aidp_conn_id: str = DEFAULT_CONN_ID,
        workspace_key: str | None = None,
        *,
        max_retries: int | None = None,
        timeout: float | None = None,
        retry_wait_max: float | None = None,
    ) -> None:
        super().__init__()
        self.aidp_conn_id = aidp_conn_id
        self.workspace_key = workspace_key
        self._max_retries = max_retries
        self._timeout = timeout
        self._retry_wait_max = retry_wait_max
        self._session: requests.Session | None = None
        #: Injection points for tests (and nothing else): how to wait between retries and pauses.
        self._sleep: Callable[[float], None] = time.sleep
        self._asleep: Callable[[float], Any] = asyncio.sleep

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The form's extra fields for Airflow 3.0/3.1 (3.2+ reads ``conn-fields`` instead)."""
        from airflow_provider_aidp.hooks.form import connection_form_widgets

        return connection_form_widgets()

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Hidden and relabelled standard fields for Airflow 3.0/3.1 (3.2+ reads provider info)."""
        from airflow_provider_aidp.hooks.form import ui_field_behaviour

        return ui_field_behaviour()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(aidp_conn_id={self.aidp_conn_id!r}, workspace_key={self.workspace_key!r})"
        )

    # --- configuration ----------------------------------------------------------------------

    def get_config(self) -> AIDPConnectionConfig:
        """The parsed, validated connection (read once per hook)."""
        return self._config

    async def a_get_config(self) -> AIDPConnectionConfig:
        """Async :meth:`get_config`: read once per (connection id, event loop), without blocking it."""
        config = (await self._astate()).config
        assert config is not None
        return config

    @cached_property
    def _config(self) -> AIDPConnectionConfig:
        return AIDPConnectionConfig.from_connection(self.get_connection(self.aidp_conn_id))

    def get_workspace(self) -> str:
        """The workspace key calls go to; ``AIDPConfigError`` when none is configured."""
        return self._workspace_for(self.get_config())

    async def a_get_workspace(self) -> str:
        """Async :meth:`get_workspace`."""
        return self._workspace_for(await self.a_get_config())

    def _workspace_for(self, config: AIDPConnectionConfig) -> str:
        workspace = self.workspace_key or config.workspace_key
        if not workspace:
            raise AIDPConfigError(
                f"No workspace for connection {self.aidp_conn_id!r}: set its extra 'workspace_key' or "
                "pass workspace_key to the operator/hook.",
                field="workspace_key",
            )
        return workspace

    def _policy(self, config: AIDPConnectionConfig) -> RetryPolicy:
        max_retries = self._max_retries if self._max_retries is not None else config.max_retries
        wait_max = self._retry_wait_max if self._retry_wait_max is not None else config.retry_wait_max
        return RetryPolicy(max_retries=max(0, int(max_retries)), wait_max=float(wait_max))

    def _timeout_for(self, config: AIDPConnectionConfig) -> float:
        return float(self._timeout if self._timeout is not None else config.timeout)

    # --- jobs -------------------------------------------------------------------------------

    def list_jobs(
        self, *, name: str | None = None, path: str | None = None, limit: int | None = None
    ) -> list[JobSummary]:
        """``GET /jobs`` with the ``displayName`` / ``path`` filters as the service serves them, every
        page, up to ``limit`` jobs. For the jobs named exactly N in folder F, use :meth:`find_jobs`."""
        return self._run(lambda s: s.list_jobs(name, path, limit))

    async def a_list_jobs(
        self, *, name: str | None = None, path: str | None = None, limit: int | None = None
    ) -> list[JobSummary]:
        """Async :meth:`list_jobs`."""
        return await self._arun(lambda s: s.list_jobs(name, path, limit))

    def find_jobs(self, name: str, path: str | None = None) -> list[JobSummary]:
        """Every job named exactly ``name`` (and in folder ``path``), reading every page; matched
        here, whatever the service's filters mean."""
        return self._run(lambda s: s.find_jobs(name, path))

    async def a_find_jobs(self, name: str, path: str | None = None) -> list[JobSummary]:
        """Async :meth:`find_jobs`."""
        return await self._arun(lambda s: s.find_jobs(name, path))

    def find_job(self, name: str, path: str | None = None, *, expected: bool = False) -> JobSummary | None:
        """The one job named ``name`` (in ``path``) or ``None``; ``AIDPDuplicateJobError`` if several.

        ``expected``: the job should exist (created upstream), so a listing that does not show it
        yet is read again within the connection's ``consistency_grace`` before ``None``.
        """
        return self._run(lambda s: s.find_job(name, path, expected))

    async def a_find_job(
        self, name: str, path: str | None = None, *, expected: bool = False
    ) -> JobSummary | None:
        """Async :meth:`find_job`."""
        return await self._arun(lambda s: s.find_job(name, path, expected))

    def get_job(self, job_key: str, *, created_at: float | None = None) -> Job:
        """``GET /jobs/{key}``: the definition (``Job.body()``) and its ``etag`` (an update's if-match)."""
        return self._run(lambda s: s.get_job(job_key, created_at))

    async def a_get_job(self, job_key: str, *, created_at: float | None = None) -> Job:
        """Async :meth:`get_job`."""
        return await self._arun(lambda s: s.get_job(job_key, created_at))

    def create_job(self, body: dict[str, Any], *, retry_token: str | None = None) -> Job:
        """``POST /jobs`` (name, path, maxConcurrentRuns only), token-protected: the created job."""
        return self._run(lambda s: s.create_job(body, retry_token))

    async def a_create_job(self, body: dict[str, Any], *, retry_token: str | None = None) -> Job:
        """Async :meth:`create_job`."""
        return await self._arun(lambda s: s.create_job(body, retry_token))

    def update_job(
        self,
        job_key: str,
        body: dict[str, Any],
        *,
        if_match: str | None = None,
        created_at: float | None = None,
    ) -> Job:
        """``PUT /jobs/{key}`` (a full replace): the job as updated (a stale ``if_match``:
        ``AIDPPreconditionFailedError``)."""
        return self._run(lambda s: s.update_job(job_key, body, if_match, created_at))

    async def a_update_job(
        self,
        job_key: str,
        body: dict[str, Any],
        *,
        if_match: str | None = None,
        created_at: float | None = None,
    ) -> Job:
        """Async :meth:`update_job`."""
        return await self._arun(lambda s: s.update_job(job_key, body, if_match, created_at))

    def delete_job(self, job_key: str) -> None:
        """``DELETE /jobs/{key}``."""
        self._run(lambda s: s.delete_job(job_key))

    async def a_delete_job(self, job_key: str) -> None:
        """Async :meth:`delete_job`."""
        await self._arun(lambda s: s.delete_job(job_key))

    def upsert_job(self, spec: Any, *, dry_run: bool = False) -> UpsertResult:
        """Create or update a job to match ``spec`` (a ``JobSpec`` or dict); see ``hooks/upsert.py``."""
        from airflow_provider_aidp.hooks.upsert import upsert

        return self._run(lambda s: upsert(s, spec, dry_run, self.log))

    async def a_upsert_job(self, spec: Any, *, dry_run: bool = False) -> UpsertResult:
        """Async :meth:`upsert_job`."""
        from airflow_provider_aidp.hooks.upsert import upsert

        return await self._arun(lambda s: upsert(s, spec, dry_run, self.log))

    # --- runs -------------------------------------------------------------------------------

    def create_job_run(
        self,
        job_key: str,
        parameters: dict[str, Any] | None = None,
        *,
        retry_token: str | None = None,
        created_at: float | None = None,
    ) -> JobRun:
        """``POST /jobRuns``: start a run. A deterministic ``retry_token`` makes a retried Airflow task
        idempotent (the service answers a repeated token with the first run); a token reused with
        other parameters is an ``AIDPRetryTokenConflictError``. ``created_at``: the job's."""
        return self._run(lambda s: s.create_job_run(job_key, parameters, retry_token, created_at))

    async def a_create_job_run(
        self,
        job_key: str,
        parameters: dict[str, Any] | None = None,
        *,
        retry_token: str | None = None,
        created_at: float | None = None,
    ) -> JobRun:
        """Async :meth:`create_job_run`."""
        return await self._arun(lambda s: s.create_job_run(job_key, parameters, retry_token, created_at))

    def get_job_run(
        self, run_key: str, *, include_task_runs: bool = False, created_at: float | None = None
    ) -> JobRun:
        """``GET /jobRuns/{key}``; ``include_task_runs`` asks for ``taskRunSummaryMap`` too."""
        return self._run(lambda s: s.get_job_run(run_key, include_task_runs, created_at))

    async def a_get_job_run(
        self, run_key: str, *, include_task_runs: bool = False, created_at: float | None = None
    ) -> JobRun:
        """Async :meth:`get_job_run` (the trigger's poll)."""
        return await self._arun(lambda s: s.get_job_run(run_key, include_task_runs, created_at))

    def list_job_runs(
        self,
        *,
        job_keys: Sequence[str] | None = None,
        statuses: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[JobRunSummary]:
        """Every run of ``job_keys`` (none: the workspace) in ``statuses`` (none: any), every page, up
        to ``limit``: complete and matched here, however the service applies the filters."""
        return self._run(lambda s: s.list_job_runs(job_keys or (), statuses or (), limit))

    async def a_list_job_runs(
        self,
        *,
        job_keys: Sequence[str] | None = None,
        statuses: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[JobRunSummary]:
        """Async :meth:`list_job_runs`."""
        return await self._arun(lambda s: s.list_job_runs(job_keys or (), statuses or (), limit))

    def list_runs_created_since(self, job_keys: Sequence[str], since_ms: int) -> list[JobRunSummary]:
        """Every run of ``job_keys`` created at or after ``since_ms`` (epoch ms), any status: complete
        and matched here, however the service treats the time filter and the sort (it costs more
        requests where they are ignored). See ``Service.list_runs_created_since``."""
        return self._run(lambda s: s.list_runs_created_since(job_keys, since_ms))

    async def a_list_runs_created_since(self, job_keys: Sequence[str], since_ms: int) -> list[JobRunSummary]:
        """Async :meth:`list_runs_created_since` (the run-event trigger's bounded poll)."""
        return await self._arun(lambda s: s.list_runs_created_since(job_keys, since_ms))

    def newest_run_created(self, job_keys: Sequence[str]) -> int | None:
        """When the newest run of ``job_keys`` was created (epoch ms; None: no run), from one page:
        where the service ignores the sort, an older run's (never a newer one's)."""
        return self._run(lambda s: s.newest_run_created(job_keys))

    async def a_newest_run_created(self, job_keys: Sequence[str]) -> int | None:
        """Async :meth:`newest_run_created`."""
        return await self._arun(lambda s: s.newest_run_created(job_keys))

    def list_active_runs(self, job_keys: Sequence[str] | None = None) -> list[JobRunSummary]:
        """A cheap snapshot of the active runs of ``job_keys`` (none: the workspace), not a census:
        a run it does not show may still be active (read it by key). See ``Service.list_active_runs``."""
        return self._run(lambda s: s.list_active_runs(job_keys))

    async def a_list_active_runs(self, job_keys: Sequence[str] | None = None) -> list[JobRunSummary]:
        """Async :meth:`list_active_runs` (the triggerer's status sweep)."""
        return await self._arun(lambda s: s.list_active_runs(job_keys))

    def list_active_run_states(self, job_keys: Sequence[str] | None = None) -> list[ActiveRun]:
        """:meth:`list_active_runs` as ``(key, job_key, status)`` tuples, no model per run (the
        status sweep reads thousands of runs a few times a poll interval)."""
        return self._run(lambda s: s.list_active_run_states(job_keys))

    async def a_list_active_run_states(self, job_keys: Sequence[str] | None = None) -> list[ActiveRun]:
        """Async :meth:`list_active_run_states` (the triggerer's status sweep)."""
        return await self._arun(lambda s: s.list_active_run_states(job_keys))

    def cancel_job_run(self, run_key: str, *, created_at: float | None = None) -> JobRun:
        """Cancel a run; the run as the cancel left it (a run that had already ended: as it ended)."""
        return self._run(lambda s: s.cancel_job_run(run_key, created_at))

    async def a_cancel_job_run(self, run_key: str, *, created_at: float | None = None) -> JobRun:
        """Async :meth:`cancel_job_run` (deadline passed, or a user killed the deferred task)."""
        return await self._arun(lambda s: s.cancel_job_run(run_key, created_at))

    def cancel_job_runs(self, job_key: str) -> list[str]:
        """Cancel every active run of a job, whichever way the surface allows; their run keys."""
        return self._run(lambda s: s.cancel_job_runs(job_key))

    async def a_cancel_job_runs(self, job_key: str) -> list[str]:
        """Async :meth:`cancel_job_runs`."""
        return await self._arun(lambda s: s.cancel_job_runs(job_key))

    def repair_job_run(
        self,
        run_key: str,
        repair_tasks: list[dict[str, Any]],
        *,
        parameters: dict[str, Any] | None = None,
        retry_token: str | None = None,
    ) -> JobRun:
        """``POST /jobRuns/{key}/actions/repair``: re-run chosen tasks with ``repairTasks`` (not the
        deprecated ``taskKeys``); the repaired run. Token-protected like :meth:`create_job_run`."""
        return self._run(lambda s: s.repair_job_run(run_key, repair_tasks, parameters, retry_token))

    async def a_repair_job_run(
        self,
        run_key: str,
        repair_tasks: list[dict[str, Any]],
        *,
        parameters: dict[str, Any] | None = None,
        retry_token: str | None = None,
    ) -> JobRun:
        """Async :meth:`repair_job_run`."""
        return await self._arun(lambda s: s.repair_job_run(run_key, repair_tasks, parameters, retry_token))

    def get_run_url(self, run_key: str, job_key: str | None = None) -> str:
        """The run's console URL from the connection's ``console_url_template`` (no request)."""
        config = self.get_config()
        return config.console_url(workspace_key=self.workspace_key, run_key=run_key, job_key=job_key)

    async def a_get_run_url(self, run_key: str, job_key: str | None = None) -> str:
        """Async :meth:`get_run_url`."""
        config = await self.a_get_config()
        return config.console_url(workspace_key=self.workspace_key, run_key=run_key, job_key=job_key)

    # --- task runs and outputs ----------------------------------------------------------------

    def get_task_runs(self, run: JobRun, *, detail_failed: bool = True) -> list[TaskRun]:
        """One task run per task of ``run`` (its latest attempt) with its state, in execution order;
        with ``detail_failed`` the failed ones read in full (error trace, output key)."""
        return self._run(lambda s: s.get_task_runs(run, detail_failed))

    async def a_get_task_runs(self, run: JobRun, *, detail_failed: bool = True) -> list[TaskRun]:
        """Async :meth:`get_task_runs`."""
        return await self._arun(lambda s: s.get_task_runs(run, detail_failed))

    def list_task_runs(self, run_key: str) -> list[TaskRun]:
        """``GET /taskRuns?jobRunKey=``: every task run (every attempt) of a run, every page."""
        return self._run(lambda s: s.list_task_runs(run_key))

    async def a_list_task_runs(self, run_key: str) -> list[TaskRun]:
        """Async :meth:`list_task_runs`."""
        return await self._arun(lambda s: s.list_task_runs(run_key))

    def get_task_run(self, task_run_key: str) -> TaskRun:
        """``GET /taskRuns/{key}`` (carries the ``outputKey`` a listing may omit)."""
        return self._run(lambda s: s.get_task_run(task_run_key))

    async def a_get_task_run(self, task_run_key: str) -> TaskRun:
        """Async :meth:`get_task_run`."""
        return await self._arun(lambda s: s.get_task_run(task_run_key))

    def fetch_task_run_output(self, task_run_key: str, output_key: str | None = None) -> TaskRunOutput:
        """``POST /taskRuns/{key}/actions/fetchOutput`` (token-protected): the output as served."""
        return self._run(lambda s: s.fetch_task_run_output(task_run_key, output_key))

    async def a_fetch_task_run_output(
        self, task_run_key: str, output_key: str | None = None
    ) -> TaskRunOutput:
        """Async :meth:`fetch_task_run_output`."""
        return await self._arun(lambda s: s.fetch_task_run_output(task_run_key, output_key))

    def read_task_run_output(self, task_run: TaskRun) -> RenderedOutput | None:
        """A task run's output as log text and the errors it reports; ``None`` when it has none."""
        return self._run(lambda s: s.read_task_run_output(task_run))

    async def a_read_task_run_output(self, task_run: TaskRun) -> RenderedOutput | None:
        """Async :meth:`read_task_run_output`."""
        return await self._arun(lambda s: s.read_task_run_output(task_run))

    def export_task_run_output(
        self, task_run_key: str, output_key: str, fmt: str = "HTML"
    ) -> ExportedTaskRunOutputContents:
        """``POST .../outputs/{output_key}/actions/export``: the output as HTML or IPYNB (not resent)."""
        return self._run(lambda s: s.export_task_run_output(task_run_key, output_key, fmt))

    async def a_export_task_run_output(
        self, task_run_key: str, output_key: str, fmt: str = "HTML"
    ) -> ExportedTaskRunOutputContents:
        """Async :meth:`export_task_run_output`."""
        return await self._arun(lambda s: s.export_task_run_output(task_run_key, output_key, fmt))

    # --- Airflow's connection Test ---------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """The UI's Test and ``airflow connections test``: one fast, explained check (``hooks/diagnosis``).

        One attempt per request with a short timeout (no retry ladder); the message names the host
        and what failed. ``python -m airflow_provider_aidp.doctor`` prints every step. (Airflow calls
        it synchronously: it has no async twin.)
        """
        from airflow_provider_aidp.hooks.diagnosis import diagnose, summary

        try:
            conn = self.get_connection(self.aidp_conn_id)
        except Exception as exc:
            return False, f"Cannot read connection {self.aidp_conn_id!r}: {type(exc).__name__}: {exc}"
        return summary(diagnose(conn, self.workspace_key))

    # --- the two drivers of an operation ---------------------------------------------------------

    def get_conn(self) -> requests.Session:
        """The hook's ``requests.Session`` (connection pooling across calls)."""
        if self._session is None:
            import requests

            self._session = requests.Session()
        return self._session

    def _run(self, operation: Callable[[Service], Op[T]]) -> T:
        """Drive an operation with ``requests``: each call sent (with retries), each pause slept."""
        config = self.get_config()
        op = operation(Service(config, profile_for(self.aidp_conn_id)))
        done, step = _advance(op, None, None)
        while not done:
            reply: Any = None
            error: AIDPError | None = None
            if isinstance(step, Pause):
                self._sleep(step.seconds)
            else:
                try:
                    reply = self._call(step, config)
                except AIDPError as exc:
                    error = exc
            done, step = _advance(op, reply, error)
        return step

    def _call(self, call: Call, config: AIDPConnectionConfig) -> ApiResponse:
        """One logical call: attempts until ``conclude`` returns a response (or raises)."""
        plan = plan_request(config, self._workspace_for(config), call)
        policy, signer, session = self._policy(config), auth.get_signer(config), self.get_conn()
        for attempt in itertools.count(1):
            answer = send_sync(session, signer, plan, self._timeout_for(config), config.ca_bundle)
            step = conclude(plan, policy, attempt, answer, config)
            if isinstance(step, ApiResponse):
                return step
            self._sleep(step)
        raise AssertionError("unreachable")

    async def _arun(self, operation: Callable[[Service], Op[T]]) -> T:
        """:meth:`_run` on the event loop: calls sent by the shared ``aiohttp`` session."""
        state = await self._astate()
        assert state.config is not None
        op = operation(Service(state.config, profile_for(self.aidp_conn_id)))
        done, step = _advance(op, None, None)
        while not done:
            reply: Any = None
            error: AIDPError | None = None
            if isinstance(step, Pause):
                await self._asleep(step.seconds)
            else:
                try:
                    reply = await self._acall(step, state)
                except AIDPError as exc:
                    error = exc
            done, step = _advance(op, reply, error)
        return step

    async def _acall(self, call: Call, state: AsyncState) -> ApiResponse:
        """The async twin of :meth:`_call`: the same plan and decision, sent by :func:`send_async`."""
        config = state.config
        assert config is not None
        plan = plan_request(config, self._workspace_for(config), call)
        policy = self._policy(config)
        for attempt in itertools.count(1):
            answer = await send_async(state, plan, self._timeout_for(config))
            step = conclude(plan, policy, attempt, answer, config)
            if isinstance(step, ApiResponse):
                return step
            await self._asleep(step)
        raise AssertionError("unreachable")

    async def _astate(self) -> AsyncState:
        """Shared per (conn id, loop): async connection lookup, signer built off-loop, one session."""
        return await shared_state(self.aidp_conn_id, lambda conn_id: compat.aget_connection(self, conn_id))

    def session_lease(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Keep this connection's shared async session open while a trigger works (``transport.lease``)."""
        return lease(self.aidp_conn_id)


def _advance(op: Op[T], reply: Any, error: AIDPError | None) -> tuple[bool, Any]:
    """Feed an operation the last call's answer (or its error): ``(True, result)`` when it is done,
    else ``(False, the next Call or Pause)``."""
    try:
        return False, (op.throw(error) if error is not None else op.send(reply))
    except StopIteration as done:
        return True, done.value


__all__ = ["USER_AGENT", "AIDPHook", "close_async_sessions"]
