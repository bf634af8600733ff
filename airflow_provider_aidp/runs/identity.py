"""Deterministic ``opc-retry-token`` values derived from an Airflow task instance's identity.

Why: a worker can die after POST /jobRuns succeeded but before the run key was stored anywhere.
The retry sends the same token, and the service answers with the run it already created instead
of starting a second one. When the operator *deliberately* starts a new run (the previous one
failed) it mixes the previous run key in, so the token differs from the one that produced the
failed run and stays deterministic for that resubmission too.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

#: The service's limit for ``opc-retry-token``.
MAX_TOKEN_LENGTH = 64
TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_PREFIX = "airflow-"


@dataclass(frozen=True)
class TaskIdentity:
    """Which Airflow task instance (and which *clear generation* of it) is asking.

    ``generation`` changes when a user clears the task (Airflow raises ``max_tries`` then) but
    not between automatic retries, so a deliberate re-run gets a new AIDP run while a retry
    reattaches to the old one.
    """

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1
    generation: int = 0
    #: Which try of this generation is asking (1: no earlier try used this generation's tokens).
    #: Not part of the identity: every try of a generation sends the same tokens.
    attempt: int = field(default=1, compare=False)

    @classmethod
    def from_context(cls, context: Any) -> TaskIdentity:
        ti = context["ti"]
        retries = int(getattr(getattr(ti, "task", None), "retries", 0) or 0)
        max_tries = int(getattr(ti, "max_tries", 0) or 0)
        map_index = getattr(ti, "map_index", -1)
        generation = max(0, max_tries - retries)  # a clear sets max_tries = last try + retries
        try_number = int(getattr(ti, "try_number", 1) or 1)
        return cls(
            dag_id=str(ti.dag_id),
            run_id=str(ti.run_id),
            task_id=str(ti.task_id),
            map_index=-1 if map_index is None else int(map_index),
            generation=generation,
            attempt=max(1, try_number - generation),
        )

    def retry_token(self, purpose: str = "run", previous_run_key: str | None = None) -> str:
        """A token of at most 64 characters of ``[A-Za-z0-9_-]``, the same for the same inputs."""
        parts = [purpose, self.dag_id, self.run_id, self.task_id, str(self.map_index), str(self.generation)]
        if previous_run_key:
            parts.append(previous_run_key)
        digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
        return (_PREFIX + digest)[:MAX_TOKEN_LENGTH]
