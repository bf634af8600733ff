"""Workflow task groups: what following N AIDP tasks of ONE run costs, against N runs followed alone.

The tasks of an ``AIDPWorkflowTaskGroup`` are the AIDP tasks of one job run; each Airflow task defers
with an ``AIDPTaskRunTrigger`` for its own task. The triggers of one run on one triggerer share its
reads (``triggers/task_run.py``: a look is answered by any read of the run that started after the
trigger's previous look). This script follows N tasks of one run (a root task, then N parallel
tasks) with N triggers in one event loop, and, as the baseline, N one-task runs with N triggers
(nothing to share), and prints the ``GET /jobRuns/{key}`` requests the emulator counted per trigger
per poll interval, and the time from a task's end to its trigger's event.

Run:  benchmarks/run.sh workflow_reads                 (N = 5, 20, 50; 1 s polls, ~8 s tasks)
      benchmarks/run.sh workflow_reads --n 100 --poll 2 --seconds 12
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="aidp-bench-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")

from _common import median, percentile, print_machine, table

SCALE = 10.0  # emulator seconds per real second
CLUSTER = {"clusterKey": "c", "clusterName": "demo_cluster"}


def task(key: str, depends: list[str]) -> dict[str, Any]:
    return {
        "type": "NOTEBOOK_TASK",
        "taskKey": key,
        "runIf": "ALL_SUCCESS",
        "cluster": CLUSTER,
        "source": "WORKSPACE",
        "notebookPath": f"/Workspace/Shared/{key}.ipynb",
        "dependsOn": [{"taskKey": d} for d in depends],
    }


def start(emu: Any, tasks: list[dict[str, Any]], seconds: float) -> str:
    """A run of a new job of ``tasks``, each taking ``seconds`` real seconds."""
    from airflow_provider_aidp.hooks.aidp import AIDPHook

    name = f"bench_{uuid.uuid4().hex[:8]}"
    for t in tasks:
        emu.script_task(job_name=name, task_key=t["taskKey"], duration=seconds * SCALE)
    hook = AIDPHook()
    head = {"name": name, "path": "/Workspace/Shared", "maxConcurrentRuns": 1}
    key = hook.create_job(head).key
    hook.update_job(key, {**head, "tasks": tasks, "jobClusters": [CLUSTER]})
    return hook.create_job_run(key).key


async def follow(pairs: list[tuple[str, str]], poll: float, clock: Any) -> list[tuple[dict[str, Any], float]]:
    """One trigger per (run key, task key), all in this loop: each event and when it came (on the
    emulator's clock, which runs SCALE times faster than the wall clock)."""
    from airflow_provider_aidp.hooks.aidp import close_async_sessions
    from airflow_provider_aidp.triggers.task_run import AIDPTaskRunTrigger

    async def one(run_key: str, task_key: str) -> tuple[dict[str, Any], float]:
        async for event in AIDPTaskRunTrigger(run_key, task_key, poll_interval=poll).run():
            return dict(event.payload), clock.now()
        raise AssertionError("no event")

    try:
        return list(await asyncio.gather(*(one(r, t) for r, t in pairs)))
    finally:
        await close_async_sessions()


def measure(emu: Any, n: int, shared: bool, poll: float, seconds: float) -> dict[str, float]:
    keys = [f"t{i}" for i in range(n)]
    if shared:
        run_key = start(emu, [task("root", []), *(task(k, ["root"]) for k in keys)], seconds / 2)
        pairs = [(run_key, k) for k in keys]
    else:
        pairs = [(start(emu, [task(k, [])], seconds), k) for k in keys]
    mark = emu.requests[-1].seq if emu.requests else 0
    begun = time.time()
    results = asyncio.run(follow(pairs, poll, emu.clock))
    followed = time.time() - begun
    runs = {r for r, _ in pairs}
    gets = sum(
        1
        for r in emu.requests
        if r.seq > mark and r.method == "GET" and any(r.path.endswith(f"/jobRuns/{k}") for k in runs)
    )
    lags = []
    for event, at in results:
        assert event["event"] == "terminal" and event["status"] == "SUCCESS", event
        lags.append((at - event["run"]["endTime"] / 1000.0) / SCALE)  # real seconds
    return {
        "gets_per_trigger_poll": gets / (n * followed / poll),
        "gets": float(gets),
        "lag_p50": median(lags),
        "lag_p99": percentile(lags, 99),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[5, 20, 50])
    parser.add_argument("--poll", type=float, default=1.0, help="poll interval of each trigger, s")
    parser.add_argument("--seconds", type=float, default=8.0, help="real seconds each followed task runs")
    args = parser.parse_args()

    from airflow_provider_aidp.emulator import AIDPEmulator

    print_machine()
    rows = []
    with AIDPEmulator(time_scale=SCALE) as emu:
        os.environ["AIRFLOW_CONN_AIDP_DEFAULT"] = emu.connection_json(emu.generate_api_key())
        for n in args.n:
            alone = measure(emu, n, False, args.poll, args.seconds)
            group = measure(emu, n, True, args.poll, args.seconds)
            for label, m in (("N one-task runs (baseline)", alone), ("N tasks of one run (group)", group)):
                rows.append((n, label, m["gets"], m["gets_per_trigger_poll"], m["lag_p50"], m["lag_p99"]))
            rows.append((n, "ratio group / baseline", group["gets"] / alone["gets"], "", "", ""))
    print(
        table(
            ["N", "followed", "GET /jobRuns/{key}", "GETs per trigger per poll", "end->event p50 s", "p99 s"],
            rows,
        )
    )


if __name__ == "__main__":
    main()
