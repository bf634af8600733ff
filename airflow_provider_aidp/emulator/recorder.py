"""Every API request the emulator receives, for tests to assert on (also across processes)."""

from __future__ import annotations

import fnmatch
import threading
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class RecordedRequest:
    seq: int
    time: float  # wall clock
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: str
    status: int | None = None  # response status (None for a dropped connection)

    def json(self) -> Any:
        import json

        return json.loads(self.body) if self.body else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Recorder:
    def __init__(self, maxlen: int = 50_000) -> None:
        self._lock = threading.Lock()
        self._items: deque[RecordedRequest] = deque(maxlen=maxlen)
        self._seq = 0

    def add(self, **fields: Any) -> None:
        with self._lock:
            self._seq += 1
            self._items.append(RecordedRequest(seq=self._seq, **fields))

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def filter(
        self,
        method: str | None = None,
        path_contains: str | None = None,
        since: int = 0,
        path: str | None = None,
    ) -> list[RecordedRequest]:
        """Requests after sequence number ``since``, by method, substring and/or fnmatch ``path`` glob."""
        with self._lock:
            items = list(self._items)
        return [
            r
            for r in items
            if r.seq > since
            and (method is None or r.method == method.upper())
            and (path_contains is None or path_contains in r.path)
            and (path is None or fnmatch.fnmatchcase(r.path, path))
        ]
