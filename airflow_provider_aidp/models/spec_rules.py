"""The rules a job spec must follow, checked before any request; each problem names the field and the fix.

Kept apart from the models so the models stay a plain picture of the API body. Works on a
parsed ``JobSpec`` by attribute access (no import of ``models.jobs``: that module imports this one).
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from airflow_provider_aidp.models.cron import min_interval_seconds, parse_quartz

NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.]*$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
RUN_IF = (
    "ALL_SUCCESS",
    "ALL_DONE",
    "NONE_FAILED",
    "AT_LEAST_ONE_SUCCESS",
    "ALL_FAILED",
    "AT_LEAST_ONE_FAILED",
)
SOURCES = ("WORKSPACE", "GIT_PROVIDER")
GIT_PROVIDERS = ("GITHUB", "BITBUCKET", "GITLAB", "OCI_DEVOPS")
PAUSE = ("PAUSED", "UNPAUSED")
MIN_SCHEDULE_INTERVAL = 30 * 60
CLUSTER_TASKS = ("NOTEBOOK_TASK", "PYTHON_TASK", "JAR_TASK")
#: Fields each task type cannot run without, and how to write them.
REQUIRED = {
    "NOTEBOOK_TASK": [("notebook_path", "the notebook to run, e.g. '/Workspace/Shared/etl.ipynb'")],
    "PYTHON_TASK": [("file_path", "the script to run, e.g. '/Workspace/Shared/job.py'")],
    "JAR_TASK": [("main_class", "the entry class, e.g. 'com.example.Main'")],
    "IF_ELSE_TASK": [
        ("expressions", "a list of {key, value} operands"),
        ("condition", "the comparison, e.g. 'EQUAL_TO'"),
    ],
    "JOB_TASK": [("job_key", "the key of the job to run")],
    "AGENT_TASK": [("agent_key", "the agent to call"), ("prompt", "the prompt to send")],
}
UUID_HINT = (
    "is a UUID; AIDP needs the cluster's display name here (a UUID fails at run time with "
    "WORKFLOW_EXECUTION_0049 'Cluster not found')"
)


def _one_of(value: str, allowed: tuple[str, ...]) -> str:
    return f"{value!r} is not one of {', '.join(allowed)}"


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def spec_problems(spec: Any) -> list[str]:
    """Every rule violation in ``spec`` (a ``JobSpec``), as ``field: problem; fix`` lines."""
    problems = _job_problems(spec)
    problems += _cluster_problems(spec)
    problems += _task_problems(spec)
    problems += _graph_problems(spec.tasks)
    if spec.schedule is not None:
        problems += schedule_problems(spec.schedule)
    return problems


def _job_problems(spec: Any) -> list[str]:
    out = []
    if not NAME_RE.match(spec.name or ""):
        out.append(
            f"name: {spec.name!r} is not a valid AIDP name; use letters, digits, '_' and '.', "
            "starting with a letter (e.g. 'etl_daily.job')"
        )
    if spec.path is None:
        out.append("path: required; the workspace folder of the job, e.g. '/Workspace/Shared'")
    elif not (spec.path == "/Workspace" or spec.path.startswith("/Workspace/")):
        out.append(f"path: {spec.path!r} must be under /Workspace/ (e.g. '/Workspace/Shared')")
    if spec.max_concurrent_runs < 1:
        out.append(f"max_concurrent_runs: {spec.max_concurrent_runs} must be at least 1")
    if spec.timeout_seconds is not None and spec.timeout_seconds < 0:
        out.append(f"timeout_seconds: {spec.timeout_seconds} must be 0 (no limit) or positive")
    if spec.schedule is not None and spec.continuous is not None:
        out.append("schedule/continuous: set one of them, not both")
    if spec.continuous is not None and spec.continuous.pause_status not in (None, *PAUSE):
        out.append(f"continuous.pause_status: {_one_of(spec.continuous.pause_status, PAUSE)}")
    out += _git_problems("git_config", spec.git_config)
    out += _parameter_problems("parameters", spec.parameters)
    return out


def _git_problems(where: str, git: Any) -> list[str]:
    if git is None or git.provider is None or git.provider in GIT_PROVIDERS:
        return []
    return [f"{where}.provider: {_one_of(git.provider, GIT_PROVIDERS)}"]


def _parameter_problems(where: str, parameters: Any) -> list[str]:
    names = [p.name for p in parameters or []]
    dupes = sorted({n for n in names if names.count(n) > 1})
    out = [f"{where}: parameter {n!r} is declared more than once" for n in dupes]
    out += [f"{where}: a parameter name must not be empty" for n in names if not n]
    return out


def _cluster_problems(spec: Any) -> list[str]:
    out = []
    keys = [c.cluster_key for c in spec.job_clusters]
    for i, cluster in enumerate(spec.job_clusters):
        where = f"job_clusters[{cluster.cluster_key or i}]"
        if not cluster.cluster_key:
            out.append(f"{where}.cluster_key: required; tasks refer to the cluster by this key")
        elif keys.count(cluster.cluster_key) > 1 and keys.index(cluster.cluster_key) == i:
            out.append(f"{where}.cluster_key: {cluster.cluster_key!r} is declared more than once")
        if cluster.cluster_name and UUID_RE.match(cluster.cluster_name):
            out.append(f"{where}.cluster_name: {cluster.cluster_name!r} {UUID_HINT}")
        if not cluster.cluster_name and cluster.new_cluster is None:
            out.append(
                f"{where}.cluster_name: required; the name of an existing cluster (or give new_cluster)"
            )
    return out


def _task_problems(spec: Any) -> list[str]:
    out = []
    cluster_names = {c.cluster_key: c.cluster_name for c in spec.job_clusters if c.cluster_key}
    keys = [t.task_key for t in spec.tasks]
    for i, task in enumerate(spec.tasks):
        where = f"tasks[{task.task_key or i}]"
        if not task.task_key:
            out.append(f"{where}.task_key: required and must not be empty")
        elif keys.count(task.task_key) > 1 and keys.index(task.task_key) == i:
            out.append(
                f"{where}.task_key: {task.task_key!r} is used by {keys.count(task.task_key)} tasks; "
                "task keys must be unique"
            )
        if task.run_if not in RUN_IF:
            out.append(f"{where}.run_if: {_one_of(task.run_if, RUN_IF)}")
        for field, hint in REQUIRED[task.type]:
            if not getattr(task, field):
                out.append(f"{where}.{field}: required for {task.type}; {hint}")
        out += _retry_problems(where, task)
        out += _parameter_problems(f"{where}.parameters", getattr(task, "parameters", None))
        if task.type in CLUSTER_TASKS:
            out += _task_cluster_problems(where, task, cluster_names)
            out += _source_problems(where, task, spec.git_config)
    return out


def _retry_problems(where: str, task: Any) -> list[str]:
    out = []
    for field in ("max_retries", "min_retry_interval_millis", "timeout_seconds"):
        value = getattr(task, field, None)
        if value is not None and value < 0:
            out.append(f"{where}.{field}: {value} must not be negative")
    return out


def _task_cluster_problems(where: str, task: Any, declared: dict[str, str | None]) -> list[str]:
    cluster = task.cluster
    known = ", ".join(sorted(declared)) or "none (add job_clusters)"
    if cluster is None:
        return [
            f"{where}.cluster: required for {task.type}; give {{cluster_key, cluster_name}} of one "
            f"of the job_clusters (declared: {known})"
        ]
    out = []
    if not cluster.cluster_key or cluster.cluster_key not in declared:
        out.append(
            f"{where}.cluster.cluster_key: {cluster.cluster_key!r} is not a declared job cluster"
            f"{_suggest(cluster.cluster_key or '', list(declared))}; declared: {known}"
        )
    if cluster.cluster_name and UUID_RE.match(cluster.cluster_name):
        out.append(f"{where}.cluster.cluster_name: {cluster.cluster_name!r} {UUID_HINT}")
    elif cluster.cluster_key in declared and cluster.cluster_name not in (
        None,
        declared[cluster.cluster_key],
    ):
        out.append(
            f"{where}.cluster.cluster_name: {cluster.cluster_name!r} differs from job cluster "
            f"{cluster.cluster_key!r} ({declared[cluster.cluster_key]!r}); use the same name"
        )
    return out


def _source_problems(where: str, task: Any, job_git: Any) -> list[str]:
    out = _git_problems(f"{where}.git_config", task.git_config)
    if task.source is not None and task.source not in SOURCES:
        out.append(f"{where}.source: {_one_of(task.source, SOURCES)}")
    if task.source == "GIT_PROVIDER" and task.git_config is None and job_git is None:
        out.append(f"{where}.git_config: source GIT_PROVIDER needs a git_config (on the task or the job)")
    return out


def _graph_problems(tasks: list[Any]) -> list[str]:
    keys = [t.task_key for t in tasks]
    declared = ", ".join(keys) or "none"
    out = []
    edges: dict[str, list[str]] = {}
    for task in tasks:
        for dep in task.depends_on:
            if dep.task_key == task.task_key:
                out.append(f"tasks[{task.task_key}].depends_on: a task cannot depend on itself")
            elif dep.task_key not in keys:
                out.append(
                    f"tasks[{task.task_key}].depends_on: unknown task key {dep.task_key!r}"
                    f"{_suggest(dep.task_key, keys)}; declared tasks: {declared}"
                )
            else:
                edges.setdefault(task.task_key, []).append(dep.task_key)
    cycle = find_cycle(edges)
    if cycle:
        out.append(f"tasks: depends_on has a cycle: {' -> '.join(cycle)}; remove one of these dependencies")
    return out


def find_cycle(edges: dict[str, list[str]]) -> list[str] | None:
    """A cycle in ``task -> upstream`` edges, as a closed path, or ``None`` (iterative DFS)."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    for root in sorted(edges):
        if state.get(root):
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = [root]
        state[root] = 1
        while stack:
            node, index = stack[-1]
            nexts = edges.get(node, [])
            if index == len(nexts):
                stack.pop()
                path.pop()
                state[node] = 2
                continue
            stack[-1] = (node, index + 1)
            child = nexts[index]
            if state.get(child) == 1:
                return [*path[path.index(child) :], child]
            if not state.get(child):
                state[child] = 1
                stack.append((child, 0))
                path.append(child)
    return None


