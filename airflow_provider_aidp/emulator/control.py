"""The ``/_emulator/`` control API: script outcomes, inject faults, read state, move the clock.

It is unauthenticated (the emulator listens on 127.0.0.1 only) and never recorded or faulted, so
a test whose Airflow runs in other processes can drive and inspect the emulator over HTTP.
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .credentials import generate_api_key
from .faults import Fault
from .readings import Readings
from .scripting import TaskScript
from .state import EmulatorState
from .validation import GA, LA

PREFIX = "/_emulator"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def add_routes(app: web.Application, state: EmulatorState) -> None:
    r = app.router

    def json_handler(fn: Callable[[web.Request, Any], Any]) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            data = await request.json() if request.can_read_body else {}
            try:
                result = fn(request, data)
            except (ValueError, TypeError, KeyError) as exc:
                return web.json_response({"code": "InvalidParameter", "message": str(exc)}, status=400)
            return web.json_response(result)

        return handler

    r.add_get(f"{PREFIX}/health", json_handler(lambda req, d: {"status": "ok"}))
    r.add_post(f"{PREFIX}/reset", json_handler(lambda req, d: _reset(state, d)))
    r.add_get(f"{PREFIX}/config", json_handler(lambda req, d: _config(state)))
    r.add_put(f"{PREFIX}/config", json_handler(lambda req, d: _set_config(state, d)))
    r.add_get(f"{PREFIX}/readings", json_handler(lambda req, d: state.readings.to_dict()))
    r.add_put(f"{PREFIX}/readings", json_handler(lambda req, d: _set_readings(state, d)))
    r.add_get(f"{PREFIX}/rate-limit", json_handler(lambda req, d: state.rate_limit.to_dict()))
    r.add_put(f"{PREFIX}/rate-limit", json_handler(lambda req, d: _set_rate_limit(state, d)))
    r.add_get(f"{PREFIX}/clock", json_handler(lambda req, d: _clock(state)))
    r.add_post(f"{PREFIX}/clock/advance", json_handler(lambda req, d: _advance(state, d)))
    r.add_put(f"{PREFIX}/clock", json_handler(lambda req, d: _set_scale(state, d)))
    r.add_get(f"{PREFIX}/scripts", json_handler(lambda req, d: [s.to_dict() for s in state.scripts.all()]))
    r.add_post(
        f"{PREFIX}/scripts", json_handler(lambda req, d: state.scripts.add(TaskScript.from_dict(d)).to_dict())
    )
    r.add_delete(f"{PREFIX}/scripts", json_handler(lambda req, d: _cleared(state.scripts.clear)))
    r.add_get(f"{PREFIX}/faults", json_handler(lambda req, d: [f.to_dict() for f in state.faults.all()]))
    r.add_post(
        f"{PREFIX}/faults", json_handler(lambda req, d: state.faults.add(Fault.from_dict(d)).to_dict())
    )
    r.add_delete(f"{PREFIX}/faults", json_handler(lambda req, d: _cleared(state.faults.clear)))
    r.add_delete(
        f"{PREFIX}/faults/{{id}}",
        json_handler(lambda req, d: {"removed": state.faults.remove(int(req.match_info["id"]))}),
    )
    r.add_get(f"{PREFIX}/requests", json_handler(lambda req, d: _requests(state, req)))
    r.add_delete(f"{PREFIX}/requests", json_handler(lambda req, d: _cleared(state.recorder.clear)))
    r.add_get(f"{PREFIX}/tenancy", json_handler(lambda req, d: state.tenancy.describe()))
    r.add_post(f"{PREFIX}/tenancy", json_handler(lambda req, d: _set_tenancy(state, d)))
    r.add_get(f"{PREFIX}/jobs", json_handler(lambda req, d: _jobs(state)))
    r.add_get(f"{PREFIX}/runs", json_handler(lambda req, d: _runs(state)))
    r.add_post(f"{PREFIX}/runs/history", json_handler(lambda req, d: _history(state, d)))
    r.add_post(f"{PREFIX}/keys", json_handler(lambda req, d: _add_key(state, d)))
    r.add_post(f"{PREFIX}/session-tokens", json_handler(lambda req, d: _add_token(state, d)))
    r.add_post(
        f"{PREFIX}/session-tokens/{{token}}/revoke",
        json_handler(lambda req, d: {"revoked": state.keys.revoke_session_token(req.match_info["token"])}),
    )
    r.add_post(
        f"{PREFIX}/session-tokens/{{token}}/expire",
        json_handler(lambda req, d: {"expired": state.keys.expire_session_token(req.match_info["token"])}),
    )
    r.add_get(f"{PREFIX}/console/runs/{{run_key}}", _console_handler(state))
    # The connection's template: a link built without the job key (".../jobs//runs/...") is a 404.
    r.add_get(f"{PREFIX}/console/jobs/{{job_key}}/runs/{{run_key}}", _console_handler(state))


def _cleared(fn: Callable[[], None]) -> dict[str, bool]:
    fn()
    return {"cleared": True}


def _reset(state: EmulatorState, data: dict[str, Any]) -> dict[str, bool]:
    state.reset(keys=bool(data.get("keys")))
    return {"reset": True}


def _config(state: EmulatorState) -> dict[str, Any]:
    c = state.config
    return {
        "surfaces": sorted(c.surfaces),
        "accept_any_signature": c.accept_any_signature,
        "max_clock_skew": c.max_clock_skew,
        "check_host": c.check_host,
        "timings": vars(state.timings),
        "time_scale": state.clock.scale,
    }


def _set_config(state: EmulatorState, data: dict[str, Any]) -> dict[str, Any]:
    c = state.config
    if "surfaces" in data:
        surfaces = set(data["surfaces"])
        if not surfaces <= {GA, LA}:
            raise ValueError(f"surfaces must be a subset of {[GA, LA]}")
        c.surfaces = surfaces
    for name in ("accept_any_signature", "check_host"):
        if name in data:
            setattr(c, name, bool(data[name]))
    if "max_clock_skew" in data:
        c.max_clock_skew = float(data["max_clock_skew"])
    for name, value in (data.get("timings") or {}).items():
        if not hasattr(state.timings, name):
            raise ValueError(f"unknown timing {name!r}; known: {sorted(vars(state.timings))}")
        setattr(state.timings, name, float(value))
    return _config(state)


def _set_rate_limit(state: EmulatorState, data: dict[str, Any]) -> dict[str, Any]:
    """``{"per_second": N}``: answer 429 above N API requests a second per tenancy (0 = off)."""
    state.rate_limit.set(data["per_second"])
    return state.rate_limit.to_dict()


def _set_readings(state: EmulatorState, data: dict[str, Any]) -> dict[str, Any]:
    """Change some readings (``{"reset": true}`` first restores the defaults)."""
    data = dict(data)
    base = Readings() if data.pop("reset", False) else state.readings
    state.readings = base.updated(data)
    return state.readings.to_dict()


def _set_tenancy(state: EmulatorState, data: dict[str, Any]) -> dict[str, Any]:
    """``{"ai_data_platform_id": ..., "workspace_keys": [...], "accept_any": bool, "detailed": bool}``."""
    if data.get("ai_data_platform_id"):
        state.tenancy.host(str(data["ai_data_platform_id"]), *map(str, data.get("workspace_keys") or []))
    for name in ("accept_any", "detailed"):
        if name in data:
            setattr(state.tenancy, name, bool(data[name]))
    return state.tenancy.describe()


def _clock(state: EmulatorState) -> dict[str, float]:
    return {"now": state.clock.now(), "scale": state.clock.scale}


def _advance(state: EmulatorState, data: dict[str, Any]) -> dict[str, float]:
    state.clock.advance(float(data["seconds"]))
    return _clock(state)


def _set_scale(state: EmulatorState, data: dict[str, Any]) -> dict[str, float]:
    state.clock.set_scale(float(data["scale"]))
    return _clock(state)


def _requests(state: EmulatorState, req: web.Request) -> list[dict[str, Any]]:
    q = req.query
    items = state.recorder.filter(
        q.get("method"), q.get("path_contains"), int(q.get("since", 0)), q.get("path")
    )
    return [r.to_dict() for r in items]


def _jobs(state: EmulatorState) -> list[dict[str, Any]]:
    with state.store.lock:
        return [
            {"key": j.key, "ai_data_platform_id": j.scope[0], "workspace_key": j.scope[1], "body": j.body}
            for j in state.store.jobs.values()
        ]


def _history(state: EmulatorState, data: dict[str, Any]) -> dict[str, Any]:
    """``{"job_key": ..., "count": N, "every": s, "duration": s, "status": ...}`` -> the run keys."""
    allowed = {"job_key", "count", "every", "duration", "status"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValueError(f"unknown history fields {unknown}; allowed: {sorted(allowed)}")
    options = {k: data[k] for k in ("every", "duration", "status") if k in data}
    keys = state.store.seed_history(str(data["job_key"]), int(data["count"]), **options)
    return {"run_keys": keys}


def _runs(state: EmulatorState) -> list[dict[str, Any]]:
    return [
        {
            "key": r.key,
            "job_key": r.job_key,
            "job_name": r.job_name,
            "status": r.status,
            "state_message": r.state_message,
            "repair_key": r.repair_key,
            "ai_data_platform_id": r.scope[0],
            "workspace_key": r.scope[1],
            "parameters": r.parameters,
            "tasks": {
                k: {"key": t.key, "status": t.status, "state_message": t.state_message}
                for k, t in r.task_runs.items()
            },
        }
        for r in state.store.all_runs()
    ]


def _add_key(state: EmulatorState, data: dict[str, Any]) -> dict[str, Any]:
    """Register a caller's public key, or (no ``public_key_pem``) generate and return a key pair."""
    if data.get("public_key_pem"):
        key_id = state.keys.add_api_key(
            data["tenancy"], data["user"], data["fingerprint"], data["public_key_pem"]
        )
        return {"key_id": key_id}
    creds = generate_api_key(pass_phrase=data.get("pass_phrase"))
    state.keys.add_api_key(creds.tenancy, creds.user, creds.fingerprint, creds.public_key_pem)
    return creds.to_dict(include_secret=True)


