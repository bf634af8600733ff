"""Secrets (private key content, pass phrase, config-file key_content, session tokens) are
registered with Airflow's secrets masker and never appear in logs, exception text or reprs."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_aidp import exceptions as exc
from airflow_provider_aidp.hooks import auth
from airflow_provider_aidp.hooks.aidp import AIDPHook
from airflow_provider_aidp.hooks.connection import AIDPConnectionConfig
from tests.unit.hook_support import (
    HOST,
    OCID,
    PASS_PHRASE,
    TENANCY,
    USER,
    FakeConnection,
    base_url,
    inline_extra,
    install_connection,
    make_key,
)

KEY = make_key(PASS_PHRASE, tag="masking")
KEY_BODY_LINE = KEY.private_pem.splitlines()[2]
TOKEN = "SessionTokenValue-0123456789-abcdef"


def redact(text: str) -> str:
    from airflow_provider_aidp.compat import secrets_masker_module

    return str(secrets_masker_module().redact(text))


def assert_clean(text: str) -> None:
    for secret in (PASS_PHRASE, KEY_BODY_LINE, TOKEN):
        assert secret not in text


@pytest.fixture(autouse=True)
def _cache() -> Any:
    auth.clear_signer_cache()
    yield
    auth.clear_signer_cache()


def test_secrets_are_registered_with_the_masker() -> None:
    AIDPConnectionConfig.from_connection(FakeConnection(extra=inline_extra(KEY, region="us-ashburn-1")))
    text = f"key={KEY.private_pem} pass={PASS_PHRASE} line={KEY_BODY_LINE}"
    assert_clean(redact(text))


def test_masked_even_when_validation_fails() -> None:
    bad = inline_extra(KEY, region="us-ashburn-1", fingerprint="nope", passphrase=PASS_PHRASE + "-other")
    with pytest.raises(exc.AIDPConfigError) as err:
        AIDPConnectionConfig.from_connection(FakeConnection(extra=bad))
    assert PASS_PHRASE not in str(err.value)
    assert PASS_PHRASE + "-other" not in redact(f"x {PASS_PHRASE}-other y")


def test_config_file_key_content_and_session_token_are_masked(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    key_file = tmp_path / "key.pem"
    key_file.write_text(KEY.private_pem)
    config_file = tmp_path / "config"
    config_file.write_text(
        f"[SESS]\ntenancy={TENANCY}\nuser={USER}\nfingerprint={KEY.fingerprint}\nkey_file={key_file}\n"
        f"pass_phrase={PASS_PHRASE}\nregion=us-ashburn-1\nsecurity_token_file={token_file}\n"
    )
    cfg = AIDPConnectionConfig.from_connection(
        FakeConnection(
            extra={
                "ai_data_platform_id": OCID,
                "region": "us-ashburn-1",
                "auth_type": "security_token",
                "config_file": str(config_file),
                "profile": "SESS",
            }
        )
    )
    signer = auth.get_signer(cfg)
    req = requests.Request("GET", "https://aidp.test/x").prepare()
    signer(req)
    assert_clean(redact(f"{TOKEN} {PASS_PHRASE} {KEY.private_pem}"))


def test_logs_errors_and_reprs_never_show_secrets(
    monkeypatch: pytest.MonkeyPatch, requests_mock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    install_connection(monkeypatch, FakeConnection(host=HOST, extra=inline_extra(KEY, max_retries=2)))
    hook = AIDPHook("aidp_test")
    hook._sleep = lambda s: None
    url = f"{base_url()}/jobRuns/r1"
    requests_mock.get(
        url,
        [
            {"status_code": 503, "json": {"code": "Unavailable", "message": "later"}},
            {"exc": requests.ConnectionError("reset")},
            {"status_code": 401, "json": {"code": "NotAuthenticated", "message": "bad signature"}},
        ],
    )
    with caplog.at_level(logging.DEBUG), pytest.raises(exc.AIDPAuthError) as err:
        hook.get_job_run("r1")
    assert "retry 1/2" in caplog.text  # retries are logged...
    texts = [
        caplog.text,
        str(err.value),
        repr(err.value),
        repr(hook),
        repr(hook.get_config()),
        str(hook.get_config()),
    ]
    for text in texts:
        assert_clean(text)  # ...without secrets
        assert "PRIVATE KEY" not in text
    # the signed Authorization header is not logged either
    assert "Signature" not in caplog.text


async def test_async_path_masks_with_amask_secret_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """On the triggerer's loop a blocking supervisor round-trip must be avoided: amask_secret only."""
    import airflow.sdk.log as sdk_log

    from airflow_provider_aidp import compat
    from airflow_provider_aidp.hooks.transport import async_state, close_async_sessions

    key = make_key(PASS_PHRASE + "-async", tag="masking-async")
    install_connection(monkeypatch, FakeConnection(host=HOST, extra=inline_extra(key)))
    masked: list[str] = []
    real_amask = compat.amask_secret

    async def amask(secret: Any) -> None:
        masked.append(secret)
        await real_amask(secret)

    loop_thread = threading.get_ident()
    sync_masked: list[str] = []

    def no_sync_mask(secret: Any, name: str | None = None) -> None:
        # Worker threads (the signer is built with asyncio.to_thread) may use the sync form.
        assert threading.get_ident() != loop_thread, "blocking mask_secret called on the event loop"
        sync_masked.append(secret)

    monkeypatch.setattr(compat, "amask_secret", amask)
    monkeypatch.setattr(sdk_log, "mask_secret", no_sync_mask)
    hook = AIDPHook("aidp_test")
    state = await hook._astate()
    try:
        assert state.config is not None and state.config.private_key == key.private_pem
        assert key.private_pem in masked and PASS_PHRASE + "-async" in masked
        assert async_state("aidp_test") is state
        assert sync_masked  # the key was also registered while being parsed off-loop
    finally:
        await close_async_sessions()
    assert_clean(redact(f"{PASS_PHRASE}-async {key.private_pem.splitlines()[3]}").replace(PASS_PHRASE, ""))
    assert key.private_pem.splitlines()[3] not in redact(key.private_pem)


# --- one masking helper --------------------------------------------------------------------------


def test_one_rule_for_which_strings_of_a_secret_are_masked() -> None:
    from airflow_provider_aidp.compat import secret_parts

    pem = make_key(tag="parts").private_pem
    body = [line for line in pem.splitlines() if not line.startswith("-----") and len(line) >= 16]
    assert secret_parts(pem) == [pem, *body] and len(body) > 10
    assert secret_parts("one-line-secret") == ["one-line-secret"]
    assert secret_parts("") == [] and secret_parts(None) == []


async def test_sync_and_async_entry_points_mask_every_body_line() -> None:
    from airflow_provider_aidp import compat

    sync_pem, async_pem = make_key(tag="sync-entry").private_pem, make_key(tag="async-entry").private_pem
    compat.mask_secret(sync_pem)
    await compat.amask_secret(async_pem)
    for pem in (sync_pem, async_pem):
        for part in compat.secret_parts(pem):
            assert part not in redact(f"line: {part}"), part[:20]


def test_only_compat_talks_to_airflows_masker() -> None:
    """Every caller goes through compat.mask_secret / compat.amask_secret: one helper, one rule."""
    package = Path(auth.__file__).resolve().parents[1]
    callers = sorted(
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if path.name != "compat.py"
        and any(word in path.read_text(encoding="utf-8") for word in ("airflow.sdk.log", "add_mask("))
    )
    assert callers == []
