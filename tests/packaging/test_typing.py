"""PEP 561 through the installed wheel: a DAG author's mypy reads the provider's type hints.

mypy (the dev extra's) checks small DAG files against the fresh venv's site-packages
(``--python-executable``), from a directory outside the checkout and with a DAG author's default
settings. Without ``py.typed`` in the wheel, mypy skips the provider as untyped
(``import-untyped``), the misuse goes unreported and both tests fail.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from .fresh_venv import Finished, FreshVenv, run
from .timing import timed

_DAG = """\
from datetime import timedelta

from airflow.sdk import DAG

from airflow_provider_aidp.operators.aidp import AIDPRunJobOperator

with DAG("typed_{name}", schedule=None):
    AIDPRunJobOperator(task_id="run", job_key={job_key}, deferrable=True, timeout=timedelta(hours=1))
"""


@pytest.fixture(scope="module")
def dag_author(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DAG author's folder: two DAG files and a mypy config with mypy's defaults (no ignores)."""
    folder = tmp_path_factory.mktemp("dag_author")
    (folder / "good_dag.py").write_text(_DAG.format(name="good", job_key='"daily_sales_etl"'))
    (folder / "misused_dag.py").write_text(_DAG.format(name="misused", job_key="123"))
    (folder / "mypy.ini").write_text("[mypy]\n")
    return folder


def mypy(venv: FreshVenv, folder: Path, dag_file: str) -> Finished:
    mypy_bin = Path(sys.executable).parent / "mypy"
    argv = [
        str(mypy_bin),
        "--config-file",
        "mypy.ini",
        "--cache-dir",
        str(folder / ".mypy_cache"),
        "--python-executable",
        str(venv.python),
        dag_file,
    ]
    return run(argv, venv.env(), folder, timeout=600)


def test_mypy_passes_a_correct_dag_through_the_installed_wheel(
    venv: FreshVenv, dag_author: Path, step_times: dict[str, float]
) -> None:
    with timed(step_times, "mypy"):
        done = mypy(venv, dag_author, "good_dag.py")
    assert done.returncode == 0, done.describe()
    assert "Success: no issues found in 1 source file" in done.output


def test_mypy_reports_a_misused_operator_argument_through_the_installed_wheel(
    venv: FreshVenv, dag_author: Path, step_times: dict[str, float]
) -> None:
    with timed(step_times, "mypy"):
        done = mypy(venv, dag_author, "misused_dag.py")
    assert done.returncode == 1, done.describe()
    assert (
        'misused_dag.py:8: error: Argument "job_key" to "AIDPRunJobOperator" has incompatible type "int"; '
        'expected "str | None"  [arg-type]'
    ) in done.output, done.describe()
    assert "import-untyped" not in done.output
    assert "Found 1 error in 1 file" in done.output, done.describe()
