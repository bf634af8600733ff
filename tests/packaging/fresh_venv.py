"""A new virtualenv with the built wheel installed (not editable), and commands run in it as a user would.

Nothing of the checkout is reachable from it: commands get no PYTHONPATH, no AIRFLOW_* settings of
the test session, and a working directory outside the repository, so ``airflow_provider_aidp`` can
only come from the installed wheel.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import uv


@dataclass(frozen=True)
class FreshVenv:
    root: Path
    airflow_home: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    def env(self, **extra: str) -> dict[str, str]:
        """The caller's environment without anything that points back at the checkout or its tests."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AIRFLOW", "PYTHON", "VIRTUAL_ENV", "AIDP_", "MYPY"))
        }
        env.update(
            PATH=f"{self.bin}{os.pathsep}{env.get('PATH', '')}",
            VIRTUAL_ENV=str(self.root),
            AIRFLOW_HOME=str(self.airflow_home),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
        )
        env.update(extra)
        return env

    def run(self, argv: Sequence[str | Path], cwd: Path, timeout: float, **env: str) -> Finished:
        return run([str(a) for a in argv], self.env(**env), cwd, timeout)


@dataclass(frozen=True)
class Finished:
    argv: list[str]
    returncode: int
    output: str

    def describe(self) -> str:
        return f"`{' '.join(self.argv)}` exited {self.returncode}; output:\n{self.output[-4000:]}"


def create(root: Path, wheel: Path) -> FreshVenv:
    """``uv venv`` + ``uv pip install <wheel> apache-airflow==<the Airflow this suite runs on>``."""
    uv_bin = uv.find_uv_bin()
    airflow = f"apache-airflow=={version('apache-airflow')}"
    for argv in (
        [uv_bin, "venv", "-q", "--python", sys.executable, str(root)],
        [uv_bin, "pip", "install", "-q", "--python", str(root / "bin" / "python"), str(wheel), airflow],
    ):
        done = run(argv, os.environ.copy(), root.parent, timeout=600)
        assert done.returncode == 0, done.describe()
    home = root.parent / "airflow_home"
    home.mkdir(exist_ok=True)
    return FreshVenv(root, home)


def run(argv: list[str], env: dict[str, str], cwd: Path, timeout: float) -> Finished:
    """Run in a process group of its own; the group is killed on timeout and after the command ends."""
    proc = subprocess.Popen(
        argv,
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        _kill_group(proc.pid)
        output, _ = proc.communicate()
        late = f"`{' '.join(argv)}` did not finish within {timeout:.0f} s"
        raise AssertionError(f"{late}:\n{output[-4000:]}") from exc
    finally:
        _kill_group(proc.pid)  # anything the command left running in its group
    return Finished(argv, proc.returncode, output)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
