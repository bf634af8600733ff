"""Settings shared by the AIDP example DAGs (a helper module, not a DAG).

Only the Airflow connection id (``aidp_default``) says *where* AIDP is; everything here is about
*what* the example jobs run on, with environment-variable overrides so the same files run against
the bundled emulator (the demo and the tests) and against a real tenancy:

* ``AIDP_EXAMPLE_CLUSTER_KEY`` / ``AIDP_EXAMPLE_CLUSTER_NAME``: an existing AIDP cluster (use its
  real name, not its UUID).
* ``AIDP_EXAMPLE_WORKSPACE_PATH``: the folder the example jobs are created in (under ``/Workspace/``).
* ``AIDP_EXAMPLE_POLL_SECONDS``: how often to poll a run (30 s suits a real tenancy; the emulator
  demo uses 1 s).
* ``AIDP_EXAMPLE_RETRY_DELAY_SECONDS``: the Airflow retry delay of the repair example.
"""

from __future__ import annotations

import os
from datetime import timedelta

CLUSTER_KEY = os.environ.get("AIDP_EXAMPLE_CLUSTER_KEY", "etl_cluster")
CLUSTER_NAME = os.environ.get("AIDP_EXAMPLE_CLUSTER_NAME", "etl_cluster")
WORKSPACE_PATH = os.environ.get("AIDP_EXAMPLE_WORKSPACE_PATH", "/Workspace/airflow_examples")
POLL_SECONDS = float(os.environ.get("AIDP_EXAMPLE_POLL_SECONDS", "30"))
RETRY_DELAY = timedelta(seconds=float(os.environ.get("AIDP_EXAMPLE_RETRY_DELAY_SECONDS", "300")))

#: the run date passed to AIDP: the logical date when the run has one (scheduled runs,
#: ``airflow dags test``), else the moment the run was created (a manual trigger in Airflow 3).
RUN_DATE = "{{ (dag_run.logical_date or dag_run.run_after) | ds }}"


#: the ``cluster`` reference every notebook/python task carries (key + real name), also declared
#: once per job under ``jobClusters``.
CLUSTER: dict[str, str] = {"clusterKey": CLUSTER_KEY, "clusterName": CLUSTER_NAME}
