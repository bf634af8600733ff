"""The settings table is the one source: form, widgets, parser, docs and secret names agree with it."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_aidp.compat import AIRFLOW_VERSION
from airflow_provider_aidp.exceptions import AIDPConfigError
from airflow_provider_aidp.get_provider_info import get_provider_info
from airflow_provider_aidp.hooks.aidp import AIDPHook
from airflow_provider_aidp.hooks.connection import DEFAULT_MAX_REQUESTS_PER_SECOND, AIDPConnectionConfig
from airflow_provider_aidp.hooks.form import DOCS_END, DOCS_START, conn_fields, docs_table
from airflow_provider_aidp.hooks.realms import resolve_region
from airflow_provider_aidp.hooks.settings import (
    BY_NAME,
    REMOVED_NAMES,
    REMOVED_PREFIX,
    SECRET_FIELDS,
    SETTINGS,
    ConnectionSettings,
)

REPO = Path(__file__).resolve().parents[2]
OCID = "ocid1.aidataplatform.oc1.iad.aaaa"
TENANCY = "ocid1.tenancy.oc1..aaaa"
USER = "ocid1.user.oc1..aaaa"
FP = ":".join(["ab"] * 16)
_MARK = "PRIVATE KEY-----"  # split so no committed line looks like a key; this one is not a key
PEM = f"-----BEGIN {_MARK}\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcw\n-----END {_MARK}\n"
SECRET_VALUES = {"private_key": PEM, "passphrase": "Correct-Horse-Battery-42"}
OLD_NAME_SECRET = "Old-Name-Passphrase-77"
INLINE = {"ai_data_platform_id": OCID, "tenancy": TENANCY, "user": USER, "fingerprint": FP}


# --- docs and form agree with the table, by construction ----------------------------------------


def test_docs_table_is_the_generated_one() -> None:
    text = (REPO / "docs" / "connection.md").read_text(encoding="utf-8")
    start, end = text.index(DOCS_START), text.index(DOCS_END) + len(DOCS_END)
    assert text[start:end] == docs_table(), "run: .venv/bin/python scripts/connection_docs.py"
    for s in SETTINGS:
        assert f"| `{s.name}`" in docs_table()


def test_provider_conn_fields_are_the_table_in_order() -> None:
    (conn_type,) = get_provider_info()["connection-types"]
    fields = conn_type["conn-fields"]
    assert list(fields) == [s.name for s in SETTINGS] == list(conn_fields())
    for s in SETTINGS:
        schema = fields[s.name]["schema"]
        assert fields[s.name]["label"] == s.label
        assert s.help in fields[s.name]["description"]
        if s.example:
            assert s.example in fields[s.name]["description"]  # placeholders do not render in Airflow 3
        assert None not in schema.get("enum", []), f"{s.name}: a 'null' choice"
        assert schema.get("enum", []) == list(s.choices)
        assert (schema.get("format") == "password") is s.secret
        assert "default" not in schema  # the form would save it into every connection
        if s.default is not None:
            assert f"Default: {s.default}." in fields[s.name]["description"]


def test_no_extra_placeholders_only_the_host() -> None:
    (conn_type,) = get_provider_info()["connection-types"]
    assert set(conn_type["ui-field-behaviour"]["placeholders"]) == {"host"}


def test_parser_reads_every_setting_into_the_config() -> None:
    """Every row is an attribute of the config, with the table's default when not set."""
    cfg = AIDPConnectionConfig.from_fields(host="http://127.0.0.1:1", extra={"ai_data_platform_id": OCID})
    for s in SETTINGS:
        if s.name in ("depends_on_format", "ai_data_platform_id"):
            continue  # default follows api_version; required
        assert getattr(cfg, s.name) == s.default, s.name
    assert BY_NAME["max_requests_per_second"].default == DEFAULT_MAX_REQUESTS_PER_SECOND


