"""The retry policy shared by the sync and async paths of AIDPHook (the ONE place that decides retries).

Why POSTs are special: a POST that creates something may only be repeated when it carries an
``opc-retry-token``, because then the service answers the repeat with the original result instead
of creating a duplicate (a second job run, for example). That is also why a token-protected POST
whose 2xx answer arrived garbled is resent: the run it created comes back, it is not created twice.

One logical call makes at most ``max_retries + 1`` attempts, whatever went wrong (no answer, a
retryable status, a garbled answer); nothing above the hook retries a request again.

Not ``tenacity``: the decision needs the attempt's answer (status, ``Retry-After``, whether the
body parsed) and must be the same function for a ``requests`` and an ``aiohttp`` sender. A plain
function of (attempt, what happened) does that in a few lines; tenacity would add a sync and an
async ``Retrying`` wrapper around each sender, i.e. the twins this module exists to avoid. So the
package does not depend on tenacity.
"""

from __future__ import annotations

import email.utils
import random
import secrets
import string
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504}) | frozenset(range(505, 600))
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
_TOKEN_CHARS = string.ascii_letters + string.digits


def new_request_id() -> str:
    """An ``opc-request-id`` like the OCI SDK's: 32 upper-case hex characters."""
    return uuid.uuid4().hex.upper()


def new_retry_token() -> str:
    """A random 30-character ``opc-retry-token`` (the SDK's shape) for one logical call."""
    return "".join(secrets.choice(_TOKEN_CHARS) for _ in range(30))


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter; ``Retry-After`` honoured but capped at ``wait_max``."""

    max_retries: int
    wait_max: float
    wait_base: float = 1.0

    @staticmethod
    def may_retry(method: str, headers: Mapping[str, str]) -> bool:
        """GET/PUT/DELETE always; POST only with an ``opc-retry-token`` (the service dedupes it)."""
        if method.upper() in IDEMPOTENT_METHODS:
            return True
        return any(k.lower() == "opc-retry-token" for k in headers)

    @staticmethod
    def retryable_status(status: int) -> bool:
        return status in RETRY_STATUSES and status != 501

    def resend_after(
        self, attempt: int, method: str, token_protected: bool, failure: str, retry_after: str | None = None
    ) -> float | None:
        """Seconds to wait before resending after attempt number ``attempt`` failed, or ``None``: give up.

        ``failure`` is ``"lost"`` (no answer), ``"status"`` (a retryable HTTP status) or
        ``"garbled"`` (a 2xx whose body could not be read: only a token-protected POST may be resent).
        """
        if attempt > self.max_retries:
            return None
        idempotent = method.upper() in IDEMPOTENT_METHODS
        if failure == "garbled" and (idempotent or not token_protected):
            return None
        if not (idempotent or token_protected):
            return None
        return self.delay(attempt, retry_after)

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        hinted = parse_retry_after(retry_after)
        if hinted is not None:
            return min(max(hinted, 0.0), self.wait_max)
        ceiling = min(self.wait_max, self.wait_base * (2 ** (attempt - 1)))
        return random.uniform(0, ceiling)


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: an integer, or an HTTP date (then relative to now)."""
    if not value:
        return None
    value = value.strip()
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(when.timestamp() - time.time(), 0.0)
