"""HTTP for AIDPHook: one request plan, one retry decision, one answer parser, two senders.

``plan_request`` builds what both transports send (the URL from the connection's one URL
builder, headers, body); ``send_sync`` (``requests``) and ``send_async`` (``aiohttp``, paced per
connection and event loop) sign and send ONE attempt; ``conclude`` turns that attempt's answer
into a parsed :class:`ApiResponse`, the seconds to wait before resending (``RetryPolicy``) or the
right ``AIDPError``. A response that is not 2xx, or a 2xx whose body is not the JSON object
expected (HTML from a proxy, a truncated or empty body), is an error here, never an empty result.

Nothing here knows what an answer *means* (that is ``hooks/service.py``), and nothing here imports
``requests``, ``aiohttp`` or ``oci`` at module import (DAG files import the hook).

Not ``tenacity``: the retry decision needs the attempt's answer (status, ``Retry-After``, whether
the body parsed) and must be one function for a ``requests`` and an ``aiohttp`` sender; tenacity
would wrap each sender in its own sync or async ``Retrying``, the twins this module avoids.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import math
import random
import secrets
import string
import threading
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError

from airflow_provider_aidp import __version__
from airflow_provider_aidp.exceptions import AIDPResponseError, AIDPTransportError, error_class_for_status
from airflow_provider_aidp.hooks import auth
from airflow_provider_aidp.hooks.connection import DEFAULT_MAX_REQUESTS_PER_SECOND, AIDPConnectionConfig

if TYPE_CHECKING:
    import requests

log = logging.getLogger("airflow_provider_aidp.hooks.aidp")

USER_AGENT = f"airflow-provider-aidp/{__version__}"
_M = TypeVar("_M", bound=BaseModel)


# --- what one logical call sends ----------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One API call as an operation of ``hooks/service.py`` asks for it (no URL, no headers yet).

    ``allow_empty``: a 2xx with no body at all is an answer too (body ``None``), for calls the
    service may answer without describing the result (a cancel's 202 work request, a PUT's 204).
    ``ahead``: the call stands in for many others (the status sweep's listing answers for every
    watched run), so it takes its pacing slot ahead of queued requests
    (:meth:`RequestRateLimiter.reserve`).
    """

    method: str
    segments: tuple[str, ...]
    query: tuple[tuple[str, Any], ...] = ()
    payload: Any = None
    retry_token: str | None = None
    if_match: str | None = None
    expect_json: bool = True
    allow_empty: bool = False
    ahead: bool = False

    @property
    def path(self) -> str:
        return "/" + "/".join(self.segments)


@dataclass(frozen=True)
class RequestPlan:
    """Everything about one logical call that does not change between attempts."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None
    expect_json: bool
    request_id: str
    allow_empty: bool = False
    ahead: bool = False

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    @property
    def token_protected(self) -> bool:
        return "opc-retry-token" in self.headers


def plan_request(config: AIDPConnectionConfig, workspace: str, call: Call) -> RequestPlan:
    request_id = new_request_id()
    headers = {
        "accept": "application/json",
        "content-type": "application/json",
        "opc-request-id": request_id,
        "user-agent": USER_AGENT,
    }
    if call.retry_token:
        headers["opc-retry-token"] = call.retry_token
    if call.if_match:
        headers["if-match"] = call.if_match
    payload = call.payload
    body = None if payload is None else json.dumps(payload, separators=(",", ":")).encode("utf-8")
    url = config.url(workspace, *call.segments, query=call.query)
    return RequestPlan(
        call.method, url, headers, body, call.expect_json, request_id, call.allow_empty, call.ahead
    )


# --- one answer -----------------------------------------------------------------------------------


@dataclass
class ApiResponse:
    status: int
    headers: Mapping[str, str]
    body: Any  # parsed JSON object, or None when no body was expected (or allowed and absent)

    @property
    def request_id(self) -> str | None:
        return header(self.headers, "opc-request-id")

    @property
    def next_page(self) -> str | None:
        return header(self.headers, "opc-next-page")


@dataclass(frozen=True)
class Answer:
    """What arrived for one attempt, before it is read."""

    status: int
    headers: Mapping[str, str]
    raw: bytes


def header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        lowered = {k.lower(): v for k, v in headers.items()}
        value = lowered.get(name.lower())
    return value


def _snippet(raw: bytes) -> str:
    text = raw[:200].decode("utf-8", errors="replace").strip()
    return " ".join(text.split())


def parse_response(
    *,
    status: int,
    headers: Mapping[str, str],
    raw: bytes,
    method: str,
    path: str,
    request_id: str,
    expect_json: bool,
    config: AIDPConnectionConfig | None,
    allow_empty: bool = False,
) -> ApiResponse:
    """Turn one HTTP answer into an :class:`ApiResponse` or the right ``AIDPApiError`` subclass."""
    opc_request_id = header(headers, "opc-request-id") or request_id
    if not 200 <= status < 300:
        code, message = _error_body(raw)
        if not message:
            snippet = _snippet(raw)
            message = f"HTTP {status}" + (f" (non-JSON body: {snippet!r})" if snippet else " (empty body)")
        if status == 401 and config is not None:
            message += _auth_hint(config)
        elif status == 404 and config is not None:
            message += (
                f" (check the key, workspace_key, ai_data_platform_id and api_version={config.api_version})"
            )
        raise error_class_for_status(status)(
            message, status=status, code=code, opc_request_id=opc_request_id, method=method, path=path
        )
    if not expect_json or (allow_empty and not raw.strip()):
        return ApiResponse(status, headers, None)
    body, problem = _json_object(raw, (header(headers, "content-type") or "").lower())
    if problem:
        raise AIDPResponseError(
            f"Unexpected {status} response: {problem}",
            status=status,
            opc_request_id=opc_request_id,
            method=method,
            path=path,
        )
    return ApiResponse(status, headers, body)


def _error_body(raw: bytes) -> tuple[str | None, str | None]:
    """The OCI error body's ``code`` and ``message``, where there is one."""
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        return None, None
    if not isinstance(body, dict):
        return None, None
    code, message = body.get("code"), body.get("message")
    return (code if isinstance(code, str) else None), (message if isinstance(message, str) else None)


