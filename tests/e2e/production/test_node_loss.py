"""A node dies: a triggerer holding six deferred AIDP runs and the Celery worker waiting on a seventh.

One scenario on the production profile (``aidp_prod_node_loss``: ten deferred run tasks, one
sync run task with a retry), four tests on what it recorded:

1. Spread: ``triggerer-1`` starts alone with ``--capacity 6``, so it takes six of the ten
   triggers and four wait unassigned until ``triggerer-2`` starts and takes them. (A full
   triggerer leaving the rest to another is how Airflow spreads triggers deterministically; two
   triggerers started together race, and whichever loop comes first takes what is unassigned.)
   Both status sweeps run side by side for a measuring window.
2. Node loss: ``triggerer-1`` (six triggers) and the worker running ``run_sync`` (after its
   ``POST /jobRuns`` and first poll) are SIGKILLed, with every process they had started.
   ``triggerer-2`` takes the six triggers once ``triggerer-1``'s heartbeat is older than
   ``triggerer_health_check_threshold``; the failover time is measured from the kill until the
   survivor has started all of them. The scheduler fails ``run_sync``'s try once its heartbeat is
   older than ``task_instance_heartbeat_timeout``, and the retry runs on the other worker. Then
   ``triggerer-2``'s sweep alone is measured on the same ten runs.
3. Pacing per triggerer: both triggerers restarted (``triggerer-1`` first, capped again) with the
   sweep off and ``max_requests_per_second`` 2 on their connection, so each would poll several
   runs a second: each sends at most its own limit, together about twice it.
4. The runs are let finish.

Each triggerer signs with its own API key, which tells the emulator's request log apart per
triggerer; workers sign with the deployment's key.
"""

from __future__ import annotations

import datetime as dt
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ..conftest import EmulatorProcess
from .conftest import Figures, TriggererKey, connection_with, secrets_env
from .deployment import WORKERS, ProductionDeployment
from .observe import (
    Window,
    cancels,
    holders,
    last_seq,
    measure,
    parameter,
    run_creations,
    running_on,
    settled,
)

pytestmark = [pytest.mark.e2e, pytest.mark.production]

DAG_ID = "aidp_prod_node_loss"
JOB_NAME = "prod_node_loss"
DEFERRED = tuple(f"run_{slot:02d}" for slot in range(10))
SYNC = "run_sync"
FIRST_CAPACITY = 6
REST = len(DEFERRED) - FIRST_CAPACITY
#: emulator seconds each run's task takes: the runs end only when the test moves the clock
HOLD_SECONDS = 100_000.0
WINDOW_SECONDS = 5.0
POLL_SECONDS = 1.0  # the DAG's poll_interval (AIDP_EXAMPLE_POLL_SECONDS)
SWEEP_CYCLE_SECONDS = POLL_SECONDS / 2  # half the smallest poll interval watched
PACED_RATE = 2.0  # max_requests_per_second in the pacing phase (burst = rate)


@dataclass
class Scenario:
    run_id: str = ""
    job_key: str = ""
    spread: dict[str, list[str]] = field(default_factory=dict)  # triggerer -> tasks it held
    killed_at: float = 0.0  # wall clock
    assigned_seconds: float = 0.0  # kill -> every trigger assigned to the survivor
    failover_seconds: float = 0.0  # kill -> every trigger started by the survivor
    sync_worker: str = ""  # the worker that ran run_sync's first try (and was killed)
    sync_run_key: str = ""
    windows: dict[str, Window] = field(default_factory=dict)
    state: str = ""
    task_instances: dict[str, dict[str, Any]] = field(default_factory=dict)
    run_key_xcom: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)


