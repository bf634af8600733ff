"""One request plan, one retry decision, two senders that each send ONE attempt.

``plan_request`` builds what both transports send; ``conclude`` turns one attempt's answer into
the parsed response, the seconds to wait before resending (``RetryPolicy.resend_after``) or the
error. ``send_sync`` (``requests``) and ``send_async`` (``aiohttp``, paced) only sign and send.
Nothing here imports ``requests``, ``aiohttp`` or ``oci`` at module import.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_provider_aidp import __version__
from airflow_provider_aidp.exceptions import AIDPResponseError, AIDPTransportError
from airflow_provider_aidp.hooks import auth
from airflow_provider_aidp.hooks.connection import DEFAULT_MAX_REQUESTS_PER_SECOND, AIDPConnectionConfig
from airflow_provider_aidp.hooks.pacing import RequestRateLimiter
from airflow_provider_aidp.hooks.responses import ApiResponse, header, parse_items, parse_response
from airflow_provider_aidp.hooks.retry import RETRY_STATUSES, RetryPolicy, new_request_id

if TYPE_CHECKING:
    import requests

log = logging.getLogger("airflow_provider_aidp.hooks.aidp")

USER_AGENT = f"airflow-provider-aidp/{__version__}"


@dataclass(frozen=True)
class RequestPlan:
    """Everything about one logical call that does not change between attempts."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None
    expect_json: bool
    request_id: str
    allow_empty: bool = False  # a 2xx with no body is an answer (see ``parse_response``)

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    @property
    def token_protected(self) -> bool:
        return "opc-retry-token" in self.headers


def plan_request(
    config: AIDPConnectionConfig,
    workspace: str,
    method: str,
    segments: Sequence[str],
    *,
    query: Sequence[tuple[str, Any]] | None = None,
    payload: Any = None,
    retry_token: str | None = None,
    if_match: str | None = None,
    expect_json: bool = True,
    allow_empty: bool = False,
) -> RequestPlan:
    request_id = new_request_id()
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
    body = None if payload is None else json.dumps(payload, separators=(",", ":")).encode("utf-8")
    url = config.url(workspace, *segments, query=query)
    return RequestPlan(method, url, headers, body, expect_json, request_id, allow_empty)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    raw: bytes


def conclude(
    plan: RequestPlan, policy: RetryPolicy, attempt: int, answer: Answer | str, config: AIDPConnectionConfig
) -> ApiResponse | float:
    """After attempt ``attempt``: the response, seconds to wait before resending, or raise the error.

    ``answer`` is what arrived, or the name of the exception that means nothing arrived.
    """
    if isinstance(answer, str):
        delay = _resend(plan, policy, attempt, "lost", answer, plan.request_id)
        if delay is not None:
            return delay
        message = f"{plan.method} {plan.path} failed after {attempt} attempt(s): {answer}"
        raise AIDPTransportError(
            f"{message} (opc-request-id: {plan.request_id})", method=plan.method, path=plan.path
        ) from None
    request_id = header(answer.headers, "opc-request-id") or plan.request_id
    if answer.status in RETRY_STATUSES:
        retry_after = header(answer.headers, "retry-after")
        delay = _resend(plan, policy, attempt, "status", f"HTTP {answer.status}", request_id, retry_after)
        if delay is not None:
            return delay
    try:
        return parse_response(
            status=answer.status,
            headers=answer.headers,
            raw=answer.raw,
            method=plan.method,
            path=plan.path,
            request_id=plan.request_id,
            expect_json=plan.expect_json,
            config=config,
            allow_empty=plan.allow_empty,
        )
    except AIDPResponseError as exc:
        if 200 <= answer.status < 300:
            garbled = f"unreadable {answer.status} answer ({exc.message}); same opc-retry-token"
            delay = _resend(plan, policy, attempt, "garbled", garbled, request_id)
            if delay is not None:
                return delay
        raise


def _resend(
    plan: RequestPlan,
    policy: RetryPolicy,
    attempt: int,
    failure: str,
    reason: str,
    request_id: str,
    retry_after: str | None = None,
) -> float | None:
    delay = policy.resend_after(attempt, plan.method, plan.token_protected, failure, retry_after)
    if delay is not None:
        hint = f" after Retry-After {retry_after}" if retry_after else ""
        where = f"{plan.method} {plan.path}: {reason}; retry {attempt}/{policy.max_retries}{hint}"
        log.warning("AIDP %s (opc-request-id: %s)", where, request_id)
    return delay


