"""Fixtures of the packaging tests: one build and one fresh install for the whole package of tests.

Each step's wall time is recorded and printed in pytest's terminal summary (figures, not asserts),
so a CI log shows what the packaging check costs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from . import distribution, fresh_venv
from .timing import STEP_TIMES, summary, timed


@pytest.fixture(scope="package")
def step_times(pytestconfig: pytest.Config) -> dict[str, float]:
    return pytestconfig.stash.setdefault(STEP_TIMES, {})


@pytest.fixture(scope="package")
def dists(tmp_path_factory: pytest.TempPathFactory, step_times: dict[str, float]) -> tuple[Path, Path]:
    """(sdist, wheel) built from the checkout by ``python -m build``."""
    with timed(step_times, "build"):
        return distribution.build(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="package")
def wheel(dists: tuple[Path, Path]) -> distribution.Archive:
    return distribution.read_wheel(dists[1])


@pytest.fixture(scope="package")
def sdist(dists: tuple[Path, Path]) -> distribution.Archive:
    return distribution.read_sdist(dists[0])


@pytest.fixture(scope="package")
def venv(
    tmp_path_factory: pytest.TempPathFactory, dists: tuple[Path, Path], step_times: dict[str, float]
) -> fresh_venv.FreshVenv:
    """A new venv with the wheel and the suite's Airflow version installed (never editable)."""
    with timed(step_times, "install"):
        return fresh_venv.create(tmp_path_factory.mktemp("fresh") / "venv", dists[1])


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A working directory outside the checkout (so the checkout is not on sys.path)."""
    assert distribution.REPO_ROOT not in tmp_path.parents
    return tmp_path


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    times = config.stash.get(STEP_TIMES, {})
    if times:
        terminalreporter.write_line(summary(times))
