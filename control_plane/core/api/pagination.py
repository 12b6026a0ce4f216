from __future__ import annotations

from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request

# Past any real table, and inside a database's 64-bit LIMIT and OFFSET.
MAX_OFFSET = 2**62


class Pagination(LimitOffsetPagination):
    """``?limit=&offset=``: at most 1000 rows a page, whatever the client asks."""

    default_limit = 50
    max_limit = 1000

    def get_offset(self, request: Request) -> int:
        return min(super().get_offset(request), MAX_OFFSET)
