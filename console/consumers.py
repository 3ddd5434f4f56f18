"""The one live websocket: `/ws/t/<slug>/live/` pushes re-rendered partials to a tenant's pages.

Redis errors of the channel layer (a read timeout, a dropped connection) are retried
(live.with_retries); when Redis stays away the socket is closed with 1011, never an "Exception in
ASGI application": the page says it is reconnecting, reconnects and refetches what it missed
(static/console/console.js)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from console import live
from tenants import rls
from tenants.models import Membership, Tenant
from tenants.selectors import membership_for_slug

logger = logging.getLogger(__name__)


class LiveConsumer(rls.TenantConsumerMixin, AsyncWebsocketConsumer):
    """Joins `tenant.<id>.live` after checking that the signed-in user is a member of the tenant."""

    tenant: Tenant
    membership: Membership
    # The page this socket serves (`?page=<name>&…`, see console/live.py), if it updates in place.
    page: live.LivePage | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        except live.REDIS_ERRORS as exc:
            logger.warning("live socket closed: the channel layer failed (%s: %s)", type(exc).__name__, exc)
            try:
                await send({"type": "websocket.close", "code": 1011})
            except Exception:  # the client may be gone already; nothing more to tell it
                logger.debug("live socket: the close could not be sent", exc_info=True)

    @property
    def channel_receive(self) -> Callable[[], Awaitable[dict[str, Any]]]:
        """The channel layer's receive for this socket, retried on Redis errors (AsyncConsumer
        sets the raw one when the socket starts and awaits this in its dispatch loop)."""
        raw = self._channel_receive
        return functools.partial(live.with_retries, raw, what="receive")

    @channel_receive.setter
    def channel_receive(self, raw: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        self._channel_receive = raw

    async def connect(self) -> None:
        user = self.scope.get("user")
        slug = self.scope["url_route"]["kwargs"]["tenant_slug"]
        membership = await self._membership(user, slug)
        if membership is None:
            # Closing before accepting answers the handshake with 403: not signed in or not a member.
            await self.close()
            return
        self.membership = membership
        self.tenant = membership.tenant
        rls.enter_tenant(self.tenant.pk)
        params = dict(parse_qsl(self.scope.get("query_string", b"").decode()))
        self.page = await database_sync_to_async(live.connect)(self.tenant, membership, params)
        await live.with_retries(
            lambda: self.channel_layer.group_add(self.tenant.live_group, self.channel_name), what="group_add"
        )
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "tenant"):
            await live.with_retries(
                lambda: self.channel_layer.group_discard(self.tenant.live_group, self.channel_name),
                what="group_discard",
            )

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """The socket is push-only; anything a client sends is ignored."""

    async def live_event(self, message: dict[str, Any]) -> None:
        html = await self._render(message["event"])
        if html:
            await self.send(text_data=html)

    @database_sync_to_async
    def _membership(self, user: Any, slug: str) -> Membership | None:
        membership = membership_for_slug(user=user, slug=slug)
        if membership is None or not membership.tenant.is_active:
            return None
        return membership

    @database_sync_to_async
    def _render(self, event: dict[str, Any]) -> str:
        # Re-read the membership: a demoted or removed member stops receiving what the role showed.
        membership = Membership.objects.for_tenant(self.tenant).filter(pk=self.membership.pk).first()
        if membership is None:
            return ""
        return live.render(self.page, self.tenant, membership, event)
