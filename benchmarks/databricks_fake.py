"""A minimal fake of the one Databricks Jobs route ``DatabricksExecutionTrigger`` polls.

``GET /api/2.2/jobs/runs/get`` (and ``/api/2.1/...``, the older provider releases) with the run id
in the JSON body (what the provider's aiohttp client sends) or the query string.  Runs are created
through a control route that is not part of the Databricks API:

* ``POST /_fake/runs``  body ``{"durations": [seconds, ...], "token": "..."}`` -> ``{"run_ids": [...]}``;
  each run is RUNNING until ``duration`` seconds after its *first* poll, then TERMINATED/SUCCESS,
  so a slow-starting client never sees a run finish before it began watching it.
* ``GET /_fake/stats``  -> request counts per route and per run, each run's end (``time.monotonic``,
  system-wide on Linux, so the benchmark's worker can compare it with its own clock), 429s sent.
* ``--rate-limit N``: answer 429 with ``Retry-After`` above N requests a second (the AIDP emulator's
  per-tenancy limit, same token bucket), so both providers meet the same limit.

It answers with a realistic body (state, tasks, run page URL), checks the bearer token, and does
no other work, so the benchmark measures the client.  Run it as a separate process:
``python benchmarks/databricks_fake.py --port 0`` prints ``LISTENING <port>`` on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time
from collections import Counter
from typing import Any

from aiohttp import web


class FakeDatabricks:
    """State of the fake: runs, their durations, first-poll times, and request counts."""

    def __init__(self) -> None:
        self.token = "dapi-bench-token"
        self.durations: dict[int, float] = {}
        self.first_poll: dict[int, float] = {}
        self.requests: Counter[str] = Counter()
        self.per_run: Counter[int] = Counter()
        self.per_second: Counter[int] = Counter()  # API requests by wall-clock second
        self.throttled = 0
        self.limit: Any = None  # airflow_provider_aidp.emulator.ratelimit.RateLimit when limited

    def run_body(self, run_id: int) -> dict[str, Any]:
        now = time.monotonic()
        started = self.first_poll.setdefault(run_id, now)
        done = now - started >= self.durations[run_id]
        state = (
            {"life_cycle_state": "TERMINATED", "result_state": "SUCCESS", "state_message": ""}
            if done
            else {"life_cycle_state": "RUNNING", "state_message": "In run"}
        )
        return {
            "job_id": 1,
            "run_id": run_id,
            "number_in_job": run_id,
            "run_name": "bench",
            "state": state,
            "run_page_url": f"https://fake.cloud.databricks.com/#job/1/run/{run_id}",
            "tasks": [
                {
                    "run_id": run_id * 10,
                    "task_key": "main",
                    "state": state,
                    "attempt_number": 0,
                    "start_time": 1,
                }
            ],
        }


async def runs_get(request: web.Request) -> web.Response:
    fake: FakeDatabricks = request.app["fake"]
    fake.requests[request.path] += 1
    fake.per_second[int(time.time())] += 1
    if fake.limit is not None and (wait := fake.limit.take(None)) > 0:
        fake.throttled += 1
        body = {"error_code": "REQUEST_LIMIT_EXCEEDED", "message": "rate limit"}
        return web.json_response(body, status=429, headers={"Retry-After": str(max(1, math.ceil(wait)))})
    if request.headers.get("Authorization") != f"Bearer {fake.token}":
        return web.json_response({"error_code": "UNAUTHENTICATED"}, status=401)
    run_id: Any = request.query.get("run_id")
    if run_id is None and request.can_read_body:
        run_id = (await request.json()).get("run_id")
    try:
        rid = int(run_id)
        fake.per_run[rid] += 1
        return web.json_response(fake.run_body(rid))
    except (TypeError, ValueError, KeyError):
        body = {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": str(run_id)}
        return web.json_response(body, status=400)


async def create_runs(request: web.Request) -> web.Response:
    fake: FakeDatabricks = request.app["fake"]
    body = await request.json()
    start = max(fake.durations, default=0) + 1
    ids = []
    for offset, duration in enumerate(body["durations"]):
        fake.durations[start + offset] = float(duration)
        ids.append(start + offset)
    if "token" in body:
        fake.token = body["token"]
    return web.json_response({"run_ids": ids})


async def stats(request: web.Request) -> web.Response:
    fake: FakeDatabricks = request.app["fake"]
    return web.json_response(
        {
            "requests": dict(fake.requests),
            "per_run": {str(k): v for k, v in fake.per_run.items()},
            "peak_per_second": max(fake.per_second.values(), default=0),
            "ends": {
                str(k): fake.first_poll[k] + d for k, d in fake.durations.items() if k in fake.first_poll
            },
            "throttled": fake.throttled,
            "per_second": {str(k): v for k, v in fake.per_second.items()},
        }
    )


async def reset(request: web.Request) -> web.Response:
    request.app["fake"].__init__()
    return web.json_response({})


def make_app(rate_limit: float = 0.0) -> web.Application:
    app = web.Application()
    app["fake"] = FakeDatabricks()
    if rate_limit > 0:
        from airflow_provider_aidp.emulator.ratelimit import RateLimit

        app["fake"].limit = RateLimit(rate_limit)
    for version in ("2.1", "2.2"):
        app.router.add_get(f"/api/{version}/jobs/runs/get", runs_get)
    app.router.add_post("/_fake/runs", create_runs)
    app.router.add_get("/_fake/stats", stats)
    app.router.add_post("/_fake/reset", reset)
    return app


async def serve(port: int, rate_limit: float = 0.0) -> None:
    runner = web.AppRunner(make_app(rate_limit), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=4096)
    await site.start()
    server = site._server
    bound = server.sockets[0].getsockname()[1] if server and server.sockets else port
    print(f"LISTENING {bound}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rate-limit", type=float, default=0.0, help="429 above N requests/s (0 = off)")
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.rate_limit))


if __name__ == "__main__":
    main()
