"""Run-event trigger against history: what a poll costs when each job has 0, 1,000 or 10,000 runs.

``AIDPJobRunEventTrigger`` watchers (one per job, as one ``AssetWatcher`` per asset would be, or one
for all jobs with ``--shared``) run in one asyncio loop of a fresh worker process, as a triggerer
runs them, against the AIDP emulator in another process. Each job carries a seeded history of
finished runs, one an hour (10,000 is about 14 months of an hourly job), and the emulator serves
100-item pages by default (the field notes' page size). Two listings:

* ``bounded``: this provider's poll: the runs created since a bound trailing the newest run listed
  by ``lookback_seconds``, plus the active runs while a followed run predates the bound;
* ``full``: the poll before issue 25 (every run of the watched jobs in the watched statuses, every
  page, every poll), reproduced by a subclass of the trigger in the worker.

While the watchers run, the orchestrator starts a new run of every job every ``--every`` seconds
(each lasting ``--run-seconds``); one long run per job, created before the watchers start, ends
after their bound has passed its creation (the case a bounded listing must not lose).

Reported per case: listing requests (``GET /jobRuns``) per watched job per poll in the steady
window (server-counted / polls counted in the worker), reads by key (``GET /jobRuns/{key}``: the
event's parameters, a followed run confirmed) per event, end->event p50 / p99, missed (a run that
ended while measured and was never reported: after the measurement the watchers run on until no
event came for 5 polls, at most 60 s, so that a late event counts as late), duplicate and wrong
events (a history run, another job's), event-loop lag p50 / p99 (10 ms ticker) while measured,
and the worker's RSS per watcher (after a warm-up request).

Scaled: poll interval ``--poll`` (1 s; default 60 s), the provider's pacing scaled by the same
factor (20 x 60 / poll requests/s), ``--lookback`` 10 s (default 3,600 s).

Run:  benchmarks/run.sh event_history
      benchmarks/run.sh event_history --history 0 1000 10000 --jobs 1 20 --modes bounded full
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import airflow_env, median, percentile, print_machine, table
from _servers import EmulatorSession, start_emulator, stop_server

TICK = 0.010
CONN_ID = "bench"
RESULT, READY = "RESULT ", "READY "
DEFAULT_POLL, DEFAULT_PACING = 60.0, 20.0  # the event trigger's default interval, the default pacing
LONG_SECONDS = 20.0  # the long run: created before the watchers start, ends after the bound passed it
QUIET_POLLS, DRAIN_MAX = 5, 60.0  # after the measurement: stop once no event came for 5 polls (<= 60 s)


# --- orchestrator side -----------------------------------------------------------------------------


def run_case(mode: str, history: int, jobs: int, args: argparse.Namespace) -> dict[str, Any]:
    """One measurement: fresh emulator with the history, fresh worker, runs started meanwhile."""
    env = airflow_env(Path(args.home))
    proc, base = start_emulator(env)
    try:
        emu = EmulatorSession.open(base)
        emu.extra["max_requests_per_second"] = args.pacing
        keys = [emu.create_job(f"events_job_{j}", args.run_seconds) for j in range(jobs)]
        for key in keys:
            if history:
                emu.control.seed_history(key, history, every=3600.0, duration=600.0)
        for j in range(jobs):  # the next run of each job lasts LONG_SECONDS
            emu.control.script_task(job_name=f"events_job_{j}", duration=LONG_SECONDS, times=1)
        long_runs = [emu.create_run(key) for key in keys]
        spec = {
            "mode": mode,
            "keys": keys,
            "shared": args.shared,
            "poll": args.poll,
            "lookback": args.lookback,
        }
        # The worker's output goes to a file, not a pipe: nothing reads a pipe while runs are started.
        with tempfile.NamedTemporaryFile("w+", prefix="aidp-bench-worker-", suffix=".log") as out:
            worker = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--worker"],
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                env={**env, f"AIRFLOW_CONN_{CONN_ID.upper()}": emu.connection_json()},
            )
            assert worker.stdin is not None
            worker.stdin.write(json.dumps({**spec, "measure": args.measure}))
            worker.stdin.close()
            ready = _wait_for(worker, Path(out.name), READY, timeout=600)
            started = start_runs(emu, keys, float(ready), args)
            worker.wait(timeout=args.measure + 600)
            text = Path(out.name).read_text(errors="replace")
        marked = [line for line in text.splitlines() if line.startswith(RESULT)]
        if worker.returncode != 0 or not marked:
            raise RuntimeError(f"{mode} worker failed:\n{text[-4000:]}")
        result = json.loads(marked[-1].removeprefix(RESULT))
        return figures(result, emu, long_runs, started, float(ready), jobs, args)
    finally:
        stop_server(proc)


def _wait_for(worker: subprocess.Popen[str], log: Path, mark: str, timeout: float) -> str:
    """What follows ``mark`` on the worker's first line that starts with it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith(mark):
                return line.removeprefix(mark)
        if worker.poll() is not None:
            raise RuntimeError(f"worker exited early:\n{log.read_text(errors='replace')[-4000:]}")
        time.sleep(0.05)
    raise RuntimeError(f"worker printed no {mark.strip()} in time")