def schedule_problems(schedule: Any) -> list[str]:
    out = []
    expression = schedule.quartz_cron_expression
    try:
        cron = parse_quartz(expression)
    except ValueError as err:
        out.append(f"schedule.quartz_cron_expression: {expression!r}: {err}")
    else:
        gap = min_interval_seconds(cron)
        if gap is None:
            out.append(
                f"schedule.quartz_cron_expression: {expression!r} fires fewer than twice in 4 years; "
                "check the date fields"
            )
        elif gap < MIN_SCHEDULE_INTERVAL:
            out.append(
                f"schedule.quartz_cron_expression: {expression!r} can fire {_duration(gap)} apart; "
                "AIDP allows at most one run every 30 minutes (e.g. '0 0/30 * * * ?')"
            )
    out += timezone_problems(schedule.timezone_id)
    if schedule.pause_status not in (None, *PAUSE):
        out.append(f"schedule.pause_status: {_one_of(schedule.pause_status, PAUSE)}")
    return out


def timezone_problems(zone: str) -> list[str]:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return [
            f"schedule.timezone_id: {zone!r} is not an IANA time zone "
            "(e.g. 'UTC', 'Europe/Paris', 'America/New_York')"
        ]
    return []


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:g} seconds"
    return f"{seconds / 60:g} minutes"
