"""What a simulated task does: outcome, duration, messages, output.

Scripts match a task by ``task_key`` and/or ``path`` (an fnmatch glob over the task's
notebookPath / filePath / mainClass / jobKey) and optionally ``job_name``; the most recently added
matching script wins. A task no script matches follows the default convention (see
:func:`default_script`), which makes demos interesting without any set-up.
"""

from __future__ import annotations

import fnmatch
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

OUTCOMES = frozenset({"SUCCESS", "FAILED", "INTERNAL_ERROR", "TIMED_OUT", "CANCELED", "SKIPPED"})
DEFAULT_TASK_SECONDS = 3.0
SLOW_TASK_SECONDS = 60.0


@dataclass
class TaskScript:
    """The scripted behaviour of matching tasks. ``outcome`` is a terminal task status."""

    outcome: str = "SUCCESS"
    duration: float | None = None  # emulator seconds; None = default
    state_message: str | None = None
    error_trace: str | None = None
    output: str | None = None
    #: for IF_ELSE_TASK: the branch value downstream ``dependsOn.outcome`` is matched against
    condition_result: str = "true"
    # matching
    task_key: str | None = None
    path: str | None = None
    job_name: str | None = None
    times: int | None = None  # apply to this many task runs, then stop matching
    used: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        self.outcome = self.outcome.upper()
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {sorted(OUTCOMES)}, got {self.outcome!r}")
        if self.duration is not None and self.duration < 0:
            raise ValueError("duration must be >= 0")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskScript:
        allowed = {f for f in cls.__dataclass_fields__ if f != "used"}
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown script fields {sorted(unknown)}; allowed: {sorted(allowed)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def matches(self, task: dict[str, Any], job_name: str | None) -> bool:
        if self.times is not None and self.used >= self.times:
            return False
        if self.task_key is not None and self.task_key != task.get("taskKey"):
            return False
        if self.job_name is not None and self.job_name != job_name:
            return False
        return self.path is None or fnmatch.fnmatchcase(task_path(task), self.path)


def task_path(task: dict[str, Any]) -> str:
    for name in ("notebookPath", "filePath", "mainClass", "jobKey", "agentKey"):
        if task.get(name):
            return str(task[name])
    return ""


def default_script(task: dict[str, Any]) -> TaskScript:
    """The demo convention, applied to the task key and path (case-insensitive):

    * contains ``internal_error`` -> INTERNAL_ERROR;  ``timeout`` -> TIMED_OUT;
    * contains ``fail`` -> FAILED with an error trace;
    * contains ``slow`` -> SUCCESS after 60 emulator seconds;
    * otherwise SUCCESS after 3 emulator seconds.
    """
    text = f"{task.get('taskKey', '')} {task_path(task)}".lower()
    if "internal_error" in text:
        return TaskScript("INTERNAL_ERROR", state_message="Internal error while running the task")
    if "timeout" in text:
        return TaskScript("TIMED_OUT", state_message="Task exceeded its timeout")
    if "fail" in text:
        return TaskScript(
            "FAILED",
            state_message=f"Notebook {task_path(task) or task.get('taskKey')} failed",
            error_trace='Traceback (most recent call last):\n  File "cell 1"\nValueError: scripted failure',
        )
    if "slow" in text:
        return TaskScript("SUCCESS", duration=SLOW_TASK_SECONDS)
    return TaskScript("SUCCESS")


class ScriptBook:
    """The scripts registered with one emulator (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scripts: list[TaskScript] = []

    def add(self, script: TaskScript) -> TaskScript:
        with self._lock:
            self._scripts.append(script)
        return script

    def clear(self) -> None:
        with self._lock:
            self._scripts.clear()

    def all(self) -> list[TaskScript]:
        with self._lock:
            return list(self._scripts)

    def resolve(self, task: dict[str, Any], job_name: str | None) -> TaskScript:
        """The script for one new task run (consumes one use of a counted script)."""
        with self._lock:
            for script in reversed(self._scripts):
                if script.matches(task, job_name):
                    script.used += 1
                    return script
        return default_script(task)
