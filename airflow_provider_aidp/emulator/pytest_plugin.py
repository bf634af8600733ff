"""pytest plugin (entry point ``pytest11``): the ``aidp_emulator`` fixture.

    def test_x(aidp_emulator):
        creds = aidp_emulator.generate_api_key()
        ...

Options come from a marker: ``@pytest.mark.aidp_emulator(time_scale=0, surfaces=["20260430"])``
(any ``AIDPEmulator`` keyword). The fixture also exports nothing to the environment; use
``aidp_emulator.connection_json(creds)`` to build ``AIRFLOW_CONN_AIDP_DEFAULT`` yourself.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "aidp_emulator(**kwargs): options for the aidp_emulator fixture")


@pytest.fixture
def aidp_emulator(request: pytest.FixtureRequest) -> Iterator[object]:
    from airflow_provider_aidp.emulator import AIDPEmulator

    marker = request.node.get_closest_marker("aidp_emulator")
    kwargs = dict(marker.kwargs) if marker else {}
    with AIDPEmulator(**kwargs) as emu:
        yield emu
