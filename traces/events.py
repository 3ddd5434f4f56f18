"""Live events of traces, pushed to the tenant's websocket group after commit."""

from __future__ import annotations

from typing import Literal, TypedDict

from django.core.cache import cache

from tenants.events import send_after_commit
from tenants.models import Tenant

ANNOUNCE_EVERY_SECONDS = 1


class TracesIngested(TypedDict):
    """Spans were stored: the traces page refreshes its ingestion card and offers the new rows."""

    type: Literal["traces.ingested"]
    accepted: int


def traces_ingested(tenant: Tenant, accepted: int) -> None:
    """Announce stored spans, at most once a second per tenant (a busy client sends many batches a
    second; each page re-renders per announcement). A batch inside the same second is not
    announced on its own: the next announcement or any reload shows it."""
    if accepted <= 0:
        return
    if cache.add(f"traces:announced:{tenant.pk}", 1, timeout=ANNOUNCE_EVERY_SECONDS):
        send_after_commit(tenant, TracesIngested(type="traces.ingested", accepted=accepted))