def _wait_held(
    d: ProductionDeployment,
    run_id: str,
    expect: dict[int | None, int],
    what: str,
    started_by: int | None = None,
) -> dict[str, int | None]:
    """Until as many triggers as ``expect`` says are assigned to each live triggerer job id (None:
    to none alive); with ``started_by``, until that job has also started each trigger it holds."""
    live = {d.triggerer_job(t) for t in d.processes if t.startswith("triggerer")} - {None}

    def check() -> dict[str, int | None] | None:
        tis = d.task_instances(DAG_ID, run_id)
        bad = {t: ti["state"] for t, ti in tis.items() if ti["state"] in ("failed", "upstream_failed")}
        assert not bad, bad
        if any(tis.get(t, {}).get("state") != "deferred" for t in DEFERRED):
            return None
        held = holders(d, DAG_ID, run_id, DEFERRED)
        counts: dict[int | None, int] = {}
        for job in held.values():
            key = job if job in live else None
            counts[key] = counts.get(key, 0) + 1
        if counts != expect:
            return None
        if started_by is not None and not all(
            running_on(d, DAG_ID, run_id, t, started_by) for t, job in held.items() if job == started_by
        ):
            return None
        return held

    return d.wait_for(check, 180, what, interval=0.5)  # type: ignore[no-any-return]


def _sync_waiting(d: ProductionDeployment, emu: Any, run_id: str) -> tuple[str, str] | None:
    """(worker, run key) once ``run_sync`` runs on a worker that started its AIDP run and polled it."""
    ti = d.task_instances(DAG_ID, run_id).get(SYNC, {})
    if ti.get("state") != "running" or ti.get("hostname") not in WORKERS:
        return None
    mine = [r for r in emu.runs() if parameter(r, "slot") == "sync"]
    if len(mine) != 1:
        return None
    polled = emu.requests(method="GET", path=f"*/jobRuns/{urllib.parse.quote(mine[0]['key'], safe='')}")
    return (ti["hostname"], mine[0]["key"]) if polled else None


