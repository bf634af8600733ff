"""AIDPHook async path against a real local aiohttp server: what is sent is what was signed,
retries, pagination, errors, and one shared session + signer per (conn id, loop).

(aioresponses 0.7.x is not compatible with the installed aiohttp, and a real server checks more.)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from airflow_provider_aidp import exceptions as exc
from airflow_provider_aidp.hooks import auth, transport
from airflow_provider_aidp.hooks.aidp import AIDPHook, close_async_sessions
from tests.unit.hook_support import (
    OCID,
    FakeConnection,
    base_url,
    inline_extra,
    install_connection,
    make_key,
    verify_signature,
)

KEY = make_key()
BASE = base_url()


@pytest.fixture(autouse=True)
async def _clean() -> AsyncIterator[None]:
    auth.clear_signer_cache()
    yield
    await close_async_sessions()
    auth.clear_signer_cache()


def make_hook(monkeypatch: pytest.MonkeyPatch, host: str, **extra: Any) -> AIDPHook:
    install_connection(
        monkeypatch, FakeConnection(host=host, extra=inline_extra(KEY, max_retries=3, **extra))
    )
    hook = AIDPHook("aidp_test")
    hook.sleeps = []  # type: ignore[attr-defined]

    async def record(seconds: float) -> None:
        hook.sleeps.append(seconds)  # type: ignore[attr-defined]

    hook._asleep = record
    return hook


def run_body(key: str = "r1", status: str = "RUNNING") -> dict[str, Any]:
    return {"key": key, "state": {"status": status}}


class Server:
    """A real aiohttp server on 127.0.0.1 that records requests and answers from a script."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.script: list[Any] = []  # (status, body bytes | dict, headers) or a coroutine fn
        self.url = ""

    async def handler(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(
            {
                "method": request.method,
                "path": request.raw_path,
                "headers": dict(request.headers),
                "body": body,
            }
        )
        if not self.script:
            return web.json_response({"code": "NoScript", "message": "no scripted answer"}, status=599)
        step = self.script.pop(0)
        if callable(step):
            return await step(request)
        status, payload, headers = (*step, {})[:3] if len(step) == 2 else step
        if isinstance(payload, (dict, list)):
            return web.json_response(payload, status=status, headers=headers)
        return web.Response(body=payload, status=status, headers=headers)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = Server()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", srv.handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    srv.url = f"http://127.0.0.1:{port}"
    yield srv
    await close_async_sessions()
    await runner.cleanup()


def ws_path(*segments: str, workspace: str = "ws1") -> str:
    return f"/20260430/aiDataPlatforms/{OCID}/workspaces/{workspace}/" + "/".join(segments)


async def test_signed_requests_verify_on_a_real_server(
    monkeypatch: pytest.MonkeyPatch, server: Server
) -> None:
    """The server sees exactly the signed bytes: path (with encoded key), host, body."""
    server.script = [(200, run_body("r/1")), (200, {"key": "o1", "data": []})]
    hook = make_hook(monkeypatch, host=server.url)
    run = await hook.a_get_job_run("r/1")
    assert run.key == "r/1"
    output = await hook.a_fetch_task_run_output("t 1", "o1")
    assert output.key == "o1"
    get, post = server.seen
    assert get["path"] == ws_path("jobRuns", "r%2F1")
    assert get["headers"]["Host"] == server.url.removeprefix("http://")
    verify_signature(
        method="GET", path_url=get["path"], headers=get["headers"], body=None, public_key=KEY.public_key
    )
    assert post["path"] == ws_path("taskRuns", "t%201", "actions", "fetchOutput")
    assert post["body"] == b'{"outputKey":"o1"}'
    verify_signature(
        method="POST",
        path_url=post["path"],
        headers=post["headers"],
        body=post["body"],
        public_key=KEY.public_key,
    )
    assert post["headers"]["opc-retry-token"]


async def test_retries_and_retry_after(monkeypatch: pytest.MonkeyPatch, server: Server) -> None:
    async def too_slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response(run_body())

    server.script = [
        (429, {"code": "TooManyRequests", "message": "x"}, {"retry-after": "2"}),
        too_slow,
        (500, b"oops"),
        (200, run_body()),
    ]
    hook = make_hook(monkeypatch, host=server.url, timeout=0.3)
    run = await hook.a_get_job_run("r1")
    assert run.key == "r1"
    assert hook.sleeps[0] == 2.0 and len(hook.sleeps) == 3  # type: ignore[attr-defined]
    assert len({s["headers"]["opc-request-id"] for s in server.seen}) == 1


async def test_connection_refused_is_a_transport_error(monkeypatch: pytest.MonkeyPatch) -> None:
    hook = make_hook(monkeypatch, host="http://127.0.0.1:9")
    with pytest.raises(exc.AIDPTransportError, match="4 attempt"):
        await hook.a_get_job_run("r1")
    assert len(hook.sleeps) == 3  # type: ignore[attr-defined]


async def test_error_classes_and_bad_bodies(monkeypatch: pytest.MonkeyPatch, server: Server) -> None:
    server.script = [
        (404, {"code": "NotFound", "message": "no run"}, {"opc-request-id": "RID"}),
        (200, b"<html>login</html>", {"content-type": "text/html"}),
        (200, b'{"key": "r1", "sta', {"content-type": "application/json"}),
        (200, b""),
    ]
    hook = make_hook(monkeypatch, host=server.url)
    with pytest.raises(exc.AIDPNotFoundError) as err:
        await hook.a_get_job_run("r1")
    assert err.value.opc_request_id == "RID" and err.value.method == "GET" and err.value.code == "NotFound"
    assert err.value.path == ws_path("jobRuns", "r1")
    with pytest.raises(exc.AIDPResponseError, match="HTML"):
        await hook.a_get_job_run("r1")
    with pytest.raises(exc.AIDPResponseError, match="truncated"):
        await hook.a_get_job_run("r1")
    with pytest.raises(exc.AIDPResponseError, match="empty"):
        await hook.a_get_job_run("r1")


async def test_cancel_post_retried_with_token(monkeypatch: pytest.MonkeyPatch, server: Server) -> None:
    server.script = [(503, {}), (200, run_body("r1", "CANCELING"))]
    hook = make_hook(monkeypatch, host=server.url)
    run = await hook.a_cancel_job_run("r1")
    assert run.status == "CANCELING"
    tokens = {s["headers"]["opc-retry-token"] for s in server.seen}
    assert len(server.seen) == 2 and len(tokens) == 1


async def test_a_cancel_answered_without_a_body_reads_the_run(
    monkeypatch: pytest.MonkeyPatch, server: Server
) -> None:
    server.script = [(202, b"", {"opc-work-request-id": "wr1"}), (200, run_body("r1", "RUNNING"))]
    hook = make_hook(monkeypatch, host=server.url)
    run = await hook.a_cancel_job_run("r1")
    assert (run.key, run.status) == ("r1", "RUNNING")
    assert [(s["method"], s["path"]) for s in server.seen] == [
        ("POST", ws_path("jobRuns", "r1", "actions", "cancel")),
        ("GET", ws_path("jobRuns", "r1")),
    ]


async def test_async_pagination_and_midway_error(monkeypatch: pytest.MonkeyPatch, server: Server) -> None:
    server.script = [
        (200, {"items": [{"key": "t1"}]}, {"opc-next-page": "p2"}),
        (200, {"items": []}, {"opc-next-page": "p3"}),
        (200, {"items": [{"key": "t2"}, {"key": "t3"}]}),
        (200, {"items": [{"key": "t1"}]}, {"opc-next-page": "p2"}),
        (400, {"code": "InvalidParameter", "message": "bad page"}),
    ]
    hook = make_hook(monkeypatch, host=server.url)
    runs = await hook.a_list_task_runs("r1")
    assert [t.key for t in runs] == ["t1", "t2", "t3"]
    assert [s["path"].split("?")[1] for s in server.seen] == [
        "jobRunKey=r1&limit=100",
        "jobRunKey=r1&limit=100&page=p2",
        "jobRunKey=r1&limit=100&page=p3",
    ]
    with pytest.raises(exc.AIDPApiError, match="bad page"):
        await hook.a_list_task_runs("r1")


async def test_one_session_and_signer_per_connection_and_loop(
    monkeypatch: pytest.MonkeyPatch, server: Server
) -> None:
    lookups: list[str] = []
    conn = FakeConnection(host=server.url, extra=inline_extra(KEY))

    async def aget(cls: Any, conn_id: str) -> FakeConnection:
        lookups.append(conn_id)
        return conn

    def no_sync_lookup(cls: Any, conn_id: str) -> None:
        raise AssertionError("async path used the blocking connection lookup")

    monkeypatch.setattr(AIDPHook, "aget_connection", classmethod(aget), raising=False)
    monkeypatch.setattr(AIDPHook, "get_connection", classmethod(no_sync_lookup))
    builds: list[int] = []
    real_build = auth.build_signer
    monkeypatch.setattr(auth, "build_signer", lambda config: builds.append(1) or real_build(config))
    hooks = [AIDPHook("aidp_test") for _ in range(50)]
    server.script = [(200, run_body()) for _ in range(50)]
    await asyncio.gather(*(h.a_get_job_run("r1") for h in hooks))
    assert lookups == ["aidp_test"] and builds == [1]
    states = transport.ASYNC_STATES[asyncio.get_running_loop()]
    assert list(states) == ["aidp_test"]
    assert states["aidp_test"].session is not None and len(server.seen) == 50


async def test_async_workspace_override(monkeypatch: pytest.MonkeyPatch, server: Server) -> None:
    make_hook(monkeypatch, host=server.url)
    server.script = [(200, {"key": "t1"})]
    other = AIDPHook("aidp_test", workspace_key="other ws")
    assert (await other.a_get_task_run("t1")).key == "t1"
    assert server.seen[0]["path"] == ws_path("taskRuns", "t1", workspace="other%20ws")


async def test_session_lease_closes_the_shared_session_when_the_last_user_leaves(
    monkeypatch: pytest.MonkeyPatch, server: Server
) -> None:
    hook = make_hook(monkeypatch, host=server.url)
    server.script = [(200, run_body()) for _ in range(3)]
    state = transport.async_state("aidp_test")
    async with hook.session_lease():
        async with hook.session_lease():
            await hook.a_get_job_run("r1")
            session = state.session
        assert session is not None and not session.closed  # another trigger still polls
        await hook.a_get_job_run("r1")
        assert state.session is session  # still one shared session
    assert session.closed and state.session is None and state.leases == 0
    await hook.a_get_job_run("r1")  # the next user gets a fresh session
    assert state.session is not None and not state.session.closed


async def test_async_run_listing_reads_every_page_with_filters_and_rejects_garbage(
    monkeypatch: pytest.MonkeyPatch, server: Server
) -> None:
    """The event trigger's listing: one call, every page, jobKey + status filters; bad body = error."""
    server.script = [
        (200, {"items": [run_body("a", "SUCCESS")]}, {"opc-next-page": "p2"}),
        (200, {"items": [run_body("b", "FAILED")]}),
        (200, b"<html>maintenance</html>", {"content-type": "text/html"}),
        (
            200,
            {"items": [{"key": "j1", "name": "etl", "path": "/Workspace/a"}, {"key": "j2", "name": "etl2"}]},
        ),
    ]
    hook = make_hook(monkeypatch, host=server.url)
    runs = await hook.a_list_job_runs(job_keys=["job 1"], statuses=["SUCCESS", "FAILED"])
    assert [(r.key, r.status) for r in runs] == [("a", "SUCCESS"), ("b", "FAILED")]
    assert [s["path"].split("?")[1] for s in server.seen] == [
        "jobKey=job%201&status=SUCCESS&status=FAILED&limit=100",
        "jobKey=job%201&status=SUCCESS&status=FAILED&limit=100&page=p2",
    ]
    with pytest.raises(exc.AIDPResponseError):
        await hook.a_list_job_runs(job_keys=["job 1"])
    jobs = await hook.a_find_jobs("etl", "/Workspace/a")
    assert [j.key for j in jobs] == ["j1"]  # exact name and folder, checked locally


async def test_a_job_listed_without_its_path_is_placed_by_its_definition(
    monkeypatch: pytest.MonkeyPatch, server: Server
) -> None:
    """A listing may leave ``path`` out: each job of the wanted name costs one GET for its folder."""
    server.script = [
        (
            200,
            {
                "items": [
                    {"key": "j1", "name": "etl"},
                    {"key": "j2", "name": "etl"},
                    {"key": "j3", "name": "x"},
                ]
            },
        ),
        (200, {"key": "j1", "name": "etl", "path": "/Workspace/b"}),
        (200, {"key": "j2", "name": "etl", "path": "/Workspace/a/"}),
    ]
    hook = make_hook(monkeypatch, host=server.url)
    jobs = await hook.a_find_jobs("etl", "/Workspace/a")
    assert [(j.key, j.path) for j in jobs] == [("j2", "/Workspace/a/")]
    assert [s["path"].split("?")[0] for s in server.seen[1:]] == [
        ws_path("jobs", "j1"),
        ws_path("jobs", "j2"),
    ]
