"""The one live websocket: `/ws/t/<slug>/live/` pushes re-rendered partials to a tenant's pages."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.template.loader import render_to_string

from console.views.runs import LiveRunsPage
from tenants.models import Membership, Role, Tenant

# Which partials each event re-renders. Each is a {% partialdef %} of a page template, so the
# websocket and a normal page load share one source of markup.
PARTIALS: dict[str, list[str]] = {
    "members.changed": ["dashboard/index.html#stats", "dashboard/index.html#activity"],
    "api_keys.changed": ["dashboard/index.html#stats", "dashboard/index.html#activity"],
    "tenant.changed": ["dashboard/index.html#stats"],
}


class LiveConsumer(AsyncWebsocketConsumer):
    """Joins `tenant.<id>.live` after checking that the signed-in user is a member of the tenant."""

    tenant: Tenant
    membership: Membership
    # A runs page (the list, or one run) says so in the query string (`?page=runs&status=…`,
    # `?page=run&run=<id>`) and gets only its run rows; anything else is the dashboard.
    runs_page: LiveRunsPage | None = None

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
        if params.get("page") in {"runs", "run"}:
            self.runs_page = await database_sync_to_async(LiveRunsPage.connect)(self.tenant, params)
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
        from console.views.dashboard import dashboard_context

        if self.runs_page is not None:
            if event.get("type") != "run.changed":
                return ""
            membership = Membership.objects.for_tenant(self.tenant).filter(pk=self.membership.pk).first()
            return self.runs_page.render(self.tenant, membership, event) if membership is not None else ""
        names = PARTIALS.get(event.get("type", ""), [])
        if not names:
            return ""
        # Re-read the role: a demoted admin must stop receiving the activity feed at once.
        membership = Membership.objects.for_tenant(self.tenant).filter(pk=self.membership.pk).first()
        if membership is None:
            return ""
        is_admin = membership.has_role(Role.ADMIN)
        context = dashboard_context(self.tenant, with_activity=is_admin)
        context.update({"live": True, "is_admin": is_admin, "tenant": self.tenant})
        return "".join(render_to_string(name, context) for name in names if is_admin or "#activity" not in name)