# --- the two senders ---------------------------------------------------------------------------


def prepare_sync(signer: Any, plan: RequestPlan) -> requests.PreparedRequest:
    """The signed ``requests`` request of one attempt (fresh per attempt: the date is signed)."""
    import requests

    prepared = requests.Request(plan.method, plan.url, headers=plan.headers, data=plan.body).prepare()
    # Signed over the URL requests will send (its re-quoting may differ from ours, e.g. %2E -> .).
    url = str(prepared.url)
    prepared.headers.update(auth.sign_request(signer, plan.method, url, plan.headers, plan.body))
    return prepared


def send_sync(
    session: requests.Session, signer: Any, plan: RequestPlan, timeout: float, ca_bundle: str | None = None
) -> Answer | str:
    """Sign and send one attempt with ``requests``; the exception name when no answer arrived."""
    import requests

    prepared = prepare_sync(signer, plan)
    # session.send() skips the environment (proxies, REQUESTS_CA_BUNDLE); merge it explicitly.
    # The connection's ca_bundle, when set, wins over REQUESTS_CA_BUNDLE.
    env = session.merge_environment_settings(plan.url, {}, None, ca_bundle, None)
    try:
        resp = session.send(prepared, timeout=timeout, allow_redirects=False, **env)
        return Answer(resp.status_code, resp.headers, resp.content)
    except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
        return type(exc).__name__


async def send_async(state: AsyncState, plan: RequestPlan, timeout: float) -> Answer | str:
    """Pace, sign and send one attempt with the shared ``aiohttp`` session."""
    import aiohttp
    from yarl import URL

    await state.limiter.acquire()
    # Signed after the pacing wait (the signed date must be fresh) and sent exactly as signed.
    headers = auth.sign_request(state.signer, plan.method, plan.url, plan.headers, plan.body)
    try:
        async with state.session.request(
            plan.method,
            URL(plan.url, encoded=True),
            headers=headers,
            data=plan.body,
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=False,
            proxy=state.proxy,
            proxy_auth=state.proxy_auth,
        ) as resp:
            answer = Answer(resp.status, resp.headers, await resp.read())
    except (aiohttp.ClientConnectionError, asyncio.TimeoutError, aiohttp.ClientPayloadError) as exc:
        return type(exc).__name__
    if answer.status == 429:
        state.limiter.throttled()
    else:
        state.limiter.succeeded()
    return answer


# --- pagination (shared by both loops) ----------------------------------------------------------


class Pager:
    """Where one listing is: the query of the next page and what a page answered. Both hook
    loops (sync generator, async list) only send :meth:`query` and feed :meth:`take`."""

    def __init__(
        self, segments: Sequence[str], query: Sequence[tuple[str, Any]], page_size: int, limit: int | None
    ) -> None:
        self.path = "/" + "/".join(segments)
        self.filters, self.page_size, self.limit = list(query), page_size, limit
        self.page: str | None = None
        self.seen: set[str] = set()
        self.taken = 0
        self.done = False

    def query(self) -> list[tuple[str, Any]]:
        size = self.page_size if self.limit is None else max(1, min(self.page_size, self.limit - self.taken))
        return [*self.filters, ("limit", size), ("page", self.page)]

    def take(self, resp: ApiResponse) -> list[dict[str, Any]]:
        """The page's items (up to ``limit``); a repeated ``opc-next-page`` token is an error."""
        items = parse_items(resp.body, "GET", self.path, resp.request_id)
        if self.limit is not None:
            items = items[: self.limit - self.taken]
        self.taken += len(items)
        page = None if self.limit is not None and self.taken >= self.limit else resp.next_page or None
        if page in self.seen:
            raise AIDPResponseError(
                f"Pagination loop: opc-next-page {page!r} repeated",
                status=resp.status,
                opc_request_id=resp.request_id,
                method="GET",
                path=self.path,
            )
        if page is not None:
            self.seen.add(page)
        self.page, self.done = page, page is None
        return items


