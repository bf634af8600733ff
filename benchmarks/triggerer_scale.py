"""Triggerer scale: N run-following triggers in one event loop -- status sweep, per-run polling, Databricks.

A triggerer process follows every deferred run of a deployment in one asyncio loop. This script
reproduces that: N triggers each iterated with ``async for event in trigger.run()`` in its own task,
in a fresh worker process, against a server in another process. Three ways of following runs:

* ``sweep``: ``AIDPJobRunTrigger`` with the triggerer-wide status sweep (connection extra
  ``status_sweep`` on, the default): one listing of the watched jobs' active runs per cycle;
* ``per-run``: the same trigger with ``status_sweep=off``: one signed GET per run per poll;
* ``databricks``: Databricks' ``DatabricksExecutionTrigger`` against a fake of ``jobs/runs/get``.

The N runs are spread over ``--jobs`` AIDP jobs; each job's task has one duration, evenly spread
over ``--min-duration``..``--max-duration`` (counted from when the triggers start). Optionally the
server rate-limits (``--rate-limit``: 429 + Retry-After above N requests/s; the emulator's
per-tenancy limit, the same bucket in the Databricks fake).

Reported per case: requests per run per poll cycle (server-counted requests / (seconds each run
was followed / poll interval): steady, over a window longer than the sweep's verification period
when the runs last that long, and all), time from a run's end to its trigger event (p50 / p99,
and runs later than two poll intervals), CPU ms per run followed, event-loop lag p50 / p99 (10 ms
ticker), the worker's RSS added per run followed (measured after a warm-up request: the imports
and signer a triggerer pays once), 429s received, failed triggers (error events or exceptions).

Scaled: the default poll interval is 30 s and the default pacing 20 requests/s per connection; this
runs at ``--poll`` (1 s) and scales the AIDP pacing by the same factor (20 x 30 / poll = 600/s at 1 s)
so "requests per poll cycle" means the same as at the defaults; run durations are 10-16 s (10-16
polls). Three request figures: "steady" counts the requests while every run is followed (after each
trigger's first GET, before the first run ends and before the sweep's first verification GET can
be due, half its period after joining); ">verify" the whole time every run is followed, when that
is longer than the verification period (every run's own GET at least every VERIFY_POLLS poll
intervals), so it includes those GETs; "all" the whole life of each run, which includes the own
GET every run's end costs.

Run:  benchmarks/run.sh triggerer_scale                         (N = 100, 1000; 10 and 100 jobs)
      benchmarks/run.sh triggerer_scale --n 5000 --rate-limit 0 --modes sweep per-run \
          --min-duration 20 --max-duration 40
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
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import airflow_env, median, percentile, print_machine, table
from _servers import EmulatorSession, http_json, start_server, stop_server

from airflow_provider_aidp.triggers.sweep import VERIFY_POLLS  # every run's own GET at least this often

HERE = Path(__file__).resolve().parent
TICK = 0.010
CONN_ID = "bench"
RESULT = "RESULT "  # marks the worker's result line among anything else it prints
DEFAULT_POLL, DEFAULT_PACING = 30.0, 20.0  # the provider's defaults, which --poll scales


# --- orchestrator side -----------------------------------------------------------------------------


class Databricks:
    """Databricks' DatabricksExecutionTrigger against benchmarks/databricks_fake.py."""

    kind = "databricks"
    token = "dapi-bench-token"

    def server_cmd(self, rate_limit: float) -> list[str]:
        return [
            sys.executable,
            str(HERE / "databricks_fake.py"),
            "--port",
            "0",
            "--rate-limit",
            str(rate_limit),
        ]

    def setup(self, base: str, durations: list[float], jobs: int, args: argparse.Namespace) -> dict[str, Any]:
        body = {"durations": durations, "token": self.token}
        run_ids = http_json("POST", f"{base}/_fake/runs", body)["run_ids"]
        host, port = base.removeprefix("http://").split(":")
        conn = {
            "conn_type": "databricks",
            "host": host,
            "port": int(port),
            "schema": "http",
            "password": self.token,
        }
        return {"runs": run_ids, "env": {f"AIRFLOW_CONN_{CONN_ID.upper()}": json.dumps(conn)}}

    def counts(self, base: str) -> tuple[int, int, dict[str, float], list[float]]:
        """(API requests, 429s sent, run id -> end on this machine's monotonic clock, request times)."""
        stats = http_json("GET", f"{base}/_fake/stats")
        times = [float(sec) + 0.5 for sec, count in stats["per_second"].items() for _ in range(count)]
        return sum(stats["requests"].values()), int(stats["throttled"]), stats["ends"], times


