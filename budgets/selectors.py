"""Reads of budgets: which budgets apply to a request, current usage, the ledger and alerts."""

from __future__ import annotations

import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import django_filters
from django.core.exceptions import ValidationError
from django.db.models import Count, F, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from agents.selectors import AgentFilter
from budgets.models import Budget, BudgetAlert, BudgetCounter, LedgerEntry, Reservation, period_bounds
from catalog.models import LanguageModel
from catalog.selectors import PinNotFoundError, pinned_model
from tenants.filters import StrictFilterSet, YesNoFilter
from tenants.models import Tenant
from tenants.selectors import get_for_tenant


@dataclass(frozen=True)
class Applicable:
    """One budget that applies to a request, and the counter key the request is counted under."""

    budget: Budget
    period_start: datetime
    resets_at: datetime | None
    scope_value: str

    @property
    def key(self) -> tuple[str, datetime, str]:
        return (str(self.budget.pk), self.period_start, self.scope_value)


def tenant_zone(tenant: Tenant) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(tenant.timezone or "UTC")


def current_period(budget: Budget, *, at: datetime | None = None) -> tuple[datetime, datetime | None]:
    """The start of `budget`'s period containing `at` (default now) in its tenant's time zone, and
    when the next one starts (None for `total`)."""
    return period_bounds(budget.period, at or timezone.now(), tenant_zone(budget.tenant))


def budgets_of(*, tenant: Tenant) -> QuerySet[Budget]:
    return Budget.objects.for_tenant(tenant).select_related("agent").order_by("name")


def get_budget_for_tenant(tenant: Tenant, pk: Any) -> Budget:
    return get_for_tenant(Budget.objects.for_tenant(tenant).select_related("tenant", "agent"), tenant, pk=pk)


def get_reservation_for_tenant(tenant: Tenant, pk: Any) -> Reservation:
    return get_for_tenant(Reservation.objects.for_tenant(tenant).select_related("tenant", "model"), tenant, pk=pk)


def applicable_budgets(
    *,
    tenant: Tenant,
    agent_id: Any = None,
    api_key_id: Any = None,
    end_user_id: str = "",
    session_id: str = "",
    at: datetime | None = None,
) -> list[Applicable]:
    """Every enabled budget of `tenant` that counts this request, by name (one query).

    An agent budget counts only requests made for an agent, an API key budget only requests made
    with a key, and a per-end-user or per-session budget only requests that name an end user or a
    session, unless it `meter_anonymous`: then a request without one is counted under "" (one
    shared anonymous bucket, shown as "(none given)"), so leaving the id out cannot dodge it."""
    at = at or timezone.now()
    zone = tenant_zone(tenant)
    narrowing = Q(agent__isnull=True) | Q(agent_id=agent_id) if agent_id else Q(agent__isnull=True)
    found = []
    for budget in Budget.objects.for_tenant(tenant).filter(narrowing, enabled=True).order_by("name", "id"):
        budget.tenant = tenant  # already known: no query per budget
        values = {
            Budget.Scope.TENANT: "",
            Budget.Scope.AGENT: str(agent_id) if agent_id else None,
            Budget.Scope.API_KEY: str(api_key_id) if api_key_id else None,
            Budget.Scope.END_USER: end_user_id or ("" if budget.meter_anonymous else None),
            Budget.Scope.SESSION: session_id or ("" if budget.meter_anonymous else None),
        }
        value = values[Budget.Scope(budget.scope)]
        if value is None:
            continue
        start, resets_at = period_bounds(budget.period, at, zone)
        found.append(Applicable(budget=budget, period_start=start, resets_at=resets_at, scope_value=value))
    return found


def resolve_model(*, tenant: Tenant, name: str) -> LanguageModel:
    """The exact model `name` means: a pinned alias first, else one of the tenant's exact model ids
    (or a model's own id). Raises LookupError with a message when it names none, or several."""
    name = name.strip()
    try:
        return pinned_model(tenant=tenant, alias=name)
    except PinNotFoundError:
        pass
    models = LanguageModel.objects.for_tenant(tenant).select_related("provider")
    matches = list(models.filter(model_id=name)[:2])
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise LookupError(f"{name!r} is the id of several models (one per provider); send the model's own id.")
    try:
        return models.get(pk=name)
    except (LanguageModel.DoesNotExist, ValidationError, ValueError, TypeError) as exc:
        raise LookupError(f"{name!r} is neither a pinned alias nor an exact model id of this tenant.") from exc


@dataclass(frozen=True)
class MemberUsage:
    """One member's counter (an end user, session, agent or key) against the budget's whole limit.
    `used` is settled spend, as in a refusal's figures."""

    member: str
    used: int
    reserved: int
    remaining: int


