"""The harness's own promise: stopping a component leaves no process behind.

Modelled on Airflow's shape: a leader (scheduler) whose child (task supervisor) starts a
grandchild in a process group of its own (the task process) that ignores SIGTERM.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from .processes import ManagedProcess, descendants

pytestmark = pytest.mark.e2e

SCRIPTS = {
    # the task: own process group, ignores SIGTERM, says its pid
    "task.py": "import os, signal, time\n"
    "os.setpgid(0, 0)\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print(os.getpid(), flush=True)\n"
    "time.sleep(600)\n",
    # the supervisor and the leader: start the next level, then wait
    "supervisor.py": "import subprocess, sys, time\n"
    "subprocess.Popen([sys.executable, sys.argv[1] + '/task.py'])\n"
    "time.sleep(600)\n",
    "leader.py": "import subprocess, sys, time\n"
    "subprocess.Popen([sys.executable, sys.argv[1] + '/supervisor.py', sys.argv[1]])\n"
    "time.sleep(600)\n",
}


def test_stop_kills_the_whole_tree_even_a_task_in_its_own_group(tmp_path: Path) -> None:
    for name, text in SCRIPTS.items():
        (tmp_path / name).write_text(text)
    argv = [sys.executable, str(tmp_path / "leader.py"), str(tmp_path)]
    proc = ManagedProcess("tree", argv, dict(os.environ), tmp_path / "tree.log").start()
    leader = proc.pid
    assert leader is not None
    deadline = time.monotonic() + 30
    while not proc.log_text().strip().splitlines()[-1:][0].isdigit() and time.monotonic() < deadline:
        time.sleep(0.1)
    family = descendants(leader)
    assert len(family) == 2
    task_pid = int(proc.log_text().strip().splitlines()[-1])
    assert os.getpgid(task_pid) == task_pid != leader  # really in a group of its own

    leftovers = proc.stop(timeout=2)

    assert leftovers == []
    for pid in [leader, *family]:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        # still in the table only as a zombie awaiting its (dead) parent's reaper
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        assert state == "Z", f"pid {pid} survived in state {state}"
