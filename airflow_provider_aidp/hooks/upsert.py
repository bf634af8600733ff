"""Make the AIDP side match a job spec: create (two steps), update (one PUT with if-match), or leave alone.

Functions taking an ``AIDPHook`` rather than hook methods, so the hook module stays small and
does not import the job models at import time (``AIDPHook.upsert_job`` delegates here).
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ValidationError

from airflow_provider_aidp.exceptions import AIDPNotFoundError
from airflow_provider_aidp.models.jobs import JobSpec, canonical, load_spec, spec_from_server

if TYPE_CHECKING:
    from airflow_provider_aidp.hooks.aidp import AIDPHook

Action = Literal["created", "updated", "unchanged"]


@dataclass(frozen=True)
class UpsertResult:
    """What :func:`upsert_job` did (or, with ``dry_run``, would do)."""

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
    """The server's job in canonical form; an unparseable body compares as its raw self (so: changed)."""
    try:
        return canonical(spec_from_server(body))
    except ValidationError:
        return dict(body)


def upsert_job(hook: AIDPHook, spec: JobSpec | Mapping[str, Any], *, dry_run: bool = False) -> UpsertResult:
    """Create or update the job named ``spec.name`` in ``spec.path`` so it matches ``spec``.

    Validation happens first: a bad spec raises ``AIDPConfigError`` and sends nothing.
    """
    spec = load_spec(spec)
    fmt = hook.config.depends_on_format
    existing = hook.find_job(spec.name, spec.path)  # every page; AIDPDuplicateJobError if > 1
    if existing is None:
        return _create(hook, spec, fmt, dry_run)
    return _update(hook, spec, fmt, existing.key, dry_run)


def _create(hook: AIDPHook, spec: JobSpec, fmt: Any, dry_run: bool) -> UpsertResult:
    body = spec.to_wire(fmt)
    diff = spec_diff({}, canonical(spec), "(new job)")
    if dry_run:
        hook.log.info(
            "Dry run: job %r does not exist in %r; would create it:\n%s", spec.name, spec.path, diff
        )
        return UpsertResult(None, "created", diff, dry_run=True)
    head = spec.head()
    hook.log.info("Creating job %r (step 1, name only): %s", spec.name, json.dumps(head, sort_keys=True))
    job_key = _key(hook.create_job(head, retry_token=create_retry_token(spec)))
    hook.log.info(
        "Job %r created with key %s; sending its definition (step 2):\n%s", spec.name, job_key, _pretty(body)
    )
    try:
        hook.update_job(job_key, body)
    except AIDPNotFoundError:
        # The retry token answered with a job deleted since: create afresh with a random token.
        hook.log.warning("Job %s from the retry token is gone; creating %r again", job_key, spec.name)
        job_key = _key(hook.create_job(head))
        hook.update_job(job_key, body)
    return UpsertResult(job_key, "created", diff)


def _update(hook: AIDPHook, spec: JobSpec, fmt: Any, job_key: str, dry_run: bool) -> UpsertResult:
    current, etag = hook.get_job(job_key)
    diff = spec_diff(current_canonical(current), canonical(spec), job_key)
    if not diff:
        hook.log.info("Job %r (%s) is unchanged; nothing sent", spec.name, job_key)
        return UpsertResult(job_key, "unchanged", "", dry_run=dry_run)
    if dry_run:
        hook.log.info("Dry run: job %r (%s) would change:\n%s", spec.name, job_key, diff)
        return UpsertResult(job_key, "updated", diff, dry_run=True)
    body = spec.to_wire(fmt)
    hook.log.info("Updating job %r (%s):\n%s\nSending:\n%s", spec.name, job_key, diff, _pretty(body))
    hook.update_job(job_key, body, if_match=etag)
    return UpsertResult(job_key, "updated", diff)


def _key(created: Mapping[str, Any]) -> str:
    from airflow_provider_aidp.exceptions import AIDPResponseError

    key = created.get("key") if isinstance(created, Mapping) else None
    if not isinstance(key, str) or not key:
        raise AIDPResponseError("create job answered without a job 'key'", method="POST", path="/jobs")
    return key


def _pretty(body: Mapping[str, Any]) -> str:
    return json.dumps(body, indent=2, sort_keys=True)
