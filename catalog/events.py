"""Live events of model control, pushed to the tenant's websocket group after commit.

The console's live consumer maps an event type to the partials it re-renders (console/consumers.py);
a type it does not map is dropped there, so sending one is always safe.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Literal, TypedDict

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from tenants.models import Tenant

logger = logging.getLogger(__name__)


class PinsChanged(TypedDict):
    """A pin moved, or a pin change was requested, decided or cancelled."""

    type: Literal["pins.changed"]


class CatalogChanged(TypedDict):
    """A provider or model was added, edited or deleted."""

    type: Literal["catalog.changed"]


CatalogEvent = PinsChanged | CatalogChanged


def send_pins_changed(tenant: Tenant) -> None:
    _send_after_commit(tenant, PinsChanged(type="pins.changed"))


def send_catalog_changed(tenant: Tenant) -> None:
    _send_after_commit(tenant, CatalogChanged(type="catalog.changed"))


def _send_after_commit(tenant: Tenant, event: CatalogEvent) -> None:
    group = tenant.live_group
    transaction.on_commit(lambda: _send_now(group, event))


def _send_now(group: str, event: CatalogEvent) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        _push(group, event)
        return
    # This thread already runs an event loop (a test driving the browser through Playwright's sync
    # API calls services in it), where async_to_sync cannot run: push from a short-lived thread.
    pusher = threading.Thread(target=_push, args=(group, event), daemon=True)
    pusher.start()
    pusher.join(timeout=5)


def _push(group: str, event: CatalogEvent) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, {"type": "live.event", "event": dict(event)})
    except OSError:
        # A live push is a convenience: the change is committed and every page shows it on load.
        logger.warning("live push to %s failed", group, exc_info=True)
