"""The ONE table of ``aidp`` connection settings.

Every extra the connection understands is a :class:`Setting` row here: its type, default, whether
it is a secret, the form's label and help (with an example, because Airflow 3's form does not
render placeholders on extra fields), its choices, which auth types use it and its deprecated
aliases. Generated from this table, never written by hand:

* the form (``conn-fields`` in ``get_provider_info``, and the hook's
  ``get_connection_form_widgets`` for Airflow < 3.2): :mod:`airflow_provider_aidp.hooks.form`;
* reading and validating an extra: :mod:`airflow_provider_aidp.hooks.connection`;
* the table in ``docs/connection.md``: ``scripts/connection_docs.py`` (a test checks it is current).

Secret names matter: Airflow's REST API and UI hide an extra only when its *name* contains a
sensitive word (``private_key``, ``passphrase``, ``token``... see ``DEFAULT_SENSITIVE_FIELDS`` in
Airflow's secrets masker). Every secret here carries such a name, and a test checks it.
Pure data: this module imports nothing but the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass

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

_KEY_AUTH = ("api_key",)
_PROFILE_AUTH = ("api_key", "security_token")


@dataclass(frozen=True)
class Setting:
    """One connection extra. ``kind`` is ``string``, ``integer`` or ``number``."""

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
    #: Older names still read (deprecated; a warning names the new one).
    aliases: tuple[str, ...] = ()
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


SETTINGS: tuple[Setting, ...] = (
    # --- where: in the order a user fills them ------------------------------------------------
    Setting(
        "region",
        "Region",
        "OCI region name or short code (iad, fra...); sets the default endpoint. Required unless Endpoint "
        "override is set.",
        example="us-ashburn-1",
    ),
    Setting(
        "ai_data_platform_id",
        "AI Data Platform OCID",
        "OCID of the AI Data Platform instance, from the OCI console.",
        example="ocid1.aidataplatform.oc1.iad.aaaa...",
        required=True,
    ),
    Setting(
        "workspace_key",
        "Workspace key",
        "Default workspace; an operator's workspace_key overrides it.",
        example="my_workspace",
    ),
    Setting(
        "api_version",
        "API version",
        "20260430 = GA (/aiDataPlatforms/); 20240831 = limited availability (/dataLakes/). "
        "Some instances answer only one; Test says which.",
        default=DEFAULT_API_VERSION,
        choices=tuple(SURFACES),
    ),
    # --- how to sign ---------------------------------------------------------------------------
    Setting(
        "auth_type",
        "Auth type",
        "How requests are signed. api_key: OCI config file or the inline key below; security_token: "
        "a session from 'oci session authenticate'; the principals need no key material.",
        default="api_key",
        choices=AUTH_TYPES,
    ),
    Setting(
        "config_file",
        "OCI config file",
        "api_key / security_token: path of the OCI config file on the workers.",
        example="/opt/airflow/.oci/config",
        default="~/.oci/config",
        auth_types=_PROFILE_AUTH,
    ),
    Setting(
        "profile",
        "OCI config profile",
        "api_key / security_token: profile in that file.",
        default="DEFAULT",
        auth_types=_PROFILE_AUTH,
    ),
    Setting(
        "tenancy",
        "Inline key: tenancy OCID",
        "api_key without a config file: tenancy OCID.",
        example="ocid1.tenancy.oc1..aaaa...",
        auth_types=_KEY_AUTH,
    ),
    Setting(
        "user",
        "Inline key: user OCID",
        "api_key without a config file: user OCID.",
        example="ocid1.user.oc1..aaaa...",
        auth_types=_KEY_AUTH,
    ),
    Setting(
        "fingerprint",
        "Inline key: fingerprint",
        "Fingerprint of the uploaded public key.",
        example="12:34:56:78:90:ab:cd:ef:12:34:56:78:90:ab:cd:ef",
        auth_types=_KEY_AUTH,
    ),
    Setting(
        "private_key",
        "Inline key: private key (PEM)",
        "PEM text of the private key (literal \\n sequences are accepted). Or use Key file.",
        example="the whole PEM, from its BEGIN line to its END line",
        secret=True,
        auth_types=_KEY_AUTH,
    ),
    Setting(
        "key_file",
        "Inline key: key file",
        "Path of the PEM private key on the workers, instead of the PEM text.",
        example="/opt/airflow/keys/oci_api_key.pem",
        auth_types=_KEY_AUTH,
        aliases=("private_key_file",),
    ),
    Setting(
        "passphrase",
        "Inline key: passphrase",
        "Passphrase of an encrypted private key.",
        secret=True,
        auth_types=_KEY_AUTH,
        aliases=("pass_phrase",),
    ),
    # --- transport -----------------------------------------------------------------------------
    Setting(
        "ca_bundle",
        "CA bundle",
        "Path of a PEM CA bundle (or hashed directory) to verify the endpoint's TLS certificate "
        "(e.g. an emulator's --tls one), on every worker and triggerer. Empty: REQUESTS_CA_BUNDLE "
        "if set, else the system's trust store.",
        example="/opt/airflow/certs/aidp-ca.pem",
    ),
    Setting(
        "timeout",
        "Request timeout (s)",
        "Timeout of one HTTP request, in seconds.",
        kind="number",
        default=60.0,
        allow_zero=False,
    ),
    Setting(
        "max_retries",
        "Max retries",
        "Retries of one failed request (429, 5xx, connection errors); 0 = no retry.",
        kind="integer",
        default=5,
    ),
    Setting(
        "retry_wait_max",
        "Max retry wait (s)",
        "Cap of one backoff wait, in seconds.",
        kind="number",
        default=60.0,
        allow_zero=False,
    ),
    Setting(
        "max_requests_per_second",
        "Max requests per second",
        "Ceiling of async requests per second on this connection in one triggerer; 0 = no pacing.",
        kind="number",
        default=20.0,
    ),
    Setting(
        "status_sweep",
        "Status sweep",
        "Triggers of this connection in one triggerer share one listing of their jobs' active runs "
        "per poll cycle instead of one GET per run (on), or each polls its own run (off).",
        default="on",
        choices=("on", "off"),
    ),
    # --- presentation --------------------------------------------------------------------------
    Setting(
        "console_url_template",
        "Console URL template",
        "Run link (extra link, logs, XCom). Placeholders: {region} {ai_data_platform_id} "
        "{workspace_key} {job_key} {run_key} {endpoint}.",
        example="https://console.example.com/runs/{run_key}",
        default=DEFAULT_CONSOLE_URL_TEMPLATE,
    ),
    Setting(
        "depends_on_format",
        "dependsOn format",
        "How task dependencies are sent: objects (GA/SDK form) or keys (LA form). "
        "Empty: follows the API version.",
        choices=("objects", "keys"),
    ),
)

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
#: Deprecated name -> current name.
ALIASES: dict[str, str] = {alias: s.name for s in SETTINGS for alias in s.aliases}
#: Every extra name the connection understands (current names).
EXTRA_FIELDS: tuple[str, ...] = tuple(BY_NAME)
#: Names whose values are secrets (current names and aliases).
SECRET_FIELDS: tuple[str, ...] = tuple(n for s in SETTINGS if s.secret for n in (s.name, *s.aliases))
#: Settings only the inline API key uses.
INLINE_KEY_FIELDS: tuple[str, ...] = tuple(s.name for s in SETTINGS if s.auth_types == _KEY_AUTH)
