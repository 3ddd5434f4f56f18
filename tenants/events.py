"""Live events of the tenancy kernel, pushed to the tenant's websocket group after commit.

Payloads are typed; the console's live consumer turns each into the partials it re-renders, so
markup has one source (the page template) whether it arrives by navigation or by websocket.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Coroutine, Mapping
from concurrent.futures import Future
from typing import Any, Literal, TypedDict

from channels.layers import get_channel_layer
from django.db import transaction
from redis.exceptions import RedisError

from tenants import registry
from tenants.models import Tenant

logger = logging.getLogger(__name__)


class MembersChanged(TypedDict):
    type: Literal["members.changed"]


class ApiKeysChanged(TypedDict):
    type: Literal["api_keys.changed"]


class TenantChanged(TypedDict):
    type: Literal["tenant.changed"]


# Any app's live event: a TypedDict with a `type: Literal[...]`, registered from the app's
# AppConfig.ready() (tenants.registry.register_live_events) so the kernel names none of them.
type LiveEvent = Mapping[str, object]


def send_after_commit(tenant: Tenant, event: LiveEvent) -> None:
    """Push `event` to everyone watching `tenant` once the current transaction commits.
    LookupError (at once, not after the commit) for an event of a type no app registered."""
    registry.check_live_event(event)
    group = tenant.live_group
    transaction.on_commit(lambda: send_now(group, event))


def send_now(group: str, event: LiveEvent) -> None:
    """Push `event` to `group` now, waiting (at most 5 s) until the channel layer has it.
    LookupError for an event of a type no app registered."""
    registry.check_live_event(event)
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        _pusher().submit(layer.group_send(group, {"type": "live.event", "event": dict(event)})).result(timeout=5)
    except (OSError, TimeoutError, RedisError):
        # A live push is a convenience: the change is committed and every page shows it on load.
        logger.warning("live push to %s failed", group, exc_info=True)


class _Pusher:
    """One event loop per process, in a daemon thread, that every push runs on.

    The channel layer keeps its Redis connections per event loop; `async_to_sync` would make a
    new loop (so a new connection) for every push, about 5 ms each — a run announces every step.
    Submitting to one long-lived loop reuses them, and works from any thread, including one that
    already runs a loop (where `async_to_sync` refuses to)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="live-pusher", daemon=True).start()

    def submit(self, coroutine: Coroutine[Any, Any, None]) -> Future[None]:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)


_current: _Pusher | None = None
_current_lock = threading.Lock()


def _pusher() -> _Pusher:
    """This process's pusher (a forked worker process starts its own: threads do not survive fork)."""
    global _current
    with _current_lock:
        if _current is None or _current.pid != os.getpid():
            _current = _Pusher()
        return _current
