"""AIDPHook: the ONE place that signs, sends, retries and parses AIDP Workflow API calls.

Sync calls use ``requests``; async calls (triggers) use ``aiohttp`` and share one session, one
signer and one request pacer (``hooks/pacing.py``) per (connection id, event loop) across every hook
instance in the process. Both paths use the same signer (``hooks/auth.py``), the same retry
policy (:class:`RetryPolicy`) and the same response parsing (:func:`parse_response`), so they
cannot drift apart.

Importing this module imports neither ``oci`` nor ``aiohttp`` (DAG files import operators, which
import this); they load inside the functions that send requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
import weakref
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow.sdk import BaseHook

from airflow_provider_aidp import __version__
from airflow_provider_aidp.exceptions import (
    AIDPAuthError,
    AIDPConfigError,
    AIDPDuplicateJobError,
    AIDPError,
    AIDPNotFoundError,
    AIDPResponseError,
    AIDPTransportError,
)
from airflow_provider_aidp.hooks import auth
from airflow_provider_aidp.hooks.connection import DEFAULT_CONN_ID, AIDPConnectionConfig
from airflow_provider_aidp.hooks.pacing import (
    DEFAULT_MAX_REQUESTS_PER_SECOND,
    RequestRateLimiter,
    rate_from_extra,
)
from airflow_provider_aidp.hooks.responses import (
    ApiResponse,
    header,
    parse_items,
    parse_model,
    parse_response,
)
from airflow_provider_aidp.hooks.retry import RetryPolicy, new_request_id, new_retry_token
from airflow_provider_aidp.models.runs import (
    ExportedTaskRunOutputContents,
    JobRun,
    JobRunSummary,
    JobSummary,
    TaskRun,
    TaskRunOutput,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence

    import requests

log = logging.getLogger(__name__)

USER_AGENT = f"airflow-provider-aidp/{__version__}"


# --- async shared state ----------------------------------------------------------------------


class _AsyncState:
    """One aiohttp session, config, signer and request pacer for one connection id on one event loop."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.config: AIDPConnectionConfig | None = None
        self.signer: Any = None
        self.session: Any = None
        self.limiter = RequestRateLimiter(DEFAULT_MAX_REQUESTS_PER_SECOND)
        self.proxy: Any = None
        self.proxy_auth: Any = None
        self.leases = 0  # long-lived users (triggers) holding the session open


def _signer_and_async_imports(config: AIDPConnectionConfig) -> Any:
    """Build (or reuse) the signer and import the async transport, in a worker thread.

    The first async call of a process imports ``oci`` and ``aiohttp`` (about a second of CPU on a
    small machine); done on the event loop it would stall every other trigger of the triggerer.
    """
    import aiohttp  # noqa: F401
    import requests.structures  # noqa: F401
    import yarl  # noqa: F401

    return auth.get_signer(config)


def _env_proxy(endpoint: str) -> tuple[Any, Any]:
    """(proxy URL, proxy auth) that the environment sets for ``endpoint`` (honours NO_PROXY)."""
    from aiohttp.helpers import get_env_proxy_for_url
    from yarl import URL

    try:
        return get_env_proxy_for_url(URL(endpoint))
    except LookupError:
        return None, None


_ASYNC_STATES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _AsyncState]] = (
    weakref.WeakKeyDictionary()
)
_ASYNC_STATES_LOCK = threading.Lock()


def _async_state(conn_id: str) -> _AsyncState:
    loop = asyncio.get_running_loop()
    with _ASYNC_STATES_LOCK:
        per_loop = _ASYNC_STATES.setdefault(loop, {})
        state = per_loop.get(conn_id)
        if state is None:
            state = per_loop[conn_id] = _AsyncState()
    return state


async def close_async_sessions() -> None:
    """Close the shared aiohttp sessions of the running loop (tests; process shutdown)."""
    loop = asyncio.get_running_loop()
    with _ASYNC_STATES_LOCK:
        per_loop = _ASYNC_STATES.pop(loop, {})
    for state in per_loop.values():
        if state.session is not None:
            await state.session.close()


# --- the hook --------------------------------------------------------------------------------


