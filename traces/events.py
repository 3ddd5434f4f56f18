"""Live events of traces, pushed to the tenant's websocket group after commit."""

from __future__ import annotations

import time
from typing import Literal, TypedDict

from django.core.cache import cache

from tenants.events import send_after_commit
from tenants.models import Tenant

ANNOUNCE_EVERY_SECONDS = 1


class TracesIngested(TypedDict):
    """Spans were stored: the traces page refreshes its ingestion card and offers the new rows."""

    type: Literal["traces.ingested"]
    accepted: int


_tried: dict[object, float] = {}  # tenant -> when this process last asked Redis (monotonic seconds)


def traces_ingested(tenant: Tenant, accepted: int) -> None:
    """Announce stored spans, at most once a second per tenant (a busy client sends many batches a
    second, the run engine one a step; each page re-renders per announcement): the first process
    to set the tenant's key in Redis for the second announces. A batch inside the same second is
    not announced on its own: the next announcement or any reload shows it. A process that asked
    Redis less than a second ago does not ask again (it would be told no, or announce twice in a
    second): one Redis command a second per tenant and process, not one per batch."""
    if accepted <= 0:
        return
    now = time.monotonic()
    if now - _tried.get(tenant.pk, -ANNOUNCE_EVERY_SECONDS) < ANNOUNCE_EVERY_SECONDS:
        return
    if len(_tried) > 10_000:  # a bound, not a policy
        _tried.clear()
    _tried[tenant.pk] = now
    if cache.add(f"traces:announced:{tenant.pk}", 1, timeout=ANNOUNCE_EVERY_SECONDS):
        send_after_commit(tenant, TracesIngested(type="traces.ingested", accepted=accepted))
