"""OCI-shaped error responses: ``{"code": ..., "message": ...}`` with an ``opc-request-id``."""

from __future__ import annotations

from aiohttp import web


class ApiError(Exception):
    """Raised by handlers and validation; the middleware renders it as an OCI error body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def response(self) -> web.Response:
        return web.json_response({"code": self.code, "message": self.message}, status=self.status)


def bad_request(message: str, code: str = "InvalidParameter") -> ApiError:
    return ApiError(400, code, message)


def not_found(what: str) -> ApiError:
    return ApiError(404, "NotAuthorizedOrNotFound", f"{what} not found or not authorized")


def not_authenticated(message: str) -> ApiError:
    return ApiError(401, "NotAuthenticated", message)
