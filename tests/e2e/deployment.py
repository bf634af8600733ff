"""A real Airflow 3 deployment in a throw-away AIRFLOW_HOME, driven as a user would drive it.

Components: metadata DB (SQLite, WAL), api-server, scheduler (LocalExecutor), dag-processor and
triggerer, each a separate process group started from the same Python as the tests. The DAGs
folder is the repository's ``example_dags/``; the AIDP connection comes from an environment
variable, exactly as a user would configure it.

Why SQLite: Airflow 3 runs all of these components against SQLite with LocalExecutor (it is what
``airflow standalone`` does); the tests keep task concurrency low (``parallelism``) so SQLite's
single writer is not a bottleneck. Auth: the simple auth manager with ``all_admins`` so the REST
client needs no token; the execution API (task workers -> api-server) still uses its JWTs,
signed with a secret shared by all components.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from .processes import ManagedProcess, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
DAGS_FOLDER = REPO_ROOT / "example_dags"
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
TERMINAL_DAG_RUN_STATES = frozenset({"success", "failed"})


class DeploymentError(RuntimeError):
    """The deployment did not come up or a command failed; the message carries the log tail."""


def _clean_environ() -> dict[str, str]:
    """The parent's environment minus any Airflow settings (the test session sets its own)."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AIRFLOW__") and not k.startswith("AIRFLOW_CONN_") and k != "AIRFLOW_HOME"
    }


