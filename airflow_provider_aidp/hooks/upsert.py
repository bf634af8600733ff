"""Make the AIDP side match a job spec: create (two steps), update (one PUT with if-match), or leave alone.

An operation of the service layer (``hooks/service.py``), so ``AIDPHook.upsert_job`` and
``a_upsert_job`` run the same steps; the job models load only when an upsert runs.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ValidationError

from airflow_provider_aidp.exceptions import AIDPConflictError, AIDPNotFoundError
from airflow_provider_aidp.models.jobs import JobSpec, canonical, load_spec, spec_from_server

if TYPE_CHECKING:
    from airflow_provider_aidp.hooks.service import Op, Service

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

    Validation happens first: a bad spec raises ``AIDPConfigError`` and sends nothing. Reading
    ``unique_names``: a create refused with 409 because another writer took the name first is
    resolved to that job (read again while a lagging listing catches up), then updated; a name
    taken where this folder's listing cannot see it fails naming the conflict. Never a second job.
    """
    spec = load_spec(spec)
    existing = yield from service.find_job(spec.name, spec.path, False)  # AIDPDuplicateJobError if > 1
    if existing is None:
        try:
            return (yield from _create(service, spec, dry_run, log))
        except AIDPConflictError as exc:
            existing = yield from service.find_job(spec.name, spec.path, True)
            if existing is None:
                raise AIDPConflictError(
                    f"AIDP refused to create job {spec.name!r} in {spec.path!r}: the name is taken by a job "
                    f"this folder's listing does not show (names may be unique across the workspace): "
                    f"{exc.message}. Rename the job or delete the other one.",
                    status=exc.status,
                    code=exc.code,
                    opc_request_id=exc.opc_request_id,
                    method=exc.method,
                    path=exc.path,
                ) from exc
            log.info("Another writer created job %r first (%s); updating that job", spec.name, existing.key)
    return (yield from _update(service, spec, existing.key, dry_run, log))


def _create(service: Service, spec: JobSpec, dry_run: bool, log: Any) -> Op[UpsertResult]:
    body = spec.to_wire(service.config.depends_on_format)  # type: ignore[arg-type]
    diff = spec_diff({}, canonical(spec), "(new job)")
    if dry_run:
        log.info("Dry run: job %r does not exist in %r; would create it:\n%s", spec.name, spec.path, diff)
        return UpsertResult(None, "created", diff, dry_run=True)
    head = spec.head()
    log.info("Creating job %r (step 1, name only): %s", spec.name, json.dumps(head, sort_keys=True))
    created_at = time.time()
    job_key = (yield from service.create_job(head, create_retry_token(spec))).key
    log.info(
        "Job %r created with key %s; sending its definition (step 2):\n%s", spec.name, job_key, _pretty(body)
    )
    try:
        yield from service.update_job(job_key, body, None, created_at)
    except AIDPNotFoundError:
        # Still 404 after the consistency grace: the retry token answered with a job deleted since.
        log.warning("Job %s from the retry token is gone; creating %r again", job_key, spec.name)
        created_at = time.time()
        job_key = (yield from service.create_job(head, None)).key
        yield from service.update_job(job_key, body, None, created_at)
    return UpsertResult(job_key, "created", diff)


def _update(service: Service, spec: JobSpec, job_key: str, dry_run: bool, log: Any) -> Op[UpsertResult]:
    current = yield from service.get_job(job_key, None)
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