def test_each_setting_is_declared_once_as_a_typed_config_field() -> None:
    """The config's fields are the table's rows (plus conn_id and endpoint): nothing re-declared."""
    config_fields = {f.name: f for f in dataclasses.fields(AIDPConnectionConfig)}
    assert list(config_fields) == [s.name for s in SETTINGS] + ["conn_id", "endpoint"]
    assert [f.name for f in dataclasses.fields(ConnectionSettings)] == [s.name for s in SETTINGS]
    kinds = {"integer": int, "number": float}
    for s in SETTINGS:
        f = config_fields[s.name]
        assert f.repr is not s.secret, s.name  # secrets stay out of repr, by the row's flag
        assert isinstance(f.type, str) and f.type.startswith(
            kinds[s.kind].__name__ if s.kind in kinds else "str"
        )
        if f.default is not dataclasses.MISSING:
            assert f.default == s.default, s.name
    no_default = {n for n, f in config_fields.items() if f.default is dataclasses.MISSING}
    assert no_default == {"ai_data_platform_id", "depends_on_format", "conn_id", "endpoint"}


def test_consistency_grace_is_seconds_default_60_and_zero_allowed() -> None:
    row = BY_NAME["consistency_grace"]
    assert (row.kind, row.default, row.allow_zero, row.label) == (
        "number",
        60.0,
        True,
        "Consistency grace (s)",
    )
    extra = {"ai_data_platform_id": OCID}
    assert AIDPConnectionConfig.from_fields(host="http://127.0.0.1:1", extra=extra).consistency_grace == 60.0
    extra["consistency_grace"] = "0"
    assert AIDPConnectionConfig.from_fields(host="http://127.0.0.1:1", extra=extra).consistency_grace == 0.0


@pytest.mark.parametrize("setting", [s for s in SETTINGS if s.kind != "string"], ids=lambda s: s.name)
def test_numbers_are_parsed_and_checked_by_the_table(setting: Any) -> None:
    extra = {"ai_data_platform_id": OCID, setting.name: "7"}
    cfg = AIDPConnectionConfig.from_fields(host="http://127.0.0.1:1", extra=extra)
    assert getattr(cfg, setting.name) == 7
    for bad in ("many", -1, True, "nan", "inf"):
        with pytest.raises(AIDPConfigError) as err:
            AIDPConnectionConfig.from_fields(
                host="http://127.0.0.1:1", extra={"ai_data_platform_id": OCID, setting.name: bad}
            )
        assert err.value.field == setting.name and setting.name in str(err.value)


@pytest.mark.parametrize("setting", [s for s in SETTINGS if s.choices], ids=lambda s: s.name)
def test_choices_are_checked_by_the_table(setting: Any) -> None:
    with pytest.raises(AIDPConfigError) as err:
        AIDPConnectionConfig.from_fields(
            host="http://127.0.0.1:1", extra={"ai_data_platform_id": OCID, setting.name: "bogus"}
        )
    assert err.value.field == setting.name
    assert all(c in str(err.value) for c in setting.choices)


# --- names no release read are refused ---------------------------------------------------------


def _refused(extra: dict[str, Any]) -> AIDPConfigError:
    with pytest.raises(AIDPConfigError) as err:
        AIDPConnectionConfig.from_fields(host="http://127.0.0.1:1", extra=extra)
    return err.value


def test_pass_phrase_is_refused_naming_passphrase_without_echoing_the_value() -> None:
    secret = "Old-Name-Passphrase-Only-Here-91"
    assert secret in _redact(secret)  # not known to the masker yet
    err = _refused({**INLINE, "key_file": "/keys/k.pem", "pass_phrase": secret})
    assert str(err) == "Connection extra 'pass_phrase' is not read: rename it to 'passphrase'."
    assert err.field == "pass_phrase"
    assert secret not in str(err) and secret not in repr(err.args)
    assert secret not in _redact(f"x {secret} y")  # registered with the masker before the refusal


@pytest.mark.parametrize(
    ("key", "value", "fix"),
    [
        ("private_key_file", "/keys/k.pem", "rename it to 'key_file'"),
        (f"{REMOVED_PREFIX}region", "eu-frankfurt-1", "rename it to 'region'"),
        (f"{REMOVED_PREFIX}passphrase", OLD_NAME_SECRET, "rename it to 'passphrase'"),
        (f"{REMOVED_PREFIX}pass_phrase", OLD_NAME_SECRET, "rename it to 'passphrase'"),
        (f"{REMOVED_PREFIX}bogus", "x", "remove it: it is not a setting of this connection"),
    ],
)
def test_every_removed_spelling_is_refused_with_the_name_to_use(key: str, value: str, fix: str) -> None:
    err = _refused({"ai_data_platform_id": OCID, key: value})  # refused before any other check
    assert err.field == key and f"Connection extra '{key}' is not read: {fix}" in str(err)
    if key.startswith(REMOVED_PREFIX):
        assert "plain names" in str(err)
    assert OLD_NAME_SECRET not in str(err)


