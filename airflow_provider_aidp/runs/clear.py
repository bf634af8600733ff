"""Clear = repair: what a new try of a workflow task does with its AIDP task, decided once per try.

A workflow task group (``operators/workflow.py``) runs its Airflow tasks as the AIDP tasks of ONE
job run. Each try of a task either *follows* its AIDP task's latest task run, or *repairs* it in the
same run (``POST /jobRuns/{key}/actions/repair``) and then follows the new task run. It repairs when
the try exists because of that task run, that is when Airflow made the try after the task run was
there: a user cleared the task (UI, REST API, ``airflow tasks clear``) or Airflow retried it. Both
times are on Airflow's clock, never compared with the service's:

* when the try was made: Airflow gives every try a new task-instance id, a UUIDv7 stamped at that
  moment (``compat.try_created_at``);
* when the task run was made: the launch task's ``POST /jobRuns`` (``launched_at``, pushed to XCom
  by the launch) for the run's first task runs, or the repair that made it (a :class:`RepairRecord`
  the repairing task pushed to XCom, matched by task-run key).

So a fresh run (first try, or a cleared launch task that started a new run) is followed, a cleared
or retried task repairs, and a task whose task run a repair made *after* its try was made (the
downstream of a repaired task, cleared with it) follows that new task run, whatever it ended as.
A task run that succeeded is re-run only by a Clear (a retry after an Airflow-side failure keeps it).

One repair for a cleared task and its downstream: the repairing task names itself and those of its
AIDP downstream tasks that Airflow has pending (cleared with it, or waiting on it), with
``shouldIncludeDownstream`` when that is all of them. Its ``opc-retry-token`` is deterministic per
(DAG run, AIDP run, repair generation), the same for every task of the group: a retried try resends
it, and two tasks repairing the same generation get one repair (the second is refused, re-reads the
run and, if its task was not part of that repair, waits for the run to end and repairs the next
generation). The service repairs only a finished run: a task whose repair must wait for the rest of
the run to end waits first (:attr:`Step.WAIT_FOR_RUN`).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_aidp.models.runs import SUCCESS, JobRun, TaskRun, is_terminal
from airflow_provider_aidp.runs.identity import TaskIdentity

#: Airflow task states in which a task is done for now; any other (``None`` after a clear,
#: scheduled, queued, running, deferred, up_for_retry, ...) is *pending*: it will run (again).
FINISHED_AIRFLOW_STATES = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})
#: XCom key of a :class:`RepairRecord` (pushed by the task that repaired).
REPAIR_XCOM_KEY = "aidp_repair"


class Step(enum.Enum):
    """What a try does first."""

    FOLLOW = "follow"  # follow the task's latest task run (report it at once if it has ended)
    REPAIR = "repair"  # repair the task (and its pending downstream) in the same run, then follow
    WAIT_FOR_RUN = "wait_for_run"  # repair, but the run is still active: wait for it to end first


@dataclass(frozen=True)
class RepairRecord:
    """A repair a workflow task sent, as pushed to XCom: which task runs it made, and when (Airflow's
    clock, taken before the request)."""

    run_key: str
    sent_at: float
    task_keys: list[str]
    task_runs: dict[str, str] = field(default_factory=dict)  # task key -> the new task-run key

    def to_xcom(self) -> dict[str, Any]:
        return {
            "run_key": self.run_key,
            "sent_at": self.sent_at,
            "task_keys": list(self.task_keys),
            "task_runs": dict(self.task_runs),
        }

    @classmethod
    def from_xcom(cls, value: Any) -> RepairRecord | None:
        if not isinstance(value, Mapping) or not value.get("run_key"):
            return None
        try:
            return cls(
                run_key=str(value["run_key"]),
                sent_at=float(value.get("sent_at") or 0.0),
                task_keys=[str(k) for k in value.get("task_keys") or []],
                task_runs={str(k): str(v) for k, v in (value.get("task_runs") or {}).items()},
            )
        except (TypeError, ValueError):
            return None


def made_at(task_run: TaskRun, run_key: str, launched_at: float, records: Iterable[RepairRecord]) -> float:
    """When (Airflow's clock) the request that made ``task_run`` was sent: the repair that made it if a
    record names it, else the launch (the run's first task runs, or a repair nobody recorded)."""
    times = [
        r.sent_at
        for r in records
        if r.run_key == run_key and r.task_runs.get(task_run.task_key or "") == task_run.key
    ]
    return max(times, default=launched_at)


def plan(
    task_run: TaskRun | None,
    run: JobRun,
    *,
    task_run_made_at: float,
    try_made_at: float | None,
    identity: TaskIdentity,
) -> Step:
    """The step of a try that found ``task_run`` (its task's latest, ``None``: not listed yet) in ``run``.

    ``try_made_at`` ``None`` (Airflow did not stamp the try): the try repairs when it is not the
    task's first (a retry or a cleared task), which is right unless the launch was cleared too.
    """
    if task_run is None or not is_terminal(task_run.status):
        return Step.FOLLOW
    if try_made_at is not None:
        after_task_run = try_made_at > task_run_made_at
    else:
        after_task_run = identity.generation > 0 or identity.attempt > 1
    if not after_task_run:
        return Step.FOLLOW  # news to this try: report it
    if task_run.status == SUCCESS and identity.attempt > 1:
        return Step.FOLLOW  # a retry after an Airflow-side failure keeps a task run that succeeded
    return Step.REPAIR if is_terminal(run.status) else Step.WAIT_FOR_RUN


def downstream_closure(task_key: str, depends_on: Mapping[str, Iterable[str]]) -> list[str]:
    """Every task downstream of ``task_key`` in the job's ``dependsOn`` graph, sorted."""
    downs: dict[str, list[str]] = {}
    for task, ups in depends_on.items():
        for up in ups:
            downs.setdefault(up, []).append(task)
    seen: set[str] = set()
    todo = [task_key]
    while todo:
        for nxt in downs.get(todo.pop(), []):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return sorted(seen)


def repair_tasks(task_key: str, downstream: list[str], pending: Iterable[str]) -> list[dict[str, Any]]:
    """The ``repairTasks`` of one repair: the task and its ``pending`` downstream tasks; one entry with
    ``shouldIncludeDownstream`` when every downstream task is pending."""
    waiting = [k for k in downstream if k in set(pending)]
    if downstream and waiting == downstream:
        return [{"taskKey": task_key, "shouldIncludeDownstream": True, "shouldIncludeUpstream": False}]
    flags = {"shouldIncludeDownstream": False, "shouldIncludeUpstream": False}
    return [{"taskKey": key, **flags} for key in [task_key, *waiting]]


def repaired_keys(body: list[dict[str, Any]], downstream: list[str]) -> list[str]:
    """The task keys a ``repairTasks`` body re-runs (its own entries, and downstream where asked)."""
    keys = [str(item["taskKey"]) for item in body]
    if any(item.get("shouldIncludeDownstream") for item in body):
        keys += [k for k in downstream if k not in keys]
    return keys


def repair_token(dag_id: str, run_id: str, group_id: str, run: JobRun) -> str:
    """The repair's ``opc-retry-token``: one per (DAG run, group, AIDP run, repair generation), the same
    whichever task of the group sends it."""
    group = TaskIdentity(dag_id=dag_id, run_id=run_id, task_id=group_id)
    return group.retry_token("repair", f"{run.key}#{run.repair_generation}")
