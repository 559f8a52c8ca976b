"""Cursor pagination shared by the list endpoints (`order`, `limit`, `after`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import ApiError


def list_page(
    objects: list[dict[str, Any]],
    query: Mapping[str, str],
    *,
    default_order: str = "desc",
    max_limit: int = 100,
) -> dict[str, Any]:
    """A `{"object": "list", …}` page of `objects`, which are given oldest first."""
    order = query.get("order", default_order)
    if order not in ("asc", "desc"):
        raise ApiError(
            400,
            f"Invalid value: '{order}'. Supported values are: 'asc' and 'desc'.",
            param="order",
            code="invalid_value",
        )
    try:
        limit = int(query.get("limit", "20"))
    except ValueError:
        raise ApiError(400, "Invalid 'limit': expected an integer.", param="limit") from None
    if not 1 <= limit <= max_limit:
        raise ApiError(
            400,
            f"Invalid 'limit': integer below minimum value or above maximum value ({max_limit}).",
            param="limit",
            code="integer_out_of_range",
        )
    ordered = objects if order == "asc" else list(reversed(objects))
    after = query.get("after")
    if after:
        ids = [o.get("id") for o in ordered]
        if after not in ids:
            raise ApiError(400, f"Invalid 'after': no object with id '{after}'.", param="after")
        ordered = ordered[ids.index(after) + 1 :]
    data = ordered[:limit]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": len(ordered) > limit,
    }