def start_runs(emu: EmulatorSession, keys: list[str], ready: float, args: argparse.Namespace) -> list[str]:
    """A new run of every job every ``--every`` seconds, until ``drain`` seconds before the end."""
    started, at = [], ready + 1.0
    stop = ready + args.measure - args.drain
    while at < stop:
        time.sleep(max(0.0, at - time.time()))
        started += [emu.create_run(key) for key in keys]
        at += args.every
    return started


def figures(
    result: dict[str, Any],
    emu: EmulatorSession,
    long_runs: list[str],
    started: list[str],
    ready: float,
    jobs: int,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Per-case figures: server-counted requests in the steady window, events against the runs."""
    recs = [r for r in emu.control.requests(method="GET") if "/jobRuns" in r["path"]]
    lo, hi = ready + 2.0, result["measured"] - 1.0
    listings = sum(1 for r in recs if lo <= r["time"] < hi and r["path"].endswith("/jobRuns"))
    reads = sum(
        1 for r in recs if ready <= r["time"] < result["stopped"] and not r["path"].endswith("/jobRuns")
    )
    polls = sum(1 for t in result["polls"] if lo <= t < hi)
    events: dict[str, list[float]] = {}
    for key, at in result["events"]:
        events.setdefault(key, []).append(at)
    ends = {key: end_of(emu, key) for key in [*long_runs, *started]}
    # Every run that ended while measured must be reported (the drain gave its event time to come).
    expected = {k for k, end in ends.items() if end is not None and end < result["measured"]}
    late = [min(events[k]) - ends[k] for k in expected if k in events]  # type: ignore[operator]
    return {
        "listings_per_job_poll": listings / max(1, polls) / (jobs if result["shared"] else 1),
        "reads_per_event": reads / max(1, len(events)),
        "polls": polls,
        "events": len(events),
        "missed": len(expected - set(events)),
        "duplicates": sum(len(v) - 1 for v in events.values()),
        "wrong": len(set(events) - set(ends)),
        "long_reported": sum(1 for k in long_runs if k in events),
        "end_to_event_p50": percentile(late, 50),
        "end_to_event_p99": percentile(late, 99),
        "lag_p50_ms": result["lag_p50_ms"],
        "lag_p99_ms": result["lag_p99_ms"],
        "rss_per_watcher_kb": result["rss_added_kb"] / max(1, result["watchers"]),
    }


def end_of(emu: EmulatorSession, run_key: str) -> float | None:
    """A run's end (epoch s; the emulator's clock runs at wall time here), None while it runs."""
    body = emu.api.get(f"{emu.prefix}/jobRuns/{run_key}", timeout=60).json()
    end = body.get("endTime")
    return None if end is None else float(end) / 1000


# --- worker side (the "triggerer") ---------------------------------------------------------------


def make_triggers(spec: dict[str, Any], polls: list[float], baselined: list[int]) -> list[Any]:
    from airflow_provider_aidp.runs import watermark as wm
    from airflow_provider_aidp.triggers.run_events import AIDPJobRunEventTrigger

    class Bounded(AIDPJobRunEventTrigger):
        async def _baseline(self, hook: Any, keys: list[str]) -> Any:
            mark = await super()._baseline(hook, keys)
            baselined.append(1)
            return mark

        async def _look(self, hook: Any, keys: list[str], mark: Any) -> Any:
            polls.append(time.time())
            return await super()._look(hook, keys, mark)

    class Full(Bounded):
        """The poll before issue 25: every run in the watched statuses, every page, every poll."""

        async def _baseline(self, hook: Any, keys: list[str]) -> Any:
            runs = await hook.a_list_job_runs(job_keys=keys, statuses=self.statuses)
            baselined.append(1)
            return wm.baseline(runs, self._lookback_ms, job_keys=keys)

        async def _look(self, hook: Any, keys: list[str], mark: Any) -> Any:
            polls.append(time.time())
            return await hook.a_list_job_runs(job_keys=keys, statuses=self.statuses)

    cls = Full if spec["mode"] == "full" else Bounded
    groups = [spec["keys"]] if spec["shared"] else [[k] for k in spec["keys"]]
    common = {"aidp_conn_id": CONN_ID, "poll_interval": spec["poll"], "lookback_seconds": spec["lookback"]}
    return [cls(job_keys=group, commit_delay=0.5, **common) for group in groups]


async def drive_all(spec: dict[str, Any]) -> dict[str, Any]:
    from airflow_provider_aidp.hooks.aidp import AIDPHook

    polls: list[float] = []
    baselined: list[int] = []
    # One request first (lazy imports, key parsing, connection lookup: once per process), so that
    # the RSS added is the watchers'; it comes before READY and is not counted.
    await AIDPHook(CONN_ID).a_newest_run_created(spec["keys"][:1])
    rss_before = rss_kb()
    triggers = make_triggers(spec, polls, baselined)
    loop = asyncio.get_running_loop()
    lags: list[float] = []
    events: list[tuple[str, float]] = []
    rss = [rss_before]

    async def ticker() -> None:
        while True:
            begin = loop.time()
            await asyncio.sleep(TICK)
            lags.append(loop.time() - begin - TICK)
            if len(lags) % 50 == 0:
                rss.append(rss_kb())

    async def drive(trigger: Any) -> None:
        trigger.asset_state_store = None
        async for event in trigger.run():
            events.append((event.payload["run_key"], time.time()))

    tick = asyncio.create_task(ticker())
    tasks = [asyncio.create_task(drive(t)) for t in triggers]
    while len(baselined) < len(triggers):
        await asyncio.sleep(0.05)
        for task in tasks:
            if task.done():
                task.result()  # a watcher that died: its error, not a silent wait
    ready = time.time()
    print(READY + str(ready), flush=True)
    lags.clear()
    await asyncio.sleep(spec["measure"])
    measured, lag_count = time.time(), len(lags)
    # Drain: the last runs' events may still be on their way (a server slowed by a long history
    # answers late); stop once none came for QUIET_POLLS polls, at most DRAIN_MAX seconds on.
    while time.time() < measured + DRAIN_MAX:
        last = max([measured, *(at for _, at in events)])
        if time.time() - last > QUIET_POLLS * spec["poll"]:
            break
        await asyncio.sleep(spec["poll"])
    for task in [*tasks, tick]:
        task.cancel()
    await asyncio.gather(*tasks, tick, return_exceptions=True)
    del lags[lag_count:]  # the lag while measured, not while draining
    return {
        "measured": measured,
        "stopped": time.time(),
        "polls": polls,
        "events": events,
        "shared": spec["shared"],
        "watchers": len(triggers),
        "lag_p50_ms": percentile(lags, 50) * 1000,
        "lag_p99_ms": percentile(lags, 99) * 1000,
        "rss_added_kb": max(rss) - rss_before,
    }


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def rss_kb() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


def worker() -> None:
    import logging

    spec = json.loads(sys.stdin.read())
    logging.basicConfig(level=logging.ERROR)
    print(RESULT + json.dumps(asyncio.run(drive_all(spec))), flush=True)


# --- report --------------------------------------------------------------------------------------

HEADERS = (
    "listing",
    "history/job",
    "jobs",
    "watchers",
    "list req/job/poll",
    "reads/event",
    "polls",
    "events",
    "missed",
    "dup",
    "wrong",
    "long runs reported",
    "end->event p50 s",
    "end->event p99 s",
    "lag p50 ms",
    "lag p99 ms",
    "RSS KB/watcher",
)


def row(mode: str, history: int, jobs: int, shared: bool, rs: list[dict[str, Any]]) -> tuple[Any, ...]:
    def m(key: str) -> float:
        return median(r[key] for r in rs)

    return (
        mode,
        history,
        jobs,
        1 if shared else jobs,
        m("listings_per_job_poll"),
        m("reads_per_event"),
        int(m("polls")),
        int(m("events")),
        sum(r["missed"] for r in rs),
        sum(r["duplicates"] for r in rs),
        sum(r["wrong"] for r in rs),
        f"{int(m('long_reported'))}/{jobs}",
        m("end_to_event_p50"),
        m("end_to_event_p99"),
        m("lag_p50_ms"),
        m("lag_p99_ms"),
        m("rss_per_watcher_kb"),
    )


def main() -> int:
    if "--worker" in sys.argv:
        worker()
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, nargs="+", default=[0, 1000, 10000], help="runs per job")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 20], help="jobs watched")
    parser.add_argument("--modes", nargs="+", default=["bounded", "full"], choices=["bounded", "full"])
    parser.add_argument("--shared", action="store_true", help="one watcher for all jobs (default: one each)")
    parser.add_argument("--repeats", type=int, default=1, help="rounds per case (default 1)")
    parser.add_argument("--poll", type=float, default=1.0, help="poll interval seconds (default 1)")
    parser.add_argument("--lookback", type=float, default=10.0, help="lookback_seconds (default 10)")
    parser.add_argument("--measure", type=float, default=40.0, help="seconds measured after the baseline")
    parser.add_argument("--drain", type=float, default=6.0, help="last seconds without new runs")
    parser.add_argument("--every", type=float, default=2.0, help="seconds between a job's new runs")
    parser.add_argument("--run-seconds", type=float, default=1.0, help="task length of a new run")
    parser.add_argument(
        "--full-limit",
        type=int,
        default=20_000,
        help="skip the full listing above this many history runs in all (it would cost "
        "history/100 requests per job per poll, minutes a poll on this machine)",
    )
    args = parser.parse_args()
    args.pacing = DEFAULT_PACING * DEFAULT_POLL / args.poll
    args.home = tempfile.mkdtemp(prefix="aidp-bench-home-")
    subprocess.run(
        [sys.executable, "-c", "import airflow.sdk"],
        env=airflow_env(Path(args.home)),
        check=True,
        capture_output=True,
    )
    print_machine()
    print(
        f"\npoll interval {args.poll:g} s (default {DEFAULT_POLL:g}), pacing {args.pacing:g} requests/s, "
        f"lookback {args.lookback:g} s, {args.measure:g} s measured, a new run of each job every "
        f"{args.every:g} s, history one run an hour, 100-item pages, {args.repeats} round(s), "
        f"{os.cpu_count()} cores shared by worker and emulator, load average "
        f"{load()} at the start ({dt.datetime.now(dt.timezone.utc):%H:%M} UTC)\n",
        flush=True,
    )
    results: dict[tuple[str, int, int], list[dict[str, Any]]] = {}
    for jobs in args.jobs:
        for history in args.history:
            for mode in args.modes:
                if mode == "full" and jobs * history > args.full_limit:
                    cost = jobs * history // 100
                    print(f"  skipped: full listing, {jobs} jobs x {history} runs ({cost} requests a poll)")
                    continue
                for _ in range(args.repeats):
                    res = run_case(mode, history, jobs, args)
                    results.setdefault((mode, history, jobs), []).append(res)
                    line = " ".join(
                        f"{h}={v}"
                        for h, v in zip(HEADERS, row(mode, history, jobs, args.shared, [res]), strict=True)
                    )
                    print("  " + line, flush=True)
    print()
    print(table(HEADERS, [row(m, h, j, args.shared, rs) for (m, h, j), rs in results.items()]))
    print()
    for (mode, history, jobs), rs in sorted(results.items()):
        if mode != "bounded":
            continue
        cost = median(r["listings_per_job_poll"] for r in rs)
        bad = sum(r["missed"] + r["duplicates"] + r["wrong"] for r in rs)
        where = f"history {history}/job, {jobs} job(s)"
        verdict = "PASS" if cost <= 2 else "MISS"
        print(f"{verdict} {where}: listing requests per watched job per poll <= 2 ({cost:.3f})")
        print(f"{'PASS' if bad == 0 else 'MISS'} {where}: zero missed, duplicate or wrong events ({bad})")
    print(f"\nload average at the end: {load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
