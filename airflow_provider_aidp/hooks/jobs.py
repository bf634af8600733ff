"""Which listed job is "the job named N in folder F", whatever the server's ``path`` filter means.

The SDK documents ``list_jobs(path=...)`` as "the fully qualified path where the job is stored",
which may be the folder, the folder + name, or be normalised differently (a trailing slash); nor
does it say whether ``displayName`` is an exact match. The hook therefore asks the server for the
name only and matches both here: the exact name, and a ``path`` that is the folder or the folder +
name, with trailing slashes ignored. A listing may also leave ``path`` out of its items; then the
folder of a job with the wanted name is read from ``GET /jobs/{key}`` (``needs_path``, ``located``).
"""

from __future__ import annotations

from typing import Any

from airflow_provider_aidp.models.runs import JobSummary


def normalize_folder(path: str | None) -> str | None:
    """``/Workspace/Shared/`` -> ``/Workspace/Shared`` (``/`` stays ``/``); None stays None."""
    if path is None:
        return None
    stripped = path.strip()
    return stripped.rstrip("/") or "/"


def same_folder(job_path: str | None, name: str, folder: str) -> bool:
    """True if a job stored at ``job_path`` is in ``folder`` (``job_path`` may include the name)."""
    have, want = normalize_folder(job_path), normalize_folder(folder)
    if have is None or want is None:
        return False
    return have == want or have == f"{want.rstrip('/')}/{name}"


def matches(job: JobSummary, name: str, folder: str | None) -> bool:
    """The job is named exactly ``name`` and (when a folder is given) stored in ``folder``."""
    return job.name == name and (folder is None or same_folder(job.path, name, folder))


def needs_path(job: JobSummary, name: str, folder: str | None) -> bool:
    """The listed job has the wanted name, a folder is wanted, and the listing did not say its path."""
    return folder is not None and job.name == name and job.path is None


def located(job: JobSummary, definition: Any) -> JobSummary:
    """``job`` with the ``path`` of its definition (``GET /jobs/{key}``)."""
    path = definition.get("path") if isinstance(definition, dict) else None
    return job.model_copy(update={"path": path})
