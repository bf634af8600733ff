"""Fault injection: per-route rules that make the next N matching requests misbehave.

A rule matches on HTTP method (``*`` = any) and an fnmatch glob over the request path (e.g.
``*/jobRuns/*``), skips its first ``after`` matches, then fires ``times`` times (None = forever).
Kinds:

=============  ===================================================================================
``status``     answer ``status`` (e.g. 429, 500, 503) with an OCI error body; ``retry_after`` adds
               a Retry-After header
``html``       answer ``status`` (default 502) with an HTML gateway page
``delay``      sleep ``delay`` real seconds, then answer normally (beyond a client's timeout)
``reset``      drop the connection without a response
``truncated``  the real response, cut in half (broken JSON)
``non_json``   200 with an HTML body and ``content-type: text/html``
``empty_list`` 200 ``{"items": []}`` (a silently empty page)
``empty_body`` 200 with no body at all
``name_taken`` another writer wins a race for the name: just before the request is handled, a job
               with the ``name`` (and ``path``) of its JSON body is created in the same workspace
               (unless ``unique_names`` finds the name taken already); the request then goes on
               as usual, so under ``unique_names`` a create or rename answers 409
=============  ===================================================================================
"""

from __future__ import annotations

import fnmatch
import itertools
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

KINDS = frozenset(
    {"status", "html", "delay", "reset", "truncated", "non_json", "empty_list", "empty_body", "name_taken"}
)
_ids = itertools.count(1)


@dataclass
class Fault:
    kind: str
    path: str = "*"
    method: str = "*"
    times: int | None = 1
    after: int = 0
    status: int | None = None
    retry_after: float | None = None
    delay: float = 0.0
    body: str | None = None
    id: int = field(default_factory=lambda: next(_ids))
    seen: int = 0
    fired: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"fault kind must be one of {sorted(KINDS)}, got {self.kind!r}")
        self.method = self.method.upper()
        if self.kind == "status" and self.status is None:
            raise ValueError("a 'status' fault needs status (e.g. 429, 500, 503)")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fault:
        allowed = {"kind", "path", "method", "times", "after", "status", "retry_after", "delay", "body"}
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown fault fields {sorted(unknown)}; allowed: {sorted(allowed)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times

    def matches(self, method: str, path: str) -> bool:
        return (self.method in ("*", method.upper())) and fnmatch.fnmatchcase(path, self.path)


class FaultBook:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def remove(self, fault_id: int) -> bool:
        with self._lock:
            before = len(self._faults)
            self._faults = [f for f in self._faults if f.id != fault_id]
            return len(self._faults) != before

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def all(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def take(self, method: str, path: str) -> Fault | None:
        """The fault to apply to this request, counting it; None if the request passes."""
        if not self._faults:
            return None
        with self._lock:
            for fault in self._faults:
                if fault.exhausted() or not fault.matches(method, path):
                    continue
                fault.seen += 1
                if fault.seen <= fault.after:
                    continue
                fault.fired += 1
                return fault
        return None
