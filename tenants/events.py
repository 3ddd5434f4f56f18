"""Live events of the tenancy kernel, pushed to the tenant's websocket group after commit.

Payloads are typed; the console's live consumer turns each into the partials it re-renders, so
markup has one source (the page template) whether it arrives by navigation or by websocket.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import threading
from collections.abc import Mapping
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
    """Push `event` to `group` now, without waiting for the channel layer: the push is queued on
    this process's pusher, which sends its pushes one at a time in the order they were made, so
    a page never sees a run's "finished" before its last step. LookupError (at once) for an event
    of a type no app registered."""
    registry.check_live_event(event)
    layer = get_channel_layer()
    if layer is None:
        return
    _pusher().post(group, dict(event), layer)


def wait_pushed(timeout: float = 5.0) -> bool:
    """Block until every push queued so far in this process has been sent (or failed); False on
    timeout. For tests, and for a process about to exit."""
    pusher = _current
    if pusher is None or pusher.pid != os.getpid():
        return True
    return pusher.drained(timeout)


class _Pusher:
    """One event loop per process, in a daemon thread, that sends every live push in turn.

    The channel layer keeps its Redis connections per event loop; `async_to_sync` would make a
    new loop (so a new connection) for every push, about 5 ms each — a run announces every step.
    Pushes are queued from any thread (one that runs a loop of its own included) and sent one at
    a time, in order, each given PUSH_SECONDS; the caller does not wait for them. A run step
    used to wait for its push's Redis round trip through this thread (0.6 to 1.5 ms at the median
    and several ms at the tail in bench/live_push.py, of the engine's 8 ms budget a step). A push
    is a convenience: the change is committed and every page shows it on load, so one that fails
    is logged and dropped, and so are pushes beyond MAX_QUEUED (Redis unreachable for long).
    Pushes still queued when the process exits get up to EXIT_SECONDS (atexit)."""

    PUSH_SECONDS = 5.0
    MAX_QUEUED = 10_000
    EXIT_SECONDS = 2.0

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.queue: asyncio.Queue[tuple[str, dict[str, Any], Any] | Future[None]] = asyncio.Queue()
        self.queued = 0  # pushes posted and not yet sent (or failed)
        self._count = threading.Lock()
        self.loop.create_task(self._drain())
        threading.Thread(target=self.loop.run_forever, name="live-pusher", daemon=True).start()

    def post(self, group: str, event: dict[str, Any], layer: Any) -> None:
        with self._count:
            if self.queued >= self.MAX_QUEUED:
                logger.warning("live push to %s dropped: %d pushes are waiting", group, self.queued)
                return
            self.queued += 1
        self.loop.call_soon_threadsafe(self.queue.put_nowait, (group, event, layer))

    def drained(self, timeout: float) -> bool:
        marker: Future[None] = Future()
        self.loop.call_soon_threadsafe(self.queue.put_nowait, marker)
        try:
            marker.result(timeout=timeout)
        except TimeoutError:
            return False
        return True

    async def _drain(self) -> None:
        while True:
            item = await self.queue.get()
            if isinstance(item, Future):
                item.set_result(None)
                continue
            group, event, layer = item
            try:
                await asyncio.wait_for(
                    layer.group_send(group, {"type": "live.event", "event": event}), self.PUSH_SECONDS
                )
            except (OSError, TimeoutError, RedisError):
                logger.warning("live push to %s failed", group, exc_info=True)
            except Exception:  # logged whole; the pusher must go on, or every later push would wait forever
                logger.exception("live push to %s failed", group)
            finally:
                with self._count:
                    self.queued -= 1


_current: _Pusher | None = None
_current_lock = threading.Lock()


def _pusher() -> _Pusher:
    """This process's pusher (a forked worker process starts its own: threads do not survive fork)."""
    global _current
    with _current_lock:
        if _current is None or _current.pid != os.getpid():
            _current = _Pusher()
        return _current


@atexit.register
def _push_at_exit() -> None:
    if _current is not None and _current.pid == os.getpid() and _current.queued:
        wait_pushed(_Pusher.EXIT_SECONDS)
