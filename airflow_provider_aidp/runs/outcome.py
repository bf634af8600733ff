"""The one result shape every wait produces: the sync poller, the trigger and the sensor.

A plain JSON dict (it travels as a ``TriggerEvent`` payload through the metadata DB), built
and read only through these helpers so the keys live in one place.

``event`` is one of:

* ``terminal``   -- the run reached a terminal status (``status``), ``run`` is the JobRun JSON;
* ``timeout``    -- the wait deadline passed; ``canceled`` says whether the run was cancelled;
* ``poll_error`` -- polling kept failing with transient errors until the error budget was spent;
                    the run itself may be fine;
* ``error``      -- polling failed with a non-transient error (404, 403, 400...).
"""

from __future__ import annotations

from typing import Any

TERMINAL = "terminal"
TIMEOUT = "timeout"
POLL_ERROR = "poll_error"
ERROR = "error"
EVENTS = frozenset({TERMINAL, TIMEOUT, POLL_ERROR, ERROR})


def terminal(run_key: str, status: str | None, run: dict[str, Any]) -> dict[str, Any]:
    return {"event": TERMINAL, "run_key": run_key, "status": status, "run": run}


def timeout(
    run_key: str, status: str | None, *, canceled: bool, cancel_error: str | None, waited_seconds: float
) -> dict[str, Any]:
    what = "cancelled it" if canceled else "left it running"
    if cancel_error:
        what = f"tried to cancel it but the cancel failed ({cancel_error})"
    message = (
        f"AIDP job run {run_key} did not finish within the wait timeout ({waited_seconds:.0f}s; "
        f"last status {status or 'unknown'}); the provider {what}."
    )
    return {
        "event": TIMEOUT,
        "run_key": run_key,
        "status": status,
        "canceled": canceled,
        "cancel_error": cancel_error,
        "message": message,
    }


def poll_error(run_key: str, status: str | None, *, errors: int, last_error: str) -> dict[str, Any]:
    message = (
        f"Could not poll AIDP job run {run_key}: {errors} consecutive transient errors "
        f"(last: {last_error}). The run itself was NOT reported failed by AIDP and was not "
        f"cancelled (last known status {status or 'unknown'}); check it in the console."
    )
    return {"event": POLL_ERROR, "run_key": run_key, "status": status, "errors": errors, "message": message}


def error(run_key: str, status: str | None, *, last_error: str) -> dict[str, Any]:
    message = f"Polling AIDP job run {run_key} failed: {last_error}. The run was not cancelled."
    return {"event": ERROR, "run_key": run_key, "status": status, "message": message}
