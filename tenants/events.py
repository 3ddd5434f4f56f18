"""Live events of the tenancy kernel, pushed to the tenant's websocket group after commit.

Payloads are typed; the console's live consumer turns each into the partials it re-renders, so
markup has one source (the page template) whether it arrives by navigation or by websocket.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING, Literal, TypedDict

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from tenants.models import Tenant

if TYPE_CHECKING:
    from agents.events import RunChanged
    from catalog.events import CatalogChanged, PinsChanged

logger = logging.getLogger(__name__)


class MembersChanged(TypedDict):
    type: Literal["members.changed"]


class ApiKeysChanged(TypedDict):
    type: Literal["api_keys.changed"]


class TenantChanged(TypedDict):
    type: Literal["tenant.changed"]


# A lazily evaluated alias (PEP 695) so other apps' events join the union without an import cycle.
type LiveEvent = MembersChanged | ApiKeysChanged | TenantChanged | RunChanged | PinsChanged | CatalogChanged


def send_after_commit(tenant: Tenant, event: LiveEvent) -> None:
    """Push `event` to everyone watching `tenant` once the current transaction commits."""
    group = tenant.live_group
    transaction.on_commit(lambda: send_now(group, event))


def send_now(group: str, event: LiveEvent) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        _push(group, event)
        return
    # This thread already runs an event loop (e.g. a test driving Chromium through Playwright's
    # sync API calls services in it), where async_to_sync cannot run: push from a short-lived thread.
    pusher = threading.Thread(target=_push, args=(group, event), daemon=True)
    pusher.start()
    pusher.join(timeout=5)


def _push(group: str, event: LiveEvent) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, {"type": "live.event", "event": dict(event)})
    except OSError:
        # A live push is a convenience: the change is committed and every page shows it on load.
        logger.warning("live push to %s failed", group, exc_info=True)
