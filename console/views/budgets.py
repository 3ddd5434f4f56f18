"""Budgets in the console: each budget's usage in its current period (settled, reserved, limit)
with its top consumers, the alerts feed, a spend chart, and the ledger. Every member reads;
admins create and edit budgets through the budget services."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, F, Q, Sum, Window
from django.db.models.functions import Coalesce, RowNumber, TruncDay
from django.http import HttpResponse
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from budgets import selectors, services
from budgets.models import Budget, BudgetAlert, BudgetCounter, Reservation, period_bounds
from console import live
from console.access import ConsoleRequest, render_page, role_required
from console.forms import done, submit
from console.forms.budgets import BudgetForm, LedgerFilterForm
from console.templatetags.fmt import format_usd
from tenants.audit import Actor
from tenants.models import Membership, Role, Tenant

TOP_CONSUMERS = 5
LEDGER_PAGE = 100
ALERTS_SHOWN = 20
CHART_DAYS = 30
CHART_SERIES = 8  # the biggest spenders of each dimension; the rest are summed as "others"


def format_amount(amount: int, unit: str) -> str:
    """An amount in its unit as people read it: dollars (micro-USD / 10^6) or tokens."""
    if unit == Budget.Unit.USD_MICROS:
        return format_usd(amount)  # the console's one money format: cents, or two digits under a cent
    return f"{amount:,} tokens"


# --- The budgets page --------------------------------------------------------------------------


@dataclass
class BudgetRow:
    """One budget's current period, ready to render."""

    budget: Budget
    period_start: datetime
    resets_at: datetime | None
    settled: int
    reserved: int
    consumers: list[BudgetCounter]
    # Per-member budgets (each end user, session, key or agent against the whole limit): how many
    # members were metered this period and how many are at their limit.
    members_metered: int = 0
    members_over: int = 0

    @property
    def worst(self) -> BudgetCounter | None:
        """The member closest to (or past) the limit, for a per-member budget."""
        return self.consumers[0] if self.budget.per_member and self.consumers else None

    @property
    def bar_settled(self) -> int:
        """What the bar measures against the limit: the worst member's spend for a per-member
        budget (each member has the whole limit: their sum means nothing against it), else the total."""
        if self.budget.per_member:
            return self.worst.settled if self.worst else 0
        return self.settled

    @property
    def bar_reserved(self) -> int:
        if self.budget.per_member:
            return self.worst.reserved if self.worst else 0
        return self.reserved

    @property
    def used(self) -> int:
        return self.bar_settled + self.bar_reserved

    def _pct(self, amount: int) -> float:
        return min(100.0, 100.0 * amount / self.budget.limit) if self.budget.limit else 0.0

    @property
    def settled_pct(self) -> str:
        return f"{self._pct(self.bar_settled):.2f}"

    @property
    def reserved_pct(self) -> str:
        # Drawn after the settled part; never past the end of the bar.
        return f"{min(self._pct(self.bar_reserved), 100.0 - self._pct(self.bar_settled)):.2f}"

    @property
    def used_pct(self) -> int:
        return round(100 * self.used / self.budget.limit) if self.budget.limit else 0

    @property
    def member_noun(self) -> str:
        return {"end_user": "end user", "session": "session", "api_key": "API key", "agent": "agent"}.get(
            self.budget.scope, "member"
        )

    @property
    def level(self) -> str:
        pct = self.used_pct
        return "over" if pct >= 100 else "warn" if pct >= min(self.budget.thresholds or [100]) else "ok"

    @property
    def shows_consumers(self) -> bool:
        return self.budget.per_member

    def fmt(self, amount: int) -> str:
        return format_amount(amount, self.budget.unit)

    @property
    def settled_text(self) -> str:
        return self.fmt(self.bar_settled)

    @property
    def reserved_text(self) -> str:
        return self.fmt(self.bar_reserved)

    @property
    def total_text(self) -> str:
        return self.fmt(self.settled + self.reserved)

    @property
    def limit_text(self) -> str:
        return self.fmt(self.budget.limit)


