"""Oracle's own CLI (``aidp`` from the ``aidp-cli`` package) against ``python -m ... emulator --tls``.

The CLI accepts only https:// endpoints and verifies certificates, so this is the test that the
emulator's TLS mode is real: the same steps as docs/emulator.md ("Oracle's CLI"), one CLI process
per workflow command, signatures checked, the emulator's CA bundle trusted via REQUESTS_CA_BUNDLE.
The first command runs the installed ``aidp`` console script in its own process; the rest call the
same entry point (``aidp_cli.main.main``) in-process, which saves the ~3 s ``oci`` import per call.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_aidp.emulator import EmulatorClient

pytest.importorskip("aidp_cli")
AIDP = Path(sys.executable).with_name("aidp")
PLATFORM = "ocid1.aidataplatform.oc1.iad.emulator"
WS = "emulator_ws"


class Cli:
    """Runs ``aidp workflow ...`` with a generated API-key config; returns the response JSON."""

    def __init__(self, url: str, config_file: Path, ca_bundle: str) -> None:
        self.flags = [
            "--auth", "api_key", "--config-file", str(config_file),
            "--endpoint", url, "--instance-id", PLATFORM,
        ]  # fmt: skip
        self.ca_bundle = ca_bundle

    def subprocess(self, *args: str) -> dict[str, Any]:
        """Through the installed console script, as a user runs it."""
        env = {k: v for k, v in os.environ.items() if k not in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")}
        done = subprocess.run(
            [str(AIDP), *self.flags, "workflow", *args],
            env={**env, "REQUESTS_CA_BUNDLE": self.ca_bundle},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"aidp workflow {args[0]}: {done.stdout[-1500:]} {done.stderr[-1500:]}"
        return dict(json.loads(done.stdout.split("Response:", 1)[1]))

    def raw(self, *args: str) -> tuple[int, str]:
        """The CLI's entry point in-process: (exit code, stdout + stderr)."""
        from aidp_cli.main import main

        out = io.StringIO()
        with (
            pytest.MonkeyPatch.context() as mp,
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(out),
        ):
            mp.setenv("REQUESTS_CA_BUNDLE", self.ca_bundle)
            code = main([*self.flags, "workflow", *args])
        return code, out.getvalue()

    def __call__(self, *args: str) -> dict[str, Any]:
        code, text = self.raw(*args)
        assert code == 0, f"aidp workflow {args[0]}: {text[-3000:]}"
        return dict(json.loads(text.split("Response:", 1)[1]))


@pytest.fixture(scope="module")
def cli_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cli, EmulatorClient, Path]]:
    """The emulator CLI in TLS mode (manual clock), exactly as a user starts it."""
    if not AIDP.exists():
        pytest.skip("the aidp-cli console script is not installed next to this Python")
    tmp = tmp_path_factory.mktemp("aidp-cli")
    out = tmp / "emulator.out"
    with out.open("w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-u", "-m", "airflow_provider_aidp.emulator", "--tls", "--time-scale", "0",
             "--key-file", str(tmp / "key.pem"), "--url-file", str(tmp / "url")],
            stdout=fh, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (tmp / "url").exists():
            assert proc.poll() is None and time.monotonic() < deadline, out.read_text()
            time.sleep(0.1)
        url = (tmp / "url").read_text()
        lines = out.read_text().splitlines()
        conn = json.loads(lines[lines.index("Connection JSON (AIRFLOW_CONN_AIDP_DEFAULT):") + 1])
        extra = conn["extra"]
        assert url.startswith("https://") and conn["host"] == url
        ca_bundle = extra["ca_bundle"]
        assert Path(ca_bundle).parent == tmp  # written next to the key
        config = tmp / "config"
        config.write_text(
            f"[DEFAULT]\nuser={extra['user']}\nfingerprint={extra['fingerprint']}\n"
            f"tenancy={extra['tenancy']}\nregion=us-ashburn-1\nkey_file={extra['key_file']}\n"
        )
        yield Cli(url, config, ca_bundle), EmulatorClient(url, ca_bundle=ca_bundle), tmp
    finally:
        proc.terminate()
        proc.wait(10)


