"""Importing the hook (which DAG files import through the operators) must not load heavy modules.

Run in a fresh interpreter: the test process itself has long since imported everything.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HEAVY = ["oci", "aiohttp", "airflow_provider_aidp.emulator", "airflow_provider_aidp.models.jobs"]


def loaded_after(statement: str) -> dict[str, bool]:
    code = f"import json, sys\n{statement}\nprint(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))\n"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_hook_import_is_light() -> None:
    loaded = loaded_after(
        "import airflow_provider_aidp.hooks.aidp, airflow_provider_aidp.get_provider_info\n"
        "airflow_provider_aidp.get_provider_info.get_provider_info()\n"
        "airflow_provider_aidp.hooks.aidp.AIDPHook('x')"
    )
    assert not any(loaded.values()), loaded


def test_the_probe_detects_a_heavy_import() -> None:
    assert loaded_after("import aiohttp")["aiohttp"] is True


def test_operators_and_event_trigger_do_not_load_openlineage_or_heavy_modules() -> None:
    """The OpenLineage code loads only when the listener calls the operator (even with the extra installed).

    (``airflow.providers.openlineage`` itself is imported by Airflow's own operator machinery
    whenever that provider is installed, with or without this package, so it is not checked.)
    """
    statement = (
        "import airflow_provider_aidp.operators.aidp, airflow_provider_aidp.triggers.run_events\n"
        "import airflow_provider_aidp.triggers.aidp, airflow_provider_aidp.triggers.task_run\n"
        "import airflow_provider_aidp.operators.workflow"
    )
    code = (
        f"import json, sys\n{statement}\n"
        "mods = ['openlineage', 'airflow_provider_aidp.openlineage', 'oci', 'aiohttp',"
        " 'airflow_provider_aidp.emulator', 'airflow_provider_aidp.models.jobs']\n"
        "print(json.dumps({m: m in sys.modules for m in mods}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=True
    )
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert not any(loaded.values()), loaded