def test_old_and_new_name_together_is_refused_too() -> None:
    """The stale copy must go: Airflow's API would show an old secret name in clear."""
    err = _refused({**INLINE, "key_file": "/new.pem", "private_key_file": "/old.pem"})
    assert str(err) == "Connection extra 'private_key_file' is not read: remove it, 'key_file' is set."


def test_an_empty_removed_name_reads_nothing_and_is_let_be() -> None:
    extra = {"ai_data_platform_id": OCID, "pass_phrase": None, f"{REMOVED_PREFIX}region": ""}
    assert AIDPConnectionConfig.from_fields(host="http://127.0.0.1:1", extra=extra).passphrase is None


def test_removed_names_are_the_documented_ones() -> None:
    assert REMOVED_NAMES == {"pass_phrase": "passphrase", "private_key_file": "key_file"}
    assert set(REMOVED_NAMES.values()) <= set(BY_NAME)


# --- secrets hidden by name in Airflow's API and UI ----------------------------------------------


def _redact(text: str) -> str:
    from airflow_provider_aidp.compat import secrets_masker_module

    return str(secrets_masker_module().redact(text))


def _api_masker_module() -> Any:
    """The secrets-masker module Airflow's REST API redacts connections with (it moved in 3.1)."""
    from airflow.api_fastapi.core_api.datamodels import connections

    return sys.modules[connections.redact.__module__]


def test_every_secret_name_is_one_airflow_hides_and_paths_are_not() -> None:
    module = _api_masker_module()
    for s in SETTINGS:
        hidden = module.should_hide_value_for_key(s.name)
        assert hidden is s.secret, f"{s.name}: secret={s.secret} but Airflow hides it: {hidden}"
        assert any(word in s.name for word in module.DEFAULT_SENSITIVE_FIELDS) is s.secret
    assert not module.should_hide_value_for_key("key_file")  # users see which path is set


def _api_response(extra: dict[str, Any]) -> dict[str, Any]:
    from airflow.api_fastapi.core_api.datamodels.connections import ConnectionResponse
    from airflow.models.connection import Connection

    conn = Connection(conn_id="aidp_check", conn_type="aidp", host="http://127.0.0.1:1", extra=extra)
    return json.loads(ConnectionResponse.model_validate(conn).model_dump_json(by_alias=True))


def test_api_response_model_hides_every_secret() -> None:
    """Airflow's own ``GET /api/v2/connections/{id}`` model, for a connection holding every secret."""
    extra = {"ai_data_platform_id": OCID, "key_file": "/keys/k.pem", **SECRET_VALUES}
    body = _api_response(extra)
    shown = json.loads(body["extra"])
    for name in SECRET_FIELDS:
        assert shown[name] == "***", name
    assert shown["key_file"] == "/keys/k.pem"
    text = json.dumps(body)
    for value in SECRET_VALUES.values():
        assert value not in text
        assert json.dumps(value)[1:-1] not in text  # nor its JSON-escaped form (PEM newlines)
        for line in value.splitlines():
            if len(line) > 8:
                assert line not in text


def test_airflow_shows_a_pass_phrase_in_clear_which_is_why_it_is_refused() -> None:
    """Airflow hides extras only by names it knows: reading ``pass_phrase`` would invite a secret
    into a field the REST API shows. The provider refuses it instead (tests above)."""
    module = _api_masker_module()
    assert module.should_hide_value_for_key("passphrase")
    assert not module.should_hide_value_for_key("pass_phrase")
    secret = "Shown-In-Clear-Pass-Phrase-55"  # a value no test registers with the masker
    shown = json.loads(_api_response({"ai_data_platform_id": OCID, "pass_phrase": secret})["extra"])
    assert shown["pass_phrase"] == secret
    assert REMOVED_NAMES["pass_phrase"] == "passphrase" and "passphrase" in SECRET_FIELDS


