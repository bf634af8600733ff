"""Fixtures of the production-shaped deployment: PostgreSQL + Redis + Airflow (Celery, 2+2) + emulator.

Started once for the tests of this folder (about 40 s on 2 cores) and stopped after the last of
them, services included, whatever happened; before the SQLite profile's tests start (pytest runs
this folder first), so the two deployments never run at the same time.

The AIDP connection comes from a secrets backend, as in production: Airflow's
``LocalFilesystemBackend``, a JSON file of connections per "host" (``[secrets] backend`` and
``backend_kwargs``). Each triggerer has a file of its own, with an API key of its own (as
triggerers on different hosts with instance principals have): the emulator's request log then
tells which triggerer sent each request (``Authorization: ... keyId="<tenancy>/<user>/<fingerprint>"``).

The triggerers start on demand: a test that kills one starts both its own way, the others ask
for :meth:`ProductionDeployment.restore`, which starts whatever is missing or dead (a worker or
triggerer an earlier test killed).

``AIDP_REQUIRE_SERVICES=1`` (set by ``.ci/run``) turns a missing PostgreSQL or Redis into a
failure instead of a skip.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ..conftest import EmulatorProcess, start_emulator
from ..services import INSTALL_HINT, PostgresServer, RedisServer, missing_services
from .deployment import TRIGGERERS, ProductionDeployment


@dataclass
class Figures:
    """What the production-profile tests measured, printed at the end of the pytest run."""

    lines: list[str] = field(default_factory=list)

    def add(self, line: str) -> None:
        self.lines.append(line)


_FIGURES = Figures()


@pytest.fixture(scope="session")
def figures() -> Figures:
    return _FIGURES


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _FIGURES.lines:
        terminalreporter.section("production profile: figures")
        for line in _FIGURES.lines:
            terminalreporter.write_line(line)


@dataclass
class TriggererKey:
    """One triggerer's API key: its ``keyId`` (as the emulator records it) and its connection JSON."""

    key_id: str
    connection: dict[str, Any]


def connection_with(base: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """``base`` (an ``aidp`` connection dict) with extras changed; ``None`` values removed."""
    merged = {**base["extra"], **extra}
    return {**base, "extra": {k: v for k, v in merged.items() if v is not None}}


def secrets_env(path: Path, connections: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Write ``connections`` (conn id -> ``aidp`` connection dict) as a ``LocalFilesystemBackend``
    file at ``path``; the environment that makes a component read its connections from it."""
    entries = {
        conn_id: {k: v for k, v in conn.items() if k != "extra"} | {"extra_dejson": conn.get("extra", {})}
        for conn_id, conn in connections.items()
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entries, indent=2))
    path.chmod(0o600)
    return {
        "AIRFLOW__SECRETS__BACKEND": "airflow.secrets.local_filesystem.LocalFilesystemBackend",
        "AIRFLOW__SECRETS__BACKEND_KWARGS": json.dumps({"connections_file_path": str(path)}),
    }


@pytest.fixture(scope="package")
def production_dir() -> Iterator[Path]:
    missing = missing_services()
    if missing:
        message = f"{', '.join(missing)} not installed: {INSTALL_HINT}"
        if os.environ.get("AIDP_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    path = Path(tempfile.mkdtemp(prefix="aidp-e2e-production-"))
    yield path
    if os.environ.get("AIDP_E2E_KEEP") != "1":
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="package")
def production_emulator(production_dir: Path) -> Iterator[EmulatorProcess]:
    emu = start_emulator(production_dir)
    try:
        yield emu
    finally:
        emu.proc.stop()


@pytest.fixture(scope="package")
def triggerer_keys(production_emulator: EmulatorProcess) -> dict[str, TriggererKey]:
    keys = {}
    for name in TRIGGERERS:
        creds = production_emulator.client.generate_api_key()
        conn = connection_with(
            production_emulator.connection,
            tenancy=creds.tenancy,
            user=creds.user,
            fingerprint=creds.fingerprint,
            private_key=creds.private_key_pem,
            key_file=None,
        )
        keys[name] = TriggererKey(f"{creds.tenancy}/{creds.user}/{creds.fingerprint}", conn)
    return keys


@pytest.fixture(scope="package")
def production_deployment(
    production_dir: Path, production_emulator: EmulatorProcess, triggerer_keys: dict[str, TriggererKey]
) -> Iterator[ProductionDeployment]:
    postgres = redis = deployment = None
    try:
        postgres = PostgresServer(production_dir).start()
        redis = RedisServer(production_dir).start()
        secrets = production_dir / "secrets"
        extra_env = {
            **secrets_env(secrets / "connections.json", {"aidp_default": production_emulator.connection}),
            "AIDP_EXAMPLE_POLL_SECONDS": "1",
            "AIDP_EXAMPLE_RETRY_DELAY_SECONDS": "1",
        }
        deployment = ProductionDeployment(production_dir / "airflow_home", postgres, redis, extra_env)
        for name, key in triggerer_keys.items():
            deployment.configure(
                name, env=secrets_env(secrets / f"{name}.json", {"aidp_default": key.connection})
            )
        deployment.start()
        yield deployment
    finally:
        leftovers = []
        if deployment is not None:
            deployment.stop()
            leftovers += deployment.leftovers
        for service in (redis, postgres):
            if service is not None:
                leftovers += service.stop()
        if leftovers:  # pragma: no cover - reported, not hidden
            pytest.fail(f"processes outlived the production deployment: {leftovers}")
