"""Primary keys for API-visible rows: UUIDv7, so ids sort by creation time (cursor pagination)
and reveal nothing about other tenants' row counts."""

import uuid

from uuid_utils.compat import uuid7


def new_id() -> uuid.UUID:
    return uuid7()
