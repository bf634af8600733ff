"""The ONE table of ``aidp`` connection settings: the fields of :class:`ConnectionSettings`.

Every extra the connection understands is declared once, as one field of that frozen dataclass:
the field gives its name, Python type and default; :func:`setting` puts the rest of its row in the
field's metadata: the form's label and help (with an example, because Airflow 3's form does not
render placeholders on extra fields), whether it is a secret, its choices, which auth types use it,
whether it is required, whether 0 is allowed. ``AIDPConnectionConfig``
(:mod:`airflow_provider_aidp.hooks.connection`) subclasses it, so the typed attributes the hooks
read ARE the table. :data:`SETTINGS` (one :class:`Setting` row per field) is derived from it, and
everything else is generated from those rows, never written by hand:

* the form (``conn-fields`` in ``get_provider_info``, and the hook's
  ``get_connection_form_widgets`` for Airflow < 3.2): :mod:`airflow_provider_aidp.hooks.form`;
* reading and validating an extra: :mod:`airflow_provider_aidp.hooks.connection`;
* the table in ``docs/connection.md``: ``scripts/connection_docs.py`` (a test checks it is current).

Secret names matter: Airflow's REST API and UI hide an extra only when its *name* contains a
sensitive word (``private_key``, ``passphrase``, ``token``... see ``DEFAULT_SENSITIVE_FIELDS`` in
Airflow's secrets masker). Every secret here carries such a name, and a test checks it. That is
also why the spellings in :data:`REMOVED_NAMES` are refused rather than read: Airflow would show
a ``pass_phrase`` in clear.

Pure data: this module imports nothing but the standard library (``get_provider_info`` reads it).
"""

from __future__ import annotations

import typing
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

#: api_version -> the path segment of its surface. Version and prefix always move together.
SURFACES: dict[str, str] = {"20260430": "aiDataPlatforms", "20240831": "dataLakes"}
DEFAULT_API_VERSION = "20260430"
#: dependsOn format that each api_version uses by default.
DEPENDS_ON_FORMATS: dict[str, str] = {"20260430": "objects", "20240831": "keys"}
AUTH_TYPES = ("api_key", "security_token", "instance_principal", "resource_principal", "workload_identity")
#: Accepted spellings -> canonical auth type (the OCI CLI says ``oke_workload_identity``).
AUTH_TYPE_ALIASES = {"oke_workload_identity": "workload_identity"}

DEFAULT_CONSOLE_URL_TEMPLATE = (
    "https://cloud.oracle.com/ai-data-platform/{ai_data_platform_id}/workspaces/{workspace_key}"
    "/jobs/{job_key}/runs/{run_key}?region={region}"
)

#: Extra names no release of this provider ever read -> the name to use. A connection holding one
#: is refused with that name (it would otherwise be silently ignored, and Airflow shows a
#: ``pass_phrase`` in clear because it hides extras only by names it knows).
REMOVED_NAMES: dict[str, str] = {"pass_phrase": "passphrase", "private_key_file": "key_file"}
#: ``extra__aidp__<name>``: how Airflow 2's form once stored extras. Airflow 3's form (3.0 to 3.3)
#: stores each under the name the provider declares, so a prefixed key was written by hand.
REMOVED_PREFIX = "extra__aidp__"

_KEY_AUTH = ("api_key",)
_PROFILE_AUTH = ("api_key", "security_token")
_ROW = "aidp_setting"  # the metadata key that marks a dataclass field as a row of the table
#: Python type of a field -> the row's ``kind`` (what the form offers and the parser accepts).
_KINDS: dict[Any, str] = {int: "integer", float: "number"}


