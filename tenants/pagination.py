"""Cursor pagination by default: stable under inserts, cheap on deep pages."""

from rest_framework import pagination


class CursorPagination(pagination.CursorPagination):
    # Primary keys are UUIDv7, so ordering by id is ordering by creation time.
    ordering = "-id"
    page_size_query_param = "page_size"
    max_page_size = 500
