"""What the production-profile tests read: who holds which trigger, and who asked AIDP what.

Only public surfaces: Airflow's REST API (task instances with their trigger and its triggerer
job id; triggerer jobs with their host names), the trigger logs Airflow writes per triggerer job,
and the emulator's request log (``/_emulator/requests``).
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..deployment import AirflowDeployment

_KEY_ID = re.compile(r'keyId="([^"]+)"')
_RUN_PATH = re.compile(r"/jobRuns/[^/]+$")


def key_id(request: dict[str, Any]) -> str | None:
    """The ``keyId`` a recorded request was signed with (``tenancy/user/fingerprint``)."""
    auth = next((v for k, v in request["headers"].items() if k.lower() == "authorization"), "")
    found = _KEY_ID.search(auth)
    return found.group(1) if found else None


def is_listing(request: dict[str, Any]) -> bool:
    """``GET .../jobRuns?...``: a listing of runs (the status sweep's, or an event trigger's)."""
    return request["method"] == "GET" and request["path"].endswith("/jobRuns")


def is_run_read(request: dict[str, Any]) -> bool:
    """``GET .../jobRuns/{key}``: one run's own read."""
    return request["method"] == "GET" and _RUN_PATH.search(request["path"]) is not None


def run_creations(requests: Iterable[dict[str, Any]], job_key: str) -> list[dict[str, Any]]:
    """``POST .../jobRuns`` bodies for ``job_key`` (one per run the provider asked AIDP to start)."""
    posts = [r for r in requests if r["method"] == "POST" and r["path"].endswith("/jobRuns")]
    return [body for body in (json.loads(r["body"]) for r in posts) if body.get("jobKey") == job_key]


def cancels(requests: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in requests if r["method"] == "POST" and "/actions/cancel" in r["path"]]


def parameter(body: dict[str, Any], name: str) -> Any:
    """A run parameter from a POST body or an emulator run (list of name/value, or a dict)."""
    params = body.get("parameters") or []
    if isinstance(params, dict):
        return params.get(name)
    return next((p.get("value") for p in params if p.get("name") == name), None)


def holders(d: AirflowDeployment, dag_id: str, run_id: str, task_ids: Iterable[str]) -> dict[str, int | None]:
    """Per deferred task: the id of the triggerer job its trigger is assigned to (None: unassigned)."""
    tis = d.task_instances(dag_id, run_id)
    out = {}
    for task_id in task_ids:
        trigger = tis[task_id].get("trigger") or {}
        out[task_id] = trigger.get("triggerer_id")
    return out


def running_on(d: AirflowDeployment, dag_id: str, run_id: str, task_id: str, job_id: int) -> bool:
    """Whether triggerer job ``job_id`` has started the task's trigger (its trigger log says so)."""
    return " starting" in d.trigger_logs(dag_id, run_id, task_id).get(job_id, "")


@dataclass
class Window:
    """Requests the emulator received during a measuring window, per signing key."""

    seconds: float
    requests: list[dict[str, Any]]

    def by(self, key: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if key_id(r) == key]

    def counts(self, key: str) -> Counter[str]:
        mine = self.by(key)
        return Counter(
            listing=sum(map(is_listing, mine)), run_read=sum(map(is_run_read, mine)), all=len(mine)
        )


def last_seq(emu: Any) -> int:
    return max((r["seq"] for r in emu.requests()), default=0)


def settled(emu: Any, key: str, since: int, listings: int = 0, requests: int = 0) -> bool:
    """Whether the process signing with ``key`` has, since ``since``, sent ``listings`` listings that
    name their jobs (a sweep past its first, workspace-wide listing) and ``requests`` requests."""
    mine = [r for r in emu.requests(method="GET", since=since) if key_id(r) == key]
    by_job = [r for r in mine if is_listing(r) and r["query"].get("jobKey")]
    return len(by_job) >= listings and len(mine) >= requests


def measure(emu: Any, seconds: float) -> Window:
    """Record what reaches the emulator for ``seconds`` (API requests only, not its control API)."""
    since = max((r["seq"] for r in emu.requests()), default=0)
    started = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - started
    recs = [r for r in emu.requests(since=since) if not r["path"].startswith("/_emulator")]
    return Window(elapsed, recs)