@dataclass(frozen=True)
class Setting:
    """One connection extra, as the form, the docs and the parser see it.

    ``kind`` (``string``, ``integer`` or ``number``) follows the field's type; ``default`` is the
    field's default (``None`` when the field has none: required, or derived by the parser).
    """

    name: str
    label: str
    help: str
    example: str | None = None
    kind: str = "string"
    default: str | int | float | None = None
    secret: bool = False
    choices: tuple[str, ...] = ()
    #: Auth types that use it; empty = every auth type.
    auth_types: tuple[str, ...] = ()
    #: The connection is unusable without it.
    required: bool = False
    #: Numbers: whether 0 is a valid value (0 retries, no pacing) or the value must be > 0.
    allow_zero: bool = True

    @property
    def description(self) -> str:
        """Help text as the form shows it: the help, then the example and the default."""
        text = self.help
        if self.example is not None:
            text += f" Example: {self.example}" + ("" if self.example.endswith(".") else ".")
        if self.default is not None:
            text += f" Default: {self.default}."
        return text


def setting(
    default: Any = None,
    *,
    label: str,
    help: str,
    example: str | None = None,
    secret: bool = False,
    choices: tuple[str, ...] = (),
    auth_types: tuple[str, ...] = (),
    required: bool = False,
    allow_zero: bool = True,
) -> Any:
    """A dataclass field that is one row of the table. ``default=MISSING``: the parser always sets
    it (derived from other settings); a required setting has no default either. A secret is kept
    out of the dataclass ``repr``."""
    row = {
        "label": label,
        "help": help,
        "example": example,
        "secret": secret,
        "choices": choices,
        "auth_types": auth_types,
        "required": required,
        "allow_zero": allow_zero,
    }
    no_default = required or default is MISSING
    return field(default=MISSING if no_default else default, repr=not secret, metadata={_ROW: row})


