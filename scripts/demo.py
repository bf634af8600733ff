"""``make demo``: run example DAG 1 through real Airflow against the bundled AIDP emulator.

What it does, in order (each step says what went wrong if it fails):

1. starts the AIDP emulator in this process on a free 127.0.0.1 port, with a freshly generated
   OCI API key whose private key is written to a throw-away directory (never printed), and time
   running ``--time-scale`` times faster than real time so the demo takes seconds;
2. points ``AIRFLOW_CONN_AIDP_DEFAULT`` at it (connection JSON naming the key *file*);
3. prepares a throw-away ``AIRFLOW_HOME`` under ``.demo/`` (SQLite; ``airflow db migrate`` only
   the first time or after an Airflow upgrade, so the second run is fast);
4. runs ``airflow dags test example_aidp_etl`` with the repository's ``example_dags/`` and
   captures its output to ``.demo/logs/``;
5. prints the job key, the run key and URL, each AIDP task's status and duration, and where the
   logs are, read from the ``run_summary`` XCom the run operator wrote to the metadata DB.

It first names the provider it runs (version and folder), so a run from an installed wheel
(``tests/packaging``) shows that the wheel, not a checkout, was imported.

Exit code 0 when the DAG run succeeded, 1 otherwise (with the reason and the log tail).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DAG_ID = "example_aidp_etl"
RUN_TASK_ID = "run_sales_job"
UPSERT_TASK_ID = "upsert_sales_job"


class DemoError(Exception):
    """A step failed; the message says which and what to do."""


@dataclass
class DemoPaths:
    root: Path

    @property
    def airflow_home(self) -> Path:
        return self.root / "airflow_home"

    @property
    def db(self) -> Path:
        return self.airflow_home / "airflow.db"

    @property
    def migrated_stamp(self) -> Path:
        return self.airflow_home / ".migrated"

    @property
    def logs(self) -> Path:
        return self.root / "logs"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scripts/demo.py", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--demo-dir",
        type=Path,
        default=REPO_ROOT / ".demo",
        help="throw-away state (AIRFLOW_HOME, logs); reused by the next run (default: .demo/)",
    )
    p.add_argument(
        "--time-scale",
        type=float,
        default=10.0,
        help="emulator seconds per real second (default 10: a 3 s AIDP task takes 0.3 s)",
    )
    p.add_argument(
        "--keep-running",
        action="store_true",
        help="keep the emulator up after the DAG ran, so the run URL can be opened (Ctrl-C ends)",
    )
    p.add_argument("--timeout", type=float, default=600, help="give up on `airflow dags test` after this")
    return p.parse_args(argv)


def say(message: str) -> None:
    print(message, flush=True)


def provider_origin() -> str:
    """The provider's version and the folder it was imported from: a checkout, or an installed wheel."""
    try:
        import airflow_provider_aidp
    except ImportError as exc:  # pragma: no cover - only on a broken install
        raise DemoError(f"cannot import airflow_provider_aidp ({exc}); run `make install` first") from exc
    return f"{airflow_provider_aidp.__version__} from {Path(airflow_provider_aidp.__file__).parent}"


# --------------------------------------------------------------------------- emulator
@contextlib.contextmanager
def running_emulator(time_scale: float) -> Iterator[tuple[Any, str]]:
    """The emulator and a connection JSON whose private key lives in a temp dir removed at exit."""
    try:
        from airflow_provider_aidp.emulator import AIDPEmulator
    except ImportError as exc:  # pragma: no cover - only on a broken install
        raise DemoError(f"cannot import the bundled emulator ({exc}); run `make install` first") from exc
    key_dir = Path(tempfile.mkdtemp(prefix="aidp-demo-key-"))
    emu = AIDPEmulator(port=0, time_scale=time_scale)
    try:
        emu.start()
        creds = emu.generate_api_key()
        key_file = key_dir / "emulator_api_key.pem"
        key_file.write_text(creds.private_key_pem)
        key_file.chmod(0o600)
        yield emu, emu.connection_json(creds, private_key_file=str(key_file))
    finally:
        emu.stop()
        shutil.rmtree(key_dir, ignore_errors=True)


