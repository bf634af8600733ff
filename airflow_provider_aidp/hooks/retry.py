"""The ONE retry decision of AIDPHook, shared by its sync and async transports.

A POST that creates something may only be resent with an ``opc-retry-token``: the service answers
the repeat with the original result instead of creating a duplicate (a second job run, say). That
is also why a token-protected POST whose 2xx answer arrived garbled is resent. One logical call
makes at most ``max_retries + 1`` attempts, whatever went wrong; nothing above the hook resends.

Not ``tenacity``: the decision needs the attempt's answer (status, ``Retry-After``, whether the
body parsed) and must be one function for a ``requests`` and an ``aiohttp`` sender; tenacity would
wrap each sender in its own sync or async ``Retrying``, the twins this module exists to avoid.
"""

from __future__ import annotations

import email.utils
import random
import secrets
import string
import time
import uuid
from dataclasses import dataclass

RETRY_STATUSES = frozenset({429, 500}) | frozenset(range(502, 600))  # not 501 Not Implemented
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

    def resend_after(
        self, attempt: int, method: str, token_protected: bool, failure: str, retry_after: str | None = None
    ) -> float | None:
        """Seconds to wait before resending after attempt number ``attempt`` failed, or ``None``: give up.

        ``failure`` is ``"lost"`` (no answer), ``"status"`` (a retryable HTTP status) or
        ``"garbled"`` (a 2xx whose body could not be read: only a token-protected POST may be resent).
        GET/PUT/DELETE are resent otherwise; a POST only with an ``opc-retry-token``.
        """
        idempotent = method.upper() in IDEMPOTENT_METHODS
        if failure == "garbled":
            allowed = token_protected and not idempotent
        else:
            allowed = idempotent or token_protected
        return self.delay(attempt, retry_after) if allowed and attempt <= self.max_retries else None

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
        when = email.utils.parsedate_to_datetime(value)  # raises on a bad date (Python >= 3.10)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)
