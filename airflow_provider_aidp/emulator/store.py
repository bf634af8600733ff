"""All emulator state (jobs, runs, task runs, retry tokens) behind one lock.

Handlers run on the server's event loop while tests mutate scripts/clock from their own thread;
every public method takes the lock, does a short synchronous piece of work, and returns plain
data. Runs are advanced lazily (see simulation.py) whenever they are read.

``get_job``, ``get_run`` and ``get_task_run`` are the client's lookups by key: under the
``read_after_create_lag`` reading they miss a record created too recently (consistency.py). The
service's own work (advancing runs, schedules, JOB_TASKs, ``cancelJobRuns``) never goes through
them, so it carries on during the lag.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from .clock import Clock
from .consistency import check_name_free, fresh, slot
from .errors import ApiError, bad_request, not_found
from .records import TERMINAL, JobRecord, RunRecord, Scope, TaskRunRecord
from .schedules import Scheduler
from .scripting import ScriptBook, TaskScript
from .simulation import Timings, advance
from .validation import check_parameters

RETRY_TOKEN_TTL_S = 24 * 3600.0
MAX_NESTING = 5


class Store:
    def __init__(
        self,
        clock: Clock,
        scripts: ScriptBook,
        timings: Timings,
        read_lag: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        #: real seconds, for the consistency lags (tests may swap in a hand-moved clock)
        self.monotonic: Callable[[], float] = time.monotonic
        #: the ``read_after_create_lag`` reading, asked on every client lookup
        self.read_lag = read_lag
        self.scripts = scripts
        self.timings = timings
        self.jobs: dict[str, JobRecord] = {}
        self.runs: dict[str, RunRecord] = {}
        self.task_runs: dict[str, TaskRunRecord] = {}
        self._tokens: dict[tuple[Scope, str, str], tuple[str, float, int, Any]] = {}
        self._run_numbers: dict[str, int] = {}
        self.scheduler = Scheduler()

    def _advance(self, run: RunRecord, now: float) -> None:
        if run.waiting and run.cancel_at is None and not self._admit(run, now):
            return
        run.waiting = False
        advance(run, now, self.timings, self)

    # --- the World protocol used by simulation.advance ---------------------------------------

    def rescript(self, run: RunRecord, task: dict[str, Any]) -> TaskScript:
        return self.scripts.resolve(task, run.job_name)

    def spawn(self, run: RunRecord, tr: TaskRunRecord, at: float) -> RunRecord | str:
        """The child run a JOB_TASK starts at ``at`` (or why it cannot start)."""
        job = self.jobs.get(str(tr.task.get("jobKey")))
        if job is None or job.scope != run.scope:
            return f"JOB_TASK {tr.task_key}: job {tr.task.get('jobKey')!r} not found"
        if run.depth >= MAX_NESTING:
            return f"JOB_TASK {tr.task_key}: nested jobs deeper than {MAX_NESTING} levels"
        child = self._new_run(run.scope, job, list(run.parameters), at)
        child.parent_run_key, child.parent_task_run_key = run.key, tr.key
        child.root_run_key, child.depth = run.root_run_key or run.key, run.depth + 1
        self._new_task_runs(child, [t["taskKey"] for t in child.tasks])
        return child

    def _new_run(
        self, scope: Scope, job: JobRecord, parameters: list[dict[str, Any]], now: float
    ) -> RunRecord:
        number = self._run_numbers.get(job.key, 0) + 1
        self._run_numbers[job.key] = number
        run = RunRecord(
            key=str(uuid.uuid4()),
            scope=scope,
            job_key=job.key,
            job_name=str(job.body.get("name")),
            number=number,
            tasks=[dict(t) for t in job.body.get("tasks") or []],
            job_body={k: v for k, v in job.body.items() if k != "tasks"},
            parameters=parameters,
            created=now,
            attempt_start=now,
            created_mono=self.monotonic(),
        )
        self.runs[run.key] = run
        return run

    def _admit(self, run: RunRecord, now: float) -> bool:
        """Let a queued run start once fewer than maxConcurrentRuns earlier runs are active (FIFO)."""
        limit = run.job_body.get("maxConcurrentRuns") or 1
        earlier = [r for r in self.runs.values() if r.job_key == run.job_key and r.number < run.number]
        for other in earlier:
            self._advance(other, now)
        if any(r.waiting for r in earlier) or sum(not r.done for r in earlier) >= limit:
            return False
        freed = max([run.created] + [r.end for r in earlier if r.end is not None and r.end <= now])
        run.attempt_start = freed - self.timings.pending_s
        return True

    def reset(self) -> None:
        with self.lock:
            self.jobs.clear()
            self.runs.clear()
            self.task_runs.clear()
            self._tokens.clear()
            self._run_numbers.clear()
            self.scheduler.clear()

    # --- retry tokens -------------------------------------------------------------------------

    def replay(self, scope: Scope, path: str, token: str | None, body: Any) -> tuple[int, Any] | None:
        """The stored (status, body) for a repeated token; 409 if the token came with another body."""
        if not token:
            return None
        with self.lock:
            entry = self._tokens.get((scope, path, token))
            if entry is None or self.clock.now() - entry[1] > RETRY_TOKEN_TTL_S:
                return None
            if entry[0] != _digest(body):
                raise ApiError(
                    409, "Conflict", "opc-retry-token was already used with a different request body"
                )
            return entry[2], entry[3]

    def remember(
        self, scope: Scope, path: str, token: str | None, body: Any, status: int, result: Any
    ) -> None:
        if token:
            with self.lock:
                self._tokens[(scope, path, token)] = (_digest(body), self.clock.now(), status, result)

    # --- jobs ---------------------------------------------------------------------------------

    def create_job(self, scope: Scope, body: dict[str, Any], unique: str = "none") -> JobRecord:
        """A new job; 409 if ``unique`` (the ``unique_names`` reading) finds its name taken."""
        with self.lock:
            check_name_free(unique, self.list_jobs(scope), body)
            now = self.clock.now()
            job = JobRecord(str(uuid.uuid4()), scope, dict(body), now, now, self.monotonic())
            self.jobs[job.key] = job
            self.scheduler.reset(job.key, now)
            return job

    def _hidden(self, record: JobRecord | RunRecord | TaskRunRecord) -> bool:
        """Whether the client cannot read ``record`` yet (``read_after_create_lag``)."""
        return fresh(record, self.read_lag(), self.monotonic())

    def get_job(self, scope: Scope, key: str) -> JobRecord:
        job = self.jobs.get(key)
        if job is None or job.scope != scope or self._hidden(job):
            raise not_found(f"Job {key}")
        return job

    def replace_job(self, scope: Scope, key: str, body: dict[str, Any], unique: str = "none") -> JobRecord:
        """PUT: a full replace; 409 if it moves the job onto a name ``unique`` finds taken."""
        with self.lock:
            job = self.get_job(scope, key)
            if slot(unique, body) != slot(unique, job.body):
                check_name_free(unique, self.list_jobs(scope), body, except_key=key)
            job.body = dict(body)
            job.updated = max(self.clock.now(), job.updated + 0.001)
            self._fire_schedules(self.clock.now())  # fire times before the change, by the old schedule
            self.scheduler.reset(job.key, self.clock.now())
            return job

    def delete_job(self, scope: Scope, key: str) -> None:
        with self.lock:
            self.get_job(scope, key)
            self._fire_schedules(self.clock.now())
            del self.jobs[key]
            self.scheduler.forget(key)

    def list_jobs(self, scope: Scope) -> list[JobRecord]:
        with self.lock:
            return [j for j in self.jobs.values() if j.scope == scope]

    # --- runs ---------------------------------------------------------------------------------

    def get_run(self, scope: Scope, key: str) -> RunRecord:
        with self.lock:
            run = self.runs.get(key)
            if run is None or run.scope != scope or self._hidden(run):
                raise not_found(f"JobRun {key}")
            self._fire_schedules(self.clock.now())
            self._advance(run, self.clock.now())
            return run

    def list_runs(self, scope: Scope) -> list[RunRecord]:
        with self.lock:
            now = self.clock.now()
            self._fire_schedules(now)
            for run in [r for r in self.runs.values() if r.scope == scope]:
                self._advance(run, now)  # may start child runs of JOB_TASKs
            return [r for r in self.runs.values() if r.scope == scope]

    def all_runs(self) -> list[RunRecord]:
        with self.lock:
            now = self.clock.now()
            self._fire_schedules(now)
            for run in list(self.runs.values()):
                self._advance(run, now)
            return list(self.runs.values())

    def create_run(self, scope: Scope, job_key: Any, parameters: Any) -> RunRecord:
        if not isinstance(job_key, str) or not job_key:
            raise bad_request("jobKey is required")
        check_parameters(parameters, "parameters")
        with self.lock:
            job = self.get_job(scope, job_key)
            self._fire_schedules(self.clock.now())
            return self._start_run(job, list(parameters or []), self.clock.now())

    def seed_history(
        self, job_key: str, count: int, every: float = 3600.0, duration: float = 60.0, status: str = "SUCCESS"
    ) -> list[str]:
        """``count`` finished runs of a job, the last created ``every`` seconds before now and each
        earlier one ``every`` seconds before the next, each lasting ``duration`` and ending ``status``:
        a job's history (a year of hourly runs) without simulating it. The runs carry no task runs."""
        if count < 0 or every <= 0 or duration < 0:
            raise ValueError("count must be >= 0, every > 0 and duration >= 0")
        if status not in TERMINAL:
            raise ValueError(f"status must be a terminal run status, one of {sorted(TERMINAL)}")
        with self.lock:
            job = self.jobs.get(job_key)
            if job is None:
                raise KeyError(f"no job {job_key!r}")
            now, keys = self.clock.now(), []
            for i in range(count, 0, -1):
                created = now - i * every
                run = self._new_run(job.scope, job, [], created)
                run.created_mono = -math.inf  # long visible: the consistency lags are over
                run.status, run.state_message = status, f"Run {status.lower()} (history)"
                run.start, run.end = created, created + min(duration, every / 2)
                run.history.append(run.history_entry())
                keys.append(run.key)
            return keys

    def _fire_schedules(self, now: float) -> None:
        """Start every run the jobs' schedules have made due by ``now``, each at its fire time."""
        bodies = {key: job.body for key, job in self.jobs.items()}
        for at, key in self.scheduler.due(bodies, now):
            self._start_run(self.jobs[key], [], at, launched="SCHEDULED")

    def _start_run(
        self, job: JobRecord, parameters: list[dict[str, Any]], now: float, launched: str = "MANUAL"
    ) -> RunRecord:
        """A new run of ``job`` at ``now``; ``maxConcurrentRuns`` and the job's queue decide its fate."""
        limit = job.body.get("maxConcurrentRuns") or 1
        active = []
        for other in [r for r in self.runs.values() if r.job_key == job.key]:
            self._advance(other, now)
            if not other.done:
                active.append(other)
        run = self._new_run(job.scope, job, parameters, now)
        run.launched = launched
        if len(active) >= limit and (job.body.get("queue") or {}).get("isEnabled"):
            run.waiting = True
            run.status = "QUEUED"
            run.state_message = f"Queued: {limit} run(s) of this job are active (maxConcurrentRuns)"
        elif len(active) >= limit:
            run.status, run.start, run.end = "SKIPPED", now, now
            run.state_message = f"Skipped: maxConcurrentRuns ({limit}) runs of this job are already active"
            run.history.append(run.history_entry())
            return run
        self._new_task_runs(run, [t["taskKey"] for t in run.tasks])
        return run

    def _new_task_runs(self, run: RunRecord, keys: Iterable[str]) -> None:
        wanted = set(keys)
        now = self.clock.now()
        for task in run.tasks:
            if task["taskKey"] not in wanted:
                continue
            tr = TaskRunRecord(
                key=str(uuid.uuid4()),
                run_key=run.key,
                job_key=run.job_key,
                task=task,
                script=self.scripts.resolve(task, run.job_name),
                repair_key=run.repair_key,
                output_key=str(uuid.uuid4()),
                created=now,
                created_mono=self.monotonic(),
            )
            earlier = run.task_runs.get(tr.task_key)
            if earlier is not None:  # a repair: the new attempt gets a new key and counts on
                tr.earlier_attempts = earlier.earlier_attempts + earlier.attempt + 1
            run.task_runs[tr.task_key] = tr
            self.task_runs[tr.key] = tr

    def cancel_run(self, scope: Scope, key: str) -> RunRecord:
        with self.lock:
            return self._cancel(self.get_run(scope, key))

    def _cancel(self, run: RunRecord) -> RunRecord:
        if not run.done and run.cancel_at is None:
            run.cancel_at = self.clock.now()
            self._advance(run, run.cancel_at)
        return run

    def cancel_job_runs(self, scope: Scope, job_key: str) -> None:
        """The service cancels every run of the job, those the client cannot read yet too."""
        with self.lock:
            self.get_job(scope, job_key)
            for run in self.list_runs(scope):
                if run.job_key == job_key:
                    self._cancel(run)

    def delete_run(self, scope: Scope, key: str) -> None:
        with self.lock:
            run = self.get_run(scope, key)
            for tr in run.task_runs.values():
                self.task_runs.pop(tr.key, None)
            del self.runs[key]

    def repair_run(self, scope: Scope, key: str, body: dict[str, Any]) -> RunRecord:
        with self.lock:
            run = self.get_run(scope, key)
            if not run.done:
                raise ApiError(
                    409,
                    "IncorrectState",
                    f"JobRun {key} is {run.status}; only a finished run can be repaired",
                )
            if run.status == "SKIPPED":
                raise ApiError(409, "IncorrectState", "a SKIPPED run has no tasks to repair")
            selected = self._repair_selection(run, body)
            check_parameters(body.get("parameters"), "parameters")
            if body.get("parameters"):
                run.parameters = list(body["parameters"])
            run.repair_key += 1
            run.repaired_tasks = sorted(selected)
            run.attempt_start = self.clock.now()
            run.cancel_at = None
            run.status, run.state_message, run.error_trace, run.end = "PENDING", "Repair pending", None, None
            self._new_task_runs(run, selected)
            run.history.append(run.history_entry())
            return run

    def _repair_selection(self, run: RunRecord, body: dict[str, Any]) -> set[str]:
        known = {t["taskKey"] for t in run.tasks}
        ups = {t["taskKey"]: [d["taskKey"] for d in t.get("dependsOn", [])] for t in run.tasks}
        downs: dict[str, list[str]] = {k: [] for k in known}
        for k, deps in ups.items():
            for d in deps:
                downs[d].append(k)
        chosen: set[str] = set()
        items = body.get("repairTasks") or [{"taskKey": k} for k in body.get("taskKeys") or []]
        for item in items:
            if not isinstance(item, dict) or item.get("taskKey") not in known:
                raise bad_request(f"repairTasks names unknown taskKey {item!r}; known: {sorted(known)}")
            chosen.add(item["taskKey"])
            if item.get("shouldIncludeUpstream"):
                chosen |= _closure(item["taskKey"], ups)
            if item.get("shouldIncludeDownstream"):
                chosen |= _closure(item["taskKey"], downs)
        if not items:
            chosen = {k for k, tr in run.task_runs.items() if tr.status != "SUCCESS"}
            for k in list(chosen):
                chosen |= _closure(k, downs)
        if not chosen:
            raise bad_request("nothing to repair: every task succeeded; name tasks in repairTasks")
        return chosen

    # --- task runs ----------------------------------------------------------------------------

    def get_task_run(self, scope: Scope, key: str) -> TaskRunRecord:
        with self.lock:
            tr = self.task_runs.get(key)
            if tr is None or self.runs[tr.run_key].scope != scope or self._hidden(tr):
                raise not_found(f"TaskRun {key}")
            self._fire_schedules(self.clock.now())
            self._advance(self.runs[tr.run_key], self.clock.now())
            return tr

    def task_runs_of(self, scope: Scope, run_key: str, *, latest: bool = False) -> list[TaskRunRecord]:
        """Every task run of the run, superseded (repaired) attempts too unless ``latest``."""
        with self.lock:
            run = self.get_run(scope, run_key)
            if latest:
                return list(run.task_runs.values())
            return [tr for tr in self.task_runs.values() if tr.run_key == run.key]


def _closure(start: str, edges: dict[str, list[str]]) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in edges.get(todo.pop(), []):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _digest(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


__all__ = ["TERMINAL", "Store"]
