"""Triggerer-wide request pacing per connection: a token bucket that backs off on 429.

One triggerer process may follow every AIDP run of a deployment. Each trigger polls on its own
(jittered, growing) schedule, but after a triggerer restart a thousand of them wake within the
same second. Every async request on one connection in one event loop takes a slot from one
:class:`RequestRateLimiter` first (the hook keeps it with the shared session and signer), so the
API sees at most ``max_requests_per_second`` from the process, whatever the number of triggers.
"""

from __future__ import annotations

import asyncio
import math
import time

#: A 429 halves the pace, never below this fraction of the ceiling.
MIN_RATE_FRACTION = 1 / 16
#: Each request that is not throttled wins back this fraction of the ceiling.
RECOVERY_FRACTION = 1 / 20


class RequestRateLimiter:
    """A GCRA token bucket: ``rate`` requests per second on average, bursts of ``burst``.

    ``reserve()`` books the next slot and says how long to wait for it, so waiters are served in
    arrival order without a queue or a lock (the loop is single-threaded). A 429 from the service
    halves the rate; requests that get through restore it step by step. ``rate <= 0`` disables
    pacing. Waiting is ``asyncio.sleep``: the event loop never blocks.
    """

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.max_rate = float(rate)
        self.rate = self.max_rate
        self.burst = max(1.0, float(burst if burst is not None else rate))
        self._tat = -math.inf  # theoretical arrival time of the next request (monotonic seconds)

    @property
    def enabled(self) -> bool:
        return self.max_rate > 0

    def reserve(self, now: float | None = None) -> float:
        """Take the next slot; return the seconds to wait before sending (0 when there is room)."""
        if not self.enabled:
            return 0.0
        now = time.monotonic() if now is None else now
        interval = 1.0 / self.rate
        tat = max(self._tat, now)
        wait = tat - (self.burst - 1.0) * interval - now
        self._tat = tat + interval
        return max(0.0, wait)

    async def acquire(self) -> None:
        wait = self.reserve()
        if wait > 0:
            await asyncio.sleep(wait)

    def throttled(self) -> None:
        """The service answered 429: halve the pace (not below ``MIN_RATE_FRACTION`` of the ceiling)."""
        if self.enabled:
            self.rate = max(self.max_rate * MIN_RATE_FRACTION, self.rate / 2.0)

    def succeeded(self) -> None:
        """A request was not throttled: win back ``RECOVERY_FRACTION`` of the ceiling."""
        if self.enabled and self.rate < self.max_rate:
            self.rate = min(self.max_rate, self.rate + self.max_rate * RECOVERY_FRACTION)
