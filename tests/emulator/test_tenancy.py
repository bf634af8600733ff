"""The emulator knows its tenancy: 404 for an instance or workspace it does not host."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from airflow_provider_aidp.emulator import AIDPEmulator
from airflow_provider_aidp.emulator.__main__ import parse_args
from airflow_provider_aidp.emulator.client import EmulatorClient
from airflow_provider_aidp.emulator.credentials import ApiKeyCredentials
from airflow_provider_aidp.emulator.tenancy import DEFAULT_PLATFORM_ID, DEFAULT_WORKSPACE

from .conftest import Api

OTHER_ID = "ocid1.aidataplatform.oc1.iad.other"


def at(api: Api, emu: AIDPEmulator, instance: str, workspace: str) -> Api:
    api.base = emu.base_path("20260430", workspace, instance)
    return api


def test_hosts_only_its_own_instance_and_workspace(emu: AIDPEmulator, creds: ApiKeyCredentials) -> None:
    assert at(Api(emu, creds), emu, DEFAULT_PLATFORM_ID, DEFAULT_WORKSPACE)("GET", "/jobs").status_code == 200
    resp = at(Api(emu, creds), emu, DEFAULT_PLATFORM_ID, "other_ws")("GET", "/jobs")
    assert resp.status_code == 404 and resp.json()["code"] == "NotAuthorizedOrNotFound"
    assert "Workspace 'other_ws' not found" in resp.json()["message"]
    resp = at(Api(emu, creds), emu, OTHER_ID, DEFAULT_WORKSPACE)("GET", "/jobs")
    assert resp.status_code == 404 and f"instance '{OTHER_ID}' not found" in resp.json()["message"]


def test_opaque_reading_says_nothing_more(emu: AIDPEmulator, creds: ApiKeyCredentials) -> None:
    emu.state.tenancy.detailed = False
    resp = at(Api(emu, creds), emu, DEFAULT_PLATFORM_ID, "other_ws")("GET", "/jobs")
    assert resp.status_code == 404 and "other_ws" not in resp.text and "Workspace" not in resp.text


def test_signature_is_checked_before_the_tenancy(emu: AIDPEmulator) -> None:
    resp = requests.get(emu.base_path("20260430", "other_ws") + "/jobs", timeout=10)
    assert resp.status_code == 401  # no hint to an unauthenticated caller about what exists


def test_hosting_more_by_api_connection_and_control(emu: AIDPEmulator, creds: ApiKeyCredentials) -> None:
    emu.host_workspace(OTHER_ID, "ws_a")
    assert at(Api(emu, creds), emu, OTHER_ID, "ws_a")("GET", "/jobs").status_code == 200
    emu.connection_extra(creds, workspace_key="ws_b")  # the connection it hands out is hosted
    assert at(Api(emu, creds), emu, DEFAULT_PLATFORM_ID, "ws_b")("GET", "/jobs").status_code == 200
    described = EmulatorClient(emu.url).host_workspace(OTHER_ID, "ws_c")
    assert described["hosted"][OTHER_ID] == ["ws_a", "ws_c"]
    assert at(Api(emu, creds), emu, OTHER_ID, "ws_c")("GET", "/jobs").status_code == 200


@pytest.fixture
def any_emu() -> Iterator[AIDPEmulator]:
    with AIDPEmulator(time_scale=0, accept_any_workspace=True) as server:
        yield server


def test_accept_any_workspace_keeps_the_old_behaviour(any_emu: AIDPEmulator) -> None:
    creds = any_emu.generate_api_key()
    assert at(Api(any_emu, creds), any_emu, OTHER_ID, "anything")("GET", "/jobs").status_code == 200


def test_cli_options() -> None:
    args = parse_args(["--accept-any-workspace", "--host-workspace", f"{OTHER_ID}/ws1"])
    assert args.accept_any_workspace and args.host_workspace == [f"{OTHER_ID}/ws1"]
    assert parse_args([]).accept_any_workspace is False
