"""Turning one HTTP answer into data or the right AIDPApiError, shared by the sync and async paths.

A response that is not 2xx, or a 2xx whose body is not the JSON object we expected (HTML from a
proxy, a truncated body, an empty body), is an error here, never an empty result: an empty list
read from a broken answer would make "job not found" a silent false negative.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

from pydantic import BaseModel, ValidationError

from airflow_provider_aidp.exceptions import AIDPResponseError, error_class_for_status
from airflow_provider_aidp.hooks.connection import AIDPConnectionConfig

_M = TypeVar("_M", bound=BaseModel)


class JobDefinition(NamedTuple):
    """A job definition as the service returns it, with the ``etag`` an update's if-match needs."""

    body: dict[str, Any]
    etag: str | None


@dataclass
class ApiResponse:
    status: int
    headers: Mapping[str, str]
    body: Any  # parsed JSON (dict/list) or None when no body was expected

    @property
    def request_id(self) -> str | None:
        return header(self.headers, "opc-request-id")

    @property
    def next_page(self) -> str | None:
        return header(self.headers, "opc-next-page")


def header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        lowered = {k.lower(): v for k, v in headers.items()}
        value = lowered.get(name.lower())
    return value


def _snippet(raw: bytes) -> str:
    text = raw[:200].decode("utf-8", errors="replace").strip()
    return " ".join(text.split())


def parse_response(
    *,
    status: int,
    headers: Mapping[str, str],
    raw: bytes,
    method: str,
    path: str,
    request_id: str,
    expect_json: bool,
    config: AIDPConnectionConfig | None,
    allow_empty: bool = False,
) -> ApiResponse:
    """Turn one HTTP answer into an :class:`ApiResponse` or the right ``AIDPApiError`` subclass.

    ``allow_empty``: a 2xx with no body at all is an answer too (body ``None``), for calls the
    service may answer without describing the result (a cancel's 202 work request, a PUT's 204);
    the hook then reads the resource with one ``GET``.
    """
    opc_request_id = header(headers, "opc-request-id") or request_id
    if not 200 <= status < 300:
        code, message = None, None
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        if isinstance(body, dict):
            code = body.get("code") if isinstance(body.get("code"), str) else None
            message = body.get("message") if isinstance(body.get("message"), str) else None
        if not message:
            snippet = _snippet(raw)
            message = f"HTTP {status}" + (f" (non-JSON body: {snippet!r})" if snippet else " (empty body)")
        if status == 401 and config is not None:
            message += _auth_hint(config)
        elif status == 404 and config is not None:
            message += (
                f" (check the key, workspace_key, ai_data_platform_id and api_version={config.api_version})"
            )
        raise error_class_for_status(status)(
            message, status=status, code=code, opc_request_id=opc_request_id, method=method, path=path
        )
    if not expect_json or (allow_empty and not raw.strip()):
        return ApiResponse(status, headers, None)
    content_type = (header(headers, "content-type") or "").lower()
    problem = None
    body = None
    if not raw.strip():
        problem = "empty body"
    elif "html" in content_type:
        problem = f"HTML instead of JSON: {_snippet(raw)!r}"
    else:
        try:
            body = json.loads(raw)
        except ValueError:
            problem = f"body is not valid JSON (truncated?): {_snippet(raw)!r}"
        else:
            if not isinstance(body, dict):
                problem = f"expected a JSON object, got {type(body).__name__}"
    if problem:
        raise AIDPResponseError(
            f"Unexpected {status} response: {problem}",
            status=status,
            opc_request_id=opc_request_id,
            method=method,
            path=path,
        )
    return ApiResponse(status, headers, body)


def _auth_hint(config: AIDPConnectionConfig) -> str:
    if config.auth_type == "security_token":
        return (
            f". The session token of profile [{config.profile}] is expired or invalid: run "
            f"`oci session refresh --profile {config.profile}` (or `oci session authenticate`)."
        )
    if config.auth_type == "api_key":
        return (
            ". The request signature was refused: check tenancy, user, fingerprint and that the "
            "public key is uploaded for the user."
        )
    return f". The {config.auth_type} signer was refused: check its policies and dynamic group."


def parse_model(cls: type[_M], body: Any, method: str, path: str, request_id: str | None) -> _M:
    try:
        return cls.model_validate(body)
    except ValidationError as exc:
        raise AIDPResponseError(
            f"Response does not match {cls.__name__}: {exc.error_count()} validation error(s), "
            f"first: {exc.errors()[0].get('loc')} {exc.errors()[0].get('msg')}",
            status=200,
            opc_request_id=request_id,
            method=method,
            path=path,
        ) from None


def parse_items(body: Any, method: str, path: str, request_id: str | None) -> list[dict[str, Any]]:
    items = body.get("items") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise AIDPResponseError(
            "List response has no 'items' array",
            status=200,
            opc_request_id=request_id,
            method=method,
            path=path,
        )
    return items