class AIDP:
    """AIDPJobRunTrigger against the AIDP emulator, with the status sweep on or off.

    The emulator's clock is frozen (``--time-scale 0``) while jobs and runs are created, and started
    by the worker right before its triggers start, so every run's duration counts from then.
    """

    kind = "aidp"
    session: EmulatorSession | None = None

    def __init__(self, sweep: bool) -> None:
        self.sweep = sweep

    def server_cmd(self, rate_limit: float) -> list[str]:
        return [sys.executable, "-m", "airflow_provider_aidp.emulator", "--port", "0", "--time-scale", "0"]

    def setup(self, base: str, durations: list[float], jobs: int, args: argparse.Namespace) -> dict[str, Any]:
        self.session = emu = EmulatorSession.open(base)
        emu.extra["max_requests_per_second"] = args.pacing
        emu.extra["status_sweep"] = "on" if self.sweep else "off"
        lead = emu.lead_seconds()
        job_keys = [emu.create_job(f"bench_job_{j}", max(0.0, durations[j] - lead)) for j in range(jobs)]
        runs = [emu.create_run(job_keys[i % jobs]) for i in range(len(durations))]
        emu.control.clear_requests()
        if args.limit:  # after the set-up, which the limit would only slow down
            http_json("PUT", f"{base}/_emulator/rate-limit", {"per_second": args.limit})
        return {
            "runs": runs,
            "env": {f"AIRFLOW_CONN_{CONN_ID.upper()}": emu.connection_json()},
            "start": {"method": "PUT", "url": f"{base}/_emulator/clock", "body": {"scale": 1.0}},
            "clock": f"{base}/_emulator/clock",
        }

    def counts(self, base: str) -> tuple[int, int, dict[str, float], list[float]]:
        assert self.session is not None and self.session.base == base
        recs = [r for r in self.session.control.requests() if not r["path"].startswith("/_emulator")]
        if os.environ.get("BENCH_DUMP"):
            Path(os.environ["BENCH_DUMP"]).write_text(json.dumps(recs))
        return len(recs), sum(1 for r in recs if r["status"] == 429), {}, [r["time"] for r in recs]


MODES: dict[str, Databricks | AIDP] = {
    "sweep": AIDP(True),
    "per-run": AIDP(False),
    "databricks": Databricks(),
}


