"""Exceptions raised by the AIDP provider.

One family, so callers can catch ``AIDPError`` for everything this package raises, and
``AIDPApiError`` (with status, service code and ``opc-request-id``) for what the service said.
Messages never contain credentials: they are built from connection *field names*, HTTP status,
the service's error body and the request path only.
"""

from __future__ import annotations

import asyncio


class AIDPError(Exception):
    """Base class of every error raised by this provider."""


class AIDPConfigError(AIDPError, ValueError):
    """Bad input detected before any request is sent (connection fields, operator arguments, job spec).

    The message names the field and says how to fix it.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class AIDPApiError(AIDPError):
    """The service answered, and the answer is an error (or is not the JSON we need)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        opc_request_id: str | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.opc_request_id = opc_request_id
        self.method = method
        self.path = path
        super().__init__(self._render())

    def _render(self) -> str:
        status = "" if self.status is None else f" {self.status}"
        code = f" [{self.code}]" if self.code else ""
        where = f"{self.method} {self.path}" if self.method and self.path else (self.path or "")
        where = f" on {where}" if where else ""
        request_id = f" (opc-request-id: {self.opc_request_id})" if self.opc_request_id else ""
        return f"AIDP API error{status}{code}{where}: {self.message}{request_id}"


class AIDPAuthError(AIDPApiError):
    """401 or 403: the signature, key, token or policy was refused."""

    @property
    def credentials_expired(self) -> bool:
        """A 401: the signature or token was refused (a token may just have rotated), not a policy."""
        return self.status == 401


class AIDPNotFoundError(AIDPApiError):
    """404: the resource (or the whole API surface, for a wrong api_version) does not exist."""


class AIDPConflictError(AIDPApiError):
    """409: conflicting state, or an ``opc-retry-token`` reused with a different body."""


class AIDPRetryTokenConflictError(AIDPConflictError):
    """409 to a token-protected POST: the ``opc-retry-token`` was used before with a different body."""

    @classmethod
    def of(cls, exc: AIDPApiError) -> AIDPRetryTokenConflictError:
        return cls(
            exc.message,
            status=exc.status,
            code=exc.code,
            opc_request_id=exc.opc_request_id,
            method=exc.method,
            path=exc.path,
        )


class AIDPPreconditionFailedError(AIDPApiError):
    """412: the ``if-match`` etag no longer matches; someone else changed the resource."""


class AIDPRateLimitError(AIDPApiError):
    """429: too many requests. Retried by the hook; raised when the retry budget is spent."""


class AIDPServerError(AIDPApiError):
    """5xx from the service. Retried by the hook (except 501); raised when the budget is spent."""


class AIDPResponseError(AIDPApiError):
    """A 2xx answer whose body is not the JSON we expected (HTML, truncated, empty)."""


class AIDPTransportError(AIDPError):
    """No answer at all: connection refused or reset, DNS failure, timeout (after retries)."""

    def __init__(self, message: str, *, method: str | None = None, path: str | None = None) -> None:
        super().__init__(message)
        self.method = method
        self.path = path


class AIDPDuplicateJobError(AIDPError):
    """More than one job matches a name (and path): refusing to guess which one is meant."""


class AIDPJobRunError(AIDPError):
    """An AIDP job run ended in a state other than SUCCESS."""

    def __init__(self, message: str, *, run_key: str, status: str) -> None:
        super().__init__(message)
        self.run_key = run_key
        self.status = status


class AIDPTaskRunError(AIDPJobRunError):
    """One AIDP task of a workflow task group's run ended in a state other than SUCCESS (or did not
    run because its upstream failed); ``status`` is the task run's."""

    def __init__(self, message: str, *, run_key: str, task_key: str, status: str) -> None:
        super().__init__(message, run_key=run_key, status=status)
        self.task_key = task_key


_CLASS_BY_STATUS: dict[int, type[AIDPApiError]] = {
    401: AIDPAuthError,
    403: AIDPAuthError,
    404: AIDPNotFoundError,
    409: AIDPConflictError,
    412: AIDPPreconditionFailedError,
    429: AIDPRateLimitError,
}


def error_class_for_status(status: int) -> type[AIDPApiError]:
    """The most specific error class for an HTTP status."""
    return AIDPServerError if status >= 500 else _CLASS_BY_STATUS.get(status, AIDPApiError)


def is_transient(exc: BaseException) -> bool:
    """Whether a wait may outlast this error (look again later) rather than end on it: rate
    limits, 5xx (not 501), no answer, a garbled answer. Never a 4xx the service meant."""
    if isinstance(exc, AIDPRateLimitError | AIDPTransportError | AIDPResponseError):
        return True
    if isinstance(exc, AIDPServerError):
        return exc.status != 501
    if isinstance(exc, AIDPError):
        return False
    if isinstance(exc, TimeoutError | asyncio.TimeoutError | ConnectionError):
        return True
    # aiohttp / requests transport errors, checked by module name so neither is imported here.
    module = type(exc).__module__ or ""
    return module.startswith(("aiohttp", "requests", "urllib3")) or isinstance(exc, OSError)


class AIDPPollError(AIDPError):
    """Waiting for a run failed for infrastructure reasons; the run itself was not reported failed."""

    def __init__(self, message: str, *, run_key: str, kind: str) -> None:
        super().__init__(message)
        self.run_key = run_key
        self.kind = kind


class AIDPRunTimeoutError(AIDPError):
    """The wait timeout passed before the run finished."""

    def __init__(self, message: str, *, run_key: str, canceled: bool) -> None:
        super().__init__(message)
        self.run_key = run_key
        self.canceled = canceled
