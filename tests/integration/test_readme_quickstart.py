"""The README's quick-start DAG, extracted from README.md and run through ``dag.test()`` against the emulator.

Docs that are executed cannot drift from the code: if the quick start stops working, this fails.
"""

from __future__ import annotations

import re
import runpy
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_aidp.emulator import AIDPEmulator
from tests.integration.aidp_run_support import emu, run_dag, xcoms  # noqa: F401  (emu is a fixture)

README = Path(__file__).resolve().parents[2] / "README.md"


def _quick_start_source() -> str:
    match = re.search(r"## Quick start\n\n```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert match, "README.md has no '## Quick start' python block"
    return match.group(1)


def _load_dag(tmp_path: Path) -> Any:
    dag_file = tmp_path / "readme_quick_start.py"
    dag_file.write_text(_quick_start_source(), encoding="utf-8")
    namespace = runpy.run_path(str(dag_file))
    return namespace["job"].dag


@pytest.mark.usefixtures("airflow_db")
def test_readme_quick_start_runs_against_the_emulator(emu: AIDPEmulator, tmp_path: Path) -> None:  # noqa: F811
    dag = _load_dag(tmp_path)

    states, run_id = run_dag(dag)

    assert states == {"define_job": "success", "run_job": "success", "report": "success"}
    run = xcoms(dag, run_id, "run_job")
    assert run["run_summary"]["status"] == "SUCCESS"
    assert [t["task_key"] for t in run["run_summary"]["tasks"]] == ["extract", "load"]
    assert xcoms(dag, run_id, "define_job")["action"] == "created"
    posts = emu.find_requests("POST", path="*/jobRuns")
    assert len(posts) == 1
    assert {"name": "day", "value": "2026-01-01"} in posts[0].json()["parameters"]
