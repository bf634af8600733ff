"""Triggerer-wide request pacing (hooks/pacing.py) and how the async hook shares and feeds it.

Deterministic: the limiter is driven with explicit clock values, never timed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from airflow_provider_aidp.exceptions import AIDPConfigError
from airflow_provider_aidp.hooks import auth, transport
from airflow_provider_aidp.hooks.aidp import AIDPHook, close_async_sessions
from airflow_provider_aidp.hooks.connection import DEFAULT_MAX_REQUESTS_PER_SECOND, parse_number
from airflow_provider_aidp.hooks.settings import BY_NAME
from airflow_provider_aidp.hooks.transport import RequestRateLimiter
from tests.unit.hook_support import FakeConnection, inline_extra, install_connection, make_key

KEY = make_key()


def test_burst_then_steady_rate() -> None:
    limiter = RequestRateLimiter(rate=10, burst=3)
    waits = [limiter.reserve(now=100.0) for _ in range(6)]
    assert waits[:3] == [0.0, 0.0, 0.0]  # the burst goes at once
    assert waits[3:] == pytest.approx([0.1, 0.2, 0.3])  # then one slot every 1/rate seconds
    # After a quiet second the bucket is full again.
    assert limiter.reserve(now=102.0) == 0.0


def test_a_request_booked_ahead_skips_the_backlog_and_the_queue_moves_back_one_slot() -> None:
    """The status sweep's listing answers for thousands of triggers: it must not wait behind their
    fallback GETs (that wait kept the fallback going at 5,000 runs), yet the rate holds on average."""
    limiter = RequestRateLimiter(rate=10, burst=1)
    queued = [limiter.reserve(now=100.0) for _ in range(20)]  # 2 s of backlog
    assert queued[-1] == pytest.approx(1.9)
    assert limiter.reserve(now=100.0, ahead=True) == 0.0  # goes now
    assert limiter.reserve(now=100.0, ahead=True) == pytest.approx(0.1)  # ahead ones keep the rate
    assert limiter.reserve(now=100.0) == pytest.approx(2.2)  # the queue: two slots later
    assert limiter.reserve(now=200.0, ahead=True) == 0.0  # no backlog: as any request


def test_zero_disables_pacing() -> None:
    limiter = RequestRateLimiter(rate=0)
    assert not limiter.enabled
    assert [limiter.reserve(now=1.0) for _ in range(1000)] == [0.0] * 1000


def test_429_halves_the_rate_and_successes_restore_it() -> None:
    limiter = RequestRateLimiter(rate=16)
    limiter.throttled()
    assert limiter.rate == 8
    for _ in range(10):
        limiter.throttled()
    assert limiter.rate == 1  # floor: 1/16 of the ceiling
    for _ in range(100):
        limiter.succeeded()
    assert limiter.rate == 16  # never above the ceiling


def rate_from_extra(extra: Any) -> float:
    """The connection's parser of the extra (``AIDPConnectionConfig.from_connection`` uses it)."""
    value = extra.get("max_requests_per_second") if isinstance(extra, dict) else None
    return float(parse_number(BY_NAME["max_requests_per_second"], value))


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({}, DEFAULT_MAX_REQUESTS_PER_SECOND),
        ({"max_requests_per_second": "5"}, 5.0),
        ({"max_requests_per_second": 0}, 0.0),
        ({"max_requests_per_second": 2.5}, 2.5),
        (None, 20.0),
    ],
)
def test_rate_from_extra(extra: Any, expected: float) -> None:
    assert rate_from_extra(extra) == expected


@pytest.mark.parametrize("bad", [-1, "fast", True, float("inf"), float("nan"), [5]])
def test_rate_from_extra_rejects_bad_values(bad: Any) -> None:
    with pytest.raises(AIDPConfigError, match="max_requests_per_second") as err:
        rate_from_extra({"max_requests_per_second": bad})
    assert err.value.field == "max_requests_per_second"


def test_env_proxy_is_read_once_and_honours_no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    proxy, _ = transport.env_proxy("https://aidp.us-ashburn-1.oci.oraclecloud.com")
    assert str(proxy) == "http://proxy.example:3128"
    assert transport.env_proxy("https://internal.example") == (None, None)


# --- the async hook shares one limiter per connection and feeds it -----------------------------


class Answers:
    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.url = ""

    async def handler(self, request: web.Request) -> web.Response:
        status = self.statuses.pop(0) if self.statuses else 200
        if status == 200:
            return web.json_response({"key": "r1", "state": {"status": "RUNNING"}})
        return web.json_response({"code": "TooManyRequests", "message": "slow down"}, status=status)


@pytest.fixture
async def answers() -> AsyncIterator[Answers]:
    auth.clear_signer_cache()
    srv = Answers()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", srv.handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    srv.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    yield srv
    await close_async_sessions()
    await runner.cleanup()
    auth.clear_signer_cache()


async def test_hooks_of_one_connection_share_one_limiter(
    monkeypatch: pytest.MonkeyPatch, answers: Answers
) -> None:
    extra = inline_extra(KEY, max_retries=2, max_requests_per_second=7)
    install_connection(monkeypatch, FakeConnection(host=answers.url, extra=extra))
    first, second = AIDPHook("aidp_test"), AIDPHook("aidp_test")
    for hook in (first, second):
        hook._asleep = _no_sleep  # type: ignore[method-assign]
    answers.statuses = [429]
    assert (await first.a_get_job_run("r1")).key == "r1"  # the 429 is retried
    assert (await second.a_get_job_run("r1")).key == "r1"
    state = transport.async_state("aidp_test")
    assert state.limiter.max_rate == 7
    # One 429 halved the shared rate; the two successes since won back 5 % of 7 each.
    assert state.limiter.rate == pytest.approx(3.5 + 2 * 0.35)


async def _no_sleep(seconds: float) -> None:
    return None
