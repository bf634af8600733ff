"""Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``).

Airflow 3 renders the connection form from the declarative ``conn-fields`` and
``ui-field-behaviour`` here, without importing the hook. A field whose schema has
``"format": "password"`` is treated as sensitive (masked in the UI and API).
"""

from __future__ import annotations

from typing import Any

_INTEGRATION = "Oracle AI Data Platform"


def _text(
    label: str,
    description: str,
    *,
    default: str | None = None,
    secret: bool = False,
    enum: list[str] | None = None,
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": ["string", "null"]}
    if default is not None:
        schema["default"] = default
    if secret:
        schema["format"] = "password"
    if enum:
        schema["enum"] = [*enum, None]
    return {"label": label, "description": description, "schema": schema}


def _number(label: str, description: str, *, integer: bool = False) -> dict[str, Any]:
    kind = "integer" if integer else "number"
    return {"label": label, "description": description, "schema": {"type": [kind, "null"], "minimum": 0}}


def _conn_fields() -> dict[str, Any]:
    return {
        "region": _text(
            "Region", "OCI region, e.g. us-ashburn-1 (required unless the endpoint is overridden)."
        ),
        "ai_data_platform_id": _text("AI Data Platform OCID", "OCID of the AIDP instance (ocid1....)."),
        "workspace_key": _text("Workspace key", "Default workspace; operators may override it."),
        "api_version": _text(
            "API version",
            "20260430 (GA, /aiDataPlatforms/) or 20240831 (LA, /dataLakes/).",
            default="20260430",
            enum=["20260430", "20240831"],
        ),
        "auth_type": _text(
            "Auth type",
            "How requests are signed.",
            default="api_key",
            enum=[
                "api_key",
                "security_token",
                "instance_principal",
                "resource_principal",
                "workload_identity",
            ],
        ),
        "config_file": _text("OCI config file", "Path of the OCI config file (default ~/.oci/config)."),
        "profile": _text("OCI config profile", "Profile in the OCI config file (default DEFAULT)."),
        "tenancy": _text("Tenancy OCID", "Inline API key: tenancy OCID."),
        "user": _text("User OCID", "Inline API key: user OCID."),
        "fingerprint": _text("Key fingerprint", "Inline API key: fingerprint of the uploaded public key."),
        "private_key": _text(
            "Private key (PEM)", "Inline API key: PEM content of the private key.", secret=True
        ),
        "private_key_file": _text("Private key file", "Inline API key: path of the PEM private key."),
        "pass_phrase": _text("Key pass phrase", "Pass phrase of an encrypted private key.", secret=True),
        "max_retries": _number("Max retries", "Retries of a failed request (default 5).", integer=True),
        "retry_wait_max": _number("Max retry wait (s)", "Cap of one backoff wait in seconds (default 60)."),
        "timeout": _number("Request timeout (s)", "Timeout of one HTTP request in seconds (default 60)."),
        "console_url_template": _text(
            "Console URL template",
            "Run link; placeholders {region} {ai_data_platform_id} {workspace_key} {job_key} {run_key} "
            "{endpoint}.",
        ),
        "depends_on_format": _text(
            "dependsOn format",
            "objects (GA) or keys (LA); default follows the API version.",
            enum=["objects", "keys"],
        ),
    }


def get_provider_info() -> dict[str, Any]:
    """Return the provider metadata dictionary (Airflow 3 provider.yaml shape)."""
    from airflow_provider_aidp import __version__

    return {
        "package-name": "airflow-provider-aidp",
        "name": _INTEGRATION,
        "description": "Run Oracle AI Data Platform (AIDP) Workflow Jobs from Apache Airflow.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": _INTEGRATION,
                "external-doc-url": "https://docs.oracle.com/en/cloud/paas/ai-data-platform/",
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": _INTEGRATION, "python-modules": ["airflow_provider_aidp.hooks.aidp"]}],
        "operators": [
            {"integration-name": _INTEGRATION, "python-modules": ["airflow_provider_aidp.operators.aidp"]}
        ],
        "sensors": [
            {"integration-name": _INTEGRATION, "python-modules": ["airflow_provider_aidp.sensors.aidp"]}
        ],
        "triggers": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": [
                    "airflow_provider_aidp.triggers.aidp",
                    "airflow_provider_aidp.triggers.run_events",
                ],
            }
        ],
        "extra-links": ["airflow_provider_aidp.links.aidp.AIDPJobRunLink"],
        "connection-types": [
            {
                "hook-class-name": "airflow_provider_aidp.hooks.aidp.AIDPHook",
                "hook-name": "Oracle AI Data Platform",
                "connection-type": "aidp",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "login", "password"],
                    "relabeling": {"host": "Endpoint override (optional)"},
                    "placeholders": {
                        "host": "https://aidp.us-ashburn-1.oci.oraclecloud.com",
                        "region": "us-ashburn-1",
                        "ai_data_platform_id": "ocid1.aidataplatform.oc1.iad.xxxx",
                        "workspace_key": "my-workspace-key",
                        "profile": "DEFAULT",
                        "config_file": "~/.oci/config",
                    },
                },
                "conn-fields": _conn_fields(),
            }
        ],
    }