def budget_rows(*, tenant: Tenant, at: datetime | None = None) -> list[BudgetRow]:
    """Every budget of `tenant` with its current period's totals and, for per-member budgets, its
    top consumers (the worst first), how many members were metered and how many are at their limit
    (as budgets.selectors.budget_usage answers one budget). Three queries however many budgets
    there are: the budgets, the totals of their current counters, and the top counters (a window
    per budget)."""
    at = at or timezone.now()
    zone = selectors.tenant_zone(tenant)
    budgets = list(selectors.budgets_of(tenant=tenant))
    if not budgets:
        return []
    # Each period kind has one current start for the whole tenant (one time zone).
    bounds = {period: period_bounds(period, at, zone) for period in Budget.Period.values}
    current = Q()
    for period, (start, _) in bounds.items():
        current |= Q(budget__period=period, period_start=start)
    counters = BudgetCounter.objects.for_tenant(tenant).filter(current, budget__in=budgets)
    totals: dict[Any, dict[str, Any]] = {
        row["budget_id"]: dict(row)
        for row in counters.values("budget_id").annotate(
            settled_sum=Coalesce(Sum("settled"), 0),
            reserved_sum=Coalesce(Sum("reserved"), 0),
            metered=Count("id"),
            over=Count("id", filter=Q(settled__gte=F("budget__limit") - F("reserved"))),
        )
    }
    ranked = (
        counters.exclude(budget__scope=Budget.Scope.TENANT)
        .annotate(
            total=F("settled") + F("reserved"),
            rank=Window(
                RowNumber(),
                partition_by=F("budget_id"),
                order_by=[(F("settled") + F("reserved")).desc(), "scope_value"],
            ),
        )
        .filter(rank__lte=TOP_CONSUMERS)
        .order_by("budget_id", "rank")
    )
    consumers: dict[Any, list[BudgetCounter]] = defaultdict(list)
    units = {budget.pk: budget.unit for budget in budgets}
    for counter in ranked:
        counter.settled_text = format_amount(counter.settled, units[counter.budget_id])  # type: ignore[attr-defined]
        counter.reserved_text = format_amount(counter.reserved, units[counter.budget_id])  # type: ignore[attr-defined]
        consumers[counter.budget_id].append(counter)
    rows = []
    for budget in budgets:
        start, resets_at = bounds[budget.period]
        total: dict[str, Any] = totals.get(budget.pk, {})
        rows.append(
            BudgetRow(
                budget=budget,
                period_start=start,
                resets_at=resets_at,
                settled=total.get("settled_sum", 0),
                reserved=total.get("reserved_sum", 0),
                consumers=consumers.get(budget.pk, []),
                members_metered=total.get("metered", 0) if budget.per_member else 0,
                members_over=total.get("over", 0) if budget.per_member else 0,
            )
        )
    return rows


def spend_chart(*, tenant: Tenant, at: datetime | None = None) -> dict[str, Any]:
    """Settled spend (micro-USD) per day over the last CHART_DAYS days in the tenant's time zone,
    by agent, by model and by end user: three grouped queries over settled reservations."""
    at = at or timezone.now()
    zone = selectors.tenant_zone(tenant)
    today = at.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    since = today - timedelta(days=CHART_DAYS - 1)
    days = [(since + timedelta(days=i)).date().isoformat() for i in range(CHART_DAYS)]
    settled = Reservation.objects.for_tenant(tenant).filter(
        status=Reservation.Status.SETTLED, finished_at__gte=since, actual_micros__isnull=False
    )
    dimensions = {"agent": "agent__name", "model": "model__model_id", "end_user": "end_user_id"}
    chart: dict[str, Any] = {"days": days, "unit": "USD"}
    for dimension, field in dimensions.items():
        rows = (
            settled.annotate(day=TruncDay("finished_at", tzinfo=zone))
            .values("day", field)
            .annotate(spent=Sum("actual_micros"))
            .order_by()
        )
        series: dict[str, list[float]] = defaultdict(lambda: [0.0] * CHART_DAYS)
        for row in rows:
            label = row[field] or ("(no agent)" if dimension == "agent" else "(none)")
            index = (row["day"].astimezone(zone).date() - since.date()).days
            if 0 <= index < CHART_DAYS:
                series[str(label)][index] += row["spent"] / 1_000_000
        biggest = sorted(series, key=lambda label: -sum(series[label]))
        kept = {label: series[label] for label in biggest[:CHART_SERIES]}
        if len(biggest) > CHART_SERIES:
            kept["others"] = [sum(series[label][i] for label in biggest[CHART_SERIES:]) for i in range(CHART_DAYS)]
        chart[dimension] = [{"label": label, "data": [round(v, 6) for v in data]} for label, data in kept.items()]
    return chart


def _alerts(tenant: Tenant) -> list[BudgetAlert]:
    alerts = list(selectors.alerts_of(tenant=tenant)[:ALERTS_SHOWN])
    for alert in alerts:
        alert.used_text = format_amount(alert.used, alert.budget.unit)  # type: ignore[attr-defined]
        alert.limit_text = format_amount(alert.limit, alert.budget.unit)  # type: ignore[attr-defined]
    return alerts


def _page_context(request: ConsoleRequest, **extra: Any) -> dict[str, Any]:
    tenant = request.tenant
    return {
        "rows": budget_rows(tenant=tenant),
        "alerts": _alerts(tenant),
        "chart": spend_chart(tenant=tenant),
        "zone": selectors.tenant_zone(tenant),
        **extra,
    }


@role_required(Role.VIEWER)
def budgets(request: ConsoleRequest) -> HttpResponse:
    """Every budget's usage bar and top consumers, the alerts feed and the spend chart."""
    return render_page(request, "budgets/index.html", _page_context(request), fragment="budgets")