@dataclass(frozen=True)
class Usage:
    """A budget's current period: totals over every scope value, the top members, and what is
    left: for a per-member budget, of the member asked about or the top member, never of the sum."""

    budget: Budget
    period_start: datetime
    resets_at: datetime | None
    settled: int
    reserved: int
    counters: Sequence[BudgetCounter]
    members_metered: int = 0
    members_over: int = 0
    member: MemberUsage | None = None

    @property
    def used(self) -> int:
        return self.settled + self.reserved

    @property
    def members(self) -> list[MemberUsage]:
        return [_member(self.budget, c) for c in self.counters] if self.budget.per_member else []

    @property
    def remaining(self) -> int:
        if self.budget.per_member:
            return self.member.remaining if self.member else self.budget.limit
        return max(self.budget.limit - self.used, 0)


def _member(budget: Budget, counter: BudgetCounter) -> MemberUsage:
    return MemberUsage(
        member=counter.scope_value,
        used=counter.settled,
        reserved=counter.reserved,
        remaining=max(budget.limit - counter.settled - counter.reserved, 0),
    )


def budget_usage(*, budget: Budget, at: datetime | None = None, top: int = 10, member: str | None = None) -> Usage:
    """The current period of `budget`: settled and reserved summed over every scope value, how
    many members were metered and how many are at their limit, the `top` counters by settled +
    reserved, and for a per-member budget the usage of `member` (default: the top member). Two
    queries, three for a `member` outside the top."""
    start, resets_at = current_period(budget, at=at)
    counters = BudgetCounter.objects.for_tenant(budget.tenant).filter(budget=budget, period_start=start)
    totals = counters.annotate(total=F("settled") + F("reserved")).aggregate(
        settled=Coalesce(Sum("settled"), 0),
        reserved=Coalesce(Sum("reserved"), 0),
        metered=Count("id"),
        over=Count("id", filter=Q(total__gte=budget.limit)),
    )
    biggest = list(counters.annotate(total=F("settled") + F("reserved")).order_by("-total", "scope_value")[:top])
    focus = None
    if budget.per_member:
        chosen: BudgetCounter | None = (
            next((c for c in biggest if c.scope_value == member), None) if member is not None else None
        )
        if member is not None and chosen is None:
            chosen = counters.filter(scope_value=member).first()
            focus = _member(budget, chosen) if chosen else MemberUsage(member, 0, 0, budget.limit)
        elif chosen is not None or biggest:
            focus = _member(budget, chosen or biggest[0])
    return Usage(
        budget=budget,
        period_start=start,
        resets_at=resets_at,
        settled=totals["settled"],
        reserved=totals["reserved"],
        counters=biggest,
        members_metered=totals["metered"] if budget.per_member else 0,
        members_over=totals["over"] if budget.per_member else 0,
        member=focus,
    )


def ledger_of(*, tenant: Tenant, budget: Budget | None = None) -> QuerySet[LedgerEntry]:
    """The tenant's ledger, newest first, with counters and budgets (one query)."""
    entries = LedgerEntry.objects.for_tenant(tenant).select_related("counter__budget")
    if budget is not None:
        entries = entries.filter(counter__budget=budget)
    return entries.order_by("-id")


def alerts_of(*, tenant: Tenant) -> QuerySet[BudgetAlert]:
    return BudgetAlert.objects.for_tenant(tenant).select_related("budget").order_by("-created_at")


@dataclass(frozen=True)
class Discrepancy:
    """A counter that differs from the sum of its ledger entries."""

    counter: BudgetCounter
    ledger_reserved: int
    ledger_settled: int

    def describe(self) -> str:
        c = self.counter
        return (
            f"counter {c.pk} (budget {c.budget_id}, period {c.period_start:%Y-%m-%d}, scope value {c.scope_value!r}): "
            f"reserved {c.reserved} but ledger {self.ledger_reserved}; "
            f"settled {c.settled} but ledger {self.ledger_settled}"
        )


def ledger_discrepancies(*, tenant: Tenant | None = None) -> list[Discrepancy]:
    """Every counter whose reserved or settled differs from its ledger's sums (one query)."""
    counters = (
        BudgetCounter.objects.across_tenants("budgets_verify: every tenant's ledger")
        if tenant is None
        else BudgetCounter.objects.for_tenant(tenant)
    )
    annotated = counters.annotate(
        ledger_reserved=Coalesce(Sum("entries__reserved_delta"), 0),
        ledger_settled=Coalesce(Sum("entries__settled_delta"), 0),
    ).filter(~Q(reserved=F("ledger_reserved")) | ~Q(settled=F("ledger_settled")))
    return [
        Discrepancy(counter=c, ledger_reserved=c.ledger_reserved, ledger_settled=c.ledger_settled)
        for c in annotated.order_by("id")
    ]


class BudgetFilterSet(StrictFilterSet):
    """The budgets list's filters: scope, agent (id or name), period, unit, enabled."""

    scope = django_filters.ChoiceFilter(choices=Budget.Scope.choices)
    agent = AgentFilter(help_text="The agent's id or name (budgets of that agent).")
    period = django_filters.ChoiceFilter(choices=Budget.Period.choices)
    unit = django_filters.ChoiceFilter(choices=Budget.Unit.choices)
    enabled = YesNoFilter()

    class Meta:
        model = Budget
        fields: list[str] = []