@pytest.fixture(scope="module")
def scenario(
    production_deployment: ProductionDeployment,
    production_emulator: EmulatorProcess,
    production_dir: Path,
    triggerer_keys: dict[str, TriggererKey],
) -> Scenario:
    d, emu = production_deployment, production_emulator.client
    keys = {name: key.key_id for name, key in triggerer_keys.items()}
    out = Scenario()
    d.restore()  # workers (an earlier test may have killed one); the triggerers are started below
    d.wait_for_dag(DAG_ID)
    d.unpause(DAG_ID)
    before = max((r["seq"] for r in emu.requests()), default=0)
    emu.script_task(job_name=JOB_NAME, task_key="work", duration=HOLD_SECONDS, times=len(DEFERRED) + 1)
    try:
        # 1. triggerer-1 alone and capped: it takes six, four wait for triggerer-2
        for name in ("triggerer-1", "triggerer-2"):
            d.stop_component(name)
        d.start_component("triggerer-1", "--capacity", str(FIRST_CAPACITY))
        out.run_id = d.trigger(DAG_ID)
        d.wait_ready("triggerer-1")
        first = d.triggerer_job("triggerer-1")
        _wait_held(d, out.run_id, {first: FIRST_CAPACITY, None: REST}, "six held")
        d.start_component("triggerer-2")
        d.wait_ready("triggerer-2")
        second = d.triggerer_job("triggerer-2")
        held = _wait_held(d, out.run_id, {first: FIRST_CAPACITY, second: REST}, "four more", second)
        since = last_seq(emu)
        out.spread = {
            name: sorted(t for t, job in held.items() if job == job_id)
            for name, job_id in (("triggerer-1", first), ("triggerer-2", second))
        }
        out.sync_worker, out.sync_run_key = d.wait_for(
            lambda: _sync_waiting(d, emu, out.run_id), 120, "run_sync to start its run and poll it"
        )
        for name in ("triggerer-1", "triggerer-2"):  # both sweeps past their start
            d.wait_for(lambda n=name: settled(emu, keys[n], since, listings=2), 60, f"{name} to sweep")
        out.windows["two"] = measure(emu, WINDOW_SECONDS)

        # 2. the node dies: triggerer-1 and the worker running run_sync, SIGKILLed
        out.killed_at, killed = time.time(), time.monotonic()
        d.processes["triggerer-1"].kill()
        d.processes[out.sync_worker].kill()
        d.stop_component("triggerer-1")  # reap; nothing is left to signal
        d.stop_component(out.sync_worker)
        _wait_held(d, out.run_id, {second: len(DEFERRED)}, "the survivor to hold all ten")
        out.assigned_seconds = time.monotonic() - killed
        _wait_held(d, out.run_id, {second: len(DEFERRED)}, "the survivor to run all ten", second)
        out.failover_seconds = time.monotonic() - killed
        since = last_seq(emu)
        d.wait_for(lambda: settled(emu, keys["triggerer-2"], since, listings=2), 60, "the survivor to sweep")
        out.windows["one"] = measure(emu, WINDOW_SECONDS)

        # 3. pacing per triggerer: sweep off, 2 requests/s per connection per triggerer
        d.stop_component("triggerer-2")
        paced = {
            name: secrets_env(
                production_dir / "secrets" / f"{name}-paced.json",
                {
                    "aidp_default": connection_with(
                        key.connection, status_sweep="off", max_requests_per_second=PACED_RATE
                    )
                },
            )
            for name, key in triggerer_keys.items()
        }
        d.start_component("triggerer-1", "--capacity", str(FIRST_CAPACITY), env=paced["triggerer-1"])
        d.wait_ready("triggerer-1")
        first = d.triggerer_job("triggerer-1")
        _wait_held(d, out.run_id, {first: FIRST_CAPACITY, None: REST}, "paced: six", first)
        d.start_component("triggerer-2", env=paced["triggerer-2"])
        d.wait_ready("triggerer-2")
        second = d.triggerer_job("triggerer-2")
        _wait_held(d, out.run_id, {first: FIRST_CAPACITY, second: REST}, "paced: four", second)
        since = last_seq(emu)
        for name in ("triggerer-1", "triggerer-2"):  # both polling at their pace
            d.wait_for(lambda n=name: settled(emu, keys[n], since, requests=4), 60, f"{name} to poll")
        out.windows["paced"] = measure(emu, WINDOW_SECONDS)

        # 4. run_sync's retry has reattached (its try 2 polls the same run); every run ends
        d.wait_for(
            lambda: d.task_instances(DAG_ID, out.run_id)[SYNC]["try_number"] == 2,
            120,
            "run_sync's retry (the scheduler fails the try of the dead worker after the heartbeat timeout)",
        )
        emu.advance(HOLD_SECONDS)
        out.state = d.wait_for_dag_run(DAG_ID, out.run_id, timeout=240)
        out.task_instances = d.task_instances(DAG_ID, out.run_id)
        run_path = f"dags/{DAG_ID}/dagRuns/{urllib.parse.quote(out.run_id, safe='')}"
        xcom = d.api("GET", f"{run_path}/taskInstances/{SYNC}/xcomEntries/run_key")
        out.run_key_xcom = str(xcom["value"]).strip('"')
    finally:
        emu.clear_scripts()
    out.requests = emu.requests(since=before)
    (out.job_key,) = {j["key"] for j in emu.jobs() if j["body"]["name"] == JOB_NAME}
    out.runs = [r for r in emu.runs() if r["job_key"] == out.job_key]
    return out


