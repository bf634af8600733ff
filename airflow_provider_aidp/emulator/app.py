"""The aiohttp application: the Workflow API on both surfaces plus the ``/_emulator/`` control API.

Request pipeline for API paths: record -> fault injection -> signature check -> route -> handler.
Control paths (``/_emulator/...``) are neither recorded, faulted nor signed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import uuid
from urllib.parse import unquote

from aiohttp import web

from . import api, control
from .errors import ApiError, not_authenticated
from .faults import Fault
from .signing import verify_request
from .state import SURFACES, EmulatorState

STATE_KEY = web.AppKey("aidp_emulator_state", EmulatorState)
BAD_GATEWAY_HTML = (
    "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1>"
    "</center><hr><center>nginx</center></body></html>"
)


def build_app(state: EmulatorState) -> web.Application:
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app[STATE_KEY] = state
    control.add_routes(app, state)
    app.router.add_route("*", "/{tail:.*}", handle_api)
    return app


async def handle_api(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    body = await request.read()
    request_id = request.headers.get("opc-request-id") or uuid.uuid4().hex.upper()
    fault = state.faults.take(request.method, request.path)
    status: int | None = None
    try:
        response = await _respond(state, request, body, fault)
        status = response.status
        response.headers["opc-request-id"] = request_id
        return response
    finally:
        state.recorder.add(
            time=_wall(),
            method=request.method,
            path=request.path,
            query={k: request.query.getall(k) for k in request.query},
            headers=dict(request.headers),
            body=body.decode("utf-8", "replace"),
            status=status,
        )


def _wall() -> float:
    import time

    return time.time()


async def _respond(
    state: EmulatorState, request: web.Request, body: bytes, fault: Fault | None
) -> web.StreamResponse:
    wait = state.rate_limit.take(request.headers.get("authorization"))
    if wait > 0:
        resp = web.json_response(
            {"code": "TooManyRequests", "message": "tenancy request rate limit exceeded"}, status=429
        )
        resp.headers["retry-after"] = str(max(1, math.ceil(wait)))
        return resp
    if fault is not None and fault.kind == "name_taken":
        _another_writer_takes_the_name(state, request, body)
    elif fault is not None:
        early = await _apply_fault_before(request, fault)
        if early is not None:
            return early
    response = _dispatch(state, request, body)
    if fault is not None and fault.kind in ("truncated", "empty_list"):
        return _apply_fault_after(response, fault)
    return response


async def _apply_fault_before(request: web.Request, fault: Fault) -> web.StreamResponse | None:
    if fault.kind == "delay":
        await asyncio.sleep(fault.delay)
        return None
    if fault.kind == "status":
        assert fault.status is not None
        resp = web.json_response(
            {"code": _code_for(fault.status), "message": fault.body or f"injected fault {fault.status}"},
            status=fault.status,
        )
        if fault.retry_after is not None:
            resp.headers["retry-after"] = f"{fault.retry_after:g}"
        return resp
    if fault.kind == "html":
        return web.Response(
            text=fault.body or BAD_GATEWAY_HTML, status=fault.status or 502, content_type="text/html"
        )
    if fault.kind == "non_json":
        return web.Response(
            text=fault.body or "<html><body>Service maintenance</body></html>",
            status=fault.status or 200,
            content_type="text/html",
        )
    if fault.kind == "empty_body":
        return web.Response(body=b"", status=fault.status or 200, content_type="application/json")
    if fault.kind == "reset":
        transport = request.transport
        if transport is not None:
            transport.abort()
        raise asyncio.CancelledError()
    return None


def _another_writer_takes_the_name(state: EmulatorState, request: web.Request, body: bytes) -> None:
    """``name_taken``: a job with this request's ``name`` and ``path`` is created just before it,
    as a concurrent writer's create would be (one that ``unique_names`` refuses does nothing)."""
    raw = [unquote(p) for p in request.rel_url.raw_path.split("/")]
    try:
        data = json.loads(body) if body else None
    except ValueError:
        return
    if len(raw) < 7 or not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return
    taken = {k: data[k] for k in ("name", "path") if k in data}
    with contextlib.suppress(ApiError):  # a workspace not hosted, or the name taken already
        state.tenancy.check(raw[3], raw[5])
        state.store.create_job((raw[3], raw[5]), taken, state.readings.unique_names)


def _apply_fault_after(response: web.Response, fault: Fault) -> web.Response:
    if fault.kind == "empty_list":
        return web.json_response({"items": []}, status=200, headers=_keep_headers(response))
    raw = response.body if isinstance(response.body, bytes) else b""
    cut = raw[: max(1, len(raw) // 2)]
    return web.Response(
        body=cut, status=response.status, content_type="application/json", headers=_keep_headers(response)
    )


def _keep_headers(response: web.Response) -> dict[str, str]:
    return {
        k: v for k, v in response.headers.items() if k.lower() in ("etag", "opc-next-page", "opc-total-items")
    }


def _code_for(status: int) -> str:
    return {
        429: "TooManyRequests",
        500: "InternalServerError",
        502: "BadGateway",
        503: "ServiceUnavailable",
        504: "GatewayTimeout",
        409: "IncorrectState",
    }.get(status, "InjectedFault")


def _dispatch(state: EmulatorState, request: web.Request, body: bytes) -> web.Response:
    try:
        call = _parse(state, request, body)
        handler = api.route(call.method, call.parts)
        if handler is None:
            raise ApiError(
                404, "NotAuthorizedOrNotFound", f"no such resource: {request.method} {request.path}"
            )
        status, payload, headers = handler(call)
    except ApiError as exc:
        return exc.response()
    if payload is None:
        return web.Response(status=status, headers=headers)
    return web.Response(
        body=json.dumps(payload).encode(), status=status, headers=headers, content_type="application/json"
    )


def _parse(state: EmulatorState, request: web.Request, body: bytes) -> api.Call:
    raw = [unquote(p) for p in request.rel_url.raw_path.split("/")]
    # ['', version, collection, platform_id, 'workspaces', ws, *rest]
    if len(raw) < 7 or raw[4] != "workspaces" or SURFACES.get(raw[1]) != raw[2]:
        raise ApiError(404, "NotAuthorizedOrNotFound", f"no such resource: {request.path}")
    if raw[1] not in state.config.surfaces:
        raise ApiError(404, "NotAuthorizedOrNotFound", f"the {raw[1]} API is not enabled in this tenancy")
    if not state.config.accept_any_signature:
        problem = verify_request(
            state.keys,
            method=request.method,
            path_qs=request.rel_url.raw_path_qs,
            headers=request.headers,
            body=body,
            allowed_hosts=state.allowed_hosts if state.config.check_host else None,
            max_skew=state.config.max_clock_skew,
        )
        if problem:
            raise not_authenticated(
                "The required information to complete authentication was not provided or was incorrect: "
                + problem
            )
    state.tenancy.check(raw[3], raw[5])
    return api.Call(
        state=state,
        api_version=raw[1],
        scope=(raw[3], raw[5]),
        method=request.method,
        parts=raw[6:],
        query=request.query,
        headers=request.headers,
        raw_body=body,
    )
