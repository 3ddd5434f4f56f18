"""Budgets in the console: each budget's usage in its current period (settled, reserved, limit)
with its top consumers, the alerts feed, a spend chart, and the ledger. Every member reads;
admins create and edit budgets through the budget services."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django import forms
from django.contrib import messages
from django.db.models import Count, F, Q, Sum, Window
from django.db.models.functions import Coalesce, RowNumber, TruncDay
from django.http import HttpResponse
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from agents.models import Agent
from budgets import selectors, services
from budgets.models import Budget, BudgetAlert, BudgetCounter, LedgerEntry, Reservation, period_bounds
from console import live
from console.access import ConsoleRequest, render_page, role_required
from console.templatetags.fmt import format_usd
from tenants.audit import Actor
from tenants.errors import ServiceError
from tenants.filters import StrictFilterForm
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


# --- Forms: they parse input; the services validate and decide ---------------------------------


class BudgetForm(forms.Form):
    name = forms.CharField(max_length=100)
    scope = forms.ChoiceField(choices=Budget.Scope.choices, help_text="What is counted separately.")
    agent = forms.ModelChoiceField(
        queryset=Agent.objects.none(), required=False, empty_label="Every agent", help_text="Count only this agent."
    )
    period = forms.ChoiceField(choices=Budget.Period.choices, help_text="In the tenant's time zone.")
    unit = forms.ChoiceField(choices=[("usd_micros", "USD"), ("tokens", "Tokens")])
    limit = forms.CharField(max_length=30, help_text="In USD (e.g. 25.00) or in tokens, per the unit.")
    thresholds = forms.CharField(
        max_length=100, required=False, initial="70, 80, 100", help_text="Alert at these percentages of the limit."
    )
    on_exceed = forms.ChoiceField(
        choices=Budget.OnExceed.choices,
        label="When exceeded",
        help_text="Alert only: a soft budget that never refuses.",
    )
    meter_anonymous = forms.BooleanField(
        required=False,
        label="Meter calls without an end user or session",
        help_text="Off: a per-end-user or per-session budget applies only to calls that name one. "
        "On: calls that name none count together as one “(none given)” member.",
    )
    notify_emails = forms.CharField(
        max_length=2000,
        required=False,
        label="Alert emails",
        help_text="Who is emailed when a threshold is crossed, separated by commas; may be empty.",
    )
    webhook_url = forms.CharField(
        max_length=500,
        required=False,
        label="Alert webhook",
        help_text="Alerts are POSTed here as signed JSON (https; retried while it fails); may be empty.",
    )
    webhook_secret = forms.CharField(
        max_length=200,
        required=False,
        label="Webhook signing secret",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Signs each webhook (X-AOC-Signature). Leave empty to keep the current one.",
    )
    remove_webhook_secret = forms.BooleanField(required=False, label="Remove the signing secret")
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args: Any, tenant: Tenant, budget: Budget | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        agent_field = self.fields["agent"]
        assert isinstance(agent_field, forms.ModelChoiceField)
        # Archived agents are offered only to the budget already narrowed to one, so it stays valid.
        offered = Q(archived=False) | Q(pk=budget.agent_id) if budget and budget.agent_id else Q(archived=False)
        agent_field.queryset = Agent.objects.for_tenant(tenant).filter(offered).order_by("name")

    def clean_notify_emails(self) -> list[str]:
        # The service validates each address and names a bad one beside this field.
        return [e for e in self.cleaned_data["notify_emails"].replace(",", " ").split() if e]

    def clean_thresholds(self) -> list[int]:
        raw = self.cleaned_data["thresholds"].replace(",", " ").split()
        try:
            values = sorted({int(v.rstrip("%")) for v in raw})
        except ValueError:
            raise forms.ValidationError("Whole percentages separated by commas, e.g. 70, 80, 100.") from None
        if any(not 1 <= v <= 100 for v in values):
            raise forms.ValidationError("Each threshold is a percentage from 1 to 100.")
        return values

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        # The service's webhook_secret: None keeps it, "" removes it, anything else replaces it.
        secret = data.pop("webhook_secret", "") or None
        data["webhook_secret"] = "" if data.pop("remove_webhook_secret", False) else secret
        raw, unit = str(data.get("limit", "")).strip().replace(",", "").lstrip("$"), data.get("unit")
        if raw and unit:
            try:
                value = Decimal(raw)
            except InvalidOperation:
                self.add_error("limit", "Enter a number, e.g. 25.00 (USD) or 100000 (tokens).")
                return data
            amount = value * 1_000_000 if unit == Budget.Unit.USD_MICROS else value
            if amount != amount.to_integral_value():
                self.add_error(
                    "limit", "USD limits have at most 6 decimals." if unit == "usd_micros" else "Tokens are whole."
                )
            elif amount <= 0:
                self.add_error("limit", "The limit must be more than zero.")
            elif amount >= 2**63:
                self.add_error("limit", "That limit is too large.")
            else:
                data["limit"] = int(amount)
        return data


def _form_initial(budget: Budget) -> dict[str, Any]:
    limit: Any = budget.limit
    if budget.unit == Budget.Unit.USD_MICROS:
        limit = str((Decimal(budget.limit) / 1_000_000).normalize())
    return {
        "name": budget.name,
        "scope": budget.scope,
        "agent": budget.agent_id,
        "period": budget.period,
        "unit": budget.unit,
        "limit": limit,
        "thresholds": ", ".join(str(t) for t in budget.thresholds),
        "on_exceed": budget.on_exceed,
        "notify_emails": ", ".join(budget.notify_emails),
        "webhook_url": budget.webhook_url,
        "enabled": budget.enabled,
        "meter_anonymous": budget.meter_anonymous,
    }


def _service_error_into(form: forms.Form, exc: ServiceError) -> None:
    """Show a service's refusal beside the field it names, or above the form."""
    field = getattr(exc, "field", None)
    if field in form.fields:
        form.add_error(field, getattr(exc, "detail", exc.message))
        return
    # Other refusals (a duplicate name's ConflictError) say "<field>: <why>".
    named, _, why = exc.message.partition(": ")
    if why and named in form.fields:
        form.add_error(named, why)
    else:
        form.add_error(None, exc.message)


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


