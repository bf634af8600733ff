"""``[core] hostname_callable`` for deployments whose components share one machine.

Airflow records a host name per triggerer and scheduler job and per task try (the Celery worker
that ran it). In production every triggerer and worker has a machine of its own; here they share
one, so each component is started with ``AIDP_E2E_HOSTNAME`` set to its name (``triggerer-1``,
``worker-2``, ...) and this callable hands that to Airflow. The REST API then tells which
triggerer holds a trigger and which worker ran a try, as it would across machines.
"""

from __future__ import annotations

import os
import socket


def from_env() -> str:
    """``AIDP_E2E_HOSTNAME``, else the machine's name (a CLI command run by the tests)."""
    return os.environ.get("AIDP_E2E_HOSTNAME") or socket.getfqdn()
