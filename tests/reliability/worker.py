"""A worker process to kill: ``fork_worker`` runs a callable in a forked child, as Airflow's
supervisor forks its task runner from a warm process, and ``kill_when`` SIGKILLs it the moment a
condition (usually "the emulator received this request") holds.

Forking keeps the crash scenarios cheap (no fresh interpreter importing Airflow per scenario).
The child first forgets what only lived in the parent's threads (see ``_forget_parent_threads``).
"""

from __future__ import annotations

import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

#: hang guard for "the worker reached the step" on a loaded machine (not a timed assert)
REACH_TIMEOUT = float(os.environ.get("AIDP_RELIABILITY_REACH_TIMEOUT", "120"))


def fork_worker(work: Callable[[], None], log: Path) -> int:
    """Run ``work`` in a forked child process (its output goes to ``log``); returns the child's pid."""
    from airflow.sdk.execution_time.supervisor import in_process_api_server

    assert in_process_api_server().app is not None  # build the app once, here; children reuse it
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:  # the child: never returns into pytest
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        sys.stdout = sys.stderr = open(fd, "w", buffering=1, closefd=False)  # noqa: SIM115
        from airflow import settings

        if settings.engine is not None:
            settings.engine.dispose(close=False)  # never share the parent's DB connections
        _forget_parent_threads()
        import faulthandler

        faulthandler.dump_traceback_later(REACH_TIMEOUT, exit=True, file=sys.stderr)  # where a hang is
        work()
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(code)


def _forget_parent_threads() -> None:
    """The in-process Execution API runs its event loop in a thread; a forked child has no such
    thread, so drop the cached server (and the comms channel left over from the parent's last
    in-process task, which talks to it) and let the child start its own."""
    from airflow.sdk.execution_time import task_runner
    from airflow.sdk.execution_time.supervisor import in_process_api_server

    warm_app = in_process_api_server().app if in_process_api_server.cache_info().currsize else None
    in_process_api_server.cache_clear()
    if warm_app is not None:  # keep the (costly to build) app, start a fresh loop thread for it
        in_process_api_server()._app = warm_app
    if hasattr(task_runner, "SUPERVISOR_COMMS"):
        delattr(task_runner, "SUPERVISOR_COMMS")
    # asgiref runs sync_to_async work (async connection lookups) on one class-level executor whose
    # worker thread lives only in the parent.
    from concurrent.futures import ThreadPoolExecutor

    from asgiref.sync import SyncToAsync

    SyncToAsync.single_thread_executor = ThreadPoolExecutor(max_workers=1)


def kill_when(pid: int, reached: Callable[[], bool], log: Path, what: str) -> None:
    """SIGKILL the worker as soon as ``reached()``; fail if it exited or stalled first."""
    deadline = time.monotonic() + REACH_TIMEOUT
    while not reached():
        done, status = os.waitpid(pid, os.WNOHANG)
        if done or time.monotonic() > deadline:
            if not done:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            raise AssertionError(f"worker exited or stalled before {what}:\n{log.read_text()[:4000]}")
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
