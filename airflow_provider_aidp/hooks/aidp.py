"""AIDPHook: the public API of the AIDP Workflow API for one ``aidp`` connection.

Every call builds one request plan and asks one retry decision what to do after each attempt
(``hooks/transport.py``); ``_call`` sends it with ``requests``, ``_acall`` with the ``aiohttp``
session, signer and pacer shared per (connection id, event loop). Job definitions come back as the
service's JSON, runs and task runs as models; errors are ``AIDPError`` subclasses. ``oci`` and
``aiohttp`` load only when a request is sent (DAG files import this module through operators).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from airflow_provider_aidp import compat
from airflow_provider_aidp.compat import BaseHook
from airflow_provider_aidp.exceptions import (
    AIDPConfigError,
    AIDPDuplicateJobError,
)
from airflow_provider_aidp.hooks import auth
from airflow_provider_aidp.hooks.connection import DEFAULT_CONN_ID, AIDPConnectionConfig
from airflow_provider_aidp.hooks.responses import ApiResponse, JobDefinition, header, parse_model
from airflow_provider_aidp.hooks.retry import RetryPolicy, new_retry_token
from airflow_provider_aidp.hooks.transport import (
    USER_AGENT,
    AsyncState,
    Pager,
    close_async_sessions,
    conclude,
    lease,
    plan_request,
    send_async,
    send_sync,
    shared_state,
)
from airflow_provider_aidp.models.runs import (
    ExportedTaskRunOutputContents,
    JobRun,
    JobRunSummary,
    JobSummary,
    TaskRun,
    TaskRunOutput,
    string_parameters,
)

_M = TypeVar("_M", bound=BaseModel)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    import requests

    from airflow_provider_aidp.hooks.upsert import UpsertResult


class AIDPHook(BaseHook):
    """Talk to the AIDP Workflow API of one workspace through an ``aidp`` connection.

    :param aidp_conn_id: the Airflow connection (type ``aidp``).
    :param workspace_key: workspace override (else the connection's ``workspace_key``).
    :param max_retries: retries of one call (attempts = max_retries + 1); else the connection's.
    :param timeout: seconds per attempt; else the connection's.
    :param retry_wait_max: longest wait between attempts, seconds; else the connection's.
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
        #: Injection points for tests (and nothing else): how to wait between retries.
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

    # --- configuration ------------------------------------------------------------------

    @cached_property
    def config(self) -> AIDPConnectionConfig:
        """The parsed, validated connection (sync lookup; async code uses :meth:`_astate`)."""
        return AIDPConnectionConfig.from_connection(self.get_connection(self.aidp_conn_id))

    @property
    def workspace(self) -> str:
        """The workspace key calls go to; raises ``AIDPConfigError`` when none is configured."""
        return self._workspace_for(self.config)

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

    # --- sync transport -----------------------------------------------------------------

    def get_conn(self) -> requests.Session:
        """The hook's ``requests.Session`` (connection pooling across calls)."""
        if self._session is None:
            import requests

            self._session = requests.Session()
        return self._session

    def _call(self, method: str, *segments: str, **request: Any) -> ApiResponse:
        """One logical call: attempts until ``conclude`` returns a response (or raises)."""
        config = self.config
        plan = plan_request(config, self._workspace_for(config), method, segments, **request)
        policy, signer, session = self._policy(config), auth.get_signer(config), self.get_conn()
        for attempt in itertools.count(1):
            answer = send_sync(session, signer, plan, self._timeout_for(config), config.ca_bundle)
            step = conclude(plan, policy, attempt, answer, config)
            if isinstance(step, ApiResponse):
                return step
            self._sleep(step)
        raise AssertionError("unreachable")

    def _model(self, cls: type[_M], method: str, *segments: str, **request: Any) -> _M:
        """:meth:`_call`, its JSON read as ``cls`` (a mismatch is an ``AIDPResponseError``)."""
        resp = self._call(method, *segments, **request)
        return parse_model(cls, resp.body, method, "/" + "/".join(segments), resp.request_id)

    def _paginate(
        self,
        *segments: str,
        query: Sequence[tuple[str, Any]] = (),
        limit: int | None = None,
        page_size: int = 100,
    ) -> Iterator[dict[str, Any]]:
        """Yield items across every page (``opc-next-page``), up to ``limit``; pages load as consumed."""
        pager = Pager(segments, query, page_size, limit)
        while not pager.done:
            yield from pager.take(self._call("GET", *segments, query=pager.query()))

    # --- jobs ---------------------------------------------------------------------------

    def list_jobs(
        self,
        *,
        name: str | None = None,
        path: str | None = None,
        limit: int | None = None,
        page_size: int = 100,
    ) -> Iterator[JobSummary]:
        """``GET /jobs`` (``displayName``/``path`` filters), every page, up to ``limit`` jobs."""
        query = [("displayName", name), ("path", path)]
        for item in self._paginate("jobs", query=query, limit=limit, page_size=page_size):
            yield parse_model(JobSummary, item, "GET", "/jobs", None)

    def find_jobs(self, name: str, path: str | None = None) -> list[JobSummary]:
        """Every job named exactly ``name`` (and in folder ``path``), reading every page.

        Only the name goes to the server: what its ``path`` filter means (the folder, folder +
        name, or nothing) is not documented, so the folder is matched here (``jobs.same_folder``);
        a listed job of that name without a ``path`` costs one ``GET /jobs/{key}`` for its folder.
        """
        from airflow_provider_aidp.hooks.jobs import located, matches, needs_path

        jobs = self.list_jobs(name=name)
        jobs = (located(j, self.get_job(j.key).body) if needs_path(j, name, path) else j for j in jobs)
        return [job for job in jobs if matches(job, name, path)]

    def find_job(self, name: str, path: str | None = None) -> JobSummary | None:
        """The one job named ``name`` (in ``path``) or ``None``; ``AIDPDuplicateJobError`` if several."""
        jobs = self.find_jobs(name, path)
        if len(jobs) > 1:
            keys = ", ".join(job.key for job in jobs)
            raise AIDPDuplicateJobError(
                f"{len(jobs)} jobs are named {name!r}{f' in {path!r}' if path else ''} ({keys}); "
                "pass the job key or a path to choose one."
            )
        return jobs[0] if jobs else None

    def get_job(self, job_key: str) -> JobDefinition:
        """``GET /jobs/{key}``: the job definition's JSON and its ``etag`` (for ``update_job``'s if-match)."""
        resp = self._call("GET", "jobs", job_key)
        return JobDefinition(resp.body, header(resp.headers, "etag"))

    def create_job(self, body: dict[str, Any], *, retry_token: str | None = None) -> dict[str, Any]:
        """``POST /jobs`` with an ``opc-retry-token`` (resent safely): the created job's JSON."""
        return self._call("POST", "jobs", payload=body, retry_token=retry_token or new_retry_token()).body

    def update_job(
        self, job_key: str, body: dict[str, Any], *, if_match: str | None = None
    ) -> dict[str, Any]:
        """``PUT /jobs/{key}``: the job's JSON (``if_match`` stale: ``AIDPPreconditionFailedError``), as
        answered, or as ``GET`` reads it when the answer has no body (204 No Content)."""
        resp = self._call("PUT", "jobs", job_key, payload=body, if_match=if_match, allow_empty=True)
        return resp.body if resp.body is not None else self.get_job(job_key).body

    def delete_job(self, job_key: str) -> None:
        """``DELETE /jobs/{key}``."""
        self._call("DELETE", "jobs", job_key, expect_json=False)

    def upsert_job(self, spec: Any, *, dry_run: bool = False) -> UpsertResult:
        """Create or update a job to match ``spec`` (a ``JobSpec`` or dict); see ``hooks.upsert``."""
        from airflow_provider_aidp.hooks.upsert import upsert_job

        return upsert_job(self, spec, dry_run=dry_run)

    # --- runs ---------------------------------------------------------------------------

    def create_job_run(
        self, job_key: str, parameters: dict[str, Any] | None = None, *, retry_token: str | None = None
    ) -> JobRun:
        """``POST /jobRuns``: start a run. Pass a deterministic ``retry_token`` to make a retried Airflow
        task idempotent (a lost or garbled answer is resent with it and returns the same run)."""
        payload = _with_parameters({"jobKey": job_key}, parameters)
        return self._model(
            JobRun, "POST", "jobRuns", payload=payload, retry_token=retry_token or new_retry_token()
        )

    def get_job_run(self, run_key: str, *, include_task_runs: bool = False) -> JobRun:
        """``GET /jobRuns/{key}``; ``include_task_runs`` adds ``taskRunSummaryMap`` (latest attempts)."""
        query = [("shouldIncludeTaskRunSummaries", True)] if include_task_runs else None
        return self._model(JobRun, "GET", "jobRuns", run_key, query=query)

    def list_job_runs(
        self, *, job_key: str | None = None, statuses: list[str] | None = None, limit: int | None = None
    ) -> Iterator[JobRunSummary]:
        """``GET /jobRuns`` (``jobKey``, repeated ``status`` filters), every page, up to ``limit`` runs.

        The runs are as listed: a service may not apply the filters (match with ``runs.listed``)."""
        for item in self._paginate(
            "jobRuns", query=_run_filters([job_key] if job_key is not None else [], statuses), limit=limit
        ):
            yield parse_model(JobRunSummary, item, "GET", "/jobRuns", None)

    def list_task_runs(self, run_key: str) -> Iterator[TaskRun]:
        """``GET /taskRuns?jobRunKey=``: every task run (all attempts) of a run, every page, as listed
        (``runs.listed.of_run`` drops another run's, should the service ignore the filter)."""
        for item in self._paginate("taskRuns", query=[("jobRunKey", run_key)]):
            yield parse_model(TaskRun, item, "GET", "/taskRuns", None)

    def get_task_run(self, task_run_key: str) -> TaskRun:
        """``GET /taskRuns/{key}`` (carries the ``outputKey`` a listing may omit)."""
        return self._model(TaskRun, "GET", "taskRuns", task_run_key)

    def fetch_task_run_output(self, task_run_key: str, output_key: str | None = None) -> TaskRunOutput:
        """``POST /taskRuns/{key}/actions/fetchOutput`` (token-protected): the task run's output."""
        payload = {"outputKey": output_key} if output_key else None  # no body rather than "{}"
        segments = ("taskRuns", task_run_key, "actions", "fetchOutput")
        return self._model(TaskRunOutput, "POST", *segments, payload=payload, retry_token=new_retry_token())

    def export_task_run_output(
        self, task_run_key: str, output_key: str, fmt: str = "HTML"
    ) -> ExportedTaskRunOutputContents:
        """``POST .../outputs/{output_key}/actions/export``: the output as HTML or IPYNB (not resent)."""
        if fmt not in ("HTML", "IPYNB"):
            raise AIDPConfigError(f"fmt must be 'HTML' or 'IPYNB', got {fmt!r}.", field="fmt")
        segments = ("taskRuns", task_run_key, "outputs", output_key, "actions", "export")
        return self._model(ExportedTaskRunOutputContents, "POST", *segments, payload={"format": fmt})

    def cancel_job_run(self, run_key: str) -> JobRun:
        """``POST /jobRuns/{key}/actions/cancel`` (token-protected): the run as the service answers,
        or as ``GET`` reads it when the answer has no body (a 202 work request)."""
        segments = ("jobRuns", run_key, "actions", "cancel")
        resp = self._call("POST", *segments, retry_token=new_retry_token(), allow_empty=True)
        return _answered_run(resp, run_key) or self.get_job_run(run_key)

    def cancel_job_runs(self, job_key: str) -> None:
        """``POST /jobs/{key}/actions/cancelJobRuns`` (token-protected): cancel every active run of a job."""
        segments = ("jobs", job_key, "actions", "cancelJobRuns")
        self._call("POST", *segments, retry_token=new_retry_token(), expect_json=False)

    def repair_job_run(
        self,
        run_key: str,
        repair_tasks: list[dict[str, Any]],
        *,
        parameters: dict[str, Any] | None = None,
        retry_token: str | None = None,
    ) -> JobRun:
        """``POST /jobRuns/{key}/actions/repair``: re-run chosen tasks with ``repairTasks`` (not the
        deprecated ``taskKeys``); returns the repaired run. Token-protected like :meth:`create_job_run`."""
        if not repair_tasks:
            raise AIDPConfigError("repair_tasks must name at least one task.", field="repair_tasks")
        payload = _with_parameters({"repairTasks": repair_tasks}, parameters)
        token = retry_token or new_retry_token()
        return self._model(
            JobRun, "POST", "jobRuns", run_key, "actions", "repair", payload=payload, retry_token=token
        )

    def get_run_url(self, run_key: str, job_key: str | None = None) -> str:
        """The run's console URL from the connection's ``console_url_template`` (no request)."""
        return self.config.console_url(
            workspace_key=self.workspace_key or self.config.workspace_key, run_key=run_key, job_key=job_key
        )

    def test_connection(self) -> tuple[bool, str]:
        """The UI's Test and ``airflow connections test``: one fast, explained check (``hooks/diagnosis``).

        One attempt per request with a short timeout (no retry ladder); the message names the host
        and what failed. ``python -m airflow_provider_aidp.doctor`` prints every step.
        """
        from airflow_provider_aidp.hooks.diagnosis import diagnose, summary

        try:
            conn = self.get_connection(self.aidp_conn_id)
        except Exception as exc:
            return False, f"Cannot read connection {self.aidp_conn_id!r}: {type(exc).__name__}: {exc}"
        return summary(diagnose(conn, self.workspace_key))

    # --- async transport ----------------------------------------------------------------

    def session_lease(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Keep this connection's shared async session open while a trigger works (``transport.lease``)."""
        return lease(self.aidp_conn_id)

    async def _astate(self) -> AsyncState:
        """Shared per (conn id, loop): async connection lookup, signer built off-loop, one session."""
        return await shared_state(self.aidp_conn_id, lambda conn_id: compat.aget_connection(self, conn_id))

    async def _acall(self, method: str, *segments: str, **request: Any) -> ApiResponse:
        """The async twin of :meth:`_call`: the same plan and decision, sent by :func:`send_async`."""
        state = await self._astate()
        config = state.config
        assert config is not None
        plan = plan_request(config, self._workspace_for(config), method, segments, **request)
        policy = self._policy(config)
        for attempt in itertools.count(1):
            answer = await send_async(state, plan, self._timeout_for(config))
            step = conclude(plan, policy, attempt, answer, config)
            if isinstance(step, ApiResponse):
                return step
            await self._asleep(step)
        raise AssertionError("unreachable")

    async def _apaginate(
        self, *segments: str, query: Sequence[tuple[str, Any]] = (), page_size: int = 100
    ) -> list[dict[str, Any]]:
        """Every item across every page (the async listing reads whole collections)."""
        pager, items = Pager(segments, query, page_size, None), list[dict[str, Any]]()
        while not pager.done:
            items += pager.take(await self._acall("GET", *segments, query=pager.query()))
        return items

    async def a_get_job_run(self, run_key: str) -> JobRun:
        """Async :meth:`get_job_run` (the trigger's poll)."""
        resp = await self._acall("GET", "jobRuns", run_key)
        return parse_model(JobRun, resp.body, "GET", f"/jobRuns/{run_key}", resp.request_id)

    async def a_list_job_runs(
        self, *, job_key: str | None = None, statuses: Sequence[str] | None = None
    ) -> list[JobRunSummary]:
        """Every page of ``GET /jobRuns`` (one list per call, however many runs; used by event triggers)."""
        return await self.a_list_runs_of_jobs([job_key] if job_key is not None else [], statuses or ())

    async def a_list_runs_of_jobs(
        self, job_keys: Sequence[str], statuses: Sequence[str], *, page_size: int = 100
    ) -> list[JobRunSummary]:
        """Every page of ``GET /jobRuns?jobKey=..&jobKey=..&status=..`` (also the triggerer's status
        sweep); no job keys: the workspace's runs of those statuses.

        The caller matches runs locally: the service may not apply the filters as the SDK reads them.
        """
        items = await self._apaginate("jobRuns", query=_run_filters(job_keys, statuses), page_size=page_size)
        return [parse_model(JobRunSummary, item, "GET", "/jobRuns", None) for item in items]

    async def a_config(self) -> AIDPConnectionConfig:
        """The connection's parsed settings, read once per (connection id, event loop)."""
        config = (await self._astate()).config
        assert config is not None
        return config

    async def a_find_jobs(self, name: str, path: str | None = None) -> list[JobSummary]:
        """Async :meth:`find_jobs`: every job named exactly ``name`` (and in ``path``), every page."""
        from airflow_provider_aidp.hooks.jobs import located, matches, needs_path

        items = await self._apaginate("jobs", query=[("displayName", name)])
        jobs = [parse_model(JobSummary, item, "GET", "/jobs", None) for item in items]
        for i, job in enumerate(jobs):
            if needs_path(job, name, path):
                jobs[i] = located(job, (await self._acall("GET", "jobs", job.key)).body)
        return [job for job in jobs if matches(job, name, path)]

    async def a_run_url(self, run_key: str, job_key: str | None = None) -> str:
        """Async :meth:`get_run_url` (reads the connection without blocking the triggerer's loop)."""
        config = await self.a_config()
        return config.console_url(
            workspace_key=self.workspace_key or config.workspace_key, run_key=run_key, job_key=job_key
        )

    async def a_cancel_job_run(self, run_key: str) -> JobRun:
        """Async :meth:`cancel_job_run` (deadline passed, or a user killed the deferred task)."""
        segments = ("jobRuns", run_key, "actions", "cancel")
        resp = await self._acall("POST", *segments, retry_token=new_retry_token(), allow_empty=True)
        return _answered_run(resp, run_key) or await self.a_get_job_run(run_key)


def _with_parameters(payload: dict[str, Any], parameters: Any) -> dict[str, Any]:
    params = string_parameters(parameters)  # THE converter: True -> "true", containers refused
    if params is not None:
        payload["parameters"] = [{"name": k, "value": v} for k, v in params.items()]
    return payload


def _answered_run(resp: ApiResponse, run_key: str) -> JobRun | None:
    """The run a cancel answered with; ``None`` when the answer had no body."""
    if resp.body is None:
        return None
    return parse_model(JobRun, resp.body, "POST", f"/jobRuns/{run_key}/actions/cancel", resp.request_id)


def _run_filters(job_keys: Sequence[str], statuses: Sequence[str] | None) -> list[tuple[str, Any]]:
    return [*(("jobKey", k) for k in job_keys), *(("status", s) for s in statuses or ())]


__all__ = ["USER_AGENT", "AIDPHook", "close_async_sessions"]
