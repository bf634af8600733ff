"""Server processes for the benchmarks: start/stop, a JSON control client, AIDP emulator set-up.

Servers always run in their own process, so the client being measured never shares an
interpreter (or a GIL) with the server answering it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def http_json(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    """A tiny urllib JSON client for control routes (no third-party client in the orchestrator)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    with urllib.request.urlopen(req, timeout=120) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def start_server(cmd: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    """Start a server process that prints ``LISTENING <port>`` or a ``127.0.0.1:<port>`` URL first.

    Its output goes to a file, not a pipe: a chatty server must never block on a full pipe.
    """
    import tempfile

    log = tempfile.NamedTemporaryFile(prefix="aidp-bench-server-", suffix=".log", delete=False)  # noqa: SIM115
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = Path(log.name).read_text(errors="replace")
        port = _port_from_line(text)
        if port:
            return proc, port
        if proc.poll() is not None:
            raise RuntimeError(f"server {cmd} exited before listening:\n{text[-3000:]}")
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"server {cmd} did not report a port within 60 s")


def _port_from_line(line: str) -> int | None:
    import re

    match = re.search(r"(?:LISTENING\s+|127\.0\.0\.1:)(\d{2,5})", line)
    return int(match.group(1)) if match else None


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def start_emulator(env: dict[str, str], *extra_args: str) -> tuple[subprocess.Popen[bytes], str]:
    """``python -m airflow_provider_aidp.emulator`` on a free port; returns (process, base URL)."""
    cmd = [sys.executable, "-m", "airflow_provider_aidp.emulator", "--port", "0", *extra_args]
    proc, port = start_server(cmd, env)
    return proc, f"http://127.0.0.1:{port}"


@dataclass
class EmulatorSession:
    """A registered API key on a running emulator, and signed calls to its GA surface."""

    base: str
    creds: Any  # airflow_provider_aidp.emulator.ApiKeyCredentials
    extra: dict[str, Any]  # the aidp connection extra pointing at the emulator
    api: Any  # requests.Session signing with the key
    prefix: str  # .../20260430/aiDataPlatforms/<id>/workspaces/<ws>

    @classmethod
    def open(cls, base: str) -> EmulatorSession:
        import requests

        from airflow_provider_aidp.emulator.client import EmulatorClient
        from airflow_provider_aidp.emulator.connection import connection_extra

        creds = EmulatorClient(base, timeout=60).generate_api_key()
        extra = connection_extra(base, creds)
        api = requests.Session()
        api.auth = creds.signer()
        platform, workspace = extra["ai_data_platform_id"], extra["workspace_key"]
        prefix = f"{base}/20260430/aiDataPlatforms/{platform}/workspaces/{workspace}"
        return cls(base, creds, extra, api, prefix)

    @property
    def control(self) -> Any:
        from airflow_provider_aidp.emulator.client import EmulatorClient

        return EmulatorClient(self.base, timeout=120)

    def connection_json(self) -> str:
        from airflow_provider_aidp.emulator.connection import connection_json

        return connection_json(self.base, self.extra)

    def create_job(self, name: str, task_seconds: float) -> str:
        """A one-notebook-task job whose task is scripted to succeed after ``task_seconds``."""
        head = {"name": name, "path": "/Workspace/Shared", "maxConcurrentRuns": 1000}
        resp = self.api.post(f"{self.prefix}/jobs", json=head, timeout=60)
        resp.raise_for_status()
        key = resp.json()["key"]
        cluster = {"clusterKey": "ck1", "clusterName": "bench_cluster"}
        task = {
            "type": "NOTEBOOK_TASK",
            "taskKey": "main",
            "runIf": "ALL_SUCCESS",
            "cluster": cluster,
            "source": "WORKSPACE",
            "notebookPath": f"/Workspace/Shared/{name}.ipynb",
            "dependsOn": [],
        }
        body = {**head, "tasks": [task], "jobClusters": [cluster]}
        self.api.put(f"{self.prefix}/jobs/{key}", json=body, timeout=60).raise_for_status()
        self.control.script_task(job_name=name, outcome="SUCCESS", duration=task_seconds)
        return str(key)

    def create_run(self, job_key: str) -> str:
        resp = self.api.post(f"{self.prefix}/jobRuns", json={"jobKey": job_key}, timeout=60)
        resp.raise_for_status()
        return str(resp.json()["key"])

    def lead_seconds(self) -> float:
        """Emulator seconds every run spends PENDING + QUEUED before its tasks start."""
        timings = self.control.config()["timings"]
        return float(timings.get("pending_s", 0)) + float(timings.get("queued_s", 0))

    def api_request_counts(self) -> tuple[dict[str, int], int]:
        """Recorded API requests (control routes excluded) by ``METHOD /resource``, and the most
        requests the emulator received in one wall-clock second."""
        from collections import Counter

        counts: Counter[str] = Counter()
        per_second: Counter[int] = Counter()
        for rec in self.control.requests():
            if not rec["path"].startswith("/_emulator"):
                tail = rec["path"].rsplit("/workspaces/", 1)[-1].split("/", 2)
                counts[f"{rec['method']} /{tail[1] if len(tail) > 1 else rec['path']}"] += 1
                per_second[int(rec["time"])] += 1
        return dict(counts), max(per_second.values(), default=0)
