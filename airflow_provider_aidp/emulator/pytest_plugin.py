"""pytest plugin (entry point ``pytest11``): the ``aidp_emulator`` and ``aidp_connection`` fixtures.

    def test_x(aidp_emulator):                 # a running AIDPEmulator
        creds = aidp_emulator.generate_api_key()

    def test_y(aidp_connection):               # ... plus AIRFLOW_CONN_AIDP_DEFAULT pointing at it
        aidp_connection.emulator, aidp_connection.credentials

Options come from a marker: ``@pytest.mark.aidp_emulator(time_scale=0, surfaces=["20240831"])``
(any ``AIDPEmulator`` keyword) and, for the connection, ``@pytest.mark.aidp_connection(api_version=
"20240831", workspace_key="ws")`` (any ``connection_extra`` keyword).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "aidp_emulator(**kwargs): options for the aidp_emulator fixture")
    config.addinivalue_line(
        "markers", "aidp_connection(**kwargs): connection_extra options for aidp_connection"
    )


@pytest.fixture
def aidp_emulator(request: pytest.FixtureRequest) -> Iterator[Any]:
    from airflow_provider_aidp.emulator import AIDPEmulator

    marker = request.node.get_closest_marker("aidp_emulator")
    kwargs = dict(marker.kwargs) if marker else {}
    with AIDPEmulator(**kwargs) as emu:
        yield emu


@dataclass
class EmulatorConnection:
    emulator: Any
    credentials: Any
    conn_id: str
    extra: dict[str, Any]


@pytest.fixture
def aidp_connection(
    request: pytest.FixtureRequest, aidp_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> EmulatorConnection:
    """A fresh API key and ``AIRFLOW_CONN_AIDP_DEFAULT`` set (for this test only) to the emulator."""
    marker = request.node.get_closest_marker("aidp_connection")
    kwargs = dict(marker.kwargs) if marker else {}
    conn_id = kwargs.pop("conn_id", "aidp_default")
    creds = aidp_emulator.generate_api_key()
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", aidp_emulator.connection_json(creds, **kwargs))
    return EmulatorConnection(aidp_emulator, creds, conn_id, aidp_emulator.connection_extra(creds, **kwargs))
