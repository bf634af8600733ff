"""Private PostgreSQL and Redis servers for the production-shaped deployment (Debian's packages).

Each runs as a real process of the test session on a free loopback port, with its data in a
temporary directory of its own, and is stopped by pid (its process group) like every Airflow
component (``processes.ManagedProcess``). Nothing system-wide is touched: Debian's own cluster
(``/etc/postgresql``) and ``redis-server.service`` are neither used nor started.

PostgreSQL refuses to run as root (``initdb: cannot be run as root``). As root, ``initdb`` and
``postgres`` therefore run through ``runuser -u postgres`` (the system user Debian's
``postgresql-common`` creates), in a directory handed to that user; as any other user they run
as that user.

The server settings below that trade durability for speed (``fsync=off``, no synchronous commit,
no full-page writes) are for a throw-away test database only: a production database keeps the
defaults.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from .processes import ManagedProcess, free_port

#: the system user that runs PostgreSQL when the tests run as root (created by postgresql-common)
POSTGRES_SYSTEM_USER = "postgres"
#: the role and database Airflow uses (the role is the cluster's superuser: trust auth, loopback only)
DB_USER = DB_NAME = "airflow"
#: server settings: loopback only; connections for every component's pools (Celery workers hold
#: some per pool process)
PG_SETTINGS = ("listen_addresses=127.0.0.1", "max_connections=200")
#: test-only server settings: no durability, for speed (see the module docstring)
TEST_ONLY_PG_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")
INSTALL_HINT = "apt-get install postgresql redis-server (.ci/run does)"


class ServiceError(RuntimeError):
    """A server did not start; the message carries its log tail."""


def postgres_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<major>/bin`` with initdb and postgres (Debian's layout)."""
    found = sorted(
        (Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    return found[-1] if found else None


def redis_server() -> str | None:
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
    )


def missing_services() -> list[str]:
    """What of PostgreSQL / Redis is not installed (empty: both are)."""
    missing = []
    if postgres_bindir() is None or not shutil.which("psql"):
        missing.append("postgresql")
    if redis_server() is None:
        missing.append("redis-server")
    return missing


def _wait(check: Callable[[], bool], proc: ManagedProcess, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if not proc.alive():
            raise ServiceError(f"{what} exited:\n{proc.log_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise ServiceError(f"{what} did not start within {timeout:.0f}s:\n{proc.log_text()[-3000:]}")
        time.sleep(0.2)


class PostgresServer:
    """``initdb`` + ``postgres`` on 127.0.0.1:<free port>, trust auth for role ``airflow``."""

    def __init__(self, log_dir: Path) -> None:
        bindir = postgres_bindir()
        if bindir is None:
            raise ServiceError(f"PostgreSQL not found under /usr/lib/postgresql: {INSTALL_HINT}")
        self.bindir = bindir
        self.log_dir = log_dir
        self.port = free_port()
        # A directory of its own, outside the test's (root-only) temp dir: the postgres user must
        # be able to enter it.
        self.dir = Path(tempfile.mkdtemp(prefix="aidp-e2e-pg-"))
        self.data = self.dir / "data"
        self.as_user = POSTGRES_SYSTEM_USER if os.geteuid() == 0 else None
        self.proc: ManagedProcess | None = None
        #: every command run, in order (docs/deploying.md is checked against them)
        self.ran: list[list[str]] = []

    @property
    def sqlalchemy_url(self) -> str:
        """Airflow's metadata DB URL: the psycopg2 driver named (SQLAlchemy 2.1's default is psycopg 3)."""
        return f"postgresql+psycopg2://{DB_USER}@127.0.0.1:{self.port}/{DB_NAME}"

    @property
    def celery_result_backend(self) -> str:
        """Celery's database result backend: ``db+`` and, again, the driver named."""
        return f"db+{self.sqlalchemy_url}"

    def _argv(self, program: str, *args: str) -> list[str]:
        prefix = ["runuser", "-u", self.as_user, "--"] if self.as_user else []
        return [*prefix, str(self.bindir / program), *args]

    def start(self) -> PostgresServer:
        if self.as_user:
            pw = pwd.getpwnam(self.as_user)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        initdb = self._argv(
            "initdb", "-D", str(self.data), "--auth=trust", f"--username={DB_USER}", "-E", "UTF8", "--no-sync"
        )
        self.ran.append(initdb)
        subprocess.run(
            initdb,
            check=True,
            capture_output=True,
            stdin=subprocess.DEVNULL,
            cwd=self.dir,
        )
        settings = [arg for s in (*PG_SETTINGS, *TEST_ONLY_PG_SETTINGS) for arg in ("-c", s)]
        argv = self._argv(
            "postgres", "-D", str(self.data), "-p", str(self.port), "-k", str(self.dir), *settings
        )
        log = self.log_dir / "postgres.log"
        self.ran.append(argv)
        self.proc = ManagedProcess("postgres", argv, dict(os.environ), log, cwd=self.dir).start()
        _wait(lambda: self.psql("SELECT 1", db="postgres", check=False) == "1", self.proc, 60, "PostgreSQL")
        self.psql(f"CREATE DATABASE {DB_NAME}", db="postgres")
        return self

    def psql(self, sql: str, db: str = DB_NAME, check: bool = True) -> str:
        """One statement through ``psql`` over TCP; its unaligned, tuples-only output."""
        argv = ["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", DB_USER, "-d", db, "-XAtq", "-c", sql]
        self.ran.append(argv)
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=30,
        )
        if check and result.returncode != 0:
            raise ServiceError(f"psql {sql!r} exited {result.returncode}: {result.stderr[-2000:]}")
        return result.stdout.strip()

    def stop(self) -> list[int]:
        """A fast shutdown (SIGINT: open sessions are ended, not waited for); the directory removed."""
        leftovers = self.proc.stop(stop_signal=signal.SIGINT) if self.proc else []
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)
        return leftovers


class RedisServer:
    """``redis-server`` on 127.0.0.1:<free port>, no persistence: the Celery broker."""

    def __init__(self, log_dir: Path) -> None:
        binary = redis_server()
        if binary is None:
            raise ServiceError(f"redis-server not found: {INSTALL_HINT}")
        self.binary = binary
        self.log_dir = log_dir
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="aidp-e2e-redis-"))
        self.proc: ManagedProcess | None = None
        self.ran: list[list[str]] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        argv = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.dir),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
        ]
        self.ran.append(argv)
        self.proc = ManagedProcess("redis", argv, dict(os.environ), self.log_dir / "redis.log", cwd=self.dir)
        self.proc.start()
        _wait(self._ping, self.proc, 30, "Redis")
        return self

    def _ping(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
        return False

    def stop(self) -> list[int]:
        leftovers = self.proc.stop() if self.proc else []
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)
        return leftovers
