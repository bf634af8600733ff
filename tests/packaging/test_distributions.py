"""The sdist and the wheel a release uploads, built by ``python -m build`` and read as PyPI and pip do."""

from __future__ import annotations

import email
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from airflow_provider_aidp import __version__
from airflow_provider_aidp.emulator.credentials import generate_api_key
from airflow_provider_aidp.get_provider_info import get_provider_info

from .distribution import (
    PACKAGE,
    REPO_ROOT,
    Archive,
    package_files,
    sdist_problems,
    source_version,
    wheel_problems,
)


def test_the_version_is_written_once() -> None:
    """pyproject reads ``__version__`` (without importing Airflow); the provider metadata reads it too."""
    pyproject = (REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r"^version\s*=\s*[\"']", pyproject, re.M) is None, "a version literal in pyproject.toml"
    assert 'dynamic = ["version"]' in pyproject
    assert f'version = {{ attr = "{PACKAGE}.__version__" }}' in pyproject
    assert get_provider_info()["versions"] == [__version__] == [source_version()]


def test_the_wheel_ships_the_package_its_marker_and_licenses_and_nothing_else(wheel: Archive) -> None:
    assert wheel_problems(wheel, package_files(), source_version()) == []


def test_the_sdist_ships_what_builds_the_wheel_and_nothing_else(sdist: Archive) -> None:
    assert sdist_problems(sdist, package_files()) == []


def test_the_wheel_metadata_names_version_license_and_provider_entry_point(wheel: Archive) -> None:
    dist_info = f"{PACKAGE}-{source_version()}.dist-info"
    metadata = email.message_from_string(wheel.members[f"{dist_info}/METADATA"])
    assert metadata["Name"] == "airflow-provider-aidp"
    assert metadata["Version"] == source_version()
    assert metadata["License-Expression"] == "Apache-2.0"
    assert sorted(metadata.get_all("License-File") or []) == ["LICENSE", "NOTICE"]
    assert metadata["Description-Content-Type"] == "text/markdown"
    entry_points = wheel.members[f"{dist_info}/entry_points.txt"]
    provider_info = "provider_info = airflow_provider_aidp.get_provider_info:get_provider_info"
    assert f"[apache_airflow_provider]\n{provider_info}" in entry_points
    shipped_license = wheel.members[f"{dist_info}/licenses/LICENSE"]
    assert shipped_license == (REPO_ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License\n                           Version 2.0, January 2004" in shipped_license
    assert "END OF TERMS AND CONDITIONS" in shipped_license


def test_twine_check_passes_strict(dists: tuple[Path, Path]) -> None:
    """What PyPI would refuse or render badly (metadata fields, the README as long description)."""
    done = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, dists)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("PASSED") == 2, done.stdout


@pytest.mark.parametrize(
    ("doctor", "named"),
    [
        (lambda m: m.pop(f"{PACKAGE}/py.typed", None), "py.typed is missing from the wheel (PEP 561"),
        (
            lambda m: m.pop(f"{PACKAGE}-{source_version()}.dist-info/licenses/LICENSE", None),
            "LICENSE is missing",
        ),
        (
            lambda m: m.pop(f"{PACKAGE}-{source_version()}.dist-info/licenses/NOTICE", None),
            "NOTICE is missing",
        ),
        (
            lambda m: m.pop(f"{PACKAGE}/hooks/aidp.py", None),
            "hooks/aidp.py is in the checkout but not in the",
        ),
        (lambda m: m.update({f"{PACKAGE}/old_module.py": ""}), "old_module.py is in the wheel but is no"),
        (lambda m: m.update({f"{PACKAGE}/__pycache__/compat.cpython-311.pyc": ""}), "bytecode cache"),
        (lambda m: m.update({"tests/test_x.py": ""}), "tests are not shipped"),
        (lambda m: m.update({f"{PACKAGE}/emulator/key.pem": ""}), "key or secrets file"),
        (
            lambda m: m.update({f"{PACKAGE}/fixture.py": generate_api_key().private_key_pem}),  # made now
            "contains a PEM private key",
        ),
    ],
)
def test_the_wheel_rules_fail_on_a_doctored_wheel(
    wheel: Archive, doctor: Callable[[dict[str, str]], object], named: str
) -> None:
    """Each rule is shown failing, so a wheel without py.typed or LICENSE cannot pass the check."""
    members = dict(wheel.members)
    doctor(members)
    problems = wheel_problems(Archive(wheel.path, members), package_files(), source_version())
    assert any(named in p for p in problems), problems


def test_the_sdist_rules_fail_without_the_marker_or_the_license(sdist: Archive) -> None:
    for name in (f"{PACKAGE}/py.typed", "LICENSE", "NOTICE"):
        members = {k: v for k, v in sdist.members.items() if k != name}
        problems = sdist_problems(Archive(sdist.path, members), package_files())
        assert any(p.startswith(f"{name} is missing from the sdist") for p in problems), problems
