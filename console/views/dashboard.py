"""The tenant dashboard: today's operations (runs and errors, spend against the budgets, pending
approvals, guardrail blocks, the latest evals), then the tenancy cards, updated live over the
websocket."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.cache import cache
from django.db.models import Count, F, Max, Min, Q, Sum
from django.db.models.functions import Coalesce
from django.http import HttpResponse
from django.template.loader import render_to_string
from django.utils import timezone
from redis.exceptions import RedisError

from agents.models import Run
from approvals.selectors import approvals_pending
from budgets.models import Budget, BudgetCounter
from budgets.selectors import budgets_of, current_period, tenant_zone
from catalog.selectors import pinned_models_deprecating
from console import live
from console.access import ConsoleRequest, render_page, role_required
from evals.selectors import eval_runs_of
from guardrails.models import Action, GuardrailEvent
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


FAILED_RUNS = ("failed", "budget_exceeded", "blocked")
ACTIVE_RUNS = ("queued", "running", "awaiting_approval")
DASHBOARD_BUDGETS = 6


def operations(tenant: Tenant, *, is_reviewer: bool) -> dict[str, Any]:
    """Today's figures, "today" in the tenant's time zone as budgets count it: runs and failures,
    spend, pending approvals, guardrail blocks, the busiest budgets and the latest eval runs.
    Six queries."""
    start = timezone.now().astimezone(tenant_zone(tenant)).replace(hour=0, minute=0, second=0, microsecond=0)
    runs = (
        Run.objects.for_tenant(tenant)
        .filter(created_at__gte=start)
        .aggregate(
            total=Count("id"),
            failed=Count("id", filter=Q(status__in=FAILED_RUNS)),
            active=Count("id", filter=Q(status__in=ACTIVE_RUNS)),
            spent=Coalesce(Sum("cost_micros"), 0),
        )
    )
    pending = approvals_pending(tenant=tenant).aggregate(count=Count("id"), oldest=Min("created_at"))
    blocks = GuardrailEvent.objects.for_tenant(tenant).filter(created_at__gte=start, action=Action.BLOCK).count()
    budgets = _budgets(tenant)
    evals = list(eval_runs_of(tenant=tenant).select_related("suite")[:4])
    return {
        "today_start": start,
        "runs": runs,
        "error_rate": round(100 * runs["failed"] / runs["total"]) if runs["total"] else 0,
        "pending": pending,
        "blocks": blocks,
        "budgets": budgets,
        "evals": evals,
        "show_approvals": is_reviewer,
    }


def _budgets(tenant: Tenant) -> list[dict[str, Any]]:
    """The enabled budgets (the first DASHBOARD_BUDGETS by name) with their current period's use:
    the total, or for a per-member budget its top member's (two queries)."""
    budgets = list(budgets_of(tenant=tenant).filter(enabled=True)[:DASHBOARD_BUDGETS])
    if not budgets:
        return []
    periods = {}
    for budget in budgets:
        budget.tenant = tenant  # current_period reads its zone; no query
        periods[budget.pk] = current_period(budget)
    match = Q()
    for budget in budgets:
        match |= Q(budget=budget, period_start=periods[budget.pk][0])
    used = F("settled") + F("reserved")
    totals = {
        row["budget"]: row
        for row in BudgetCounter.objects.for_tenant(tenant)
        .filter(match)
        .values("budget")
        .annotate(total=Sum(used), top=Max(used))
    }
    rows = []
    for budget in budgets:
        row = totals.get(budget.pk)
        amount = int((row["top"] if budget.per_member else row["total"]) or 0) if row else 0
        pct = min(100, round(100 * amount / budget.limit)) if budget.limit else 100
        rows.append(
            {
                "budget": budget,
                "used": amount,
                "pct": pct,
                "level": "over" if pct >= 100 else "warn" if pct >= 80 else "ok",
                "money": budget.unit == Budget.Unit.USD_MICROS,
                "resets_at": periods[budget.pk][1],
            }
        )
    return rows


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
    try:
        raw = cache.get(HEARTBEAT_KEY)
    except RedisError:  # Redis down: the page still answers, the worker shown as not seen
        return {"seen": False}
    if not raw:
        return {"seen": False}
    age = (timezone.now() - datetime.fromisoformat(raw)).total_seconds()
    return {"seen": True, "age": int(age), "healthy": age < 60}


@role_required(Role.VIEWER)
def dashboard(request: ConsoleRequest) -> HttpResponse:
    context = dashboard_context(request.tenant, with_activity=request.membership.has_role(Role.ADMIN))
    context["ops"] = operations(request.tenant, is_reviewer=request.membership.has_role(Role.REVIEWER))
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
