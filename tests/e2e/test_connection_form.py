"""The ``aidp`` connection form in Airflow's own UI, driven by a real headless Chromium.

A user adds a connection through the form, saves it, reopens it: the private key and the
passphrase come back hidden (in the form, the Extra JSON editor and the REST API), survive a
re-save unchanged (the provider's Test, run through the REST API as the UI does, signs with them
and the emulator checks the signature), and the dropdowns offer no "null".

Uses Debian's ``chromium`` (``.ci/run`` installs it) through Playwright's Python client; no
browser is downloaded. Screenshots of each step are kept under the test's temporary directory.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import EmulatorProcess
from .deployment import AirflowDeployment

pytestmark = pytest.mark.e2e

CHROMIUM = os.environ.get("AIDP_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CONN_ID = "aidp_browser"
PASSPHRASE = "Form-Passphrase-7f3c9a"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not shutil.which(CHROMIUM):
        if os.environ.get("AIDP_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{CHROMIUM} not found (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} not found (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


class Form:
    """The Add/Edit Connection dialog of Airflow 3's UI."""

    def __init__(self, page: Any, shots: Path) -> None:
        self.page = page
        self.shots = shots
        self.step = 0

    def shot(self, name: str, locator: Any = None) -> Path:
        self.step += 1
        path = self.shots / f"{self.step:02d}_{name}.png"
        (locator or self.page).screenshot(path=str(path))
        return path

    def field(self, name: str) -> Any:
        return self.page.locator(f"[name=element_{name}]")

    def fill(self, values: dict[str, str]) -> None:
        for name, value in values.items():
            self.field(name).fill(value)

    def choose(self, label: str, option: str) -> list[str]:
        """Pick ``option`` in the select labelled ``label``; return every option it offered."""
        self.page.get_by_label(label).click()
        options = self.page.get_by_role("option").all_inner_texts()
        self.page.get_by_role("option", name=option, exact=True).click()
        return options

    def save(self) -> None:
        self.page.get_by_role("button", name="Save").click()
        self.page.get_by_role("dialog").wait_for(state="detached")


def _emulator_key(emu: EmulatorProcess) -> Any:
    """An encrypted API key the emulator knows (so the passphrase really matters)."""
    return emu.client.generate_api_key(pass_phrase=PASSPHRASE)


def test_form_hides_secrets_and_they_survive_a_resave(
    browser: Any,
    airflow_deployment: AirflowDeployment,
    emulator_process: EmulatorProcess,
    tmp_path: Path,
) -> None:
    emu = emulator_process
    creds = _emulator_key(emu)
    pem_one_line = creds.private_key_pem.strip().replace("\n", "\\n")  # as pasted into a one-line field
    extra = emu.connection["extra"]
    page = browser.new_page(viewport={"width": 1100, "height": 1300})
    form = Form(page, tmp_path)
    api_bodies: list[str] = []  # every connection the UI received from the API
    page.on(
        "response",
        lambda r: api_bodies.append(r.text()) if "/api/v2/connections" in r.url and r.ok else None,
    )

    # --- add the connection through the form ------------------------------------------------
    page.goto(f"{airflow_deployment.base_url}/connections")
    page.get_by_role("button", name="Add Connection").click()
    page.get_by_label("Connection ID").fill(CONN_ID)
    page.get_by_label("Connection Type").fill("Oracle AI Data Platform")
    page.keyboard.press("Enter")
    page.get_by_label("Endpoint override (optional)").fill(emu.url)
    page.get_by_role("button", name="Extra Fields", exact=True).click()
    form.fill(
        {
            "ai_data_platform_id": extra["ai_data_platform_id"],
            "workspace_key": extra["workspace_key"],
            "tenancy": creds.tenancy,
            "user": creds.user,
            "fingerprint": creds.fingerprint,
            "private_key": pem_one_line,
            "passphrase": PASSPHRASE,
        }
    )
    api_versions = form.choose("API version", "20260430")
    auth_types = form.choose("Auth type", "api_key")
    assert api_versions == ["20260430", "20240831"]  # no "null" choice
    assert "null" not in auth_types and "api_key" in auth_types
    page.get_by_text("Region", exact=True).scroll_into_view_if_needed()
    form.shot("form_filled")  # docs/connection_form.png is this screenshot
    form.save()
    form.shot("saved_list")

    # --- what the REST API answers: secrets hidden, only what was set is a value ---------------
    stored = airflow_deployment.api("GET", f"connections/{CONN_ID}")
    shown = json.loads(stored["extra"])
    assert shown["private_key"] == "***" and shown["passphrase"] == "***"
    assert shown["fingerprint"] == creds.fingerprint  # not a secret, shown as is
    set_fields = {k for k, v in shown.items() if v is not None}
    assert set_fields == {
        "ai_data_platform_id",
        "workspace_key",
        "tenancy",
        "user",
        "fingerprint",
        "private_key",
        "passphrase",
        "api_version",
        "auth_type",
    }, "defaults must not be saved into the connection"

    # --- reopen: the secrets come back hidden --------------------------------------------------
    page.get_by_role("row").filter(has_text=CONN_ID).get_by_role("button", name="Edit Connection").click()
    page.get_by_role("button", name="Extra Fields", exact=True).click()
    assert form.field("passphrase").input_value() == "***"
    assert form.field("private_key").input_value() == "***"
    assert form.field("fingerprint").input_value() == creds.fingerprint
    form.field("passphrase").scroll_into_view_if_needed()
    form.shot("reopened_fields")
    page.get_by_role("button", name="Extra Fields JSON").click()
    form.shot("reopened_json")
    seen_in_ui = page.content() + page.get_by_role("dialog").inner_text()
    form.save()  # re-save without touching anything

    # --- the provider's Test through the REST API (as the UI's Test button calls it) ---------
    body = {k: stored[k] for k in ("connection_id", "conn_type", "host", "extra")}
    result = airflow_deployment.api("POST", "connections/test", body)
    assert result["status"] is True, result
    assert result["message"].startswith("Connected to 127.0.0.1"), result
    wrong_ws = dict(body, extra=json.dumps(dict(shown, workspace_key="not_hosted_ws")))
    result = airflow_deployment.api("POST", "connections/test", wrong_ws)
    assert result["status"] is False
    assert result["message"].startswith("Workspace 'not_hosted_ws' was not found (404 from 127.0.0.1")

    # --- no secret value anywhere the user (or the API) can look ------------------------------
    answers = [
        json.dumps(airflow_deployment.api("GET", f"connections/{CONN_ID}")),
        json.dumps(airflow_deployment.api("GET", "connections", params={"limit": 100})),
        seen_in_ui,
        *api_bodies,
        airflow_deployment.log_path("api-server").read_text(errors="replace"),
    ]
    key_lines = [line for line in creds.private_key_pem.splitlines() if not line.startswith("-----")]
    assert api_bodies, "the browser received no connection from the API"
    for text in answers:
        assert PASSPHRASE not in text
        assert not [line for line in key_lines if line in text]
    page.close()
