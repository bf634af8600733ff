"""``python -m airflow_provider_aidp.doctor --conn-id aidp_default``: diagnose a connection.

Runs the same checks as the connection's Test (``hooks/diagnosis.py``) outside the UI and prints
each one with ✔ or ✘: settings, credentials, DNS, the API call (and, on a 404, which of instance,
workspace or API version is wrong). Exit status 0 when every check passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys

from airflow_provider_aidp.hooks.connection import DEFAULT_CONN_ID


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m airflow_provider_aidp.doctor", description=__doc__)
    parser.add_argument("--conn-id", default=DEFAULT_CONN_ID, help="Airflow connection id (type aidp)")
    parser.add_argument("--workspace-key", default=None, help="check this workspace instead of the default")
    args = parser.parse_args(argv)

    from airflow_provider_aidp.hooks.aidp import AIDPHook
    from airflow_provider_aidp.hooks.diagnosis import diagnose

    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="replace")
    try:
        conn = AIDPHook.get_connection(args.conn_id)
    except Exception as exc:
        print(f"✘ connection: cannot read {args.conn_id!r}: {type(exc).__name__}: {exc}")
        return 1
    print(f"Connection {args.conn_id!r}:")
    checks = diagnose(conn, args.workspace_key)
    for check in checks:
        print(check.line())
    return 0 if all(c.ok for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