def _json_object(raw: bytes, content_type: str) -> tuple[Any, str | None]:
    if not raw.strip():
        return None, "empty body"
    if "html" in content_type:
        return None, f"HTML instead of JSON: {_snippet(raw)!r}"
    try:
        body = json.loads(raw)
    except ValueError:
        return None, f"body is not valid JSON (truncated?): {_snippet(raw)!r}"
    if not isinstance(body, dict):
        return None, f"expected a JSON object, got {type(body).__name__}"
    return body, None


def _auth_hint(config: AIDPConnectionConfig) -> str:
    if config.auth_type == "security_token":
        return (
            f". The session token of profile [{config.profile}] is expired or invalid: run "
            f"`oci session refresh --profile {config.profile}` (or `oci session authenticate`)."
        )
    if config.auth_type == "api_key":
        return (
            ". The request signature was refused: check tenancy, user, fingerprint and that the "
            "public key is uploaded for the user."
        )
    return f". The {config.auth_type} signer was refused: check its policies and dynamic group."


def parse_model(cls: type[_M], body: Any, method: str, path: str, request_id: str | None) -> _M:
    """``body`` read as ``cls``; a mismatch is an ``AIDPResponseError`` (never a half-read model)."""
    try:
        return cls.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise AIDPResponseError(
            f"Response does not match {cls.__name__}: {exc.error_count()} validation error(s), "
            f"first: {first.get('loc')} {first.get('msg')}",
            status=200,
            opc_request_id=request_id,
            method=method,
            path=path,
        ) from None


# --- the retry decision ---------------------------------------------------------------------------

RETRY_STATUSES = frozenset({429, 500}) | frozenset(range(502, 600))  # not 501 Not Implemented
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
_TOKEN_CHARS = string.ascii_letters + string.digits


def new_request_id() -> str:
    """An ``opc-request-id`` like the OCI SDK's: 32 upper-case hex characters."""
    return uuid.uuid4().hex.upper()


def new_retry_token() -> str:
    """A random 30-character ``opc-retry-token`` (the SDK's shape) for one logical call."""
    return "".join(secrets.choice(_TOKEN_CHARS) for _ in range(30))


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter; ``Retry-After`` honoured but capped at ``wait_max``.

    A POST that creates something may only be resent with an ``opc-retry-token``: the service
    answers the repeat with the original result instead of creating a duplicate (a second job run,
    say). That is also why a token-protected POST whose 2xx answer arrived garbled is resent. One
    logical call makes at most ``max_retries + 1`` attempts, whatever went wrong.
    """

    max_retries: int
    wait_max: float
    wait_base: float = 1.0

    def resend_after(
        self, attempt: int, method: str, token_protected: bool, failure: str, retry_after: str | None = None
    ) -> float | None:
        """Seconds to wait before resending after attempt number ``attempt`` failed, or ``None``: give up.

        ``failure`` is ``"lost"`` (no answer), ``"status"`` (a retryable HTTP status) or
        ``"garbled"`` (a 2xx whose body could not be read: only a token-protected POST may be resent).
        """
        idempotent = method.upper() in IDEMPOTENT_METHODS
        allowed = (
            (token_protected and not idempotent) if failure == "garbled" else (idempotent or token_protected)
        )
        return self.delay(attempt, retry_after) if allowed and attempt <= self.max_retries else None

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        hinted = parse_retry_after(retry_after)
        if hinted is not None:
            return min(max(hinted, 0.0), self.wait_max)
        ceiling = min(self.wait_max, self.wait_base * (2 ** (attempt - 1)))
        return random.uniform(0, ceiling)


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: an integer, or an HTTP date (then relative to now)."""
    if not value:
        return None
    value = value.strip()
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)  # raises on a bad date (Python >= 3.10)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


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


