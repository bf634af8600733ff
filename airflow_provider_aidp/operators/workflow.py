"""AIDP workflow task groups: each AIDP task an Airflow task, all of them ONE AIDP job run.

.. code-block:: python

    with AIDPWorkflowTaskGroup(group_id="etl", job_name="daily_etl", job_path="/Workspace/Shared/etl",
                               job_clusters=[{"cluster_key": "etl", "cluster_name": "etl_cluster"}]):
        extract = AIDPNotebookTaskOperator(task_id="extract", notebook_path=".../x.ipynb", cluster_key="etl")
        load = AIDPPythonTaskOperator(task_id="load", file_path=".../load.py", cluster_key="etl")
        extract >> load

When the ``with`` block closes, the group adds a *launch* task upstream of its tasks and checks the
job the tasks make (one AIDP task per operator, ``dependsOn`` from the Airflow edges inside the
group, ``runIf`` from each task's trigger rule, the group's clusters and parameters) with the
spec models ``AIDPCreateJobOperator`` uses, so a mistake is a DAG import error. At run time:

* the launch task upserts the job (idempotent: an unchanged job is not written) and starts one run,
  exactly once as ``AIDPRunJobOperator`` does it (it *is* one: ``task_state_store`` + a deterministic
  ``opc-retry-token``; a retry reattaches, whatever the run's state; a cleared launch starts a new
  run on purpose). It pushes ``run_key``, ``run_url``, ``job_key`` and ``launched_at``;
* each task operator follows its own AIDP task's task run (deferred by default, or polling, or
  rescheduling), logs its output and diagnostics and ends as that task did (``runs/task_outcome.py``);
* **Clear = repair**: a try Airflow made after the task's task run ended (a Clear from the UI, the
  REST API or ``airflow tasks clear``, or a retry) repairs that AIDP task -- with its pending
  downstream tasks -- in the SAME run, one token-protected request, then follows the new task run.
  How a try knows, and how several cleared tasks send one repair: ``runs/clear.py``.

Faults of Databricks' ``DatabricksWorkflowTaskGroup`` this design avoids: its launch resets the job
on every run and starts a new run on every retry (no idempotency token); it blocks a worker slot until
the run starts; and its repair buttons need an Airflow 2 web view (broken on Airflow 3), where here
Airflow's own Clear is the repair.

Import stays cheap: the spec models and the hook load only when a DAG's ``with`` block closes (the
models) or a task runs (the hook).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, TaskGroup
from airflow.sdk.bases.sensor import BaseSensorOperator, PokeReturnValue

from airflow_provider_aidp import compat
from airflow_provider_aidp.exceptions import (
    AIDPConfigError,
    AIDPConflictError,
    AIDPError,
    AIDPJobRunError,
    is_transient,
)
from airflow_provider_aidp.links.aidp import RUN_URL_XCOM_KEY
from airflow_provider_aidp.models.runs import JobRun, TaskRun, is_terminal
from airflow_provider_aidp.operators.aidp import (
    JOB_KEY_XCOM_KEY,
    RUN_KEY_XCOM_KEY,
    AIDPRunJobOperator,
    _AIDPRunTask,
)
from airflow_provider_aidp.operators.job_definition import _has_jinja
from airflow_provider_aidp.runs import clear, task_outcome
from airflow_provider_aidp.runs.identity import TaskIdentity
from airflow_provider_aidp.runs.report import DEFAULT_MAX_OUTPUT_CHARS, failure_message
from airflow_provider_aidp.runs.wait import DEFAULT_MAX_POLL_ERRORS, TERMINAL, wait_for_run

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_aidp.models.jobs import JobSpec

__all__ = [
    "LAUNCHED_AT_XCOM_KEY",
    "TASK_RUN_XCOM_KEY",
    "AIDPNotebookTaskOperator",
    "AIDPPythonTaskOperator",
    "AIDPTaskOperator",
    "AIDPWorkflowTaskGroup",
]

#: XCom keys: when the launch task started the run (epoch s, before its POST), and a task's summary.
LAUNCHED_AT_XCOM_KEY = "launched_at"
TASK_RUN_XCOM_KEY = "task_run"
#: Airflow trigger rule -> the AIDP ``runIf`` that means the same (the rules AIDP can express).
RUN_IF_BY_TRIGGER_RULE = {
    "all_success": "ALL_SUCCESS",
    "all_done": "ALL_DONE",
    "none_failed": "NONE_FAILED",
    "one_success": "AT_LEAST_ONE_SUCCESS",
    "all_failed": "ALL_FAILED",
    "one_failed": "AT_LEAST_ONE_FAILED",
}
#: Task fields the group derives (key from ``task_key``, dependencies from edges, runIf from rules).
GROUP_OWNED_FIELDS = {
    "task_key": "task_key=",
    "taskKey": "task_key=",
    "depends_on": "the Airflow edges inside the group (a >> b)",
    "dependsOn": "the Airflow edges inside the group (a >> b)",
    "run_if": "the task's trigger_rule",
    "runIf": "the task's trigger_rule",
}
#: Plans a try makes at most (each after a refused repair: another task repaired that generation).
MAX_PLANS = 4


# --- the group ------------------------------------------------------------------------------------


class AIDPWorkflowTaskGroup(TaskGroup):
    """A task group whose AIDP task operators run as the tasks of ONE AIDP job run.

    :param group_id: the task group's id (tasks are ``<group_id>.<task_id>``).
    :param job_name: the AIDP job the group defines (created or updated by the launch task).
    :param job_path: the job's folder, e.g. ``/Workspace/Shared/etl`` (a job is found by name *and*
        folder, so two groups may define jobs of one name in two folders).
    :param job_clusters: the job's clusters, e.g. ``[{"cluster_key": "etl", "cluster_name": "etl_cluster"}]``
        (the cluster's display name, not its UUID).
    :param parameters: job parameters (part of the job definition; lowest precedence).
    :param run_parameters: job-run parameters of each run (templated, e.g. ``{"day": "{{ ds }}"}``;
        highest precedence).
    :param max_concurrent_runs: the job's ``maxConcurrentRuns``.
    :param job_spec: any other job field the spec models know (``timeout_seconds``, ``description``,
        ``queue``, ``git_config``, ...).
    :param aidp_conn_id: the ``aidp`` connection of the launch task and every task of the group.
    :param workspace_key: workspace override (else the connection's).
    :param launch_task_id: id of the launch task inside the group (default ``launch``).
    :param launch_kwargs: extra ``BaseOperator`` arguments of the launch task (``retries``, ``pool``...).
    """

    def __init__(
        self,
        *,
        group_id: str,
        job_name: str,
        job_path: str,
        job_clusters: list[dict[str, Any]] | None = None,
        parameters: dict[str, Any] | None = None,
        run_parameters: dict[str, Any] | None = None,
        max_concurrent_runs: int = 1,
        job_spec: dict[str, Any] | None = None,
        aidp_conn_id: str = "aidp_default",
        workspace_key: str | None = None,
        launch_task_id: str = "launch",
        launch_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        owned = {"name", "path", "tasks", "job_clusters", "jobClusters", "parameters"} & set(job_spec or {})
        if owned:
            raise AIDPConfigError(
                f"AIDPWorkflowTaskGroup {group_id!r}: job_spec must not set {sorted(owned)}; use job_name, "
                "job_path, job_clusters, parameters and the group's tasks.",
                field="job_spec",
            )
        self.job_name = job_name
        self.job_path = job_path
        self.job_clusters = list(job_clusters or [])
        self.job_parameters = parameters
        self.run_parameters = run_parameters
        self.max_concurrent_runs = max_concurrent_runs
        self.job_spec_extra = dict(job_spec or {})
        self.aidp_conn_id = aidp_conn_id
        self.workspace_key = workspace_key
        self.launch_task_id = launch_task_id
        self.launch_kwargs = dict(launch_kwargs or {})
        self.launch: _AIDPWorkflowLaunchOperator | None = None
        super().__init__(group_id=group_id, **kwargs)

    def __exit__(self, _type: Any, _value: Any, _tb: Any) -> None:
        """Add the launch task upstream of the group's roots and check the job the tasks make."""
        try:
            if _type is None:
                self._close()
        finally:
            super().__exit__(_type, _value, _tb)

    def _close(self) -> None:
        tasks = self.aidp_tasks()
        if not tasks:
            raise AIDPConfigError(
                f"AIDPWorkflowTaskGroup {self.group_id!r} has no AIDP task operators.", field="group_id"
            )
        roots = list(self.get_roots())
        self.spec()  # the job, checked now: a mistake is an import error of the DAG file
        launch = _AIDPWorkflowLaunchOperator(
            task_id=self.launch_task_id,
            task_group=self,
            dag=self.dag,
            workflow_group=self,
            parameters=self.run_parameters,
            aidp_conn_id=self.aidp_conn_id,
            workspace_key=self.workspace_key,
            **self.launch_kwargs,
        )
        self.launch = launch
        for root in roots:
            root.set_upstream(launch)
        # ``upstream >> group`` written before the group had tasks is kept on the group only.
        for upstream_id in self.upstream_task_ids:
            launch.set_upstream(self.dag.get_task(upstream_id))
        for downstream_id in self.downstream_task_ids:
            for leaf in self.get_leaves():
                leaf.set_downstream(self.dag.get_task(downstream_id))

    # --- the job the tasks make (also read at run time, when every edge of the DAG file is set) ----

    def aidp_tasks(self) -> dict[str, _AIDPWorkflowTask]:
        """The group's AIDP task operators by Airflow task id; anything else in the group is refused."""
        found: dict[str, _AIDPWorkflowTask] = {}
        for node in _operators(self):
            if isinstance(node, _AIDPWorkflowLaunchOperator):
                continue
            if not isinstance(node, _AIDPWorkflowTask):
                raise AIDPConfigError(
                    f"Task {node.task_id!r} in AIDPWorkflowTaskGroup {self.group_id!r} is a "
                    f"{type(node).__name__}; a workflow group holds only AIDP task operators "
                    "(AIDPNotebookTaskOperator, AIDPPythonTaskOperator, AIDPTaskOperator), not mapped "
                    "(.expand) ones. Put other tasks upstream or downstream of the group.",
                    field="task_id",
                )
            found[node.task_id] = node
        return found

    def depends_on(self) -> dict[str, list[str]]:
        """AIDP task key -> the AIDP task keys it depends on (the Airflow edges inside the group)."""
        tasks = self.aidp_tasks()
        return {
            op.task_key: sorted(tasks[u].task_key for u in op.upstream_task_ids if u in tasks)
            for op in tasks.values()
        }

    def spec(self) -> JobSpec:
        """The job the group's tasks make, validated (every problem in one ``AIDPConfigError``)."""
        from airflow_provider_aidp.models.jobs import load_spec

        depends_on = self.depends_on()
        tasks = []
        for op in self.aidp_tasks().values():
            task = dict(op.aidp_task())
            task["task_key"] = op.task_key
            task["depends_on"] = depends_on[op.task_key]
            task["run_if"] = op.run_if
            tasks.append(task)
        body: dict[str, Any] = {
            **self.job_spec_extra,
            "name": self.job_name,
            "path": self.job_path,
            "max_concurrent_runs": self.max_concurrent_runs,
            "job_clusters": self.job_clusters,
            "parameters": self.job_parameters,
            "tasks": tasks,
        }
        return load_spec({k: v for k, v in body.items() if v is not None})


def _operators(group: TaskGroup) -> Iterator[Any]:
    """Every task of the group and its nested groups (operators, mapped operators, ...)."""
    for child in group.children.values():
        if isinstance(child, TaskGroup):
            yield from _operators(child)
        else:
            yield child


def _workflow_group(task: BaseOperator) -> AIDPWorkflowTaskGroup | None:
    group = task.task_group
    while group is not None:
        if isinstance(group, AIDPWorkflowTaskGroup):
            return group
        group = group.parent_group
    return None


# --- the launch task ------------------------------------------------------------------------------


class _AIDPWorkflowLaunchOperator(AIDPRunJobOperator):
    """Upsert the group's job and start ONE run of it (``AIDPRunJobOperator``'s exactly-once start),
    without waiting: the group's tasks follow the run."""

    def __init__(self, *, workflow_group: AIDPWorkflowTaskGroup, **kwargs: Any) -> None:
        kwargs.setdefault("job_name", workflow_group.job_name)
        kwargs.setdefault("job_path", workflow_group.job_path)
        super().__init__(wait_for_completion=False, **kwargs)
        self.workflow_group = workflow_group

    def _resolve_job_key(self) -> str:
        spec = self.workflow_group.spec()
        result = self.hook.upsert_job(spec)
        self.log.info(
            "Job %r of task group %s: %s (key %s)",
            spec.name,
            self.workflow_group.group_id,
            result.action,
            result.job_key,
        )
        if result.job_key is None:  # pragma: no cover - only a dry run has none
            raise AIDPError(f"Upserting job {spec.name!r} returned no job key")
        return result.job_key

    def _start_or_reattach(self, context: Context, *args: Any) -> tuple[JobRun, float]:
        run, created_at = super()._start_or_reattach(context, *args)
        if run.status == "SKIPPED":
            url = self.hook.get_run_url(run.key, run.job_key)
            raise AIDPJobRunError(failure_message(run, [], url), run_key=run.key, status="SKIPPED")
        return run, created_at

    def _after_failed(self, run: JobRun, *args: Any) -> tuple[JobRun, float]:
        """A retry of the launch reattaches to the run an earlier try started, whatever its state:
        the group's tasks report (and a Clear of them repairs) it. Only a cleared launch starts anew."""
        self.log.info(
            "Reattached to AIDP job run %s (%s), which an earlier try started; the group's tasks follow it",
            run.key,
            run.status,
        )
        return run, self._started_at

    def _follow(self, context: Context, run_key: str, job_key: str | None, created_at: float | None) -> str:
        context["ti"].xcom_push(key=LAUNCHED_AT_XCOM_KEY, value=created_at or self._started_at)
        return super()._follow(context, run_key, job_key, created_at)


# --- the task operators ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Launch:
    """What the launch task published about the group's run (XCom)."""

    run_key: str
    job_key: str | None
    run_url: str | None
    launched_at: float


class _AIDPWorkflowTask(_AIDPRunTask, BaseSensorOperator):
    """One AIDP task of a workflow group's run: its definition, and following (or repairing) it."""

    template_fields: Sequence[str] = ()

    def __init__(
        self,
        *,
        task_key: str | None = None,
        deferrable: bool = True,
        poke_interval: float = 30.0,
        fetch_output: str = "on_failure",
        max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
        max_poll_errors: int = DEFAULT_MAX_POLL_ERRORS,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, **kwargs)
        group = _workflow_group(self)
        if group is None:
            raise AIDPConfigError(
                f"{type(self).__name__} {self.task_id!r} must be created inside an AIDPWorkflowTaskGroup "
                "(with AIDPWorkflowTaskGroup(...): ...); to run a whole job as one task use "
                "AIDPRunJobOperator.",
                field="task_id",
            )
        self.task_key = task_key or _local_id(self.task_id, group)
        _check_task_key(self.task_key, self.task_id, given=task_key is not None)
        self.run_if = _run_if(self.trigger_rule, self.task_id)
        self._init_run_task(group.aidp_conn_id, group.workspace_key, fetch_output, max_output_chars)
        self.deferrable = deferrable
        if max_poll_errors < 0:
            raise AIDPConfigError("max_poll_errors must be >= 0.", field="max_poll_errors")
        self.max_poll_errors = max_poll_errors
        #: This try's state: the task runs a repair replaced, and when the followed one was made.
        self._skip: list[str] = []
        self._made_at: float | None = None

    def aidp_task(self) -> dict[str, Any]:
        """The AIDP task this operator stands for, without key, dependencies and runIf (the group's)."""
        raise NotImplementedError

    # --- a try: plan (follow, or repair first), then wait ---------------------------------------

    def execute(self, context: Context) -> Any:
        launch = self._launch_of(context)
        context["ti"].xcom_push(key=RUN_URL_XCOM_KEY, value=launch.run_url)
        first_look = self.mode != "reschedule" or _first_poke(context)
        task_run = self._start(context, launch) if first_look else None
        if task_run is not None and is_terminal(task_run.status):
            return self._finish_task(context, self._terminal_event(launch.run_key, task_run))
        if self.deferrable:
            self._defer_for_task(launch)
        return super().execute(context)  # poke / reschedule: ``poke`` below

    def poke(self, context: Context) -> bool | PokeReturnValue:
        launch = self._launch_of(context)
        try:
            _, task_run = self._look(launch)
        except AIDPError as exc:
            if not is_transient(exc):
                raise
            self.log.warning("Polling AIDP task %s failed (%s); will poke again.", self.task_key, exc)
            return False
        if task_run is None or not is_terminal(task_run.status):
            return False
        summary = self._finish_task(context, self._terminal_event(launch.run_key, task_run))
        return PokeReturnValue(is_done=True, xcom_value=summary)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Resume after the task-run trigger fired."""
        return self._finish_task(context, event)

    def resume_after_run(self, context: Context, event: dict[str, Any]) -> Any:
        """Resume after waiting for the run to end (a repair has to wait for it): plan again."""
        if event.get("event") != TERMINAL:
            task_outcome.finish_task(
                self.hook,
                event,
                task_key=self.task_key,
                run_url=None,
                fetch_output="never",
                max_output_chars=0,
                log=self.log,
            )
        return self.execute(context)

    def _start(self, context: Context, launch: _Launch) -> TaskRun | None:
        """Plan this try, repairing first where it must; the task run to follow (``None``: a repair
        made a new one, not shown yet: follow whatever replaces :attr:`_skip`)."""
        for _ in range(MAX_PLANS):
            run, task_run = self._look(launch)
            step = clear.plan(
                task_run,
                run,
                task_run_made_at=self._task_run_made_at(context, launch, task_run),
                try_made_at=compat.try_created_at(context["ti"]),
                identity=TaskIdentity.from_context(context),
            )
            if step is clear.Step.FOLLOW:
                self._log_follow(run, task_run)
                return task_run
            assert task_run is not None
            if step is clear.Step.WAIT_FOR_RUN:
                self._wait_for_run_end(context, launch, run, task_run)
                continue
            if self._repair(context, run, task_run):
                return None
        raise AIDPError(
            f"AIDP task {self.task_key} of job run {launch.run_key}: {MAX_PLANS} repairs in a row were "
            "refused (the run kept being repaired by others); clear the task again."
        )

    def _look(self, launch: _Launch) -> tuple[JobRun, TaskRun | None]:
        """The run and this task's latest task run (one a repair of this try replaced counts as not
        there yet)."""
        run = self.hook.get_job_run(launch.run_key, include_task_runs=True, created_at=launch.launched_at)
        found = next(
            (
                t
                for t in self.hook.get_task_runs(run, detail_failed=False)
                if (t.task_key or t.name) == self.task_key
            ),
            None,
        )
        if found is not None and found.key in self._skip:
            found = None
        return run, found

    def _task_run_made_at(self, context: Context, launch: _Launch, task_run: TaskRun | None) -> float:
        if task_run is None:
            return launch.launched_at
        ti = context["ti"]
        ids = [task_id for task_id in _group(self).aidp_tasks() if task_id != self.task_id]
        pulled = ti.xcom_pull(task_ids=ids, key=clear.REPAIR_XCOM_KEY) if ids else []
        records = [r for r in map(clear.RepairRecord.from_xcom, pulled or []) if r is not None]
        return clear.made_at(task_run, launch.run_key, launch.launched_at, records)

    def _log_follow(self, run: JobRun, task_run: TaskRun | None) -> None:
        if task_run is None:
            self.log.info(
                "AIDP task %s has no task run in job run %s yet; waiting for it", self.task_key, run.key
            )
        else:
            self.log.info(
                "Following AIDP task %s of job run %s: task run %s (%s)",
                self.task_key,
                run.key,
                task_run.key,
                task_run.status,
            )

    # --- Clear = repair -----------------------------------------------------------------------

    def _repair(self, context: Context, run: JobRun, task_run: TaskRun) -> bool:
        """Repair this task and its pending downstream tasks in ``run`` (one request, deterministic
        token); False when the service refused (another task repaired this generation first)."""
        ti = context["ti"]
        group = _group(self)
        downstream = clear.downstream_closure(self.task_key, group.depends_on())
        by_key = {op.task_key: task_id for task_id, op in group.aidp_tasks().items()}
        states = compat.task_states(ti, [by_key[k] for k in downstream])
        pending = [k for k in downstream if states.get(by_key[k]) not in clear.FINISHED_AIRFLOW_STATES]
        body = clear.repair_tasks(self.task_key, downstream, pending)
        keys = clear.repaired_keys(body, downstream)
        self.log.info(
            "This try of %s was made after AIDP task run %s ended %s (the task was cleared or retried): "
            "repairing %s in AIDP job run %s",
            self.task_id,
            task_run.key,
            task_run.status,
            ", ".join(keys),
            run.key,
        )
        sent_at = time.time()
        token = clear.repair_token(ti.dag_id, ti.run_id, str(group.group_id), run)
        try:
            repaired = self.hook.repair_job_run(run.key, body, retry_token=token)
        except AIDPConflictError as exc:
            self.log.info("AIDP refused the repair (%s); reading the run again", exc)
            return False
        before = run.task_to_task_run_map or {}
        made = {
            k: v for k, v in (repaired.task_to_task_run_map or {}).items() if k in keys and v != before.get(k)
        }
        record = clear.RepairRecord(run.key, sent_at, keys, made)
        ti.xcom_push(key=clear.REPAIR_XCOM_KEY, value=record.to_xcom())
        self._skip, self._made_at = [task_run.key], sent_at
        if self.mode == "reschedule":
            # A reschedule starts the next poke with this task's XComs cleared: the repair record
            # above would be gone before the downstream tasks read it. This try polls instead.
            self.log.info("Following the repaired task run by polling in this try (not rescheduling)")
            self.mode = "poke"
        return True

    def _wait_for_run_end(self, context: Context, launch: _Launch, run: JobRun, task_run: TaskRun) -> None:
        """The repair must wait: the service repairs only a finished run, and this one still runs."""
        self.log.info(
            "AIDP task %s ended %s, but job run %s is still %s; waiting for it to end before repairing",
            self.task_key,
            task_run.status,
            run.key,
            run.status,
        )
        if self.deferrable:
            from airflow_provider_aidp.triggers.aidp import AIDPJobRunTrigger

            trigger = AIDPJobRunTrigger(
                run.key,
                aidp_conn_id=self.aidp_conn_id,
                workspace_key=self.workspace_key,
                poll_interval=self.poke_interval,
                deadline=self._deadline(),
                max_poll_errors=self.max_poll_errors,
                cancel_on_timeout=False,
                cancel_on_kill=False,
                created_at=launch.launched_at,
            )
            self.defer(trigger=trigger, method_name="resume_after_run")
        event = wait_for_run(
            self.hook,
            run.key,
            created_at=launch.launched_at,
            poll_interval=self.poke_interval,
            deadline=self._deadline(),
            max_poll_errors=self.max_poll_errors,
            cancel_on_timeout=False,
            log=self.log,
        )
        if event["event"] != TERMINAL:
            task_outcome.finish_task(
                self.hook,
                event,
                task_key=self.task_key,
                run_url=launch.run_url,
                fetch_output="never",
                max_output_chars=0,
                log=self.log,
            )

    # --- waiting and finishing ------------------------------------------------------------------

    def _defer_for_task(self, launch: _Launch) -> None:
        from airflow_provider_aidp.triggers.task_run import AIDPTaskRunTrigger

        trigger = AIDPTaskRunTrigger(
            launch.run_key,
            self.task_key,
            skip_task_run_keys=self._skip,
            aidp_conn_id=self.aidp_conn_id,
            workspace_key=self.workspace_key,
            poll_interval=self.poke_interval,
            deadline=self._deadline(),
            max_poll_errors=self.max_poll_errors,
            created_at=self._made_at or launch.launched_at,
        )
        self.defer(trigger=trigger, method_name="execute_complete")

    def _deadline(self) -> float | None:
        timeout = float(
            self.timeout.total_seconds() if hasattr(self.timeout, "total_seconds") else self.timeout or 0
        )
        return time.time() + timeout if timeout > 0 else None

    def _terminal_event(self, run_key: str, task_run: TaskRun) -> dict[str, Any]:
        return {
            "event": TERMINAL,
            "run_key": run_key,
            "task_key": self.task_key,
            "status": task_run.status,
            "run": task_run.to_api(),
        }

    def _finish_task(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        ti = context["ti"]
        run_url = ti.xcom_pull(task_ids=self.task_id, key=RUN_URL_XCOM_KEY)
        summary, outcome = task_outcome.finish_task(
            self.hook,
            event,
            task_key=self.task_key,
            run_url=run_url,
            fetch_output=self.fetch_output,
            max_output_chars=self.max_output_chars,
            log=self.log,
            on_summary=lambda s: ti.xcom_push(key=TASK_RUN_XCOM_KEY, value=s),
        )
        if outcome == task_outcome.SKIPPED:
            raise compat.AirflowSkipException(
                f"AIDP did not run task {self.task_key} ({summary['status']}: {summary['state_message']})"
            )
        return summary

    def _launch_of(self, context: Context) -> _Launch:
        ti = context["ti"]
        launch_id = _group(self).child_id(_group(self).launch_task_id)
        run_key = ti.xcom_pull(task_ids=launch_id, key=RUN_KEY_XCOM_KEY)
        if not run_key:
            raise AIDPError(
                f"The launch task {launch_id!r} of this group published no AIDP run key; it must succeed "
                "before the group's tasks run."
            )
        launched_at = ti.xcom_pull(task_ids=launch_id, key=LAUNCHED_AT_XCOM_KEY)
        return _Launch(
            run_key=str(run_key),
            job_key=ti.xcom_pull(task_ids=launch_id, key=JOB_KEY_XCOM_KEY),
            run_url=ti.xcom_pull(task_ids=launch_id, key=RUN_URL_XCOM_KEY),
            launched_at=float(launched_at or self._started_at),
        )


def _group(task: BaseOperator) -> AIDPWorkflowTaskGroup:
    group = _workflow_group(task)
    assert group is not None  # checked in __init__
    return group


def _first_poke(context: Context) -> bool:
    """Reschedule mode: whether this is the try's first poke (later pokes only follow)."""
    ti = context["ti"]
    first = getattr(ti, "get_first_reschedule_date", None)
    return first is None or first(context) is None


def _local_id(task_id: str, group: AIDPWorkflowTaskGroup) -> str:
    prefix = f"{group.group_id}." if group.prefix_group_id and group.group_id else ""
    return task_id[len(prefix) :] if prefix and task_id.startswith(prefix) else task_id


def _check_task_key(task_key: str, task_id: str, *, given: bool) -> None:
    from airflow_provider_aidp.models.spec_rules import NAME_RE

    if not NAME_RE.match(task_key):
        where = "task_key" if given else f"task_key (from task_id {task_id!r})"
        raise AIDPConfigError(
            f"{where} {task_key!r} is not an AIDP name (letters, digits, '_' and '.', starting with a "
            "letter); pass task_key= to the operator.",
            field="task_key",
        )


def _run_if(trigger_rule: Any, task_id: str) -> str:
    rule = str(getattr(trigger_rule, "value", trigger_rule))
    run_if = RUN_IF_BY_TRIGGER_RULE.get(rule)
    if run_if is None:
        raise AIDPConfigError(
            f"Task {task_id!r}: trigger_rule {rule!r} has no AIDP runIf; AIDP tasks can use "
            f"{', '.join(sorted(RUN_IF_BY_TRIGGER_RULE))} (AIDP and Airflow must agree on when a task runs).",
            field="trigger_rule",
        )
    return run_if


def _task_fields(task_id: str, fields: Mapping[str, Any], what: str) -> dict[str, Any]:
    """A task definition's fields: static (the job must not change between DAG runs), and none of
    the fields the group derives."""
    owned = sorted(set(fields) & set(GROUP_OWNED_FIELDS))
    if owned:
        hints = "; ".join(f"{k}: set by {GROUP_OWNED_FIELDS[k]}" for k in owned)
        raise AIDPConfigError(f"Task {task_id!r}: {what} must not set {owned} ({hints}).", field=what)
    if _has_jinja(dict(fields)):
        raise AIDPConfigError(
            f"Task {task_id!r}: {what} holds a Jinja template; the task's definition is part of the AIDP "
            "job and must be the same in every DAG run. Pass per-run values with the group's "
            "run_parameters (e.g. run_parameters={'day': '{{ ds }}'}).",
            field=what,
        )
    return dict(fields)


class AIDPTaskOperator(_AIDPWorkflowTask):
    """Any AIDP task type the job spec models know, from its definition.

    :param task_config: the task's fields as the API or the spec models name them, with ``type``
        (e.g. ``{"type": "JAR_TASK", "main_class": "com.example.Main", "cluster": {...}}``), without
        ``task_key``, ``depends_on`` and ``run_if`` (the group derives them).
    :param task_key: the AIDP task key (default: the task id without the group prefix).
    :param deferrable: wait in the triggerer (default); ``False``: poll in the worker (``mode`` poke
        or reschedule, as any sensor).
    :param poke_interval: upper bound of the polling interval, seconds.
    :param timeout: how long a try waits for its AIDP task (seconds); the run is never cancelled.
    :param fetch_output: log the task run's output ``on_failure`` (default), ``always`` or ``never``.
    :param max_output_chars: truncate the output in the log (0: no limit).
    :param max_poll_errors: consecutive transient polling errors tolerated (deferred).

    Returns (and pushes as ``task_run``) the task run's summary; pushes ``run_url`` for the extra link.
    """

    def __init__(self, *, task_config: Mapping[str, Any], task_key: str | None = None, **kwargs: Any) -> None:
        super().__init__(task_key=task_key, **kwargs)
        if not isinstance(task_config, Mapping) or not task_config.get("type"):
            raise AIDPConfigError(
                f"Task {self.task_id!r}: task_config must be a dict with the task's 'type' "
                "(e.g. 'JAR_TASK', 'IF_ELSE_TASK', 'JOB_TASK').",
                field="task_config",
            )
        self.task_config = _task_fields(self.task_id, task_config, "task_config")

    def aidp_task(self) -> dict[str, Any]:
        return dict(self.task_config)


class _ClusterTaskOperator(AIDPTaskOperator):
    """A task on one of the group's clusters (``cluster_key``) or a cluster given in full."""

    task_type = ""

    def __init__(
        self,
        *,
        cluster_key: str | None = None,
        cluster: Mapping[str, Any] | None = None,
        task_config: Mapping[str, Any] | None = None,
        fields: dict[str, Any],
        **kwargs: Any,
    ) -> None:
        if bool(cluster_key) == bool(cluster):
            raise AIDPConfigError(
                f"Task {kwargs.get('task_id')!r}: give exactly one of cluster_key (one of the group's "
                "job_clusters) or cluster.",
                field="cluster_key",
            )
        config = {
            "type": self.task_type,
            **{k: v for k, v in fields.items() if v is not None},
            "cluster": dict(cluster) if cluster else {"cluster_key": cluster_key},
            **dict(task_config or {}),
        }
        super().__init__(task_config=config, **kwargs)


class AIDPNotebookTaskOperator(_ClusterTaskOperator):
    """A notebook task of the group's job run (see :class:`AIDPTaskOperator` for the waiting options).

    :param notebook_path: the notebook, e.g. ``/Workspace/Shared/etl/extract.ipynb``.
    :param cluster_key: one of the group's ``job_clusters`` (or ``cluster``: a cluster in full).
    :param parameters: the task's parameters (part of the job definition).
    :param task_config: any other field of the task (``timeout_seconds``, ``max_retries``, ``source``...).
    """

    task_type = "NOTEBOOK_TASK"

    def __init__(
        self, *, notebook_path: str, parameters: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> None:
        fields = {"notebook_path": notebook_path, "parameters": dict(parameters) if parameters else None}
        super().__init__(fields=fields, **kwargs)


class AIDPPythonTaskOperator(_ClusterTaskOperator):
    """A Python script task of the group's job run (see :class:`AIDPTaskOperator`).

    :param file_path: the script, e.g. ``/Workspace/Shared/etl/load.py``.
    :param command_line_arguments: its command line, one string.
    :param cluster_key: one of the group's ``job_clusters`` (or ``cluster``: a cluster in full).
    :param task_config: any other field of the task.
    """

    task_type = "PYTHON_TASK"

    def __init__(self, *, file_path: str, command_line_arguments: str | None = None, **kwargs: Any) -> None:
        fields = {"file_path": file_path, "command_line_arguments": command_line_arguments}
        super().__init__(fields=fields, **kwargs)
