from __future__ import annotations

from rest_framework.pagination import CursorPagination


class Pagination(CursorPagination):
    """`{results, next, previous}`; `next` is a full URL, or null on the last page.

    Cursor pagination stays correct while rows are added during a sync and costs the same
    on page 1,000 as on page 1."""

    ordering = "-created_at"
    page_size_query_param = "limit"
    max_page_size = 1000
