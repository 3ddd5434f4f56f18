"""The tenant dashboard: cards that later capabilities fill, updated live over the websocket."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.cache import cache
from django.http import HttpResponse
from django.template.loader import render_to_string
from django.utils import timezone

from catalog.selectors import pinned_models_deprecating
from console import live
from console.access import ConsoleRequest, render_page, role_required
from tenants.models import Membership, Role, Tenant
from tenants.selectors import audit_events, tenant_stats
from tenants.tasks import HEARTBEAT_KEY


def dashboard_context(tenant: Tenant, *, with_activity: bool) -> dict[str, Any]:
    """What the stats and activity partials show; the live consumer renders them with this too."""
    context: dict[str, Any] = {
        "tenant": tenant,
        "stats": tenant_stats(tenant=tenant),
        "heartbeat": _heartbeat(),
        "deprecations": _deprecations(tenant),
    }
    if with_activity:
        context["activity"] = list(audit_events(tenant=tenant)[:8])
    return context


def _deprecations(tenant: Tenant) -> list[dict[str, Any]]:
    """Pinned models whose deprecation date is within 30 days (or past), soonest first (one query)."""
    today = timezone.localdate()
    return [
        {
            "alias": pin.alias,
            "model": pin.model,
            "date": pin.model.deprecation_date,
            "days_left": (pin.model.deprecation_date - today).days,
        }
        for pin in pinned_models_deprecating(tenant=tenant, days=30, today=today)
        if pin.model.deprecation_date is not None
    ]


def _heartbeat() -> dict[str, Any]:
    raw = cache.get(HEARTBEAT_KEY)
    if not raw:
        return {"seen": False}
    age = (timezone.now() - datetime.fromisoformat(raw)).total_seconds()
    return {"seen": True, "age": int(age), "healthy": age < 60}


@role_required(Role.VIEWER)
def dashboard(request: ConsoleRequest) -> HttpResponse:
    context = dashboard_context(request.tenant, with_activity=request.membership.has_role(Role.ADMIN))
    return render_page(request, "dashboard/index.html", context, fragment="stats")


@live.page
class LiveDashboard(live.LivePage):
    """The dashboard's cards (and, for admins, the activity feed) re-render on tenancy changes."""

    name = "dashboard"
    events = frozenset({"members.changed", "api_keys.changed", "tenant.changed"})

    def render(self, membership: Membership, event: dict[str, Any]) -> str:
        is_admin = membership.has_role(Role.ADMIN)
        context = dashboard_context(self.tenant, with_activity=is_admin)
        context.update({"live": True, "is_admin": is_admin, "tenant": self.tenant})
        names = ["dashboard/index.html#stats"]
        if is_admin:
            names.append("dashboard/index.html#activity")
        return "".join(render_to_string(name, context) for name in names)
