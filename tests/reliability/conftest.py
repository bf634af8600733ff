"""Fixtures of the fault matrix: one emulator per test, an ``aidp`` connection pointing at it with a
small retry budget (so faults resolve in milliseconds), and the ``scenario`` recorder.

The emulator fixture is the emulator's own pytest plugin (``aidp_emulator``); options come from
``@pytest.mark.aidp_emulator(...)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.reliability.matrix import Row, write_row
from tests.reliability.support import conn_env_name, connection_json

_CALL_REPORT = pytest.StashKey[pytest.TestReport]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call" or (report.when == "setup" and not report.passed):
        item.stash[_CALL_REPORT] = report
    return report


@pytest.fixture
def scenario(request: pytest.FixtureRequest) -> Iterator[Callable[..., Row]]:
    """``row = scenario(category, name, mode=..., expected=...)``; the row is written at teardown with
    ``held`` = whether the test passed."""
    rows: list[Row] = []

    def make(category: str, name: str, mode: str = "-", expected: str = "") -> Row:
        row = Row(category=category, scenario=name, mode=mode, expected=expected, test_id=request.node.nodeid)
        rows.append(row)
        return row

    yield make
    report = request.node.stash.get(_CALL_REPORT, None)
    held = bool(report is not None and report.passed)
    for row in rows:
        row.held = held
        if not held and report is not None and not row.observed:
            row.observed = "test failed: " + str(report.longrepr).strip().splitlines()[-1][:160]
        write_row(row)


@pytest.fixture(autouse=True, scope="module")
def _fresh_secrets_masker() -> None:
    """Start each module with an empty secrets masker, as a new Airflow process does.

    Airflow's masker recompiles one regex of every secret it knows for each new secret; a long test
    session accumulates hundreds (each generated PEM adds ~30 lines), so one more key costs tens of
    seconds. Every connection load registers its secrets again, which is what the secrets scenarios
    rely on (and so they cannot pass thanks to an earlier test's registrations).
    """
    from airflow.sdk._shared.secrets_masker import reset_secrets_masker

    reset_secrets_masker()


@pytest.fixture(scope="session")
def api_key() -> Any:
    """One API key for the whole suite.

    Loading a connection registers its PEM (and each PEM line) with Airflow's secrets masker, which
    recompiles one regex of every known secret per addition: seconds per new key. Re-using the key
    keeps the suite fast; the secrets scenarios use their own distinctive key on purpose.
    """
    from airflow_provider_aidp.emulator import generate_api_key

    return generate_api_key()


@pytest.fixture
def aidp_conn(aidp_emulator: Any, api_key: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Register the suite's API key and expose the emulator as connection ``aidp_reliability``."""
    aidp_emulator.register_api_key(api_key)
    monkeypatch.setenv(conn_env_name(), connection_json(aidp_emulator, api_key))
    return api_key
