"""The production-shaped profile of the e2e deployment: PostgreSQL, Celery, two triggerers, two workers.

Components, each a process group of its own, started and stopped by pid like the SQLite
profile's (``tests/e2e/deployment.py``): a private PostgreSQL (metadata DB and Celery result
backend) and Redis (Celery broker) from Debian's packages (``tests/e2e/services.py``), then
``airflow api-server``, ``scheduler``, ``dag-processor``, ``triggerer`` x 2 and
``celery worker`` x 2. The executor is the ``CeleryExecutor``.

Every component gets a host name of its own (``tests/e2e/hostname.py``), so the REST API tells
which triggerer holds a trigger and which worker ran a try, as it does across machines; and a
pid file of its own (two triggerers or workers in one ``AIRFLOW_HOME`` would otherwise refuse to
start: "already running under PID").

Timeouts that decide how fast a dead component is noticed are shortened so the tests stay fast
(:data:`FAST_FAILURE_DETECTION`); docs/deploying.md gives the production values and what they
trade.
"""

from __future__ import annotations

import datetime as dt
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..deployment import REPO_ROOT, AirflowDeployment
from ..processes import ManagedProcess
from ..services import PostgresServer, RedisServer

TRIGGERERS = ("triggerer-1", "triggerer-2")
WORKERS = ("worker-1", "worker-2")
COMPONENTS = ("api-server", "scheduler", "dag-processor", *TRIGGERERS, *WORKERS)
#: task slots per Celery worker (prefork processes); deferred tasks free theirs when they defer
WORKER_CONCURRENCY = 6
#: the DAG files of this profile: the user-facing event-driven example (and its settings module)
#: plus test-only DAGs from ``tests/e2e/production/dags``
EXAMPLE_DAG_FILES = ("_example_settings.py", "example_aidp_event_driven.py")
TEST_DAGS = Path(__file__).resolve().parent / "dags"

#: how fast a dead triggerer or worker is noticed (production values in docs/deploying.md)
FAST_FAILURE_DETECTION = {
    # a triggerer heartbeats every second; one silent for 10 s is dead and its triggers move
    "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
    "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
    # a running task whose worker stopped heartbeating for 15 s is failed (and retried)
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "15",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
    "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "2",
}


