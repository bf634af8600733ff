"""Make the AIDP side match a job spec: create (two steps), update (one PUT with if-match), or leave alone.

An operation of the service layer (``hooks/service.py``), so ``AIDPHook.upsert_job`` and
``a_upsert_job`` run the same steps; the job models load only when an upsert runs.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ValidationError

from airflow_provider_aidp.models.jobs import JobSpec, canonical, load_spec, spec_from_server

if TYPE_CHECKING:
    from airflow_provider_aidp.hooks.service import Op, Service
    from airflow_provider_aidp.models.runs import Job

Action = Literal["created", "updated", "unchanged"]


@dataclass(frozen=True)
class UpsertResult:
    """What :func:`upsert` did (or, with ``dry_run``, would do)."""

    job_key: str | None
    action: Action
    diff: str
    dry_run: bool = False


def create_retry_token(spec: JobSpec) -> str:
    """Deterministic ``opc-retry-token`` for the create POST: a retried create returns the first job.

    Derived from the whole name-only body (name, path, maxConcurrentRuns): the service answers a
    reused token with a *different* body with 409, so the token must change when the body does.
    """
    head = json.dumps(spec.head(), sort_keys=True, separators=(",", ":"))
    return f"airflow-job-{hashlib.sha256(head.encode()).hexdigest()[:40]}"


def spec_diff(current: Mapping[str, Any], desired: Mapping[str, Any], job_key: str) -> str:
    """Unified diff of the two canonical JSON forms ('' when equal)."""
    a = json.dumps(current, indent=2, sort_keys=True).splitlines()
    b = json.dumps(desired, indent=2, sort_keys=True).splitlines()
    return "\n".join(difflib.unified_diff(a, b, f"aidp:{job_key}", "spec", lineterm=""))


def current_canonical(body: Mapping[str, Any]) -> dict[str, Any]:
    """The server's job in canonical form (reading ``fill_defaults``: ``models/jobs.py`` drops what the
    service fills in); an unparseable body compares as its raw self (so: changed)."""
    try:
        return canonical(spec_from_server(body))
    except ValidationError:
        return dict(body)


def upsert(service: Service, spec: JobSpec | Mapping[str, Any], dry_run: bool, log: Any) -> Op[UpsertResult]:
    """Create or update the job named ``spec.name`` in ``spec.path`` so it matches ``spec``.

    Validation happens first: a bad spec raises ``AIDPConfigError`` and sends nothing. A new job is
    made by ``Service.create_defined_job`` (two steps, never a second job); a job that turns out to
    exist after all (another writer's, or one a lagging listing did not show) is compared and updated.
    """
    spec = load_spec(spec)
    existing = yield from service.find_job(spec.name, spec.path, False)  # AIDPDuplicateJobError if > 1
    if existing is not None:
        return (
            yield from _update(service, spec, (yield from service.get_job(existing.key, None)), dry_run, log)
        )
    diff = spec_diff({}, canonical(spec), "(new job)")
    if dry_run:
        log.info("Dry run: job %r does not exist in %r; would create it:\n%s", spec.name, spec.path, diff)
        return UpsertResult(None, "created", diff, dry_run=True)
    body = spec.to_wire(service.config.depends_on_format)  # type: ignore[arg-type]
    log.info("Creating job %r in two steps (name only, then the definition):\n%s", spec.name, _pretty(body))
    job, created = yield from service.create_defined_job(spec.head(), body, create_retry_token(spec))
    if created:
        log.info("Job %r created with key %s", spec.name, job.key)
        return UpsertResult(job.key, "created", diff)
    log.info("Job %r exists after all (%s): comparing it with the spec", spec.name, job.key)
    return (yield from _update(service, spec, job, False, log))


def _update(service: Service, spec: JobSpec, current: Job, dry_run: bool, log: Any) -> Op[UpsertResult]:
    job_key = current.key
    diff = spec_diff(current_canonical(current.body()), canonical(spec), job_key)
    if not diff:
        log.info("Job %r (%s) is unchanged; nothing sent", spec.name, job_key)
        return UpsertResult(job_key, "unchanged", "", dry_run=dry_run)
    if dry_run:
        log.info("Dry run: job %r (%s) would change:\n%s", spec.name, job_key, diff)
        return UpsertResult(job_key, "updated", diff, dry_run=True)
    body = spec.to_wire(service.config.depends_on_format)  # type: ignore[arg-type]
    log.info("Updating job %r (%s):\n%s\nSending:\n%s", spec.name, job_key, diff, _pretty(body))
    yield from service.update_job(job_key, body, current.etag, None)
    return UpsertResult(job_key, "updated", diff)


def _pretty(body: Mapping[str, Any]) -> str:
    return json.dumps(body, indent=2, sort_keys=True)