# --- the form for Airflow 3.0/3.1: the hook's widgets, from the same table ----------------------


def _api_format(pm: Any, name: str, field: dict[str, Any]) -> dict[str, Any]:
    """A conn-field as the UI API serves it: Airflow's own converter (3.2+), else the same keys."""
    if hasattr(pm, "_to_api_format"):
        return dict(pm._to_api_format(name, field))
    kept = {k: v for k, v in field["schema"].items() if k in ("enum", "format")}
    schema = {"title": field["label"], **kept}
    return {"description": field.get("description"), "schema": schema}


def test_widget_path_matches_conn_fields() -> None:
    """Airflow 3.0/3.1 build the form from ``get_connection_form_widgets``; the API server mocks
    WTForms when Flask AppBuilder is absent. Run the hook through that same mocked path."""
    from unittest import mock

    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService as H
    from airflow.providers_manager import ProvidersManager

    mods = ["wtforms", "wtforms.validators", "flask_babel", "flask_appbuilder"]
    mods.append("flask_appbuilder.fieldwidgets")
    with (
        mock.patch.dict(sys.modules, {m: mock.MagicMock() for m in mods}),
        mock.patch("wtforms.StringField", H.MockStringField),
        mock.patch("wtforms.IntegerField", H.MockIntegerField),
        mock.patch("wtforms.PasswordField", H.MockPasswordField),
        mock.patch("flask_babel.lazy_gettext", lambda text: text),
        mock.patch("flask_appbuilder.fieldwidgets.BS3TextFieldWidget", H.MockAnyWidget),
        mock.patch("flask_appbuilder.fieldwidgets.BS3PasswordFieldWidget", H.MockAnyWidget),
        mock.patch("wtforms.validators.Optional", H.MockOptional),
        mock.patch("wtforms.validators.any_of", H.MockEnum),
    ):
        widgets = AIDPHook.get_connection_form_widgets()
    pm = ProvidersManager.__new__(ProvidersManager)
    pm._connection_form_widgets = {}
    add = getattr(pm, "_add_widgets_from_hook", None) or pm._add_widgets  # renamed in 3.2
    add("airflow-provider-aidp", AIDPHook, widgets)
    from_hook = H._convert_extra_fields(pm._connection_form_widgets)["aidp"]
    from_yaml = {name: _api_format(pm, name, f) for name, f in conn_fields().items()}
    assert list(from_hook) == list(from_yaml)
    for name, field in from_hook.items():
        want = from_yaml[name]
        assert field["schema"]["title"] == want["schema"]["title"], name
        assert field["description"] == want["description"], name
        if not AIRFLOW_VERSION.startswith("3.0."):  # 3.0's widget converter drops choices (free text)
            assert field["schema"].get("enum") == want["schema"].get("enum"), name
        assert field["schema"].get("format") == want["schema"].get("format"), name
        assert None not in (field["schema"].get("enum") or [])
    assert pm._connection_form_widgets["extra__aidp__passphrase"].is_sensitive is False  # mock widget
    behaviour = AIDPHook.get_ui_field_behaviour()
    (conn_type,) = get_provider_info()["connection-types"]
    assert behaviour["hidden_fields"] == conn_type["ui-field-behaviour"]["hidden-fields"]
    assert behaviour["relabeling"] == conn_type["ui-field-behaviour"]["relabeling"]