class AirflowDeployment:
    """Start, drive, inspect and stop one Airflow deployment."""

    components: tuple[str, ...] = COMPONENTS

    def __init__(
        self, home: Path, extra_env: Mapping[str, str] | None = None, python: str = sys.executable
    ) -> None:
        self.home = home
        self.python = python
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.processes: dict[str, ManagedProcess] = {}
        #: pids that survived a stop (SIGTERM + SIGKILL of group and descendants); should stay empty
        self.leftovers: list[int] = []
        #: every ``airflow ...`` command run (CLI calls and components), in order
        self.ran: list[list[str]] = []
        self.env = _clean_environ()
        self.env.update(self._airflow_env())
        self.env.update(extra_env or {})

    # ------------------------------------------------------------------ configuration
    def _airflow_env(self) -> dict[str, str]:
        secret = secrets.token_urlsafe(32)
        return {
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            # other DAGs in example_dags/ (e.g. scheduled ones) must not start on their own
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home}/airflow.db",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": f"{self.base_url}/",
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__SECRET_KEY": secret,
            "AIRFLOW__API_AUTH__JWT_SECRET": secret,
            # fast feedback: new DAG files parsed at once, scheduler and triggerer react quickly
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "PYTHONUNBUFFERED": "1",
        }

    def log_path(self, component: str) -> Path:
        return self.home / "process-logs" / f"{component}.log"

    # ------------------------------------------------------------------ lifecycle
    def cli(
        self, *args: str, check: bool = True, timeout: float = 180, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``airflow <args>`` with the deployment's environment (plus ``env``)."""
        full_env = {**self.env, **(env or {})}
        self.ran.append([self.python, "-m", "airflow", *args])
        result = subprocess.run(
            [self.python, "-m", "airflow", *args],
            env=full_env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if check and result.returncode != 0:
            raise DeploymentError(
                f"airflow {' '.join(args)} exited {result.returncode}\n"
                f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
            )
        return result

    def start(self, timeout: float = 120) -> AirflowDeployment:
        self.home.mkdir(parents=True, exist_ok=True)
        self.cli("db", "migrate")
        for component in self.components:
            self.start_component(component)
        self.wait_for(self._api_healthy, timeout, "the api-server to answer /api/v2/monitor/health")
        return self

    def component_argv(self, component: str) -> list[str]:
        """``airflow <command> ...`` for one component (a subclass adds its own components)."""
        argv = [self.python, "-m", "airflow", component]
        if component == "api-server":
            argv += ["--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        elif component in ("scheduler", "triggerer"):
            # their log servers would listen on all interfaces at fixed ports (8793/8794); the
            # api-server reads the task and trigger logs from the shared local log folder instead
            argv.append("--skip-serve-logs")
        return argv

    def component_env(self, component: str) -> dict[str, str]:
        """The environment of one component: the deployment's (a subclass may vary it per process)."""
        return self.env

    def start_component(self, component: str, *extra_args: str) -> ManagedProcess:
        argv = [*self.component_argv(component), *extra_args]
        env = self.component_env(component)
        self.ran.append(argv)
        proc = ManagedProcess(component, argv, env, self.log_path(component), cwd=self.home).start()
        self.processes[component] = proc
        return proc

    def stop_component(self, component: str) -> None:
        proc = self.processes.pop(component, None)
        if proc is not None:
            self.leftovers += proc.stop()

    def restart_component(self, component: str) -> ManagedProcess:
        self.stop_component(component)
        return self.start_component(component)

    def stop(self) -> None:
        """Stop every component in parallel (each SIGTERM, then SIGKILL of its group if needed)."""
        procs = list(self.processes.values())
        self.processes.clear()
        threads = [threading.Thread(target=lambda p=p: self.leftovers.extend(p.stop())) for p in procs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes.values() if p.pid is not None]

    def check_alive(self) -> None:
        dead = [name for name, p in self.processes.items() if not p.alive()]
        if dead:
            raise DeploymentError(
                f"Airflow component(s) exited: {dead}\n"
                + "\n".join(
                    f"--- {name} log tail:\n{self.processes[name].log_text()[-3000:]}" for name in dead
                )
            )

    # ------------------------------------------------------------------ REST API (v2)
    def api(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        url = f"{self.base_url}/api/v2/{path.lstrip('/')}"
        if params:
            url += "?" + urllib.parse.urlencode(params, doseq=True)
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise DeploymentError(f"{method} {url} -> {exc.code}: {exc.read()[:500]!r}") from exc
        return json.loads(raw) if raw else None

    def _api_healthy(self) -> bool:
        self.check_alive()
        try:
            health = self.api("GET", "monitor/health")
        except (OSError, DeploymentError):
            return False
        return health.get("metadatabase", {}).get("status") == "healthy"

    def wait_for(self, predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
        """Poll ``predicate`` until it returns a truthy value; DeploymentError with logs on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise DeploymentError(
                    f"timed out after {timeout:.0f}s waiting for {what}\n{self.log_tails()}"
                )
            time.sleep(interval)

    def log_tails(self, chars: int = 2500) -> str:
        return "\n".join(
            f"--- {name} log tail:\n{p.log_text()[-chars:]}" for name, p in self.processes.items()
        )

    def unexplained_retries(self, dag_id: str, run_id: str, task_ids: Iterable[str]) -> dict[str, int]:
        """The tasks of ``task_ids`` that needed more than one try for a reason other than Airflow's
        stale-event race (apache/airflow#72716: a deferred task resumed while the scheduler still
        held the executor's event of its exit at deferral is failed with "state mismatch"): task id
        -> the first earlier try that the audit log does not explain.

        A test that lets a DAG retry uses this so that a retry cannot hide a failure of ours.
        """
        logs = self.api(
            "GET",
            "eventLogs",
            params={"dag_id": dag_id, "run_id": run_id, "event": "state mismatch", "limit": 100},
        )
        explained = {(e["task_id"], e["try_number"]) for e in logs["event_logs"]}
        tis = self.task_instances(dag_id, run_id)
        out = {}
        for task_id in task_ids:
            tries = int(tis[task_id].get("try_number") or 1)
            unexplained = [t for t in range(1, tries) if (task_id, t) not in explained]
            if unexplained:
                out[task_id] = unexplained[0]
        return out

    def failure_report(self, dag_id: str, run_id: str, chars: int = 6000) -> str:
        """What to read when a DAG run did not succeed: each unsuccessful task's own log and its
        triggers' logs (the component tails alone do not say why a task failed), then the tails."""
        parts = []
        for task_id, ti in self.task_instances(dag_id, run_id).items():
            if ti["state"] == "success":
                continue
            try_number = max(1, int(ti.get("try_number") or 1))
            parts.append(f"--- task {task_id} ({ti['state']}, try {try_number}) log:")
            try:
                parts.append(self.task_log(dag_id, run_id, task_id, try_number)[-chars:])
            except Exception as exc:  # a report must not hide the failure it reports
                parts.append(f"(log not readable: {exc})")
            for job_id, text in self.trigger_logs(dag_id, run_id, task_id, try_number).items():
                parts.append(f"--- task {task_id} trigger log (triggerer job {job_id}):\n{text[-chars:]}")
        return "\n".join([*parts, self.log_tails()])

    def wait_for_dag(self, dag_id: str, timeout: float = 180) -> dict[str, Any]:
        """Wait until the dag-processor has parsed ``dag_id`` (no import errors for it)."""

        def parsed() -> dict[str, Any] | None:
            self.check_alive()
            dags = self.api("GET", "dags", params={"dag_id_pattern": dag_id})["dags"]
            found = next((d for d in dags if d["dag_id"] == dag_id), None)
            if found is None:
                errors = self.api("GET", "importErrors")["import_errors"]
                bad = [e for e in errors if dag_id.split("example_")[-1] in e.get("filename", "")]
                if bad:
                    raise DeploymentError(f"DAG {dag_id} failed to import: {bad[0]['stack_trace'][-2000:]}")
            return found

        return self.wait_for(parsed, timeout, f"DAG {dag_id} to be parsed")

    def unpause(self, dag_id: str) -> None:
        self.api("PATCH", f"dags/{dag_id}", {"is_paused": False}, params={"update_mask": "is_paused"})

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None) -> str:
        """``airflow dags trigger`` (the CLI, as a user would) and return the new run id."""
        args = ["dags", "trigger", dag_id, "--output", "json"]
        if conf:
            args += ["--conf", json.dumps(conf)]
        out = self.cli(*args).stdout
        for line in reversed(out.splitlines()):
            if line.startswith("[{"):
                return str(json.loads(line)[0]["dag_run_id"])
        raise DeploymentError(f"unexpected output of airflow dags trigger:\n{out}")

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.api("GET", f"dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}")

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        tis = self.api("GET", f"dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}/taskInstances")
        return {ti["task_id"]: ti for ti in tis["task_instances"]}

    def wait_for_dag_run(
        self,
        dag_id: str,
        run_id: str,
        timeout: float = 120,
        on_poll: Callable[[dict[str, dict[str, Any]]], None] | None = None,
    ) -> str:
        """Poll the run until it is terminal; ``on_poll`` sees every task-instance snapshot."""

        def done() -> str | None:
            self.check_alive()
            if on_poll is not None:
                on_poll(self.task_instances(dag_id, run_id))
            state = self.dag_run(dag_id, run_id)["state"]
            return state if state in TERMINAL_DAG_RUN_STATES else None

        return str(self.wait_for(done, timeout, f"DAG run {dag_id}/{run_id} to finish", interval=0.3))

    def task_log_dir(self, dag_id: str, run_id: str, task_id: str) -> Path:
        return self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"

    def trigger_logs(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> dict[int, str]:
        """The triggerer's log of a deferred task, per triggerer job id.

        Airflow 3 writes what a trigger logs next to the task's log, one file per triggerer job
        (``attempt=N.log.trigger.<job id>.log``): a second file means a second triggerer ran it.
        """
        found = {}
        for path in self.task_log_dir(dag_id, run_id, task_id).glob(
            f"attempt={try_number}.log.trigger.*.log"
        ):
            job_id = path.name.rsplit(".", 2)[-2]
            if job_id.isdigit():
                found[int(job_id)] = path.read_text(errors="replace")
        return found

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        """The task's log through the REST API, as plain text (one line per structured event)."""
        path = (
            f"dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}/taskInstances/"
            f"{task_id}/logs/{try_number}"
        )
        body = self.api("GET", path, params={"full_content": "true"})
        content = body.get("content", "")
        if isinstance(content, str):
            return content
        lines = []
        for item in content:
            if isinstance(item, dict):
                extra = {k: v for k, v in item.items() if k not in ("event", "timestamp", "level", "logger")}
                lines.append(f"[{item.get('level', '')}] {item.get('event', '')} {extra if extra else ''}")
            else:
                lines.append(str(item))
        return "\n".join(lines)