class ProductionDeployment(AirflowDeployment):
    """Airflow on PostgreSQL with the CeleryExecutor, two triggerers and two Celery workers."""

    components = COMPONENTS

    def __init__(
        self,
        home: Path,
        postgres: PostgresServer,
        redis: RedisServer,
        extra_env: Mapping[str, str] | None = None,
        python: str = sys.executable,
    ) -> None:
        self.postgres, self.redis = postgres, redis
        #: per component: the extra arguments and environment it runs with as configured ...
        self.standard: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {}
        #: ... and those it was last started with (a test may start it otherwise)
        self.running_as: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {}
        super().__init__(home, extra_env, python)

    def _airflow_env(self) -> dict[str, str]:
        env = super()._airflow_env()
        env.update(
            {
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.home / "dags"),
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CORE__PARALLELISM": "32",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.postgres.sqlalchemy_url,
                "AIRFLOW__CELERY__BROKER_URL": self.redis.url,
                "AIRFLOW__CELERY__RESULT_BACKEND": self.postgres.celery_result_backend,
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(WORKER_CONCURRENCY),
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.e2e.hostname.from_env",
                "PYTHONPATH": str(REPO_ROOT),  # for the hostname callable above
                **FAST_FAILURE_DETECTION,
            }
        )
        return env

    def start(self, timeout: float = 180) -> ProductionDeployment:
        """Migrate the DB and start everything but the triggerers, which start on demand.

        The tests that kill a triggerer start both their own way (one capped, the other later);
        the others call :meth:`restore`, which starts what is missing. Starting them here too
        would cost two triggerer starts per test session for nothing.
        """
        dags = self.home / "dags"
        dags.mkdir(parents=True, exist_ok=True)
        for name in EXAMPLE_DAG_FILES:
            shutil.copy2(REPO_ROOT / "example_dags" / name, dags / name)
        for path in TEST_DAGS.glob("*.py"):
            shutil.copy2(path, dags / path.name)
        self.home.mkdir(parents=True, exist_ok=True)
        self.cli("db", "migrate")
        for component in self.components:
            if component not in TRIGGERERS:
                self.start_component(component)
        self.wait_for(self._api_healthy, timeout, "the api-server to answer /api/v2/monitor/health")
        for component in WORKERS:
            self.wait_ready(component, timeout)
        return self

    def component_argv(self, component: str) -> list[str]:
        airflow = [self.python, "-m", "airflow"]
        pid_file = str(self.home / f"{component}.pid")
        if component in TRIGGERERS:
            return [*airflow, "triggerer", "--skip-serve-logs", "--pid", pid_file]
        if component in WORKERS:
            return [
                *airflow,
                "celery",
                "worker",
                "--celery-hostname",
                f"{component}@%h",
                "--concurrency",
                str(WORKER_CONCURRENCY),
                "--skip-serve-logs",
                "--pid",
                pid_file,
                "--without-mingle",
                "--without-gossip",
            ]
        return super().component_argv(component)

    def configure(
        self, component: str, args: Sequence[str] = (), env: Mapping[str, str] | None = None
    ) -> None:
        """How ``component`` runs as configured: extra arguments, environment on top of the deployment's."""
        self.standard[component] = (tuple(args), dict(env or {}))

    def start_component(
        self, component: str, *extra_args: str, env: Mapping[str, str] | None = None
    ) -> ManagedProcess:
        """Start ``component`` as configured, or with other ``extra_args`` and/or ``env`` overrides."""
        args, standard_env = self.standard.get(component, ((), {}))
        self.running_as[component] = (tuple(extra_args) or args, dict(standard_env if env is None else env))
        return super().start_component(component, *self.running_as[component][0])

    def component_env(self, component: str) -> dict[str, str]:
        return {**self.env, "AIDP_E2E_HOSTNAME": component, **self.running_as.get(component, ((), {}))[1]}

    def restore(self, timeout: float = 120) -> None:
        """Every component running: start those missing or dead (a test may have killed one).

        A component a test restarted otherwise (a capped or paced triggerer) is left as it is:
        the tests that need the configured arguments start their components themselves.
        """
        off = [c for c in self.components if c not in self.processes or not self.processes[c].alive()]
        for component in off:
            self.stop_component(component)
            self.start_component(component)
        for component in off:
            self.wait_ready(component, timeout)

    def wait_ready(self, component: str, timeout: float = 120) -> None:
        """Until ``component`` does its job: a triggerer heartbeats, a worker takes tasks."""
        if component in TRIGGERERS:
            self.wait_for(lambda: self.triggerer_job(component), timeout, f"{component} to heartbeat")
        elif component in WORKERS:
            self.wait_for(lambda: self._worker_ready(component), timeout, f"{component} to be ready")
        else:
            self.wait_for(self._api_healthy, timeout, "the api-server to answer /api/v2/monitor/health")

    def _worker_ready(self, component: str) -> bool:
        self.check_alive()
        this_start = self.processes[component].log_text().rsplit("===== start", 1)[-1]
        return f"{component}@" in this_start and " ready." in this_start

    def triggerer_job(self, component: str) -> int | None:
        """The id of the live triggerer job of process ``component`` (its host name), if it has one yet."""
        self.check_alive()
        jobs = self.api("GET", "jobs", params={"job_type": "TriggererJob", "is_alive": "true"})["jobs"]
        started = self.processes[component].started_at
        ids = [
            j["id"]
            for j in jobs
            if j["hostname"] == component and j["end_date"] is None and _epoch(j["start_date"]) >= started - 1
        ]
        return max(ids, default=None)


def _epoch(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