@dataclass(frozen=True, kw_only=True)
class ConnectionSettings:
    """Every extra of an ``aidp`` connection, in the order a user fills the form.

    Built only by ``AIDPConnectionConfig.from_fields``, which parses and checks each value by its
    row; the fields without a default (``ai_data_platform_id``, ``depends_on_format``) are always
    given there.
    """

    # --- where: in the order a user fills them ------------------------------------------------
    region: str | None = setting(
        label="Region",
        help="OCI region name or short code (iad, fra...); sets the default endpoint. Required unless "
        "Endpoint override is set.",
        example="us-ashburn-1",
    )
    ai_data_platform_id: str = setting(
        label="AI Data Platform OCID",
        help="OCID of the AI Data Platform instance, from the OCI console.",
        example="ocid1.aidataplatform.oc1.iad.aaaa...",
        required=True,
    )
    workspace_key: str | None = setting(
        label="Workspace key",
        help="Default workspace; an operator's workspace_key overrides it.",
        example="my_workspace",
    )
    api_version: str = setting(
        DEFAULT_API_VERSION,
        label="API version",
        help="20260430 = GA (/aiDataPlatforms/); 20240831 = limited availability (/dataLakes/). "
        "Some instances answer only one; Test says which.",
        choices=tuple(SURFACES),
    )
    # --- how to sign ---------------------------------------------------------------------------
    auth_type: str = setting(
        "api_key",
        label="Auth type",
        help="How requests are signed. api_key: OCI config file or the inline key below; "
        "security_token: a session from 'oci session authenticate'; the principals need no key "
        "material.",
        choices=AUTH_TYPES,
    )
    config_file: str = setting(
        "~/.oci/config",
        label="OCI config file",
        help="api_key / security_token: path of the OCI config file on the workers.",
        example="/opt/airflow/.oci/config",
        auth_types=_PROFILE_AUTH,
    )
    profile: str = setting(
        "DEFAULT",
        label="OCI config profile",
        help="api_key / security_token: profile in that file.",
        auth_types=_PROFILE_AUTH,
    )
    tenancy: str | None = setting(
        label="Inline key: tenancy OCID",
        help="api_key without a config file: tenancy OCID.",
        example="ocid1.tenancy.oc1..aaaa...",
        auth_types=_KEY_AUTH,
    )
    user: str | None = setting(
        label="Inline key: user OCID",
        help="api_key without a config file: user OCID.",
        example="ocid1.user.oc1..aaaa...",
        auth_types=_KEY_AUTH,
    )
    fingerprint: str | None = setting(
        label="Inline key: fingerprint",
        help="Fingerprint of the uploaded public key.",
        example="12:34:56:78:90:ab:cd:ef:12:34:56:78:90:ab:cd:ef",
        auth_types=_KEY_AUTH,
    )
    private_key: str | None = setting(
        label="Inline key: private key (PEM)",
        help="PEM text of the private key (literal \\n sequences are accepted). Or use Key file.",
        example="the whole PEM, from its BEGIN line to its END line",
        secret=True,
        auth_types=_KEY_AUTH,
    )
    key_file: str | None = setting(
        label="Inline key: key file",
        help="Path of the PEM private key on the workers, instead of the PEM text.",
        example="/opt/airflow/keys/oci_api_key.pem",
        auth_types=_KEY_AUTH,
    )
    passphrase: str | None = setting(
        label="Inline key: passphrase",
        help="Passphrase of an encrypted private key.",
        secret=True,
        auth_types=_KEY_AUTH,
    )
    # --- transport -----------------------------------------------------------------------------
    ca_bundle: str | None = setting(
        label="CA bundle",
        help="Path of a PEM CA bundle (or hashed directory) to verify the endpoint's TLS certificate "
        "(e.g. an emulator's --tls one), on every worker and triggerer. Empty: REQUESTS_CA_BUNDLE "
        "if set, else the system's trust store.",
        example="/opt/airflow/certs/aidp-ca.pem",
    )
    timeout: float = setting(
        60.0,
        label="Request timeout (s)",
        help="Timeout of one HTTP request, in seconds.",
        allow_zero=False,
    )
    max_retries: int = setting(
        5,
        label="Max retries",
        help="Retries of one failed request (429, 5xx, connection errors); 0 = no retry.",
    )
    retry_wait_max: float = setting(
        60.0,
        label="Max retry wait (s)",
        help="Cap of one backoff wait, in seconds.",
        allow_zero=False,
    )
    max_requests_per_second: float = setting(
        20.0,
        label="Max requests per second",
        help="Ceiling of async requests per second on this connection in one triggerer; 0 = no pacing.",
    )
    status_sweep: str = setting(
        "on",
        label="Status sweep",
        help="Triggers of this connection in one triggerer share one listing of their jobs' active "
        "runs per poll cycle instead of one GET per run (on), or each polls its own run (off).",
        choices=("on", "off"),
    )
    consistency_grace: float = setting(
        60.0,
        label="Consistency grace (s)",
        help="How long a job or run this provider has just created may answer 404 or be missing from "
        "listings before that counts as gone (the service is eventually consistent); 0 = no grace.",
    )
    # --- presentation --------------------------------------------------------------------------
    console_url_template: str = setting(
        DEFAULT_CONSOLE_URL_TEMPLATE,
        label="Console URL template",
        help="Run link (extra link, logs, XCom). Placeholders: {region} {ai_data_platform_id} "
        "{workspace_key} {job_key} {run_key} {endpoint}.",
        example="https://console.example.com/runs/{run_key}",
    )
    depends_on_format: str = setting(
        MISSING,  # derived from api_version (DEPENDS_ON_FORMATS) when empty
        label="dependsOn format",
        help="How task dependencies are sent: objects (GA/SDK form) or keys (LA form). "
        "Empty: follows the API version.",
        choices=("objects", "keys"),
    )


def _rows(table: type) -> tuple[Setting, ...]:
    """One :class:`Setting` per field of ``table`` that :func:`setting` declared, in field order."""
    types = typing.get_type_hints(table)
    return tuple(
        Setting(
            name=f.name,
            kind=_KINDS.get(types[f.name], "string"),
            default=None if f.default is MISSING else f.default,
            **f.metadata[_ROW],
        )
        for f in fields(table)
        if _ROW in f.metadata
    )


SETTINGS: tuple[Setting, ...] = _rows(ConnectionSettings)
BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
#: Every extra name the connection understands.
EXTRA_FIELDS: tuple[str, ...] = tuple(BY_NAME)
#: Names whose values are secrets.
SECRET_FIELDS: tuple[str, ...] = tuple(s.name for s in SETTINGS if s.secret)
#: Settings only the inline API key uses.
INLINE_KEY_FIELDS: tuple[str, ...] = tuple(s.name for s in SETTINGS if s.auth_types == _KEY_AUTH)
