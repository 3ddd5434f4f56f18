"""The console's Gateway page: how to point an agent at the gateway (snippets filled with this
console's URL and the tenant's aliases), the live request log, and usage per key."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Count, Q, Sum
from django.http import HttpResponse
from django.utils import timezone

from catalog.selectors import pins_of
from console.access import ConsoleRequest, render_page, role_required
from gateway.models import GatewayRequest
from tenants.models import Role

LOG_SIZE = 50


@role_required(Role.VIEWER)
def gateway(request: ConsoleRequest) -> HttpResponse:
    tenant = request.tenant
    requests = GatewayRequest.objects.for_tenant(tenant).select_related("api_key")
    since = timezone.now() - timedelta(days=1)
    usage = (
        requests.filter(created_at__gte=since)
        .values("api_key__name", "api_key__prefix")
        .annotate(
            calls=Count("id"),
            errors=Count("id", filter=Q(status__gte=400)),
            input_tokens=Sum("input_tokens"),
            output_tokens=Sum("output_tokens"),
            cost_micros=Sum("cost_micros"),
        )
        .order_by("-cost_micros", "-calls")
    )
    aliases = [pin.alias for pin in pins_of(tenant=tenant)]
    log = list(requests[:LOG_SIZE])
    for row in log:
        row.cost_usd = _usd(row.cost_micros)  # type: ignore[attr-defined]
    per_key = [{**u, "cost_usd": _usd(u["cost_micros"] or 0)} for u in usage]
    context = {
        "base_url": request.build_absolute_uri("/v1").rstrip("/"),
        "root_url": request.build_absolute_uri("/").rstrip("/"),
        "alias": "default" if "default" in aliases or not aliases else aliases[0],
        "aliases": aliases,
        "log": log,
        "usage": per_key,
    }
    return render_page(request, "gateway/index.html", context, fragment="log")


def _usd(micros: int) -> str:
    return f"{micros / 1_000_000:.6f}"
