"""The event-driven example (``example_aidp_event_driven.py``) as the e2e tests drive it.

Shared by the SQLite profile's ``test_run_events.py`` and the production profile's watcher
failover test: the emulator's clock (frozen by the test) is moved past the job's Quartz schedule so
AIDP starts a run, and the watched asset's events and the downstream DAG runs are read back
through the REST API.
"""

from __future__ import annotations

import math
import urllib.parse
from collections.abc import Callable
from typing import Any, TypeVar

from airflow_provider_aidp.triggers.run_events import BASELINE_LOG

from .deployment import AirflowDeployment, DeploymentError

SETUP_DAG = "example_aidp_scheduled_export_setup"
DOWNSTREAM_DAG = "example_aidp_on_export_finished"
JOB_NAME = "sales.nightly_export"
ASSET_URI = "aidp://sales.nightly_export/succeeded"
HALF_HOUR = 1800.0
T = TypeVar("T")
#: the example's commit_delay (5 s) plus a poll (1 s) and a margin: the watermark is saved
COMMITTED_AFTER_SECONDS = 8.0


def fire_schedule(emu: Any, *, fail: bool = False) -> None:
    """Move the frozen emulator clock just past the next :00/:30 boundary and let the run finish.

    The clock lands one second after the boundary and then moves a minute: always exactly one
    boundary crossed per call (a fixed 30-minute step plus the minute drifts and, one call in
    about six, crosses a second boundary and starts a run the test did not count).
    """
    if fail:
        emu.script_task(job_name=JOB_NAME, task_key="export", outcome="FAILED", times=1)
    now = emu.advance(0)
    emu.advance(math.floor(now / HALF_HOUR) * HALF_HOUR + HALF_HOUR + 1 - now)
    emu.runs()  # a read starts the due run now (runs are created lazily), taking the script above
    emu.advance(60)


def job_runs(emu: Any, job_key: str, exclude: set[str]) -> dict[str, str]:
    return {r["key"]: r["status"] for r in emu.runs() if r["job_key"] == job_key and r["key"] not in exclude}


def reported_runs(d: AirflowDeployment) -> list[dict[str, Any]]:
    """The payloads of the watched asset's events (one entry per event): run key, end time, ..."""
    assets = d.api("GET", "assets", params={"uri_pattern": ASSET_URI})["assets"]
    (asset,) = [a for a in assets if a["uri"] == ASSET_URI]
    events = d.api("GET", "assets/events", params={"asset_id": asset["id"], "limit": 100})["asset_events"]
    return [e["extra"]["payload"] for e in events]


def reported_run_keys(d: AirflowDeployment) -> list[str]:
    """Run keys carried by the watched asset's events (one entry per event)."""
    return [payload["run_key"] for payload in reported_runs(d)]


def downstream_run_keys(d: AirflowDeployment) -> list[list[str]] | None:
    """Per finished downstream DAG run, the AIDP run keys its task read; None while one is running."""
    runs = d.api("GET", f"dags/{DOWNSTREAM_DAG}/dagRuns", params={"limit": 100})["dag_runs"]
    if any(r["state"] not in ("success", "failed") for r in runs):
        return None
    out = []
    for run in runs:
        assert run["state"] == "success", run
        run_id = urllib.parse.quote(run["dag_run_id"], safe="")
        xcom = d.api(
            "GET",
            f"dags/{DOWNSTREAM_DAG}/dagRuns/{run_id}/taskInstances/load_export/xcomEntries/return_value",
        )
        out.append(list(xcom["value"]))
    return out


def read(fetch: Callable[[], T]) -> T | None:
    """``fetch()``, or None on a 5xx from the api-server (SQLite busy while others write): ask again."""
    try:
        return fetch()
    except DeploymentError as exc:
        if " -> 5" in str(exc).split("\n", 1)[0]:
            return None
        raise


def baselines(d: AirflowDeployment) -> int:
    """How many times a triggerer of ``d`` has logged a watcher's baseline (its first watermark)."""
    return sum(
        proc.log_text().count(BASELINE_LOG.split(":")[0])
        for name, proc in d.processes.items()
        if name.startswith("triggerer")
    )


def wait_baselined(d: AirflowDeployment, before: int) -> None:
    """Wait until the watcher started after ``before`` baselines has taken its own.

    A run that finishes while the baseline is being taken counts as history (never reported), so a
    test moves AIDP's schedule only after this: with request pacing the baseline's few listings
    take seconds, and the first listing alone does not mean the baseline is done.
    """
    d.wait_for(lambda: baselines(d) > before, 120, "the watcher's baseline (its first watermark)")


def wait_reported(d: AirflowDeployment, expected: set[str], what: str) -> None:
    """Wait until the watched asset has an event for each of ``expected`` run keys."""

    def done() -> bool:
        d.check_alive()
        got = read(lambda: reported_run_keys(d))
        return got is not None and set(got) >= expected

    d.wait_for(done, 120, what, interval=1.0)


def succeeded(emu: Any, job_key: str, exclude: set[str]) -> set[str]:
    return {k for k, s in job_runs(emu, job_key, exclude).items() if s == "SUCCESS"}