class AIDPHook(BaseHook):
    """Talk to the AIDP Workflow API of one workspace through an ``aidp`` connection."""

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

    # --- request preparation (shared) ---------------------------------------------------

    @staticmethod
    def _headers(request_id: str, retry_token: str | None, if_match: str | None) -> dict[str, str]:
        headers = {
            "accept": "application/json",
            "content-type": "application/json",
            "opc-request-id": request_id,
            "user-agent": USER_AGENT,
        }
        if retry_token:
            headers["opc-retry-token"] = retry_token
        if if_match:
            headers["if-match"] = if_match
        return headers

    @staticmethod
    def _prepare(
        signer: Any, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> requests.PreparedRequest:
        """Build and sign the exact request to send (fresh per attempt: the date is signed)."""
        import requests

        prepared = requests.Request(method, url, headers=dict(headers), data=body).prepare()
        signer(prepared)
        return prepared

    @staticmethod
    def _encode(payload: Any) -> bytes | None:
        return None if payload is None else json.dumps(payload, separators=(",", ":")).encode("utf-8")

    # --- sync transport -----------------------------------------------------------------

    def get_conn(self) -> requests.Session:
        """The hook's ``requests.Session`` (connection pooling across calls)."""
        if self._session is None:
            import requests

            self._session = requests.Session()
        return self._session

    def _call(
        self,
        method: str,
        *segments: str,
        query: Sequence[tuple[str, Any]] | None = None,
        payload: Any = None,
        retry_token: str | None = None,
        if_match: str | None = None,
        expect_json: bool = True,
    ) -> ApiResponse:
        import requests

        config = self.config
        url = config.url(self._workspace_for(config), *segments, query=query)
        path = urlsplit(url).path
        request_id = new_request_id()
        headers = self._headers(request_id, retry_token, if_match)
        body = self._encode(payload)
        policy = self._policy(config)
        signer = auth.get_signer(config)
        session = self.get_conn()
        # session.send() skips the environment (proxies, REQUESTS_CA_BUNDLE); merge it explicitly.
        env_settings = session.merge_environment_settings(url, {}, None, None, None)
        attempt = 0
        while True:
            attempt += 1
            prepared = self._prepare(signer, method, url, headers, body)
            try:
                resp = session.send(
                    prepared, timeout=self._timeout_for(config), allow_redirects=False, **env_settings
                )
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
            ) as exc:
                reason = f"{type(exc).__name__}"
                if attempt <= policy.max_retries and policy.may_retry(method, headers):
                    self._log_retry(method, path, attempt, policy, reason, request_id, None)
                    self._sleep(policy.delay(attempt))
                    continue
                raise AIDPTransportError(
                    f"{method} {path} failed after {attempt} attempt(s): {reason} "
                    f"(opc-request-id: {request_id})",
                    method=method,
                    path=path,
                ) from None
            raw = resp.content
            if (
                policy.retryable_status(resp.status_code)
                and attempt <= policy.max_retries
                and policy.may_retry(method, headers)
            ):
                retry_after = resp.headers.get("retry-after")
                self._log_retry(
                    method,
                    path,
                    attempt,
                    policy,
                    f"HTTP {resp.status_code}",
                    resp.headers.get("opc-request-id") or request_id,
                    retry_after,
                )
                self._sleep(policy.delay(attempt, retry_after))
                continue
            return parse_response(
                status=resp.status_code,
                headers=resp.headers,
                raw=raw,
                method=method,
                path=path,
                request_id=request_id,
                expect_json=expect_json,
                config=config,
            )

    @staticmethod
    def _log_retry(
        method: str,
        path: str,
        attempt: int,
        policy: RetryPolicy,
        reason: str,
        request_id: str,
        retry_after: str | None,
    ) -> None:
        log.warning(
            "AIDP %s %s: %s; retry %d/%d%s (opc-request-id: %s)",
            method,
            path,
            reason,
            attempt,
            policy.max_retries,
            f" after Retry-After {retry_after}" if retry_after else "",
            request_id,
        )

    def _paginate(
        self,
        *segments: str,
        query: Sequence[tuple[str, Any]] = (),
        limit: int | None = None,
        page_size: int = 100,
    ) -> Iterator[dict[str, Any]]:
        """Yield items across every page (``opc-next-page``), up to ``limit``."""
        yielded = 0
        page: str | None = None
        seen: set[str] = set()
        while True:
            size = page_size if limit is None else max(1, min(page_size, limit - yielded))
            params = [*query, ("limit", size), ("page", page)]
            resp = self._call("GET", *segments, query=params)
            path = "/" + "/".join(segments)
            for item in parse_items(resp.body, "GET", path, resp.request_id):
                yield item
                yielded += 1
                if limit is not None and yielded >= limit:
                    return
            page = resp.next_page
            if not page:
                return
            if page in seen:
                raise AIDPResponseError(
                    f"Pagination loop: opc-next-page {page!r} repeated",
                    status=resp.status,
                    opc_request_id=resp.request_id,
                    method="GET",
                    path=path,
                )
            seen.add(page)

    # --- jobs ---------------------------------------------------------------------------

    def list_jobs(
        self,
        *,
        name: str | None = None,
        path: str | None = None,
        limit: int | None = None,
        page_size: int = 100,
    ) -> Iterator[JobSummary]:
        query = [("displayName", name), ("path", path)]
        for item in self._paginate("jobs", query=query, limit=limit, page_size=page_size):
            yield parse_model(JobSummary, item, "GET", "/jobs", None)

    def find_jobs(self, name: str, path: str | None = None) -> list[JobSummary]:
        """Every job named exactly ``name`` (and in folder ``path``), reading every page.

        Only the name goes to the server: what its ``path`` filter means (the folder, folder +
        name, or nothing) is not documented, so the folder is matched here (``jobs.same_folder``).
        """
        from airflow_provider_aidp.hooks.jobs import matches

        return [job for job in self.list_jobs(name=name) if matches(job, name, path)]

    def find_job(self, name: str, path: str | None = None) -> JobSummary | None:
        jobs = self.find_jobs(name, path)
        if len(jobs) > 1:
            keys = ", ".join(job.key for job in jobs)
            raise AIDPDuplicateJobError(
                f"{len(jobs)} jobs are named {name!r}{f' in {path!r}' if path else ''} ({keys}); "
                "pass the job key or a path to choose one."
            )
        return jobs[0] if jobs else None

    def get_job(self, job_key: str) -> tuple[dict[str, Any], str | None]:
        resp = self._call("GET", "jobs", job_key)
        return resp.body, header(resp.headers, "etag")

    def create_job(self, body: dict[str, Any], *, retry_token: str | None = None) -> dict[str, Any]:
        return self._call("POST", "jobs", payload=body, retry_token=retry_token or new_retry_token()).body

    def update_job(
        self, job_key: str, body: dict[str, Any], *, if_match: str | None = None
    ) -> dict[str, Any]:
        return self._call("PUT", "jobs", job_key, payload=body, if_match=if_match).body

    def delete_job(self, job_key: str) -> None:
        self._call("DELETE", "jobs", job_key, expect_json=False)

    def upsert_job(self, spec: Any, *, dry_run: bool = False) -> Any:
        """Create or update a job to match ``spec`` (a ``JobSpec`` or dict); see ``hooks.upsert``."""
        from airflow_provider_aidp.hooks.upsert import upsert_job

        return upsert_job(self, spec, dry_run=dry_run)

    # --- runs ---------------------------------------------------------------------------

    @staticmethod
    def _parameters(parameters: Mapping[str, Any] | None) -> list[dict[str, str]] | None:
        if parameters is None:
            return None
        if not isinstance(parameters, dict):
            raise AIDPConfigError("parameters must be a mapping of name -> value.", field="parameters")
        return [{"name": str(k), "value": str(v)} for k, v in parameters.items()]

    def create_job_run(
        self, job_key: str, parameters: dict[str, str] | None = None, *, retry_token: str | None = None
    ) -> JobRun:
        """Start a run. Pass a deterministic ``retry_token`` to make a retried Airflow task idempotent."""
        payload: dict[str, Any] = {"jobKey": job_key}
        params = self._parameters(parameters)
        if params is not None:
            payload["parameters"] = params
        resp = self._call("POST", "jobRuns", payload=payload, retry_token=retry_token or new_retry_token())
        return parse_model(JobRun, resp.body, "POST", "/jobRuns", resp.request_id)

    def get_job_run(self, run_key: str, *, include_task_runs: bool = False) -> JobRun:
        """The run; ``include_task_runs`` asks for ``taskRunSummaryMap`` (each task's latest attempt)."""
        query = [("shouldIncludeTaskRunSummaries", "true")] if include_task_runs else None
        resp = self._call("GET", "jobRuns", run_key, query=query)
        return parse_model(JobRun, resp.body, "GET", "/jobRuns/{key}", resp.request_id)

    def list_job_runs(
        self, *, job_key: str | None = None, statuses: list[str] | None = None, limit: int | None = None
    ) -> Iterator[JobRunSummary]:
        query: list[tuple[str, Any]] = [("jobKey", job_key)]
        query += [("status", s) for s in statuses or ()]
        for item in self._paginate("jobRuns", query=query, limit=limit):
            yield parse_model(JobRunSummary, item, "GET", "/jobRuns", None)

    def list_task_runs(self, run_key: str) -> Iterator[TaskRun]:
        for item in self._paginate("taskRuns", query=[("jobRunKey", run_key)]):
            yield parse_model(TaskRun, item, "GET", "/taskRuns", None)

    def get_task_run(self, task_run_key: str) -> TaskRun:
        resp = self._call("GET", "taskRuns", task_run_key)
        return parse_model(TaskRun, resp.body, "GET", "/taskRuns/{key}", resp.request_id)

    def fetch_task_run_output(self, task_run_key: str, output_key: str | None = None) -> TaskRunOutput:
        payload = {"outputKey": output_key} if output_key else None  # no body rather than "{}"
        resp = self._call(
            "POST",
            "taskRuns",
            task_run_key,
            "actions",
            "fetchOutput",
            payload=payload,
            retry_token=new_retry_token(),
        )
        return parse_model(
            TaskRunOutput, resp.body, "POST", "/taskRuns/{key}/actions/fetchOutput", resp.request_id
        )

    def export_task_run_output(
        self, task_run_key: str, output_key: str, fmt: str = "HTML"
    ) -> ExportedTaskRunOutputContents:
        if fmt not in ("HTML", "IPYNB"):
            raise AIDPConfigError(f"fmt must be 'HTML' or 'IPYNB', got {fmt!r}.", field="fmt")
        resp = self._call(
            "POST",
            "taskRuns",
            task_run_key,
            "outputs",
            output_key,
            "actions",
            "export",
            payload={"format": fmt},
        )
        return parse_model(
            ExportedTaskRunOutputContents, resp.body, "POST", "/taskRuns/.../export", resp.request_id
        )

    def cancel_job_run(self, run_key: str) -> JobRun:
        resp = self._call("POST", "jobRuns", run_key, "actions", "cancel", retry_token=new_retry_token())
        return parse_model(JobRun, resp.body, "POST", "/jobRuns/{key}/actions/cancel", resp.request_id)

    def cancel_job_runs(self, job_key: str) -> None:
        self._call(
            "POST",
            "jobs",
            job_key,
            "actions",
            "cancelJobRuns",
            retry_token=new_retry_token(),
            expect_json=False,
        )

    def repair_job_run(
        self,
        run_key: str,
        repair_tasks: list[dict[str, Any]],
        *,
        parameters: dict[str, str] | None = None,
        retry_token: str | None = None,
    ) -> JobRun:
        """Re-run chosen tasks of a root run with ``repairTasks`` (not the deprecated ``taskKeys``)."""
        if not repair_tasks:
            raise AIDPConfigError("repair_tasks must name at least one task.", field="repair_tasks")
        payload: dict[str, Any] = {"repairTasks": repair_tasks}
        params = self._parameters(parameters)
        if params is not None:
            payload["parameters"] = params
        resp = self._call(
            "POST",
            "jobRuns",
            run_key,
            "actions",
            "repair",
            payload=payload,
            retry_token=retry_token or new_retry_token(),
        )
        return parse_model(JobRun, resp.body, "POST", "/jobRuns/{key}/actions/repair", resp.request_id)

    def get_run_url(self, run_key: str, job_key: str | None = None) -> str:
        """The run's console URL from the connection's ``console_url_template``."""
        return self.config.console_url(
            workspace_key=self.workspace_key or self.config.workspace_key, run_key=run_key, job_key=job_key
        )

    def test_connection(self) -> tuple[bool, str]:
        """A cheap authenticated GET (``/jobs?limit=1``); used by the UI's Test button."""
        try:
            config = self.config
            workspace = self._workspace_for(config)
            self._call("GET", "jobs", query=[("limit", 1)])
        except AIDPAuthError as exc:
            return False, f"Authentication failed ({exc.status}): {exc.message}"
        except AIDPNotFoundError as exc:
            return False, (
                f"Not found (404): wrong ai_data_platform_id, workspace_key or api_version "
                f"({exc.path}): {exc.message}"
            )
        except AIDPError as exc:
            return False, str(exc)
        return True, (
            f"Connected to {config.endpoint} ({config.surface}, api_version {config.api_version}), "
            f"workspace {workspace!r}."
        )

    # --- async transport ----------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def session_lease(self) -> AsyncIterator[None]:
        """Keep this connection's shared async session open while a long-lived caller (a trigger) works.

        The last lease released on a loop closes the session. In a triggerer leases overlap and the
        session lives on; a loop that ends (``dag.test()`` runs each trigger in its own
        ``asyncio.run``) is left with no unclosed connections.
        """
        state = _async_state(self.aidp_conn_id)
        state.leases += 1
        try:
            yield
        finally:
            state.leases -= 1
            if state.leases == 0 and state.session is not None:
                session, state.session = state.session, None
                await session.close()

    async def _astate(self) -> _AsyncState:
        """Shared per (conn id, loop): async connection lookup, signer built off-loop, one session."""
        state = _async_state(self.aidp_conn_id)
        if state.session is not None and not state.session.closed:
            return state
        async with state.lock:
            if state.config is None:
                conn = await self.aget_connection(self.aidp_conn_id)
                config = AIDPConnectionConfig.from_connection(conn, register_secrets=False)
                await config.aregister_secrets()
                state.limiter = RequestRateLimiter(rate_from_extra(getattr(conn, "extra_dejson", None)))
                state.config = config
            if state.signer is None:
                state.signer = await asyncio.to_thread(_signer_and_async_imports, state.config)
            if state.session is None or state.session.closed:
                import aiohttp

                # Proxies come from the environment once per session: aiohttp's trust_env would look
                # up netrc and proxies in a worker thread on every request (two thread hops a poll).
                state.proxy, state.proxy_auth = await asyncio.to_thread(_env_proxy, state.config.endpoint)
                state.session = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=100), auto_decompress=True, trust_env=False
                )
        return state

    async def _acall(
        self,
        method: str,
        *segments: str,
        query: Sequence[tuple[str, Any]] | None = None,
        payload: Any = None,
        retry_token: str | None = None,
        expect_json: bool = True,
    ) -> ApiResponse:
        import aiohttp
        from yarl import URL

        state = await self._astate()
        config = state.config
        assert config is not None
        url = config.url(self._workspace_for(config), *segments, query=query)
        path = urlsplit(url).path
        request_id = new_request_id()
        headers = self._headers(request_id, retry_token, None)
        body = self._encode(payload)
        policy = self._policy(config)
        timeout = aiohttp.ClientTimeout(total=self._timeout_for(config))
        attempt = 0
        while True:
            attempt += 1
            await state.limiter.acquire()
            # Signed after the pacing wait (the signed date must be fresh) and sent exactly as
            # signed: the same URL bytes, headers (incl. host) and body.
            send_headers = auth.sign_request(state.signer, method, url, headers, body)
            try:
                async with state.session.request(
                    method,
                    URL(url, encoded=True),
                    headers=send_headers,
                    data=body,
                    timeout=timeout,
                    allow_redirects=False,
                    proxy=state.proxy,
                    proxy_auth=state.proxy_auth,
                ) as resp:
                    raw = await resp.read()
                    status, resp_headers = resp.status, resp.headers
            except (aiohttp.ClientConnectionError, asyncio.TimeoutError, aiohttp.ClientPayloadError) as exc:
                reason = type(exc).__name__
                if attempt <= policy.max_retries and policy.may_retry(method, headers):
                    self._log_retry(method, path, attempt, policy, reason, request_id, None)
                    await self._asleep(policy.delay(attempt))
                    continue
                raise AIDPTransportError(
                    f"{method} {path} failed after {attempt} attempt(s): {reason} "
                    f"(opc-request-id: {request_id})",
                    method=method,
                    path=path,
                ) from None
            if status == 429:
                state.limiter.throttled()
            else:
                state.limiter.succeeded()
            if (
                policy.retryable_status(status)
                and attempt <= policy.max_retries
                and policy.may_retry(method, headers)
            ):
                retry_after = resp_headers.get("retry-after")
                self._log_retry(
                    method,
                    path,
                    attempt,
                    policy,
                    f"HTTP {status}",
                    resp_headers.get("opc-request-id") or request_id,
                    retry_after,
                )
                await self._asleep(policy.delay(attempt, retry_after))
                continue
            return parse_response(
                status=status,
                headers=resp_headers,
                raw=raw,
                method=method,
                path=path,
                request_id=request_id,
                expect_json=expect_json,
                config=config,
            )

    async def _apaginate(self, *segments: str, query: Sequence[tuple[str, Any]] = ()) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        page: str | None = None
        seen: set[str] = set()
        path = "/" + "/".join(segments)
        while True:
            resp = await self._acall("GET", *segments, query=[*query, ("limit", 100), ("page", page)])
            items.extend(parse_items(resp.body, "GET", path, resp.request_id))
            page = resp.next_page
            if not page:
                return items
            if page in seen:
                raise AIDPResponseError(
                    f"Pagination loop: opc-next-page {page!r} repeated",
                    status=resp.status,
                    opc_request_id=resp.request_id,
                    method="GET",
                    path=path,
                )
            seen.add(page)

    async def a_get_job_run(self, run_key: str) -> JobRun:
        resp = await self._acall("GET", "jobRuns", run_key)
        return parse_model(JobRun, resp.body, "GET", "/jobRuns/{key}", resp.request_id)

    async def a_list_job_runs(
        self, *, job_key: str | None = None, statuses: Sequence[str] | None = None
    ) -> list[JobRunSummary]:
        """Every page of ``GET /jobRuns`` (one list per call, however many runs; used by event triggers)."""
        query: list[tuple[str, Any]] = [("jobKey", job_key)]
        query += [("status", s) for s in statuses or ()]
        items = await self._apaginate("jobRuns", query=query)
        return [parse_model(JobRunSummary, item, "GET", "/jobRuns", None) for item in items]

    async def a_find_jobs(self, name: str, path: str | None = None) -> list[JobSummary]:
        """Async :meth:`find_jobs`: every job named exactly ``name`` (and in ``path``), every page."""
        items = await self._apaginate("jobs", query=[("displayName", name), ("path", path)])
        jobs = [parse_model(JobSummary, item, "GET", "/jobs", None) for item in items]
        return [job for job in jobs if job.name == name and (path is None or job.path == path)]

    async def a_run_url(self, run_key: str, job_key: str | None = None) -> str:
        """Async :meth:`get_run_url` (reads the connection without blocking the triggerer's loop)."""
        config = (await self._astate()).config
        assert config is not None
        return config.console_url(
            workspace_key=self.workspace_key or config.workspace_key, run_key=run_key, job_key=job_key
        )

    async def a_list_task_runs(self, run_key: str) -> list[TaskRun]:
        items = await self._apaginate("taskRuns", query=[("jobRunKey", run_key)])
        return [parse_model(TaskRun, item, "GET", "/taskRuns", None) for item in items]

    async def a_get_task_run(self, task_run_key: str) -> TaskRun:
        resp = await self._acall("GET", "taskRuns", task_run_key)
        return parse_model(TaskRun, resp.body, "GET", "/taskRuns/{key}", resp.request_id)

    async def a_fetch_task_run_output(
        self, task_run_key: str, output_key: str | None = None
    ) -> TaskRunOutput:
        payload = {"outputKey": output_key} if output_key else None
        resp = await self._acall(
            "POST",
            "taskRuns",
            task_run_key,
            "actions",
            "fetchOutput",
            payload=payload,
            retry_token=new_retry_token(),
        )
        return parse_model(
            TaskRunOutput, resp.body, "POST", "/taskRuns/{key}/actions/fetchOutput", resp.request_id
        )

    async def a_cancel_job_run(self, run_key: str) -> JobRun:
        resp = await self._acall(
            "POST", "jobRuns", run_key, "actions", "cancel", retry_token=new_retry_token()
        )
        return parse_model(JobRun, resp.body, "POST", "/jobRuns/{key}/actions/cancel", resp.request_id)


__all__ = ["AIDPHook", "close_async_sessions"]
