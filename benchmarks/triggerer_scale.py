"""Triggerer scale: N run-polling triggers in one event loop, AIDP against Databricks.

A triggerer process follows every deferred run of a deployment in one asyncio loop.  This script
reproduces that: N triggers (``AIDPJobRunTrigger`` / Databricks' ``DatabricksExecutionTrigger``)
each iterated with ``async for event in trigger.run()`` in its own task, in a fresh worker process,
against a server in another process (the AIDP emulator / a minimal fake of Databricks'
``jobs/runs/get``).  Runs finish at spread-out times (durations evenly spread between
``--min-duration`` and ``--max-duration``, shuffled, counted from each run's start).

Reported per case (medians over ``--repeats`` rounds; both providers interleaved in each round):
requests per run per poll (server-side request log / polls the triggers made), CPU seconds per
poll in the worker, event-loop lag (a 10 ms ticker task: p50 / p99 / max), peak RSS, errors.

Run:  benchmarks/run.sh triggerer_scale              (N = 100 and 1000)
      benchmarks/run.sh triggerer_scale --n 100 1000 3000
Targets: exactly 1 request per run per poll; p99 lag <= 50 ms at N = 1000; CPU per poll <= 1.5x
Databricks' (ours signs every request with RSA, theirs sends a bearer token).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import airflow_env, median, percentile, print_machine, table

HERE = Path(__file__).resolve().parent
TICK = 0.010
CONN_ID = "bench"


# --- orchestrator side -----------------------------------------------------------------------------


def http_json(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    """A tiny urllib JSON client for control routes (no third-party client in the orchestrator)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    with urllib.request.urlopen(req, timeout=120) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def start_server(cmd: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    """Start a server process that prints ``LISTENING <port>`` or a ``127.0.0.1:<port>`` URL first.

    Its output goes to a file, not a pipe: a chatty server must never block on a full pipe.
    """
    import tempfile

    log = tempfile.NamedTemporaryFile(prefix="aidp-bench-server-", suffix=".log", delete=False)  # noqa: SIM115
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = Path(log.name).read_text(errors="replace")
        port = _port_from_line(text)
        if port:
            return proc, port
        if proc.poll() is not None:
            raise RuntimeError(f"server {cmd} exited before listening:\n{text[-3000:]}")
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"server {cmd} did not report a port within 60 s")


def _port_from_line(line: str) -> int | None:
    import re

    match = re.search(r"(?:LISTENING\s+|127\.0\.0\.1:)(\d{2,5})", line)
    return int(match.group(1)) if match else None


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Databricks:
    """Databricks' DatabricksExecutionTrigger against benchmarks/databricks_fake.py."""

    name = "Databricks"
    token = "dapi-bench-token"

    def server_cmd(self) -> list[str]:
        return [sys.executable, str(HERE / "databricks_fake.py"), "--port", "0"]

    def setup(self, base: str, durations: list[float]) -> dict[str, Any]:
        body = {"durations": durations, "token": self.token}
        run_ids = http_json("POST", f"{base}/_fake/runs", body)["run_ids"]
        host, port = base.removeprefix("http://").split(":")
        conn = {"conn_type": "databricks", "host": host, "port": int(port), "schema": "http",
                "password": self.token}
        return {"runs": run_ids, "env": {f"AIRFLOW_CONN_{CONN_ID.upper()}": json.dumps(conn)}}

    def requests(self, base: str) -> dict[str, int]:
        return dict(http_json("GET", f"{base}/_fake/stats")["requests"])