@role_required(Role.ADMIN)
@require_http_methods(["GET", "POST"])
def budget_new(request: ConsoleRequest) -> HttpResponse:
    form = BudgetForm(request.POST if request.method == "POST" else None, tenant=request.tenant)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                budget = services.budget_create(
                    actor=Actor.from_request(request), tenant=request.tenant, **form.cleaned_data
                )
            except ServiceError as exc:
                _service_error_into(form, exc)
            else:
                messages.success(request, f"Budget {budget.name} was created.")
                return redirect("console:budgets", tenant_slug=request.tenant.slug)
        status = 400
    return render_page(request, "budgets/edit.html", {"form": form, "budget": None}, status=status)


@role_required(Role.ADMIN)
@require_http_methods(["GET", "POST"])
def budget_edit(request: ConsoleRequest, pk: str) -> HttpResponse:
    budget = selectors.get_budget_for_tenant(request.tenant, pk)
    status = 200
    if request.method == "POST":
        form = BudgetForm(request.POST, tenant=request.tenant, budget=budget)
        if form.is_valid():
            try:
                services.budget_update(actor=Actor.from_request(request), budget=budget, **form.cleaned_data)
            except ServiceError as exc:
                _service_error_into(form, exc)
            else:
                messages.success(request, f"Budget {form.cleaned_data['name']} was saved.")
                return redirect("console:budgets", tenant_slug=request.tenant.slug)
        status = 400
    else:
        form = BudgetForm(initial=_form_initial(budget), tenant=request.tenant, budget=budget)
    return render_page(request, "budgets/edit.html", {"form": form, "budget": budget}, status=status)


# --- The ledger --------------------------------------------------------------------------------


class LedgerFilterForm(StrictFilterForm):
    """The ledger's filters; a name that is none of them is refused (tenants.filters)."""

    budget = forms.ModelChoiceField(queryset=Budget.objects.none(), required=False, empty_label="Every budget")
    kind = forms.ChoiceField(choices=[("", "Every kind"), *LedgerEntry.Kind.choices], required=False)
    since = forms.DateTimeField(required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    until = forms.DateTimeField(required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    # The next page: entries older than this id (ids follow the order entries were written).
    before = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def __init__(self, *args: Any, tenant: Tenant, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        budget_field = self.fields["budget"]
        assert isinstance(budget_field, forms.ModelChoiceField)
        budget_field.queryset = Budget.objects.for_tenant(tenant).order_by("name")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            self.add_error("until", "Until must be after since.")
        return data


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