def _add_token(state: EmulatorState, data: dict[str, Any]) -> dict[str, Any]:
    expires_in = data.get("expires_in")
    state.keys.add_session_token(
        data["token"], data["public_key_pem"], expires_in=None if expires_in is None else float(expires_in)
    )
    return {"key_id": f"ST${data['token']}"}


def _console_handler(state: EmulatorState) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        key = request.match_info["run_key"]
        job_key = request.match_info.get("job_key")
        run = next((r for r in state.store.all_runs() if r.key == key), None)
        if run is None or (job_key is not None and run.job_key != job_key):
            return web.Response(
                status=404, text=f"run {html.escape(key)} not found", content_type="text/html"
            )
        rows = "".join(
            f"<tr><td>{html.escape(k)}</td><td>{t.status}</td>"
            f"<td>{html.escape(t.state_message or '')}</td></tr>"
            for k, t in run.task_runs.items()
        )
        page = (
            f"<html><head><title>AIDP emulator run {html.escape(run.key)}</title></head><body>"
            f"<h1>{html.escape(run.job_name)} run {run.number}</h1>"
            f"<p>Run key: <code>{html.escape(run.key)}</code> &middot; status <b>{run.status}</b>"
            f" &middot; {html.escape(run.state_message or '')}</p>"
            f"<table border=1><tr><th>task</th><th>status</th><th>message</th></tr>{rows}</table>"
            "</body></html>"
        )
        return web.Response(text=page, content_type="text/html")

    return handler
