"""Pagination of the REST API's lists.

Configuration lists (tenants, routes, keys ...) change only when someone edits them and take
``?limit=&offset=``. Lists that grow while they are read (usage, audit, snapshots, nodes) are
read with an opaque cursor instead: offsets shift under every insert, so a client reading
page after page of them would get some records twice and miss others. Those lists refuse
``offset`` with a 400 that says to follow ``next``.

A cursor is a keyset position: the ordering key of the last row returned (an immutable, unique
key, so every row that existed when the read began is returned exactly once whatever is
inserted meanwhile), plus, for usage and audit, the read's safe horizon
(``control_plane.core.ingestion``): every page of one read comes from the same final set of
rows, and ``count`` (computed on the first page, carried in the cursor) is that set's size.
Filters combine with the cursor; a cursor is refused with other filters than it was made with.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination, LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from control_plane.core.ingestion import safe_horizon

# Past any real table, and inside a database's 64-bit LIMIT and OFFSET.
MAX_OFFSET = 2**62
MAX_LIMIT = 1000
NOT_PART_OF_THE_READ = ("cursor", "limit", "format")


class Pagination(LimitOffsetPagination):
    """``?limit=&offset=``: at most 1000 rows a page, whatever the client asks."""

    default_limit = 50
    max_limit = MAX_LIMIT

    def get_offset(self, request: Request) -> int:
        return min(super().get_offset(request), MAX_OFFSET)


@dataclass(frozen=True)
class Position:
    """Where a read stands: its horizon (None: none), the key of the last row returned (None:
    the first page), the read's row count and the fingerprint of its filters."""

    horizon: int | None
    key: tuple[Any, ...] | None
    count: int
    filters: str

    def encode(self) -> str:
        raw = json.dumps(
            {"h": self.horizon, "k": list(self.key or ()), "n": self.count, "f": self.filters},
            separators=(",", ":"),
        )
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(token: str, width: int) -> Position:
    """The position a cursor names; ValueError when it is not one of ours."""
    try:
        raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        horizon, key, count, filters = raw["h"], raw["k"], raw["n"], raw["f"]
    except (binascii.Error, ValueError, TypeError, KeyError) as exc:
        raise ValueError("not a cursor") from exc
    if not (horizon is None or type(horizon) is int) or type(count) is not int:
        raise ValueError("not a cursor")
    if not isinstance(key, list) or len(key) != width or not isinstance(filters, str):
        raise ValueError("not a cursor")
    if not all(type(v) in (int, str) for v in key):
        raise ValueError("not a cursor")
    return Position(horizon, tuple(key), count, filters)


def filters_of(request: Request) -> str:
    """A fingerprint of the list and the filters a read was started with."""
    params = sorted(
        (name, value)
        for name, values in request.query_params.lists()
        if name not in NOT_PART_OF_THE_READ
        for value in values
    )
    return hashlib.sha256(json.dumps([request.path, params]).encode()).hexdigest()[:16]


def after(ordering: Sequence[str], key: Sequence[Any]) -> Q:
    """Rows strictly after ``key`` in ``ordering`` (fields, ``-`` for descending): the keyset
    condition, with the first field bounded on its own too so an index range scan starts at
    the position instead of filtering every row before it."""
    names = [f.lstrip("-") for f in ordering]
    ops = ["lt" if f.startswith("-") else "gt" for f in ordering]
    q = Q()
    for i in range(len(names)):
        equal = {names[j]: key[j] for j in range(i)}
        q |= Q(**equal, **{f"{names[i]}__{ops[i]}": key[i]})
    return Q(**{f"{names[0]}__{ops[0]}e": key[0]}) & q


class CursorPagination(BasePagination):
    """``?limit=&cursor=``, in ``ordering`` (a unique, immutable key), below the safe horizon
    when ``horizon_field`` is set. Pages are ``{"count", "next", "previous", "results"}``;
    ``previous`` is always null (reads go forward)."""

    ordering: Sequence[str] = ()
    horizon_field: str | None = None
    default_limit = 50
    max_limit = MAX_LIMIT

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> list[Any]:
        if "offset" in request.query_params:
            raise ValidationError(
                {
                    "offset": [
                        "this list grows while it is read, so offsets would skip and repeat "
                        "rows: follow each page's `next` (a cursor) instead"
                    ]
                }
            )
        self.request = request
        limit = self.limit(request)
        position = self.position(queryset, request)
        rows = self.in_read(queryset, position.horizon)
        if position.key is not None:
            rows = rows.filter(after(self.ordering, position.key))
        page = list(rows.order_by(*self.ordering)[: limit + 1])
        self.count = position.count
        self.next: Position | None = None
        if len(page) > limit:
            page = page[:limit]
            key = tuple(getattr(page[-1], name.lstrip("-")) for name in self.ordering)
            self.next = Position(position.horizon, key, position.count, position.filters)
        return page

    def position(self, queryset: QuerySet[Any], request: Request) -> Position:
        filters = filters_of(request)
        token = request.query_params.get("cursor")
        if not token:
            horizon = safe_horizon() if self.horizon_field else None
            return Position(horizon, None, self.in_read(queryset, horizon).count(), filters)
        try:
            position = decode(token, len(self.ordering))
        except ValueError:
            raise ValidationError({"cursor": ["not a cursor of this list"]}) from None
        if position.filters != filters:
            raise ValidationError(
                {"cursor": ["this cursor belongs to a read with other filters or another list"]}
            )
        return position

    def in_read(self, queryset: QuerySet[Any], horizon: int | None) -> QuerySet[Any]:
        if horizon is None or self.horizon_field is None:
            return queryset
        return queryset.filter(**{f"{self.horizon_field}__lt": horizon})

    def limit(self, request: Request) -> int:
        try:
            limit = int(request.query_params.get("limit", ""))
        except ValueError:
            return self.default_limit
        return min(limit, self.max_limit) if limit > 0 else self.default_limit

    def get_paginated_response(self, data: Any) -> Response:
        next_url = None
        if self.next is not None:
            url = self.request.build_absolute_uri()
            next_url = replace_query_param(url, "cursor", self.next.encode())
        return Response({"count": self.count, "next": next_url, "previous": None, "results": data})

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["count", "results"],
            "properties": {
                "count": {
                    "type": "integer",
                    "description": "rows of the whole read, fixed when it began",
                },
                "next": {
                    "type": "string",
                    "nullable": True,
                    "format": "uri",
                    "description": "the next page (null on the last): follow it as it is",
                },
                "previous": {"type": "string", "nullable": True, "description": "always null"},
                "results": schema,
            },
        }

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": "cursor",
                "required": False,
                "in": "query",
                "description": "an opaque position, from the previous page's `next`",
                "schema": {"type": "string"},
            },
            {
                "name": "limit",
                "required": False,
                "in": "query",
                "description": f"rows a page ({self.default_limit} by default, at most "
                f"{self.max_limit}); `offset` is refused on this list: follow `next`",
                "schema": {"type": "integer"},
            },
        ]


class IngestionCursorPagination(CursorPagination):
    """Usage and audit records, newest ingested first, below the safe horizon."""

    ordering = ("-ingest_xid", "-id")
    horizon_field = "ingest_xid"