# --------------------------------------------------------------------------- airflow
def airflow_env(paths: DemoPaths, connection_json: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_")) and k != "AIRFLOW_HOME"
    }
    env.update(
        {
            "AIRFLOW_HOME": str(paths.airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "example_dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{paths.db}",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(paths.airflow_home / "logs"),
            "AIRFLOW_CONN_AIDP_DEFAULT": connection_json,
            "AIDP_EXAMPLE_POLL_SECONDS": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def airflow_version() -> str:
    from importlib.metadata import version

    return version("apache-airflow")


def run_airflow(args: list[str], env: dict[str, str], log_file: Path, timeout: float, cwd: Path) -> int:
    """``airflow <args>`` with output appended to ``log_file``; the exit code."""
    with open(log_file, "ab") as log:
        log.write(f"\n$ airflow {' '.join(args)}\n".encode())
        log.flush()
        try:
            done = subprocess.run(
                [sys.executable, "-m", "airflow", *args],
                env=env,
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=timeout,
            )
            return done.returncode
        except subprocess.TimeoutExpired as exc:
            raise DemoError(
                f"`airflow {' '.join(args)}` did not finish within {timeout:.0f}s; see {log_file}"
            ) from exc


def ensure_database(paths: DemoPaths, env: dict[str, str], log_file: Path) -> None:
    """Migrate the metadata DB once per Airflow version (the stamp records which)."""
    wanted = airflow_version()
    if paths.db.exists() and paths.migrated_stamp.exists() and paths.migrated_stamp.read_text() == wanted:
        say(f"  reusing the Airflow metadata DB in {rel(paths.airflow_home)}")
        return
    say(f"  creating the Airflow metadata DB in {rel(paths.airflow_home)} (first run only)...")
    if run_airflow(["db", "migrate"], env, log_file, timeout=600, cwd=paths.airflow_home) != 0:
        raise DemoError(f"`airflow db migrate` failed:\n{tail(log_file)}")
    paths.migrated_stamp.write_text(wanted)


# --------------------------------------------------------------------------- result
def latest_dag_run(db: Path) -> tuple[str, str] | None:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        row = conn.execute(
            "SELECT run_id, state FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (DAG_ID,)
        ).fetchone()
    return None if row is None else (str(row[0]), str(row[1]))


def xcom(db: Path, run_id: str, task_id: str, key: str) -> Any:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        row = conn.execute(
            "SELECT value FROM xcom WHERE dag_id = ? AND run_id = ? AND task_id = ? AND key = ?",
            (DAG_ID, run_id, task_id, key),
        ).fetchone()
    if row is None or row[0] is None:
        return None
    value = row[0]
    if isinstance(value, bytes):
        value = value.decode()
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value


def rel(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no output captured)"
    return "\n".join("    " + line for line in text[-lines:])


def task_log_dir(paths: DemoPaths, run_id: str) -> Path:
    return paths.airflow_home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}"


def job_task_order(emulator_url: str, job_key: str | None) -> list[str]:
    """Task keys in the job definition's order (read through the emulator's control API)."""
    from airflow_provider_aidp.emulator.client import EmulatorClient

    try:
        jobs = EmulatorClient(emulator_url).jobs()
    except Exception:  # only cosmetic: fall back to the API's order
        return []
    job = next((j for j in jobs if j["key"] == job_key), None)
    return [t.get("taskKey", "") for t in (job or {}).get("body", {}).get("tasks", [])]


def report(
    paths: DemoPaths,
    run_id: str,
    state: str,
    log_file: Path,
    elapsed: float,
    time_scale: float,
    emulator_url: str,
) -> None:
    summary = xcom(paths.db, run_id, RUN_TASK_ID, "run_summary") or {}
    job_key = xcom(paths.db, run_id, UPSERT_TASK_ID, "return_value") or summary.get("job_key")
    run_key = summary.get("run_key") or xcom(paths.db, run_id, RUN_TASK_ID, "run_key")
    run_url = summary.get("run_url") or xcom(paths.db, run_id, RUN_TASK_ID, "run_url")
    say("")
    say(f"DAG {DAG_ID}: {state.upper()} in {elapsed:.1f}s (Airflow run {run_id})")
    say(f"  AIDP job   daily_sales_etl  key {job_key or '?'}")
    say(f"  AIDP run   key {run_key or '?'}  status {summary.get('status', '?')}")
    say(f"  Run URL    {run_url or '?'}")
    tasks = summary.get("tasks") or []
    order = job_task_order(emulator_url, job_key)
    tasks = sorted(tasks, key=lambda t: order.index(t["task_key"]) if t["task_key"] in order else len(order))
    if tasks:
        width = max(len(t["task_key"]) for t in tasks)
        say(f"  AIDP tasks (durations in AIDP time; the emulator ran {time_scale:g}x faster than real time):")
        for t in tasks:
            took = "-" if t.get("duration_seconds") is None else f"{t['duration_seconds']:.1f}s"
            say(f"    {t['task_key']:<{width}}  {t['status']:<8} {took}")
    logs = task_log_dir(paths, run_id)
    say("  Logs:")
    say(f"    airflow dags test output  {rel(log_file)}")
    if logs.exists():
        say(f"    Airflow task logs         {rel(logs)}/")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    paths = DemoPaths(args.demo_dir.resolve())
    paths.airflow_home.mkdir(parents=True, exist_ok=True)
    paths.logs.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    log_file = paths.logs / f"demo-{stamp}.log"
    started = time.monotonic()
    try:
        say("AIDP provider demo: example DAG 1 (upsert a job, run it, read the summary) on real Airflow")
        say(f"  airflow-provider-aidp {provider_origin()}")
        with running_emulator(args.time_scale) as (emu, connection_json):
            say(f"  AIDP emulator on {emu.url} (API key generated for this run; private key in a temp file)")
            env = airflow_env(paths, connection_json)
            ensure_database(paths, env, log_file)
            logical_date = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+00:00")
            say(f"  running: airflow dags test {DAG_ID} {logical_date}")
            t0 = time.monotonic()
            code = run_airflow(
                ["dags", "test", DAG_ID, logical_date], env, log_file, args.timeout, cwd=paths.airflow_home
            )
            found = latest_dag_run(paths.db)
            if found is None:
                raise DemoError(f"`airflow dags test` created no DAG run (exit {code}):\n{tail(log_file)}")
            run_id, state = found
            report(paths, run_id, state, log_file, time.monotonic() - t0, args.time_scale, emu.url)
            if code != 0 or state != "success":
                raise DemoError(
                    f"the DAG run ended {state} (exit code {code}); last lines of the output:\n"
                    f"{tail(log_file)}"
                )
            if args.keep_running:
                say(f"\nThe emulator keeps running at {emu.url}; press Ctrl-C to stop.")
                with contextlib.suppress(KeyboardInterrupt):
                    while True:
                        time.sleep(3600)
            else:
                say(
                    "  (the emulator stops with the demo; "
                    "`scripts/demo.py --keep-running` keeps the URL live)"
                )
    except DemoError as exc:
        say(f"\nDemo FAILED: {exc}")
        return 1
    say(f"\nDemo OK in {time.monotonic() - started:.1f}s.")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO_ROOT))
    raise SystemExit(main())