def run_case(mode: str, n: int, jobs: int, args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """One measurement: fresh server, N runs over ``jobs`` jobs, fresh worker process."""
    backend = MODES[mode]
    jobs = min(jobs, n)
    span = args.max_duration - args.min_duration
    job_durations = [round(args.min_duration + span * j / max(1, jobs - 1), 3) for j in range(jobs)]
    durations = [job_durations[i % jobs] for i in range(n)]
    env = airflow_env(Path(args.home))
    proc, port = start_server(backend.server_cmd(args.limit), env)
    base = f"http://127.0.0.1:{port}"
    try:
        setup = backend.setup(base, durations, jobs, args)
        before = backend.counts(base)[0]
        order = list(range(n))
        random.Random(seed).shuffle(order)  # triggers start in a shuffled order, as deferrals arrive
        spec = {
            "kind": backend.kind,
            "runs": [setup["runs"][i] for i in order],
            "poll": args.poll,
            "start": setup.get("start"),
            "clock": setup.get("clock"),
        }
        out = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--worker"],
            input=json.dumps(spec),
            env={**env, **setup["env"]},
            capture_output=True,
            text=True,
            timeout=args.max_duration * 20 + 600,
        )
        marked = [line for line in out.stdout.splitlines() if line.startswith(RESULT)]
        if out.returncode != 0 or not marked:
            raise RuntimeError(f"{mode} worker failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
        result = json.loads(marked[-1].removeprefix(RESULT))
        total, result["throttled"], fake_ends, times = backend.counts(base)
        result["requests"] = total - before - result["warmup_requests"]
    finally:
        stop_server(proc)
    ends = result["ends"] if backend.kind == "aidp" else [fake_ends.get(str(r)) for r in spec["runs"]]
    # Steady state: after every trigger's first GET (settle 2 s + two polls + N at the pacing),
    # before the first run ends and before the sweep's first own-GET verification can be due
    # (half its period after joining); whole seconds, as the Databricks fake counts per second.
    lo = result["start_wall"] + 2.0 + 2 * args.poll + n / args.pacing
    end = result["start_wall"] + args.min_duration - 0.5
    hi = min(end, result["start_wall"] + 2.0 + VERIFY_POLLS * args.poll / 2)
    result["steady_req_per_run_cycle"] = per_run_cycle(times, n, lo, hi, args.poll)
    # The long window: the whole time every run is followed, when that is longer than the
    # sweep's verification period (every run's own GET at least every VERIFY_POLLS intervals).
    long = per_run_cycle(times, n, lo, end, args.poll)
    result["long_req_per_run_cycle"] = long if end - lo > VERIFY_POLLS * args.poll else float("nan")
    return figures(result, ends, args.poll)


def per_run_cycle(times: list[float], n: int, lo: float, hi: float, poll: float) -> float:
    """Requests per run per poll cycle between wall times ``lo`` and ``hi`` (whole seconds)."""
    lo, hi = float(int(lo) + 1), float(int(hi))
    count = sum(1 for t in times if lo <= t < hi)
    return count / (n * (hi - lo) / poll) if hi - lo >= 1 else float("nan")


def figures(result: dict[str, Any], ends: list[float | None], poll: float) -> dict[str, Any]:
    """Per-case figures from the worker's event times and the runs' end times (same clock)."""
    events, start = result["events"], result["start"]
    followed = sum(e - start for e in events if e is not None)
    late = [e - end for e, end in zip(events, ends, strict=True) if e is not None and end is not None]
    n = len(events)
    return {
        **result,
        "rss_per_run_kb": result["rss_added_kb"] / max(1, n),
        "req_per_run_cycle": result["requests"] / max(1e-9, followed / poll),
        "end_to_event_p50": percentile(late, 50),
        "end_to_event_p99": percentile(late, 99),
        "late_2x": sum(1 for d in late if d > 2 * poll),
        "missed": n - len(late),
        "cpu_per_run_ms": result["cpu_s"] / max(1, n) * 1000,
    }


# --- worker side (the "triggerer") ---------------------------------------------------------------


def make_triggers(kind: str, runs: list[Any], poll: float) -> list[Any]:
    if kind == "databricks":
        from airflow.providers.databricks.triggers.databricks import DatabricksExecutionTrigger

        return [
            DatabricksExecutionTrigger(run_id=r, databricks_conn_id=CONN_ID, polling_period_seconds=poll)
            for r in runs
        ]
    from airflow_provider_aidp.triggers.aidp import AIDPJobRunTrigger

    return [AIDPJobRunTrigger(run_key=r, aidp_conn_id=CONN_ID, poll_interval=poll) for r in runs]


def event_ok(kind: str, payload: dict[str, Any]) -> bool:
    if kind == "databricks":
        return json.loads(payload["run_state"]).get("result_state") == "SUCCESS"
    return payload.get("event") == "terminal" and payload.get("status") == "SUCCESS"


async def warm_up(kind: str, run: Any) -> None:
    """One status read outside the measured window (lazy imports, key parsing, connection lookup):
    a triggerer pays these once per process. Its request is subtracted from the count."""
    if kind == "databricks":
        from airflow.providers.databricks.hooks.databricks import DatabricksHook

        async with DatabricksHook(CONN_ID) as hook:
            await hook.a_get_run_state(run)
        return
    from airflow_provider_aidp.hooks.aidp import AIDPHook

    await AIDPHook(CONN_ID).a_get_job_run(run)


async def drive_all(spec: dict[str, Any]) -> dict[str, Any]:
    """Every trigger in its own task, as the triggerer runs them, plus a lag-measuring ticker."""
    kind = spec["kind"]
    await warm_up(kind, spec["runs"][0])
    # After the warm-up (the imports and the signer a triggerer pays once per process) and before
    # the triggers exist: the RSS from here on is what following N runs adds.
    rss_before = rss_kb()
    triggers = make_triggers(kind, spec["runs"], spec["poll"])
    loop = asyncio.get_running_loop()
    lags: list[float] = []
    done = asyncio.Event()
    errors: list[str] = []
    events: list[float | None] = [None] * len(triggers)
    ends: list[float | None] = [None] * len(triggers)
    offset = 0.0  # emulator epoch seconds -> this machine's monotonic clock
    if spec.get("start"):  # start the emulator's clock: runs begin as their triggers do
        start = spec["start"]
        http_json(start["method"], start["url"], start["body"])
        offset = time.monotonic() - float(http_json("GET", spec["clock"])["now"])

    rss = [rss_kb()]

    async def ticker() -> None:
        while not done.is_set():
            begin = loop.time()
            await asyncio.sleep(TICK)
            lags.append(loop.time() - begin - TICK)
            if len(lags) % 50 == 0:
                rss.append(rss_kb())

    async def drive(i: int, trigger: Any) -> None:
        try:
            async for event in trigger.run():
                events[i] = time.monotonic()
                if not event_ok(kind, event.payload):
                    errors.append(str(event.payload)[:300])
                elif kind == "aidp":
                    ends[i] = event.payload["run"]["endTime"] / 1000 + offset
                return
            errors.append("trigger ended without an event")
        except Exception as exc:  # counted and reported, never hidden
            errors.append(f"{type(exc).__name__}: {str(exc)[:300]}")

    tick_task = asyncio.create_task(ticker())
    cpu0, started, started_wall = time.process_time(), time.monotonic(), time.time()
    await asyncio.gather(*(asyncio.create_task(drive(i, t)) for i, t in enumerate(triggers)))
    cpu, wall = time.process_time() - cpu0, time.monotonic() - started
    done.set()
    await tick_task
    return {
        "cpu_s": cpu,
        "wall_s": wall,
        "start": started,
        "start_wall": started_wall,
        "events": events,
        "ends": ends,
        "lag_p50_ms": percentile(lags, 50) * 1000,
        "lag_p99_ms": percentile(lags, 99) * 1000,
        "rss_added_kb": max(rss) - rss_before,
        "warmup_requests": 1,
        "errors": len(errors),
        "error_samples": errors[:3],
    }


def rss_kb() -> int:
    """This process's resident set size now (Linux ``/proc``), KiB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


def worker() -> None:
    import logging

    spec = json.loads(sys.stdin.read())
    logging.basicConfig(level=logging.ERROR)
    profile_to = os.environ.get("BENCH_PROFILE")  # a path: write cProfile stats of the worker there
    if profile_to:
        import cProfile

        with cProfile.Profile() as prof:
            result = asyncio.run(drive_all(spec))
        prof.dump_stats(f"{profile_to}.{spec['kind']}")
    else:
        result = asyncio.run(drive_all(spec))
    print(RESULT + json.dumps(result), flush=True)


# --- report --------------------------------------------------------------------------------------

HEADERS = (
    "mode",
    "N",
    "jobs",
    "limit/s",
    "req/run/cycle steady",
    "req/run/cycle >verify",
    "req/run/cycle all",
    "end->event p50 s",
    "end->event p99 s",
    "late >2 polls",
    "missed",
    "CPU ms/run",
    "lag p50 ms",
    "lag p99 ms",
    "RSS KB/run",
    "429s",
    "failed",
    "wall s",
)


def row(mode: str, n: int, jobs: int, limit: float, rs: list[dict[str, Any]]) -> tuple[Any, ...]:
    def m(key: str) -> float:
        return median(r[key] for r in rs)

    return (
        mode,
        n,
        jobs if mode == "sweep" else "-",
        limit or "off",
        m("steady_req_per_run_cycle"),
        m("long_req_per_run_cycle"),
        m("req_per_run_cycle"),
        m("end_to_event_p50"),
        m("end_to_event_p99"),
        int(m("late_2x")),
        int(m("missed")),
        m("cpu_per_run_ms"),
        m("lag_p50_ms"),
        m("lag_p99_ms"),
        m("rss_per_run_kb"),
        int(m("throttled")),
        int(m("errors")),
        m("wall_s"),
    )


def verdicts(results: dict[tuple[str, int, int, float], list[dict[str, Any]]], poll: float) -> list[str]:
    """The issues' "done when" figures: issue 14's on the sweep at N = 1,000 over 10 jobs, issue
    25's at N = 5,000 (no server limit; the long-window figure is reported, not judged)."""
    out = []
    for (mode, n, jobs, limit), rs in sorted(results.items()):
        if mode != "sweep" or not ((n == 1000 and jobs == 10) or (n == 5000 and not limit)):
            continue
        rpc = median(r["steady_req_per_run_cycle"] for r in rs)
        p99 = median(r["end_to_event_p99"] for r in rs)
        lag = median(r["lag_p99_ms"] for r in rs)
        failed, late = sum(r["errors"] for r in rs), sum(r["late_2x"] for r in rs)
        missed = sum(r["missed"] for r in rs)
        target = 0.05 if n == 1000 else 0.01
        if not limit:
            checks = [
                (f"steady req/run/cycle <= {target}", rpc <= target, f"{rpc:.4f}"),
                (f"end->event p99 <= {poll:g} s", p99 <= poll, f"{p99:.2f} s"),
                ("lag p99 <= 50 ms", lag <= 50, f"{lag:.1f} ms"),
                ("zero missed/wrong events", failed + missed == 0, f"{failed + missed}"),
            ]
        else:
            checks = [
                ("zero failed triggers", failed == 0, f"{failed}"),
                ("zero runs late > 2 polls", late == 0, f"{late}"),
            ]
        where = f"N={n}/{jobs} jobs, limit {limit or 'off'}"
        out += [f"{'PASS' if ok else 'MISS'} {where}: {name} ({value})" for name, ok, value in checks]
    return out


def main() -> int:
    if "--worker" in sys.argv:
        worker()
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[100, 1000], help="runs followed")
    parser.add_argument("--jobs", type=int, nargs="+", default=[10, 100], help="jobs the runs belong to")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument(
        "--rate-limit",
        type=float,
        nargs="+",
        default=[0.0, 100.0],
        help="server rate limits to run under, requests/s (0 = none); default 0 and 100",
    )
    parser.add_argument("--repeats", type=int, default=1, help="rounds per case (default 1)")
    parser.add_argument("--poll", type=float, default=1.0, help="poll interval seconds (default 1)")
    parser.add_argument("--min-duration", type=float, default=10.0)
    parser.add_argument("--max-duration", type=float, default=16.0)
    parser.add_argument(
        "--pacing",
        type=float,
        default=None,
        help="AIDP max_requests_per_second; default 20 x 30 / poll (the default, scaled)",
    )
    args = parser.parse_args()
    args.pacing = DEFAULT_PACING * DEFAULT_POLL / args.poll if args.pacing is None else args.pacing

    import tempfile

    args.home = tempfile.mkdtemp(prefix="aidp-bench-home-")
    subprocess.run(
        [sys.executable, "-c", "import airflow.sdk"],
        env=airflow_env(Path(args.home)),
        check=True,
        capture_output=True,
    )
    print_machine()
    print(
        f"\npoll interval {args.poll} s (default {DEFAULT_POLL:g}), AIDP pacing {args.pacing:g} requests/s "
        f"(default {DEFAULT_PACING:g} at {DEFAULT_POLL:g} s, scaled), run durations "
        f"{args.min_duration}-{args.max_duration} s, {args.repeats} round(s) per case, "
        f"{os.cpu_count()} cores shared by worker and server\n",
        flush=True,
    )
    results: dict[tuple[str, int, int, float], list[dict[str, Any]]] = {}
    for limit in args.rate_limit:
        args.limit = limit
        for n in args.n:
            for rnd in range(args.repeats):
                cases = [(m, j) for m in args.modes for j in (args.jobs if m == "sweep" else args.jobs[:1])]
                for mode, jobs in cases if rnd % 2 == 0 else cases[::-1]:
                    res = run_case(mode, n, jobs, args, seed=rnd)
                    results.setdefault((mode, n, jobs, limit), []).append(res)
                    print(
                        "  "
                        + " ".join(
                            f"{h}={v}" for h, v in zip(HEADERS, row(mode, n, jobs, limit, [res]), strict=True)
                        ),
                        flush=True,
                    )
    print()
    print(table(HEADERS, [row(m, n, j, lim, rs) for (m, n, j, lim), rs in results.items()]))
    print()
    for line in verdicts(results, args.poll):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