def _budgets_url(request: ConsoleRequest) -> str:
    return reverse("console:budgets", kwargs={"tenant_slug": request.tenant.slug})


@role_required(Role.ADMIN)
@require_http_methods(["GET", "POST"])
def budget_new(request: ConsoleRequest) -> HttpResponse:
    form = BudgetForm(request.POST if request.method == "POST" else None, tenant=request.tenant)
    status = 200
    if request.method == "POST":
        submitted = submit(
            form, lambda data: services.budget_create(actor=Actor.from_request(request), tenant=request.tenant, **data)
        )
        if (budget := submitted.value) is not None:
            return done(request, f"Budget {budget.name} was created.", to=_budgets_url(request))
        status = submitted.status
    return render_page(request, "budgets/edit.html", {"form": form, "budget": None}, status=status)


@role_required(Role.ADMIN)
@require_http_methods(["GET", "POST"])
def budget_edit(request: ConsoleRequest, pk: str) -> HttpResponse:
    budget = selectors.get_budget_for_tenant(request.tenant, pk)
    status = 200
    if request.method == "POST":
        form = BudgetForm(request.POST, tenant=request.tenant, budget=budget)
        submitted = submit(
            form, lambda data: services.budget_update(actor=Actor.from_request(request), budget=budget, **data)
        )
        if submitted.ok:
            return done(request, f"Budget {form.cleaned_data['name']} was saved.", to=_budgets_url(request))
        status = submitted.status
    else:
        form = BudgetForm(initial=BudgetForm.initial_for(budget), tenant=request.tenant, budget=budget)
    return render_page(request, "budgets/edit.html", {"form": form, "budget": budget}, status=status)


# --- The ledger --------------------------------------------------------------------------------


@role_required(Role.VIEWER)
def ledger(request: ConsoleRequest) -> HttpResponse:
    """The newest LEDGER_PAGE ledger entries matching the filters, and a link to the older ones
    (one query)."""
    tenant = request.tenant
    form = LedgerFilterForm(request.GET or None, tenant=tenant)
    entries = selectors.ledger_of(tenant=tenant).select_related("reservation")
    status = 200
    if form.is_bound and not form.is_valid():
        status = 400
        entries = entries.none()
    elif form.is_bound:
        data = form.cleaned_data
        if data["budget"]:
            entries = entries.filter(counter__budget=data["budget"])
        if data["kind"]:
            entries = entries.filter(kind=data["kind"])
        if data["since"]:
            entries = entries.filter(created_at__gte=data["since"])
        if data["until"]:
            entries = entries.filter(created_at__lte=data["until"])
        if data["before"]:
            entries = entries.filter(id__lt=data["before"])
    rows = list(entries[: LEDGER_PAGE + 1])
    for entry in rows:
        unit = entry.counter.budget.unit
        entry.reserved_text = format_amount(entry.reserved_delta, unit)  # type: ignore[attr-defined]
        entry.settled_text = format_amount(entry.settled_delta, unit)  # type: ignore[attr-defined]
    older = ""
    if len(rows) > LEDGER_PAGE:
        query = request.GET.copy()
        query["before"] = str(rows[LEDGER_PAGE - 1].pk)
        older = query.urlencode()
    context = {
        "form": form,
        "entries": rows[:LEDGER_PAGE],
        "older": older,
        "zone": selectors.tenant_zone(tenant),
    }
    return render_page(request, "budgets/ledger.html", context, fragment="ledger", status=status)


@live.everywhere("budget.alert")
def budget_alert_banner(tenant: Tenant, membership: Membership, event: dict[str, Any]) -> str:
    """A banner on every page of the tenant, for everyone in it, when a budget crosses a threshold."""
    unit = str(event.get("unit", Budget.Unit.USD_MICROS))
    context = {
        "tenant": tenant,
        "alert": event,
        "used_text": format_amount(int(event.get("used", 0)), unit),
        "limit_text": format_amount(int(event.get("limit", 0)), unit),
    }
    return render_to_string("console/_budget_alert_banner.html", context)


@live.page
class LiveBudgets(live.LivePage):
    """The budgets page: the usage bars and the alerts feed re-render when a budget changes or fires."""

    name = "budgets"
    events = frozenset({"budgets.changed", "budget.alert"})

    def render(self, membership: Membership, event: dict[str, Any]) -> str:
        tenant = self.tenant
        context = {
            "rows": budget_rows(tenant=tenant),
            "alerts": _alerts(tenant),
            "zone": selectors.tenant_zone(tenant),
            "tenant": tenant,
            "is_admin": membership.has_role(Role.ADMIN),
            "live": True,
        }
        return render_to_string("budgets/index.html#budgets", context) + render_to_string(
            "budgets/index.html#alerts", context
        )
