"""Provider metadata: Airflow's ProvidersManager reads our conn-fields and field behaviour."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from airflow_provider_aidp import __version__
from airflow_provider_aidp.get_provider_info import get_provider_info
from airflow_provider_aidp.hooks.aidp import AIDPHook
from airflow_provider_aidp.hooks.settings import EXTRA_FIELDS


def connection_type() -> dict[str, Any]:
    (conn,) = get_provider_info()["connection-types"]
    return conn


def test_metadata_validates_against_airflow_schema() -> None:
    import jsonschema
    from airflow.providers_manager import _create_provider_info_schema_validator

    _create_provider_info_schema_validator().validate(get_provider_info())
    jsonschema.Draft7Validator.check_schema({"type": "object"})  # jsonschema usable


def test_connection_type_points_at_the_hook() -> None:
    conn = connection_type()
    assert conn["connection-type"] == "aidp" == AIDPHook.conn_type
    module, _, name = conn["hook-class-name"].rpartition(".")
    assert getattr(importlib.import_module(module), name) is AIDPHook
    assert conn["hook-name"] == AIDPHook.hook_name


def test_every_extra_is_a_conn_field_and_secrets_are_password_format() -> None:
    fields = connection_type()["conn-fields"]
    assert set(fields) == set(EXTRA_FIELDS)
    sensitive = {name for name, f in fields.items() if f["schema"].get("format") == "password"}
    assert sensitive == {"private_key", "passphrase"}
    assert "Default: 20260430." in fields["api_version"]["description"]
    for name, field in fields.items():
        assert field["label"] and field["description"], name


def test_ui_field_behaviour_hides_and_relabels() -> None:
    behaviour = connection_type()["ui-field-behaviour"]
    assert {"login", "password", "schema", "port"} <= set(behaviour["hidden-fields"])
    assert behaviour["relabeling"]["host"] == "Endpoint override (optional)"


@pytest.mark.parametrize("key", ["operators", "sensors", "triggers", "hooks"])
def test_modules_are_listed_by_contract_name(key: str) -> None:
    (entry,) = get_provider_info()[key]
    assert entry["python-modules"][0] == f"airflow_provider_aidp.{key}.aidp"
    extra = {
        "triggers": ["airflow_provider_aidp.triggers.run_events", "airflow_provider_aidp.triggers.task_run"],
        "operators": ["airflow_provider_aidp.operators.workflow"],
    }.get(key, [])
    assert entry["python-modules"][1:] == extra
    for module in entry["python-modules"]:
        importlib.import_module(module)


def test_extra_link_listed() -> None:
    assert get_provider_info()["extra-links"] == ["airflow_provider_aidp.links.aidp.AIDPJobRunLink"]


def test_providers_manager_builds_widgets_and_behaviour() -> None:
    """Feed our metadata through ProvidersManager's own UI-metadata loader."""
    from airflow.providers_manager import ProviderInfo, ProvidersManager

    if not hasattr(ProvidersManager, "_load_ui_metadata"):
        pytest.skip("Airflow < 3.2 has no declarative conn-fields loader; the hook's widgets serve there")
    pm = ProvidersManager.__new__(ProvidersManager)
    pm._connection_form_widgets = {}
    pm._field_behaviours = {}
    pm._hook_name_dict = {}
    pm._customized_form_fields_schema_validator = ProvidersManager()._customized_form_fields_schema_validator
    pm._provider_dict = {"airflow-provider-aidp": ProviderInfo(__version__, get_provider_info())}
    pm._load_ui_metadata()
    import airflow
    from packaging.version import Version

    if Version(airflow.__version__) >= Version("3.3"):  # 3.2's loader leaves hook names to the hook import
        assert pm._hook_name_dict["aidp"] == "Oracle AI Data Platform"
    assert pm._connection_form_widgets["extra__aidp__private_key"].is_sensitive
    assert not pm._connection_form_widgets["extra__aidp__region"].is_sensitive
    assert pm._field_behaviours["aidp"]["relabeling"]["host"] == "Endpoint override (optional)"


def test_installed_package_is_seen_by_the_airflow_cli(tmp_path: Any) -> None:
    """``pip install .`` (into a throw-away target dir) -> ``airflow providers list/hooks`` show it."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    bindir = Path(sys.executable).parent
    uv = shutil.which("uv", path=str(bindir)) or shutil.which("uv")
    airflow = bindir / "airflow"
    if not uv or not airflow.exists():
        pytest.skip("uv or the airflow CLI is not available next to this interpreter")
    target = tmp_path / "site"
    subprocess.run(
        [
            uv,
            "pip",
            "install",
            "--python",
            sys.executable,
            "--target",
            str(target),
            "--no-deps",
            "-q",
            str(repo),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    env = {**os.environ, "PYTHONPATH": str(target), "AIRFLOW_HOME": str(tmp_path / "home")}

    def cli(*args: str) -> str:
        return subprocess.run(
            [str(airflow), *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        ).stdout

    assert "airflow-provider-aidp" in cli("providers", "list")
    hooks = [line for line in cli("providers", "hooks").splitlines() if line.startswith("aidp ")]
    assert hooks and "airflow_provider_aidp.hooks.aidp.AIDPHook" in hooks[0]