@pytest.mark.skipif(
    not hasattr(__import__("airflow.providers_manager").providers_manager.ProvidersManager, "_to_api_format"),
    reason="Airflow < 3.2 reads no conn-fields: the hook's widgets are the form there (tested above)",
)
def test_airflow_33_ignores_the_hook_methods_when_conn_fields_exist() -> None:
    """3.2+ reads conn-fields and skips the (deprecated there) hook methods: no warning, no WTForms."""
    code = (
        "import sys, warnings\n"
        "from airflow.providers_manager import ProvidersManager\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    pm = ProvidersManager()\n"
        "    info = pm.hooks['aidp']\n"
        "    w = pm.connection_form_widgets\n"
        "assert not [c for c in caught if 'get_connection_form_widgets' in str(c.message)], caught\n"
        "assert 'extra__aidp__passphrase' in w, sorted(w)[:5]\n"
        "assert 'wtforms' not in sys.modules and 'flask_appbuilder' not in sys.modules\n"
        "print('OK', info.connection_type)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "OK aidp" in out.stdout, out.stderr[-2000:]


# --- endpoints for every realm ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("region", "endpoint"),
    [
        ("us-ashburn-1", "https://aidp.us-ashburn-1.oci.oraclecloud.com"),
        ("iad", "https://aidp.us-ashburn-1.oci.oraclecloud.com"),
        ("FRA", "https://aidp.eu-frankfurt-1.oci.oraclecloud.com"),
        ("us-langley-1", "https://aidp.us-langley-1.oci.oraclegovcloud.com"),  # oc2, US government
        ("uk-gov-london-1", "https://aidp.uk-gov-london-1.oci.oraclegovcloud.uk"),  # oc4
        ("ltn", "https://aidp.uk-gov-london-1.oci.oraclegovcloud.uk"),
        ("eu-frankfurt-2", "https://aidp.eu-frankfurt-2.oci.oraclecloud.eu"),  # oc19, EU sovereign
        ("ap-chiyoda-1", "https://aidp.ap-chiyoda-1.oci.oraclecloud8.com"),  # oc8
    ],
)
def test_default_endpoint_follows_the_realm(region: str, endpoint: str) -> None:
    cfg = AIDPConnectionConfig.from_fields(extra={"region": region, "ai_data_platform_id": OCID})
    assert cfg.endpoint == endpoint


def test_realms_come_from_the_oci_tables() -> None:
    from oci import regions_definitions as tables

    realms = {tables.REGION_REALMS[r] for r in ("us-ashburn-1", "us-langley-1", "uk-gov-london-1")}
    assert len(realms) == 3
    for short, name in list(tables.REGIONS_SHORT_NAMES.items())[::7]:
        info = resolve_region(short)
        assert info.region == name and info.domain == tables.REALMS[tables.REGION_REALMS[name]]


def test_unknown_regions(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_region("xx-newplace-1").domain == "oraclecloud.com"  # as the OCI SDK assumes
    monkeypatch.setenv("OCI_DEFAULT_REALM", "example-cloud.test")
    assert resolve_region("xx-newplace-1").endpoint == "https://aidp.xx-newplace-1.oci.example-cloud.test"
    with pytest.raises(AIDPConfigError, match="not a known region or short code") as err:
        resolve_region("zzq")
    assert err.value.field == "region"
    with pytest.raises(AIDPConfigError, match="must look like"):
        resolve_region("us ashburn")


def test_region_lookup_does_not_import_the_oci_package() -> None:
    code = (
        "import sys\nfrom airflow_provider_aidp.hooks.realms import resolve_region\n"
        "assert resolve_region('fra').domain == 'oraclecloud.com'\n"
        "print('oci' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_diagnosis_stops_at_the_first_failure(tmp_path: Path) -> None:
    from airflow.models.connection import Connection

    from airflow_provider_aidp.hooks.diagnosis import diagnose, summary

    missing = str(tmp_path / "missing.pem")
    extra = {**INLINE, "workspace_key": "ws", "key_file": missing}
    conn = Connection(conn_id="x", conn_type="aidp", host="http://127.0.0.1:1", extra=extra)
    checks = diagnose(conn)
    assert [(c.name, c.ok) for c in checks] == [("settings", True), ("credentials", False)]
    assert checks[1].line().startswith("✘ credentials: Cannot read the private key file")
    assert summary(checks) == (False, checks[1].message)


def test_diagnosis_names_a_removed_name_and_its_fix(tmp_path: Path) -> None:
    from airflow.models.connection import Connection

    from airflow_provider_aidp.hooks.diagnosis import diagnose

    extra = {**INLINE, "workspace_key": "ws", "private_key_file": str(tmp_path / "k.pem")}
    conn = Connection(conn_id="x", conn_type="aidp", host="http://127.0.0.1:1", extra=extra)
    checks = diagnose(conn)
    assert [(c.name, c.ok) for c in checks] == [("settings", False)]
    assert checks[0].message == "Connection extra 'private_key_file' is not read: rename it to 'key_file'."