class AIDP:
    """AIDPJobRunTrigger against the AIDP emulator (``python -m airflow_provider_aidp.emulator``).

    The emulator's clock is frozen (``--time-scale 0``) while jobs and runs are created and
    started by the worker right before its triggers start, so every run's duration counts from
    the moment it is watched (the Databricks fake counts from the first poll, to the same end).
    """

    name = "AIDP"
    buckets = 50  # jobs; each job's task is scripted with one duration

    def server_cmd(self) -> list[str]:
        return [sys.executable, "-m", "airflow_provider_aidp.emulator", "--port", "0", "--time-scale", "0"]

    def setup(self, base: str, durations: list[float]) -> dict[str, Any]:
        import requests

        from airflow_provider_aidp.emulator.client import EmulatorClient
        from airflow_provider_aidp.emulator.connection import connection_extra, connection_json

        control = EmulatorClient(base, timeout=60)
        creds = control.generate_api_key()
        extra = connection_extra(base, creds)
        api = requests.Session()
        api.auth = creds.signer()
        platform, workspace = extra["ai_data_platform_id"], extra["workspace_key"]
        prefix = f"{base}/20260430/aiDataPlatforms/{platform}/workspaces/{workspace}"
        timings = control.config()["timings"]
        lead = float(timings.get("pending_s", 0)) + float(timings.get("queued_s", 0))
        job_for: dict[float, str] = {}
        runs = []
        for duration in durations:
            if duration not in job_for:
                task_seconds = max(0.0, duration - lead)
                job_for[duration] = self._create_job(api, prefix, control, len(job_for), task_seconds)
            resp = api.post(f"{prefix}/jobRuns", json={"jobKey": job_for[duration]}, timeout=60)
            resp.raise_for_status()
            runs.append(resp.json()["key"])
        control.clear_requests()
        return {
            "runs": runs,
            "env": {f"AIRFLOW_CONN_{CONN_ID.upper()}": connection_json(base, extra)},
            "start": {"method": "PUT", "url": f"{base}/_emulator/clock", "body": {"scale": 1.0}},
        }

    @staticmethod
    def _create_job(api: Any, prefix: str, control: Any, index: int, task_seconds: float) -> str:
        name = f"bench_job_{index}"
        head = {"name": name, "path": "/Workspace/Shared", "maxConcurrentRuns": 1000}
        resp = api.post(f"{prefix}/jobs", json=head, timeout=60)
        resp.raise_for_status()
        key = resp.json()["key"]
        cluster = {"clusterKey": "ck1", "clusterName": "bench_cluster"}
        task = {"type": "NOTEBOOK_TASK", "taskKey": "main", "runIf": "ALL_SUCCESS", "cluster": cluster,
                "source": "WORKSPACE", "notebookPath": f"/Workspace/Shared/{name}.ipynb", "dependsOn": []}
        resp = api.put(f"{prefix}/jobs/{key}", json={**head, "tasks": [task], "jobClusters": [cluster]},
                       timeout=60)
        resp.raise_for_status()
        control.script_task(job_name=name, outcome="SUCCESS", duration=task_seconds)
        return str(key)

    def requests(self, base: str) -> dict[str, int]:
        from collections import Counter

        from airflow_provider_aidp.emulator.client import EmulatorClient

        counts: Counter[str] = Counter()
        for rec in EmulatorClient(base, timeout=120).requests():
            if not rec["path"].startswith("/_emulator"):
                tail = rec["path"].rsplit("/workspaces/", 1)[-1].split("/", 2)
                counts[f"{rec['method']} /{tail[1] if len(tail) > 1 else rec['path']}"] += 1
        return dict(counts)


BACKENDS = {"aidp": AIDP(), "databricks": Databricks()}


def run_case(kind: str, n: int, args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """One measurement: fresh server, N runs, fresh worker process; returns its figures."""
    backend = BACKENDS[kind]
    rng = random.Random(seed)
    span = args.max_duration - args.min_duration
    buckets = min(n, AIDP.buckets)
    durations = [round(args.min_duration + span * (i % buckets) / max(1, buckets - 1), 3) for i in range(n)]
    rng.shuffle(durations)
    env = airflow_env(Path(args.home))
    proc, port = start_server(backend.server_cmd(), env)
    base = f"http://127.0.0.1:{port}"
    try:
        setup = backend.setup(base, durations)
        before = sum(backend.requests(base).values())
        spec = {"kind": kind, "runs": setup["runs"], "poll": args.poll, "start": setup.get("start")}
        worker_env = {**env, **setup["env"]}
        out = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--worker"],
            input=json.dumps(spec), env=worker_env, capture_output=True, text=True,
            timeout=args.max_duration * 10 + 300,
        )
        if out.returncode != 0:
            raise RuntimeError(f"{kind} worker failed:\n{out.stderr[-4000:]}")
        result = json.loads(out.stdout.strip().splitlines()[-1])
        by_route = backend.requests(base)
        result["requests"] = sum(by_route.values()) - before
        result["by_route"] = by_route
    finally:
        stop_server(proc)
    result["req_per_run_per_poll"] = result["requests"] / max(1, result["polls"])
    result["cpu_per_poll_ms"] = result["cpu_s"] / max(1, result["polls"]) * 1000
    return result