def _notebook(key: str, depends: list[str] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    return {
        "type": "NOTEBOOK_TASK", "taskKey": key, "runIf": "ALL_SUCCESS", "source": "WORKSPACE",
        "notebookPath": f"/Workspace/Shared/{key}.ipynb",
        "cluster": {"clusterKey": "ck1", "clusterName": "demo_cluster"},
        "dependsOn": [{"taskKey": d} for d in depends],
    }  # fmt: skip


def test_oracle_cli_workflow_commands_over_tls(cli_emulator: tuple[Cli, EmulatorClient, Path]) -> None:
    cli, control, tmp = cli_emulator
    body = tmp / "job.json"
    body.write_text(json.dumps({"name": "cli.job", "path": "/Workspace/Shared", "maxConcurrentRuns": 1}))
    created = cli.subprocess("create-job", WS, "--body", f"@{body}")
    assert created["status"] == 201
    job_key = created["data"]["key"]

    got = cli("get-job", WS, job_key)
    assert got["data"]["name"] == "cli.job"
    body.write_text(
        json.dumps(
            {
                "name": "cli.job", "path": "/Workspace/Shared", "maxConcurrentRuns": 1,
                "jobClusters": [{"clusterKey": "ck1", "clusterName": "demo_cluster"}],
                "tasks": [_notebook("extract"), _notebook("load", ["extract"])],
            }
        )
    )  # fmt: skip
    updated = cli("update-job", WS, job_key, "--if-match", got["headers"]["etag"], "--body", f"@{body}")
    assert [t["taskKey"] for t in updated["data"]["tasks"]] == ["extract", "load"]
    listed = cli("list-jobs", WS)
    assert [j["key"] for j in listed["data"]["items"]] == [job_key]

    # a run whose "load" task fails once, then a repair of that task
    control.script_task(task_key="load", outcome="FAILED", state_message="bad rows", times=1)
    control.script_task(task_key="extract", output="extracted 42 rows")
    run_key = cli("create-job-run", WS, "--body", json.dumps({"jobKey": job_key}))["data"]["key"]
    control.advance(60)
    run = cli("get-job-run", WS, run_key, "--should-include-task-run-summaries", "true")["data"]
    assert run["state"]["status"] == "FAILED"
    task_runs = cli("list-task-runs", WS, "--job-run-key", run_key)["data"]["items"]
    assert {t["taskKey"]: t["state"]["status"] for t in task_runs} == {"extract": "SUCCESS", "load": "FAILED"}
    load = cli("get-task-run", WS, run["taskToTaskRunMap"]["load"])["data"]
    assert load["state"]["status"] == "FAILED" and "bad rows" in load["state"]["stateMessage"]
    extract = cli("get-task-run", WS, run["taskToTaskRunMap"]["extract"])["data"]
    fetch = json.dumps({"outputKey": extract["outputKey"]})
    output = cli("fetch-output", WS, extract["key"], "--body", fetch)
    assert output["data"]["data"][0]["type"] == "NOTEBOOK"  # the field notes' payload (default reading)
    assert "extracted 42 rows" in output["data"]["data"][0]["value"]

    repair = json.dumps({"repairTasks": [{"taskKey": "load"}]})
    repaired = cli("repair-job-run", WS, run_key, "--body", repair)
    assert repaired["data"]["repairKey"] == 1
    control.advance(60)
    assert cli("get-job-run", WS, run_key)["data"]["state"]["status"] == "SUCCESS"

    # cancel a long run
    control.script_task(task_key="extract", duration=600, times=1)
    run2 = cli("create-job-run", WS, "--body", json.dumps({"jobKey": job_key}))["data"]["key"]
    control.advance(5)
    assert cli("cancel-job-run", WS, run2)["data"]["state"]["status"] == "CANCELING"
    control.advance(5)
    assert cli("get-job-run", WS, run2)["data"]["state"]["status"] == "CANCELED"

    etag = cli("get-job", WS, job_key)["headers"]["etag"]
    cli("delete-job", WS, job_key, "--if-match", etag)
    code, text = cli.raw("get-job", WS, job_key)
    assert code != 0 and "404" in text
    # every one of those calls was signed and checked (signature checking is on in TLS mode)
    assert len(control.requests()) >= 17


def test_the_emulator_certificate_is_trusted_only_through_its_ca_bundle(
    cli_emulator: tuple[Cli, EmulatorClient, Path],
) -> None:
    """What makes the CLI work is the printed CA bundle, not a disabled check. (The CLI itself retries
    an untrusted handshake for ~90 s before giving up, so plain requests shows the refusal.)"""
    import requests

    cli, control, _ = cli_emulator
    with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        requests.get(f"{control.url}/_emulator/health", timeout=10, verify=True)
    assert requests.get(f"{control.url}/_emulator/health", timeout=10, verify=cli.ca_bundle).ok
