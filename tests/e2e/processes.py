"""Long-running child processes for the end-to-end tests: start, stop, never orphan.

Every child runs in its own session (``start_new_session=True``) so that stopping it signals the
whole process group: the Airflow scheduler forks LocalExecutor workers and task supervisors, the
api-server forks uvicorn workers, and a plain ``Popen.terminate()`` would leave those behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ManagedProcess:
    """One child process (and its process group) with its output in a log file."""

    def __init__(
        self, name: str, argv: Sequence[str], env: Mapping[str, str], log_path: Path, cwd: Path | None = None
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.log_path = log_path
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        #: wall-clock time of the last start
        self.started_at = 0.0

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start {self.name}: {' '.join(self.argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.started_at = time.time()
        return self

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 20.0, stop_signal: int = signal.SIGTERM) -> list[int]:
        """SIGTERM (or ``stop_signal``) the group, wait, then SIGKILL whatever is left of it (idempotent).

        Task processes run in process groups of their own (the task supervisor calls
        ``setpgid``), so every descendant seen before the stop is also killed if it outlives
        its group. Returns the pids that were still alive at the very end (should be none).
        """
        if self.proc is None:
            return []
        pgid = self.proc.pid  # session leader: pgid == pid
        family = descendants(pgid)
        _signal_group(pgid, stop_signal)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(pgid, signal.SIGKILL)
            self.proc.wait(timeout=10)

        # Children that outlived the leader (task supervisors, task processes in their own
        # groups) get a short grace period to finish their own shutdown, then SIGKILL.
        def survivors() -> list[int]:
            return sorted({*group_members(pgid), *(pid for pid in family if _alive(pid))})

        deadline = time.monotonic() + 5
        while survivors() and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in survivors():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 2
        while survivors() and time.monotonic() < deadline:
            time.sleep(0.1)
        self.proc = None
        return survivors()

    def kill(self) -> list[int]:
        """SIGKILL the process, its group and every descendant at once: a machine that dies.

        Unlike :meth:`stop`, nothing gets a chance to clean up (a Celery worker's task processes,
        in groups of their own, die with it). Returns the pids killed; :meth:`stop` afterwards
        reaps the leader.
        """
        if self.proc is None:
            return []
        leader = self.proc.pid
        # freeze first (a stopped process forks no new child), then list and kill what is frozen
        _signal_group(leader, signal.SIGSTOP)
        for pid in descendants(leader):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGSTOP)
        family = [leader, *descendants(leader)]
        _signal_group(leader, signal.SIGKILL)
        for pid in family:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        return family

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _stat_fields(pid: int | str) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name: state, ppid, pgrp, ..."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # pid (comm) state ppid pgrp ...; comm may contain spaces, so split after the last ')'
    return stat.rsplit(")", 1)[1].split()


def _alive(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def descendants(pid: int) -> list[int]:
    """All live descendants of ``pid`` (children, grandchildren, ...), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat_fields(entry.name)) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def group_members(pgid: int) -> list[int]:
    """Pids (excluding zombies) whose process group is ``pgid``, read from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        fields = _stat_fields(entry.name) if entry.name.isdigit() else None
        if fields is not None and fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members