# --- worker side (the "triggerer") ---------------------------------------------------------------


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def make_triggers(kind: str, runs: list[Any], poll: float) -> tuple[list[Any], Any]:
    """Build the triggers and patch the status-read method to count polls (not requests)."""
    counter = {"polls": 0}

    def counting(fn: Any) -> Any:
        async def wrapper(*a: Any, **kw: Any) -> Any:
            counter["polls"] += 1
            return await fn(*a, **kw)

        return wrapper

    if kind == "databricks":
        from airflow.providers.databricks.hooks.databricks import DatabricksHook
        from airflow.providers.databricks.triggers.databricks import DatabricksExecutionTrigger

        DatabricksHook.a_get_run_state = counting(DatabricksHook.a_get_run_state)  # type: ignore[method-assign]
        triggers = [
            DatabricksExecutionTrigger(run_id=r, databricks_conn_id=CONN_ID, polling_period_seconds=poll)
            for r in runs
        ]
        return triggers, counter
    from airflow_provider_aidp.hooks.aidp import AIDPHook
    from airflow_provider_aidp.triggers.aidp import AIDPJobRunTrigger

    AIDPHook.a_get_job_run = counting(AIDPHook.a_get_job_run)  # type: ignore[method-assign]
    triggers = [AIDPJobRunTrigger(run_key=r, aidp_conn_id=CONN_ID, poll_interval=poll) for r in runs]
    return triggers, counter


def event_ok(kind: str, payload: dict[str, Any]) -> bool:
    if kind == "databricks":
        return json.loads(payload["run_state"]).get("result_state") == "SUCCESS"
    return payload.get("event") == "terminal" and payload.get("status") == "SUCCESS"


async def drive_all(kind: str, triggers: list[Any]) -> dict[str, Any]:
    """Run every trigger in its own task, as the triggerer does, with a lag-measuring ticker."""
    loop = asyncio.get_running_loop()
    lags: list[float] = []
    done = asyncio.Event()
    errors: list[str] = []
    bad_events: list[str] = []

    async def ticker() -> None:
        while not done.is_set():
            start = loop.time()
            await asyncio.sleep(TICK)
            lags.append(loop.time() - start - TICK)

    async def drive(trigger: Any) -> None:
        try:
            async for event in trigger.run():
                if not event_ok(kind, event.payload):
                    bad_events.append(str(event.payload)[:300])
                return
            errors.append("trigger ended without an event")
        except Exception as exc:  # counted and reported, never hidden
            errors.append(f"{type(exc).__name__}: {str(exc)[:300]}")

    tick_task = asyncio.create_task(ticker())
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(asyncio.create_task(drive(t)) for t in triggers))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    done.set()
    await tick_task
    return {
        "cpu_s": cpu,
        "wall_s": wall,
        "lag_p50_ms": percentile(lags, 50) * 1000,
        "lag_p99_ms": percentile(lags, 99) * 1000,
        "lag_max_ms": max(lags, default=float("nan")) * 1000,
        "errors": len(errors) + len(bad_events),
        "error_samples": (errors + bad_events)[:3],
    }


def worker() -> None:
    import logging
    import resource

    spec = json.loads(sys.stdin.read())
    logging.basicConfig(level=logging.WARNING)
    # Import what the triggers need before measuring, as a running triggerer has.
    triggers, counter = make_triggers(spec["kind"], spec["runs"], spec["poll"])
    rss_before = rss_mb()
    if spec.get("start"):  # e.g. start the emulator's clock: runs begin as their triggers do
        start = spec["start"]
        http_json(start["method"], start["url"], start["body"])
    result = asyncio.run(drive_all(spec["kind"], triggers))
    result["polls"] = counter["polls"]
    result["rss_before_mb"] = rss_before
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


# --- report --------------------------------------------------------------------------------------