# --- the two senders ------------------------------------------------------------------------------


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

    await state.limiter.acquire(ahead=plan.ahead)
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


# --- pagination -----------------------------------------------------------------------------------


class Pager:
    """Where one listing is: the query of the next page and what a page answered."""

    def __init__(
        self, path: str, query: Sequence[tuple[str, Any]], page_size: int, limit: int | None
    ) -> None:
        self.path = path
        self.filters, self.page_size, self.limit = list(query), page_size, limit
        self.page: str | None = None
        self.seen: set[str] = set()
        self.taken = 0
        self.done = False

    def query(self) -> tuple[tuple[str, Any], ...]:
        size = self.page_size if self.limit is None else max(1, min(self.page_size, self.limit - self.taken))
        return (*self.filters, ("limit", size), ("page", self.page))

    def take(self, resp: ApiResponse) -> list[dict[str, Any]]:
        """The page's items (up to ``limit``); a repeated ``opc-next-page`` token is an error."""
        items = resp.body.get("items") if isinstance(resp.body, dict) else None
        if not isinstance(items, list):
            raise AIDPResponseError(
                "List response has no 'items' array",
                status=200,
                opc_request_id=resp.request_id,
                method="GET",
                path=self.path,
            )
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


# --- request pacing (async) -----------------------------------------------------------------------

#: A 429 halves the pace, never below this fraction of the ceiling.
MIN_RATE_FRACTION = 1 / 16
#: Each request that is not throttled wins back this fraction of the ceiling.
RECOVERY_FRACTION = 1 / 20


class RequestRateLimiter:
    """A GCRA token bucket: ``rate`` requests per second on average, bursts of ``burst``.

    One triggerer may follow every AIDP run of a deployment, and after a restart a thousand
    triggers wake within the same second: every async request on one connection in one event loop
    takes a slot here first, so the API sees at most ``max_requests_per_second`` from the process.
    ``reserve()`` books the next slot and says how long to wait for it, so waiters are served in
    arrival order without a queue or a lock (the loop is single-threaded). A 429 halves the rate;
    requests that get through restore it step by step. ``rate <= 0`` disables pacing.

    A request booked ``ahead`` (one that answers for many, the status sweep's listing) does not
    wait behind a backlog: if thousands of triggers fell back to their own GETs, the listing that
    ends the fallback would otherwise queue behind all of them (N / rate seconds) and the fallback
    would feed itself. It goes as soon as the rate allows among such requests, and pushes the
    queue back one slot, so the rate holds on average; in the short run the ceiling is exceeded
    by at most the ``ahead`` requests sent while a backlog drains.
    """

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.max_rate = float(rate)
        self.rate = self.max_rate
        self.burst = max(1.0, float(burst if burst is not None else rate))
        self._tat = -math.inf  # theoretical arrival time of the next request (monotonic seconds)
        self._ahead = -math.inf  # earliest time of the next request booked ahead

    @property
    def enabled(self) -> bool:
        return self.max_rate > 0

    def reserve(self, now: float | None = None, *, ahead: bool = False) -> float:
        """Take the next slot; return the seconds to wait before sending (0 when there is room).
        ``ahead``: take it before the queued requests (the class docstring says when)."""
        if not self.enabled:
            return 0.0
        now = time.monotonic() if now is None else now
        interval = 1.0 / self.rate
        tat = max(self._tat, now)
        wait = max(0.0, tat - (self.burst - 1.0) * interval - now)
        self._tat = tat + interval
        if ahead:
            wait = min(wait, max(0.0, self._ahead - now))
            self._ahead = now + wait + interval
        return wait

    async def acquire(self, *, ahead: bool = False) -> None:
        wait = self.reserve(ahead=ahead)
        if wait > 0:
            await asyncio.sleep(wait)

    def throttled(self) -> None:
        """The service answered 429: halve the pace (not below ``MIN_RATE_FRACTION`` of the ceiling)."""
        if self.enabled:
            self.rate = max(self.max_rate * MIN_RATE_FRACTION, self.rate / 2.0)

    def succeeded(self) -> None:
        """A request was not throttled: win back ``RECOVERY_FRACTION`` of the ceiling."""
        if self.enabled and self.rate < self.max_rate:
            self.rate = min(self.max_rate, self.rate + self.max_rate * RECOVERY_FRACTION)


# --- async shared state ---------------------------------------------------------------------------


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
