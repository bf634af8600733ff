"""The wheel as users get it: ``pip install`` into a new venv with Airflow, then Airflow's CLI and the demo.

Every command runs from a directory outside the checkout with a clean environment (see
``fresh_venv``), and the first test proves that the provider is then imported from the venv.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from .distribution import DIST_NAME, PACKAGE, REPO_ROOT, source_version
from .fresh_venv import FreshVenv
from .timing import timed


def test_the_provider_is_imported_from_the_installed_wheel(venv: FreshVenv, outside: Path) -> None:
    code = (
        f"import json, importlib.metadata as md, {PACKAGE} as p; "
        f"d = md.distribution('{DIST_NAME}'); "
        "print(json.dumps({'file': p.__file__, 'version': p.__version__, "
        "'direct_url': d.read_text('direct_url.json')}))"
    )
    done = venv.run([venv.python, "-c", code], cwd=outside, timeout=60)
    assert done.returncode == 0, done.describe()
    found = json.loads(done.output.strip().splitlines()[-1])
    assert Path(found["file"]).is_relative_to(venv.root / "lib"), found
    assert found["version"] == source_version()
    assert '"editable"' not in (found["direct_url"] or ""), found  # a wheel, not a link to the checkout


def test_airflow_providers_list_shows_the_wheel_with_its_version(
    venv: FreshVenv, outside: Path, step_times: dict[str, float]
) -> None:
    with timed(step_times, "providers list"):
        done = venv.run(["airflow", "providers", "list", "--output", "json"], cwd=outside, timeout=300)
    assert done.returncode == 0, done.describe()
    listing = re.search(r"^\[\{.*\}\]$", done.output, re.M)
    assert listing, done.describe()
    providers = json.loads(listing.group(0))
    ours = [(p["package_name"], p["version"]) for p in providers if "aidp" in p["package_name"]]
    assert ours == [(DIST_NAME, source_version())]


def test_the_demo_dag_runs_from_the_installed_wheel(
    venv: FreshVenv, tmp_path: Path, step_times: dict[str, float]
) -> None:
    """``make demo``'s script and example DAGs, copied out of the checkout, run on the venv's Airflow."""
    copy = tmp_path / "demo"
    dags = shutil.ignore_patterns("__pycache__")
    shutil.copytree(REPO_ROOT / "example_dags", copy / "example_dags", ignore=dags)
    (copy / "scripts").mkdir()
    shutil.copy2(REPO_ROOT / "scripts" / "demo.py", copy / "scripts" / "demo.py")

    with timed(step_times, "demo"):
        done = venv.run(
            [venv.python, copy / "scripts" / "demo.py", "--demo-dir", copy / ".demo"], cwd=copy, timeout=900
        )

    assert done.returncode == 0, done.describe()
    origin = re.search(r"^  airflow-provider-aidp (\S+) from (.+)$", done.output, re.M)
    assert origin, done.describe()
    assert origin.group(1) == source_version()
    assert Path(origin.group(2)).is_relative_to(venv.root / "lib"), origin.group(0)
    assert re.search(r"^DAG example_aidp_etl: SUCCESS in ", done.output, re.M), done.describe()
    assert re.search(r"^  AIDP run   key \S+  status SUCCESS$", done.output, re.M), done.describe()
    assert "Demo OK" in done.output