def summarize(results: dict[tuple[str, int], list[dict[str, Any]]], ns: list[int]) -> tuple[str, list[str]]:
    rows = []
    misses: list[str] = []
    for n in ns:
        for kind in ("aidp", "databricks"):
            rs = results.get((kind, n), [])
            if not rs:
                continue

            def m(key: str, rs: list[dict[str, Any]] = rs) -> float:
                return median(r[key] for r in rs)

            rows.append((
                BACKENDS[kind].name, n, len(rs), m("polls"), m("req_per_run_per_poll"), m("cpu_per_poll_ms"),
                m("lag_p50_ms"), m("lag_p99_ms"), m("lag_max_ms"), m("peak_rss_mb"),
                m("peak_rss_mb") - m("rss_before_mb"), int(sum(r["errors"] for r in rs)), m("wall_s"),
            ))
        ours, theirs = results.get(("aidp", n), []), results.get(("databricks", n), [])
        if ours and theirs:
            ratios = [o["cpu_per_poll_ms"] / t["cpu_per_poll_ms"] for o, t in zip(ours, theirs, strict=False)]
            ratio = median(ratios)
            rows.append(("AIDP / Databricks CPU per poll", n, len(ratios), "", "", f"{ratio:.2f}x",
                         "", "", "", "", "", "", ""))
            if ratio > 1.5:
                misses.append(f"CPU/poll {ratio:.2f}x Databricks' at N={n} (target <= 1.5x)")
        if ours:
            rpp = median(r["req_per_run_per_poll"] for r in ours)
            if abs(rpp - 1.0) > 0.005:
                misses.append(f"{rpp:.3f} requests per run per poll at N={n} (target 1)")
            p99 = median(r["lag_p99_ms"] for r in ours)
            if n >= 1000 and p99 > 50:
                misses.append(f"p99 lag {p99:.0f} ms at N={n} (target <= 50)")
            if any(r["errors"] for r in ours):
                misses.append(f"errors at N={n}: {ours[0]['error_samples']}")
    headers = ("provider", "N", "rounds", "polls", "req/run/poll", "CPU ms/poll", "lag p50 ms",
               "lag p99 ms", "lag max ms", "peak RSS MB", "RSS added MB", "errors", "wall s")
    return table(headers, rows), misses


def main() -> int:
    if "--worker" in sys.argv:
        worker()
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[100, 1000], help="trigger counts")
    parser.add_argument("--repeats", type=int, default=3, help="rounds per N (default 3)")
    parser.add_argument("--poll", type=float, default=2.0, help="poll interval seconds (default 2)")
    parser.add_argument("--min-duration", type=float, default=2.0)
    parser.add_argument("--max-duration", type=float, default=20.0)
    parser.add_argument("--only", choices=sorted(BACKENDS), help="run one provider only")
    args = parser.parse_args()

    import tempfile

    args.home = tempfile.mkdtemp(prefix="aidp-bench-home-")
    subprocess.run([sys.executable, "-c", "import airflow.sdk"], env=airflow_env(Path(args.home)),
                   check=True, capture_output=True)
    print_machine()
    print(f"\npoll interval {args.poll}s, run durations {args.min_duration}-{args.max_duration}s, "
          f"{args.repeats} rounds per N, {os.cpu_count()} cores shared by worker and server\n")
    kinds = [args.only] if args.only else ["aidp", "databricks"]
    results: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for n in args.n:
        for rnd in range(args.repeats):
            order = kinds[:] if rnd % 2 == 0 else kinds[::-1]
            for kind in order:
                res = run_case(kind, n, args, seed=rnd)
                results.setdefault((kind, n), []).append(res)
                print(f"  {BACKENDS[kind].name:10} N={n:<5} round {rnd + 1}: polls {res['polls']}, "
                      f"req/poll {res['req_per_run_per_poll']:.3f}, "
                      f"CPU/poll {res['cpu_per_poll_ms']:.3f} ms, "
                      f"lag p99 {res['lag_p99_ms']:.1f} ms, errors {res['errors']}", flush=True)
    text, misses = summarize(results, args.n)
    print()
    print(text)
    verdict = "PASS" if not misses else "MISS: " + "; ".join(misses)
    print(f"\nVERDICT: {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
