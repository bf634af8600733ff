"""Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``).

Airflow >= 3.2 renders the connection form from the declarative ``conn-fields`` and
``ui-field-behaviour`` here, without importing the hook; both are generated from the settings
table (``hooks/settings.py``) by ``hooks/form.py``. A ``"format": "password"`` field is rendered as
a password input; Airflow's API and UI hide a value by the field's *name*, which is why every
secret setting has a name Airflow knows as sensitive.
"""

from __future__ import annotations

from typing import Any

_INTEGRATION = "Oracle AI Data Platform"


def get_provider_info() -> dict[str, Any]:
    """Return the provider metadata dictionary (Airflow 3 provider.yaml shape)."""
    from airflow_provider_aidp import __version__
    from airflow_provider_aidp.hooks.form import conn_fields, provider_field_behaviour

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
            {
                "integration-name": _INTEGRATION,
                "python-modules": [
                    "airflow_provider_aidp.operators.aidp",
                    "airflow_provider_aidp.operators.workflow",
                ],
            }
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
                    "airflow_provider_aidp.triggers.task_run",
                ],
            }
        ],
        "extra-links": ["airflow_provider_aidp.links.aidp.AIDPJobRunLink"],
        "connection-types": [
            {
                "hook-class-name": "airflow_provider_aidp.hooks.aidp.AIDPHook",
                "hook-name": "Oracle AI Data Platform",
                "connection-type": "aidp",
                "ui-field-behaviour": provider_field_behaviour(),
                "conn-fields": conn_fields(),
            }
        ],
    }
