"""The one live websocket: `/ws/t/<slug>/live/` pushes re-rendered partials to a tenant's pages."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from console import live
from tenants.models import Membership, Tenant


class LiveConsumer(AsyncWebsocketConsumer):
    """Joins `tenant.<id>.live` after checking that the signed-in user is a member of the tenant."""

    tenant: Tenant
    membership: Membership
    # The page this socket serves (`?page=<name>&…`, see console/live.py), if it updates in place.
    page: live.LivePage | None = None

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
        params = dict(parse_qsl(self.scope.get("query_string", b"").decode()))
        self.page = await database_sync_to_async(live.connect)(self.tenant, membership, params)
        await self.channel_layer.group_add(self.tenant.live_group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "tenant"):
            await self.channel_layer.group_discard(self.tenant.live_group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """The socket is push-only; anything a client sends is ignored."""

    async def live_event(self, message: dict[str, Any]) -> None:
        html = await self._render(message["event"])
        if html:
            await self.send(text_data=html)

    @database_sync_to_async
    def _membership(self, user: Any, slug: str) -> Membership | None:
        if user is None or not user.is_authenticated:
            return None
        membership = Membership.objects.select_related("tenant").filter(tenant__slug=slug, user=user).first()
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
