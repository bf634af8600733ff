"""Test-wide set-up: a throw-away AIRFLOW_HOME (SQLite) so no test touches a user's Airflow.

Environment variables are set at import time, before any test module imports Airflow, because
Airflow reads its configuration once, on first import.
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="aidp-tests-airflow-home-"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO_ROOT / "example_dags"))
os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{_AIRFLOW_HOME}/airflow.db")
# The OpenLineage provider (test extra) would emit console events for every dag.test(); the lineage
# tests turn it on for themselves.
os.environ.setdefault("AIRFLOW__OPENLINEAGE__DISABLED", "true")


@pytest.fixture(scope="session")
def airflow_db() -> Iterator[Path]:
    """A migrated metadata database, created once per test session (needed by ``dag.test()``)."""
    from airflow.utils import db

    db.resetdb()
    _reuse_the_in_process_execution_api()
    yield _AIRFLOW_HOME


def _reuse_the_in_process_execution_api() -> None:
    """On Airflow < 3.3, let ``dag.test()`` build its in-process Execution API once, as 3.3 does.

    Before apache/airflow#65235 (Airflow 3.3) ``dag.test()`` built a new FastAPI + Cadwyn app for
    every task it ran: ~1.5 s of CPU each, ~10 s for one retry + sensor + deferral DAG on 3.1, most
    of the older-Airflow CI rows' time. That app stands in for the api-server, which in a deployment
    is one long-lived app serving every task; 3.3 caches it the same way (``lru_cache(maxsize=1)``
    on ``in_process_api_server``). Nothing else changes: each task still goes through it.
    """
    from airflow.sdk.execution_time import supervisor

    if not hasattr(supervisor.in_process_api_server, "cache_clear"):
        supervisor.in_process_api_server = functools.lru_cache(maxsize=1)(supervisor.in_process_api_server)


@pytest.fixture(autouse=True)
def _fresh_secrets_masker() -> None:
    """Start each test with an empty secrets masker, as a new Airflow process does.

    Airflow's masker recompiles one regex of every secret it knows for each new secret, and every
    generated PEM adds ~30 of them. Kept for a whole session, that made registering one more key
    cost ~30 s; kept for a module, a test late in a module of 29 cost 3 to 8 s (the suite spent minutes
    in ``re.compile``). Each test registers the secrets it uses when its hook reads the connection.
    """
    from airflow_provider_aidp.compat import secrets_masker_module

    secrets_masker_module().reset_secrets_masker()


@pytest.fixture(autouse=True)
def _forget_what_services_showed() -> None:
    """Each test may play another reading of the service on the same connection id: what the hook
    learned about the last one (refused page sizes, repeated filters) must not carry over."""
    from airflow_provider_aidp.hooks.service import forget_profiles

    forget_profiles()