def _epoch(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_deferred_tasks_survive_the_sigkill_of_the_triggerer_holding_more(
    scenario: Scenario, production_deployment: ProductionDeployment, figures: Figures
) -> None:
    s = scenario
    assert [len(s.spread["triggerer-1"]), len(s.spread["triggerer-2"])] == [6, 4], s.spread
    assert s.state == "success", production_deployment.log_tails()
    deferred = {t: (ti["state"], ti["try_number"]) for t, ti in s.task_instances.items() if t in DEFERRED}
    assert deferred == dict.fromkeys(DEFERRED, ("success", 1))  # every one on its first try
    posts = [p for p in run_creations(s.requests, s.job_key) if parameter(p, "slot") != "sync"]
    assert sorted(int(parameter(p, "slot")) for p in posts) == list(range(len(DEFERRED)))  # one POST each
    assert cancels(s.requests) == []
    figures.add(
        f"triggerer failover: SIGKILL of the triggerer holding 6 of 10 deferred runs (health check "
        f"threshold 10 s, heartbeat 1 s): triggers reassigned after {s.assigned_seconds:.1f} s, all "
        f"running on the survivor after {s.failover_seconds:.1f} s; POST /jobRuns {len(posts)} for "
        f"{len(DEFERRED)} tasks; cancels {len(cancels(s.requests))}; succeeded on the first try "
        f"{sum(1 for v in deferred.values() if v == ('success', 1))}/{len(DEFERRED)}"
    )


def test_a_sync_run_task_reattaches_to_its_run_after_its_worker_is_killed(
    scenario: Scenario, figures: Figures
) -> None:
    s = scenario
    ti = s.task_instances[SYNC]
    assert (ti["state"], ti["try_number"]) == ("success", 2), ti
    assert ti["hostname"] in WORKERS and ti["hostname"] != s.sync_worker, (ti["hostname"], s.sync_worker)
    mine = [r for r in s.runs if parameter(r, "slot") == "sync"]
    posts = [p for p in run_creations(s.requests, s.job_key) if parameter(p, "slot") == "sync"]
    assert [r["key"] for r in mine] == [s.sync_run_key]  # one AIDP run ...
    assert mine[0]["status"] == "SUCCESS"
    assert len(posts) == 1  # ... started once: the retry found it (task_state_store), no second POST
    assert s.run_key_xcom == s.sync_run_key  # the retry reports the run its first try started
    assert cancels(s.requests) == []
    retry_started = _epoch(ti["start_date"]) - s.killed_at
    figures.add(
        f"worker loss: SIGKILL of {s.sync_worker} waiting on a sync run (task_instance_heartbeat_timeout "
        f"15 s): the retry started on {ti['hostname']} {retry_started:.1f} s after the kill and "
        f"reattached to the same run; POST /jobRuns {len(posts)}, AIDP runs {len(mine)}, cancels "
        f"{len(cancels(s.requests))}"
    )


def test_each_triggerer_sweeps_once_per_cycle_as_a_lone_one_does(
    scenario: Scenario, triggerer_keys: dict[str, TriggererKey], figures: Figures
) -> None:
    s = scenario
    figures.add("status sweep, 10 deferred runs of one job, poll 1 s (sweep cycle 0.5 s):")
    for phase, live in (("two", ("triggerer-1", "triggerer-2")), ("one", ("triggerer-2",))):
        window = s.windows[phase]
        polls = window.seconds / POLL_SECONDS
        total = 0
        for name in live:
            counts = window.counts(triggerer_keys[name].key_id)
            held = len(DEFERRED) if phase == "one" else len(s.spread[name])
            # one listing per sweep cycle at most (a couple more for cycles a new run kicked)
            assert 0 < counts["listing"] <= window.seconds / SWEEP_CYCLE_SECONDS + 3, (phase, name, counts)
            # the listing answers for the runs: nothing like per-run polling (1 GET per run per poll)
            assert counts["run_read"] / (held * polls) < 0.2, (phase, name, counts)
            total += counts["all"]
            figures.add(
                f"  {phase} triggerer(s), {name} ({held} runs): {counts['listing']} listings + "
                f"{counts['run_read']} run GETs in {window.seconds:.1f} s = "
                f"{counts['all'] / (held * polls):.3f} requests per run per poll"
            )
        figures.add(
            f"  {phase} triggerer(s), all {len(DEFERRED)} runs: "
            f"{total / (len(DEFERRED) * polls):.3f} requests per run per poll"
        )


def test_request_pacing_is_per_triggerer(
    scenario: Scenario, triggerer_keys: dict[str, TriggererKey], figures: Figures
) -> None:
    window = scenario.windows["paced"]
    bound = PACED_RATE * window.seconds + PACED_RATE  # GCRA: rate x window + one burst
    sent = {name: window.counts(key.key_id)["all"] for name, key in triggerer_keys.items()}
    for name, count in sent.items():
        assert 0 < count <= bound + 1, (name, sent, bound)  # each keeps its own limit ...
    assert sum(sent.values()) > bound, (sent, bound)  # ... and only its own: together they exceed it
    figures.add(
        f"pacing (status_sweep off, max_requests_per_second {PACED_RATE:g}, 6 + 4 runs polled every 1 s): "
        + ", ".join(f"{n} {c / window.seconds:.2f}/s" for n, c in sent.items())
        + f"; together {sum(sent.values()) / window.seconds:.2f}/s = "
        f"{sum(sent.values()) / window.seconds / PACED_RATE:.2f} x the per-connection limit"
    )
