"""An optional per-tenancy request rate limit: 429 with ``Retry-After`` above N requests a second.

OCI services throttle per tenancy; the field notes do not say at what rate, so the limit is off
unless asked for (``AIDPEmulator(rate_limit=N)``, ``--rate-limit N``, ``PUT /_emulator/rate-limit``).
With it on, benchmarks and tests can show what many deferred tasks do to a real limit. The tenancy
is the first part of the request's signing ``keyId`` (``tenancy/user/fingerprint``); unsigned or
session-token requests share one bucket. Control paths are never limited.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable

_KEY_ID = re.compile(r'keyId="([^"/]*)')


class RateLimit:
    """A token bucket per tenancy: ``per_second`` requests a second, bursts of one second's worth."""

    def __init__(self, per_second: float = 0.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # tenancy -> (tokens, at)
        self.per_second = 0.0
        self.set(per_second)
        self.throttled = 0  # 429s answered since the last set()

    def set(self, per_second: float) -> None:
        value = float(per_second)
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"rate limit must be a number >= 0 (0 = off), got {per_second!r}")
        with self._lock:
            self.per_second, self._buckets, self.throttled = value, {}, 0

    def take(self, authorization: str | None) -> float:
        """Spend one request of the caller's tenancy: 0 when allowed, else seconds until a token."""
        if self.per_second <= 0:
            return 0.0
        match = _KEY_ID.search(authorization or "")
        tenancy = match.group(1) if match else "*"
        with self._lock:
            now = self._clock()
            tokens, at = self._buckets.get(tenancy, (self.per_second, now))
            tokens = min(self.per_second, tokens + (now - at) * self.per_second)
            if tokens >= 1.0:
                self._buckets[tenancy] = (tokens - 1.0, now)
                return 0.0
            self._buckets[tenancy] = (tokens, now)
            self.throttled += 1
            return (1.0 - tokens) / self.per_second

    def to_dict(self) -> dict[str, float | int]:
        return {"per_second": self.per_second, "throttled": self.throttled}
