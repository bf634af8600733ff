"""How many signed polling clients the AIDP emulator serves on this machine.

Starts the emulator in its own process (``python -m airflow_provider_aidp.emulator``), creates one
job and N long-running runs, then N asyncio clients in this process each poll ``GET
/jobRuns/{key}`` (OCI-signed, one TCP connection each) for ``--seconds``. Prints requests/s,
errors and latency percentiles. Each client re-signs its request every ``--resign`` seconds
(default 30; the emulator accepts dates within 300 s), so client CPU goes to HTTP, not RSA.

    python benchmarks/emulator_load.py --clients 1000 --seconds 20 --interval 0
    python benchmarks/emulator_load.py --clients 1000 --interval 1   # realistic 1 s polling
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import email.utils
import json
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO_ROOT, percentile


def start_emulator(tmp: Path) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    key_file = tmp / "emulator_load_key.pem"
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_aidp.emulator", "--port", "0", "--key-file", str(key_file)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    lines = [proc.stdout.readline() for _ in range(4)]  # type: ignore[union-attr]
    conn = json.loads(lines[3])
    return proc, conn


class SignedGet:
    """Signs ``GET path`` the way oci.signer.Signer does (date, (request-target), host)."""

    def __init__(self, extra: dict[str, Any], host: str) -> None:
        pem = Path(extra["key_file"]).read_bytes()
        self.key = serialization.load_pem_private_key(pem, None)
        self.key_id = f"{extra['tenancy']}/{extra['user']}/{extra['fingerprint']}"
        self.host = host

    def headers(self, path: str) -> dict[str, str]:
        date = email.utils.formatdate(usegmt=True)
        signing = f"date: {date}\n(request-target): get {path}\nhost: {self.host}".encode()
        sig = base64.b64encode(self.key.sign(signing, padding.PKCS1v15(), hashes.SHA256())).decode()  # type: ignore[union-attr,call-arg]
        auth = (
            f'Signature version="1",headers="date (request-target) host",keyId="{self.key_id}",'
            f'algorithm="rsa-sha256",signature="{sig}"'
        )
        return {"date": date, "host": self.host, "authorization": auth, "accept": "application/json"}


def setup_runs(url: str, conn: dict[str, Any], n: int, base: str) -> list[str]:
    from oci.signer import Signer

    extra = conn["extra"]
    session = requests.Session()
    session.auth = Signer(extra["tenancy"], extra["user"], extra["fingerprint"], extra["key_file"])
    requests.post(f"{url}/_emulator/scripts", json={"task_key": "work", "duration": 3600}, timeout=10)
    job = session.post(
        f"{base}/jobs", json={"name": "load.job", "maxConcurrentRuns": 1000}, timeout=10
    ).json()
    task = {
        "type": "NOTEBOOK_TASK",
        "taskKey": "work",
        "runIf": "ALL_SUCCESS",
        "notebookPath": "/Workspace/w",
        "cluster": {"clusterKey": "c", "clusterName": "c"},
        "dependsOn": [],
    }
    session.put(
        f"{base}/jobs/{job['key']}",
        json={"name": "load.job", "maxConcurrentRuns": 1000, "tasks": [task]},
        timeout=10,
    ).raise_for_status()
    keys = []
    for _ in range(n):
        resp = session.post(f"{base}/jobRuns", json={"jobKey": job["key"]}, timeout=10)
        resp.raise_for_status()
        keys.append(resp.json()["key"])
    return keys


async def poller(
    session: aiohttp.ClientSession,
    signer: SignedGet,
    url: str,
    path: str,
    stop_at: float,
    interval: float,
    resign: float,
    lat: list[float],
    errors: list[str],
) -> None:
    if interval:  # spread the clients over one interval, as independent pollers would be
        await asyncio.sleep(random.uniform(0, interval))
    headers, signed_at = signer.headers(path), time.monotonic()
    while time.monotonic() < stop_at:
        if time.monotonic() - signed_at > resign:
            headers, signed_at = signer.headers(path), time.monotonic()
        t0 = time.perf_counter()
        try:
            async with session.get(url + path, headers=headers) as resp:
                body = await resp.read()
                if resp.status != 200 or b'"state"' not in body:
                    errors.append(f"{resp.status}")
                else:
                    lat.append(time.perf_counter() - t0)
        except Exception as exc:  # counted, not fatal: the figure is the error count
            errors.append(type(exc).__name__)
        if interval:
            await asyncio.sleep(interval)


async def load(
    url: str,
    conn: dict[str, Any],
    base_path: str,
    keys: list[str],
    seconds: float,
    interval: float,
    resign: float,
) -> dict[str, Any]:
    signer = SignedGet(conn["extra"], url.split("://", 1)[1])
    lat: list[float] = []
    errors: list[str] = []
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, skip_auto_headers=["User-Agent"]
    ) as s:
        stop_at = time.monotonic() + seconds
        started = time.perf_counter()
        await asyncio.gather(
            *(
                poller(s, signer, url, f"{base_path}/jobRuns/{k}", stop_at, interval, resign, lat, errors)
                for k in keys
            )
        )
        elapsed = time.perf_counter() - started
    return {
        "clients": len(keys),
        "seconds": round(elapsed, 1),
        "requests": len(lat) + len(errors),
        "ok": len(lat),
        "errors": len(errors),
        "error_kinds": sorted(set(errors))[:5],
        "rps": round(len(lat) / elapsed, 1),
        "p50_ms": round(percentile(lat, 50) * 1000, 1),
        "p99_ms": round(percentile(lat, 99) * 1000, 1),
        "max_ms": round(max(lat, default=0) * 1000, 1),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--interval", type=float, default=0.0, help="pause between one client's polls (s)")
    p.add_argument("--resign", type=float, default=30.0, help="re-sign each client's request after (s)")
    args = p.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        proc, conn = start_emulator(Path(tmp))
        try:
            url = conn["host"]
            extra = conn["extra"]
            base_path = (
                f"/20260430/aiDataPlatforms/{extra['ai_data_platform_id']}/workspaces/"
                f"{extra['workspace_key']}"
            )
            keys = setup_runs(url, conn, args.clients, url + base_path)
            result = asyncio.run(load(url, conn, base_path, keys, args.seconds, args.interval, args.resign))
        finally:
            proc.terminate()
            proc.wait(10)
    result["interval_s"] = args.interval
    print(json.dumps(result))
    return 0 if result["errors"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