# --- async shared state -------------------------------------------------------------------------


class AsyncState:
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


def signer_and_async_imports(config: AIDPConnectionConfig) -> Any:
    """Build (or reuse) the signer and import the async transport, in a worker thread.

    The first async call of a process imports ``oci`` and ``aiohttp`` (about a second of CPU on a
    small machine); done on the event loop it would stall every other trigger of the triggerer.
    """
    import aiohttp  # noqa: F401
    import requests.structures  # noqa: F401
    import yarl  # noqa: F401

    return auth.get_signer(config)


def ssl_context(ca_bundle: str | None) -> Any:
    """aiohttp's ``ssl=``: trust the connection's ``ca_bundle``, else ``REQUESTS_CA_BUNDLE`` (as the
    sync path does), else the system CAs. Built in a worker thread: loading CA files blocks."""
    import os
    import ssl

    cafile = ca_bundle or os.environ.get("REQUESTS_CA_BUNDLE") or None
    if cafile is None:
        return True
    if os.path.isdir(cafile):
        return ssl.create_default_context(capath=cafile)
    return ssl.create_default_context(cafile=cafile)


def env_proxy(endpoint: str) -> tuple[Any, Any]:
    """(proxy URL, proxy auth) that the environment sets for ``endpoint`` (honours NO_PROXY)."""
    from aiohttp.helpers import get_env_proxy_for_url
    from yarl import URL

    try:
        return get_env_proxy_for_url(URL(endpoint))
    except LookupError:
        return None, None


ASYNC_STATES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, AsyncState]] = (
    weakref.WeakKeyDictionary()
)
_ASYNC_STATES_LOCK = threading.Lock()


def async_state(conn_id: str) -> AsyncState:
    loop = asyncio.get_running_loop()
    with _ASYNC_STATES_LOCK:
        per_loop = ASYNC_STATES.setdefault(loop, {})
        state = per_loop.get(conn_id)
        if state is None:
            state = per_loop[conn_id] = AsyncState()
    return state


async def close_async_sessions() -> None:
    """Close the shared aiohttp sessions of the running loop (tests; process shutdown)."""
    loop = asyncio.get_running_loop()
    with _ASYNC_STATES_LOCK:
        per_loop = ASYNC_STATES.pop(loop, {})
    for state in per_loop.values():
        if state.session is not None:
            await state.session.close()


async def shared_state(conn_id: str, aget_connection: Callable[[str], Awaitable[Any]]) -> AsyncState:
    """The loop's state for ``conn_id``: connection read once (async), signer built off-loop, one session."""
    state = async_state(conn_id)
    if state.session is not None and not state.session.closed:
        return state
    async with state.lock:
        if state.config is None:
            conn = await aget_connection(conn_id)
            config = AIDPConnectionConfig.from_connection(conn, register_secrets=False)
            await config.aregister_secrets()
            state.limiter = RequestRateLimiter(config.max_requests_per_second)
            state.config = config
        if state.signer is None:
            state.signer = await asyncio.to_thread(signer_and_async_imports, state.config)
        if state.session is None or state.session.closed:
            import aiohttp

            # Proxies come from the environment once per session: aiohttp's trust_env would look
            # up netrc and proxies in a worker thread on every request (two thread hops a poll).
            state.proxy, state.proxy_auth = await asyncio.to_thread(env_proxy, state.config.endpoint)
            ssl = await asyncio.to_thread(ssl_context, state.config.ca_bundle)
            state.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=100, ssl=ssl), auto_decompress=True, trust_env=False
            )
    return state


@contextlib.asynccontextmanager
async def lease(conn_id: str) -> AsyncIterator[None]:
    """Keep ``conn_id``'s shared session open while a long-lived caller (a trigger) works.

    The last lease released on a loop closes the session. In a triggerer leases overlap and the
    session lives on; a loop that ends (``dag.test()`` runs each trigger in its own
    ``asyncio.run``) is left with no unclosed connections.
    """
    state = async_state(conn_id)
    state.leases += 1
    try:
        yield
    finally:
        state.leases -= 1
        if state.leases == 0 and state.session is not None:
            session, state.session = state.session, None
            await session.close()
