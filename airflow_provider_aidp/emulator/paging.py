"""``limit`` / ``page`` paging with ``opc-next-page`` / ``opc-prev-page`` / ``opc-total-items``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from multidict import MultiMapping

from .errors import bad_request

T = TypeVar("T")
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def sort_items(
    items: Sequence[T], query: MultiMapping[str], time_of: Callable[[T], float], name_of: Callable[[T], str]
) -> list[T]:
    sort_by = query.get("sortBy", "timeCreated")
    order = query.get("sortOrder")
    if sort_by not in ("timeCreated", "displayName", "status"):
        raise bad_request("sortBy must be timeCreated, displayName or status")
    if order not in (None, "ASC", "DESC"):
        raise bad_request("sortOrder must be ASC or DESC")
    indexed = list(enumerate(items))
    if sort_by == "timeCreated":
        indexed.sort(key=lambda p: (time_of(p[1]), p[0]), reverse=(order or "DESC") == "DESC")
    else:
        indexed.sort(key=lambda p: (name_of(p[1]), p[0]), reverse=order == "DESC")
    return [item for _, item in indexed]


def paginate(
    items: list[Any], query: MultiMapping[str], max_limit: int = MAX_LIMIT, clamp: bool = False
) -> tuple[list[Any], dict[str, str]]:
    """One page; a ``limit`` above ``max_limit`` is refused (400) or, with ``clamp``, served as it."""
    try:
        limit = int(query.get("limit", min(DEFAULT_LIMIT, max_limit)))
    except ValueError:
        raise bad_request("limit must be an integer") from None
    if clamp and limit > max_limit:
        limit = max_limit
    if not 1 <= limit <= max_limit:
        raise bad_request(f"limit must be between 1 and {max_limit}")
    page = query.get("page")
    offset = 0
    if page:
        if not (page.startswith("p") and page[1:].isdigit()):
            raise bad_request("page is not a token this service returned")
        offset = int(page[1:])
    chunk = items[offset : offset + limit]
    headers = {"opc-total-items": str(len(items))}
    if offset + limit < len(items):
        headers["opc-next-page"] = f"p{offset + limit}"
    if offset > 0:
        headers["opc-prev-page"] = f"p{max(0, offset - limit)}"
    return chunk, headers
