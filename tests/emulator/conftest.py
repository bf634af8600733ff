"""Shared fixtures: a manual-clock emulator, a registered API key and a signed requests session."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from airflow_provider_aidp.emulator import AIDPEmulator, ApiKeyCredentials

NOTEBOOK = {"clusterKey": "ck1", "clusterName": "demo_cluster"}


@pytest.fixture
def emu() -> Iterator[AIDPEmulator]:
    with AIDPEmulator(time_scale=0) as server:
        yield server


@pytest.fixture
def creds(emu: AIDPEmulator) -> ApiKeyCredentials:
    return emu.generate_api_key()


class Api:
    """Signed calls against one surface of the emulator; returns the raw ``requests.Response``."""

    def __init__(self, emu: AIDPEmulator, creds: ApiKeyCredentials, api_version: str = "20260430") -> None:
        self.base = emu.base_path(api_version)
        self.session = requests.Session()
        self.session.auth = creds.signer()
        self.api_version = api_version

    def __call__(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        return self.session.request(method, self.base + path, **kwargs)

    def create_job(
        self, name: str = "etl.job", tasks: list[dict[str, Any]] | None = None, **fields: Any
    ) -> str:
        resp = self(
            "POST",
            "/jobs",
            json={"name": name, "path": "/Workspace/Shared", "maxConcurrentRuns": 1, **fields},
        )
        assert resp.status_code == 201, resp.text
        key = resp.json()["key"]
        if tasks is not None:
            body = {
                "name": name,
                "path": "/Workspace/Shared",
                "maxConcurrentRuns": 1,
                **fields,
                "tasks": tasks,
                "jobClusters": [NOTEBOOK],
            }
            put = self("PUT", f"/jobs/{key}", json=body)
            assert put.status_code == 200, put.text
        return str(key)

    def run(self, job_key: str, **kwargs: Any) -> dict[str, Any]:
        resp = self("POST", "/jobRuns", json={"jobKey": job_key, **kwargs})
        assert resp.status_code == 201, resp.text
        return dict(resp.json())

    def get_run(self, run_key: str) -> dict[str, Any]:
        resp = self("GET", f"/jobRuns/{run_key}")
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    def task_statuses(self, run_key: str) -> dict[str, str]:
        resp = self("GET", "/taskRuns", params={"jobRunKey": run_key})
        assert resp.status_code == 200, resp.text
        return {t["taskKey"]: t["state"]["status"] for t in resp.json()["items"]}


def task(
    key: str,
    *,
    depends: list[str] | None = None,
    run_if: str = "ALL_SUCCESS",
    path: str | None = None,
    la: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """A NOTEBOOK_TASK in the GA (objects) or LA (strings) dependsOn form."""
    deps: list[Any] = list(depends or []) if la else [{"taskKey": d} for d in depends or []]
    return {
        "type": "NOTEBOOK_TASK",
        "taskKey": key,
        "runIf": run_if,
        "cluster": dict(NOTEBOOK),
        "source": "WORKSPACE",
        "notebookPath": path or f"/Workspace/Shared/{key}.ipynb",
        "dependsOn": deps,
        **extra,
    }


@pytest.fixture
def api(emu: AIDPEmulator, creds: ApiKeyCredentials) -> Api:
    return Api(emu, creds)


@pytest.fixture
def la_api(emu: AIDPEmulator, creds: ApiKeyCredentials) -> Api:
    return Api(emu, creds, "20240831")
