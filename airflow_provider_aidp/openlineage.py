"""OpenLineage for AIDP job runs (optional extra ``airflow-provider-aidp[openlineage]``).

The operators' ``get_openlineage_facets_on_complete`` / ``_on_failure`` import this module only
when the OpenLineage provider's listener calls them, so DAG files never pay for it.

Following the Databricks provider's convention for work an Airflow task runs elsewhere:

* the Airflow task's own OpenLineage run gets an ``externalQuery`` facet naming the AIDP run
  (``externalQueryId`` = run key, ``source`` = the AIDP namespace);
* a START / COMPLETE (or FAIL) event pair is emitted for the AIDP job run itself: namespace
  ``aidp://{region}/{ai_data_platform_id}``, job ``{workspace}/{job name}``, run id derived from
  the run key, with a ``parent`` facet pointing at the Airflow task's run and, on failure, an
  ``errorMessage`` facet listing the failed AIDP tasks; its job carries a ``jobType`` facet
  (``integration: AIDP``).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_aidp.hooks.aidp import AIDPHook

log = logging.getLogger(__name__)

INTEGRATION = "AIDP"


def namespace(region: str | None, ai_data_platform_id: str) -> str:
    """``aidp://{region}/{instance OCID}``: one namespace per AIDP instance."""
    return f"aidp://{region or 'unknown-region'}/{ai_data_platform_id}"


def job_name(workspace_key: str | None, name: str | None, job_key: str | None) -> str:
    return f"{workspace_key or 'default'}/{name or job_key or 'unknown-job'}"


def run_id(run_key: str) -> str:
    """OpenLineage wants a UUID; AIDP run keys are opaque, so a non-UUID key maps to a stable uuid5."""
    try:
        return str(uuid.UUID(run_key))
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"aidp-run:{run_key}"))


def failed_tasks_message(summary: dict[str, Any] | None, status: str | None) -> str:
    tasks = [t for t in (summary or {}).get("tasks", []) if t.get("status") not in ("SUCCESS", None)]
    if not tasks:
        return f"AIDP job run ended {status or 'unsuccessfully'}"
    lines = [f"{t['task_key']}: {t['status']} {t.get('state_message') or ''}".rstrip() for t in tasks]
    return f"AIDP job run ended {status}; failed tasks:\n" + "\n".join(lines)


def _ms_iso(ms: Any, default: dt.datetime) -> str:
    moment = dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc) if isinstance(ms, int) else default
    return moment.isoformat()


def _parent_facet(task_instance: Any) -> Any:
    """The Airflow task's OpenLineage run, as the Databricks provider links its queries."""
    from airflow.providers.openlineage.plugins import macros
    from openlineage.client.facet_v2 import parent_run

    root_namespace = getattr(macros, "lineage_root_job_namespace", lambda _ti: macros.lineage_job_namespace())
    return parent_run.ParentRunFacet(
        run=parent_run.Run(runId=macros.lineage_run_id(task_instance)),
        job=parent_run.Job(
            namespace=macros.lineage_job_namespace(), name=macros.lineage_job_name(task_instance)
        ),
        root=parent_run.Root(
            run=parent_run.RootRun(runId=macros.lineage_root_run_id(task_instance)),
            job=parent_run.RootJob(
                namespace=root_namespace(task_instance), name=macros.lineage_root_job_name(task_instance)
            ),
        ),
    )


def operator_lineage(operator: Any, task_instance: Any, *, failed: bool) -> Any:
    """Facets for the Airflow task's run, after emitting the AIDP run's own event pair."""
    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.facet_v2 import external_query_run, job_type_job

    # Read from the operator, not XCom: the listener runs this in a forked process, where a
    # round trip to the task supervisor is not safe.
    run_key = operator._lineage.get("run_key")
    if not run_key:
        return OperatorLineage()  # failed before a run existed: nothing to link
    hook: AIDPHook = operator.hook
    config = hook.get_config()
    ns = namespace(config.region, config.ai_data_platform_id)
    job_type = job_type_job.JobTypeJobFacet(jobType="JOB", integration=INTEGRATION, processingType="BATCH")
    summary = operator._lineage.get("summary")
    try:
        emit_run_events(hook, task_instance, str(run_key), ns, summary, failed=failed, job_type=job_type)
    except Exception as exc:  # lineage must never fail the task
        log.warning("OpenLineage: could not emit the events of AIDP job run %s: %s", run_key, exc)
    return OperatorLineage(
        run_facets={
            "externalQuery": external_query_run.ExternalQueryRunFacet(externalQueryId=str(run_key), source=ns)
        },
    )


def emit_run_events(
    hook: AIDPHook,
    task_instance: Any,
    run_key: str,
    ns: str,
    summary: dict[str, Any] | None,
    *,
    failed: bool,
    job_type: Any,
) -> None:
    """A START and a COMPLETE/FAIL event for the AIDP job run, children of the Airflow task's run."""
    from airflow.providers.openlineage.plugins.listener import get_openlineage_listener
    from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
    from openlineage.client.facet_v2 import error_message_run, external_query_run

    run = hook.get_job_run(run_key)
    now = dt.datetime.now(dt.timezone.utc)
    facets: dict[str, Any] = {
        "parent": _parent_facet(task_instance),
        "externalQuery": external_query_run.ExternalQueryRunFacet(externalQueryId=run_key, source=ns),
    }
    if failed or run.status != "SUCCESS":
        facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=failed_tasks_message(summary, run.status), programmingLanguage="AIDP"
        )
    workspace = hook.get_workspace()
    ol_run = Run(runId=run_id(run_key), facets=facets)
    ol_job = Job(
        namespace=ns, name=job_name(workspace, run.job_name, run.job_key), facets={"jobType": job_type}
    )
    end_state = RunState.COMPLETE if run.status == "SUCCESS" and not failed else RunState.FAIL
    adapter = get_openlineage_listener().adapter
    for state, at in ((RunState.START, run.start_time), (end_state, run.end_time)):
        adapter.emit(RunEvent(eventType=state, eventTime=_ms_iso(at, now), run=ol_run, job=ol_job))
