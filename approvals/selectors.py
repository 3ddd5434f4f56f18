"""Reads of approvals. Each returns a queryset scoped to one tenant, one row of it, or figures."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import django_filters
from django.db.models import Aggregate, Count, F, FloatField, Q, QuerySet
from django.db.models.functions import Extract

from agents.models import Agent, Tool
from agents.selectors import AgentFilter
from approvals.models import ApprovalRequest, ApprovalRule, AutonomyGrant, Reason, Risk
from tenants.filters import IsoTimeFilter, StrictFilterSet, YesNoFilter
from tenants.models import Tenant
from tenants.selectors import get_for_tenant


def get_approval_for_tenant(tenant: Tenant, pk: Any) -> ApprovalRequest:
    """One request of `tenant` (the same 404 for another tenant's and for none)."""
    return get_for_tenant(
        ApprovalRequest.objects.for_tenant(tenant).select_related("tenant", "run", "tool", "agent", "rule"),
        tenant,
        pk=pk,
    )


def approvals_pending(*, tenant: Tenant) -> QuerySet[ApprovalRequest]:
    """The queue: pending requests, oldest (closest to expiry) first."""
    return (
        ApprovalRequest.objects.for_tenant(tenant)
        .filter(status=ApprovalRequest.Status.PENDING)
        .select_related("agent", "tool")
        .annotate(votes_count=Count("votes"))
        .order_by("created_at", "id")
    )


def approvals_pending_count(*, tenant: Tenant) -> int:
    return ApprovalRequest.objects.for_tenant(tenant).filter(status=ApprovalRequest.Status.PENDING).count()


def approvals_history(*, tenant: Tenant) -> QuerySet[ApprovalRequest]:
    """Every request, newest first; narrow them with ApprovalFilterSet."""
    return ApprovalRequest.objects.for_tenant(tenant).select_related("agent", "tool").order_by("-created_at", "-id")


class ApprovalFilterSet(StrictFilterSet):
    """The requests' filters, for the API list and the console's history: status, action, reason,
    risk, agent (id or name), decider (substring) and creation time range (ISO 8601)."""

    status = django_filters.ChoiceFilter(choices=ApprovalRequest.Status.choices, empty_label="any status")
    action = django_filters.CharFilter(max_length=200)
    reason = django_filters.ChoiceFilter(choices=Reason.choices, empty_label="any reason")
    risk = django_filters.ChoiceFilter(choices=Risk.choices, empty_label="any risk")
    agent = AgentFilter(help_text="The agent's id or name.")
    decided_by = django_filters.CharFilter(
        field_name="decided_by_label", lookup_expr="icontains", max_length=200, label="Decided by"
    )
    since = IsoTimeFilter(field_name="created_at", lookup_expr="gte", help_text="Created at or after (ISO 8601).")
    until = IsoTimeFilter(field_name="created_at", lookup_expr="lt", help_text="Created before.")

    class Meta:
        model = ApprovalRequest
        fields: list[str] = []


def approval_actions(*, tenant: Tenant) -> list[str]:
    return list(
        ApprovalRequest.objects.for_tenant(tenant).order_by("action").values_list("action", flat=True).distinct()
    )


def approval_rules(*, tenant: Tenant) -> QuerySet[ApprovalRule]:
    return ApprovalRule.objects.for_tenant(tenant).select_related("agent", "tool").order_by("agent__name", "tool__name")


def approval_asking_pairs(*, tenant: Tenant) -> list[tuple[Agent, Tool]]:
    """Every agent and tool that has asked for approval, by agent then tool name (three queries)."""
    pairs = (
        ApprovalRequest.objects.for_tenant(tenant)
        .filter(agent__isnull=False, tool__isnull=False)
        .values_list("agent", "tool")
        .distinct()
    )
    agents = {a.pk: a for a in Agent.objects.for_tenant(tenant).filter(pk__in={p[0] for p in pairs})}
    tools = {t.pk: t for t in Tool.objects.for_tenant(tenant).filter(pk__in={p[1] for p in pairs})}
    return sorted(((agents[a], tools[t]) for a, t in pairs), key=lambda p: (p[0].name, p[1].name))


def autonomy_grants(*, tenant: Tenant) -> QuerySet[AutonomyGrant]:
    """Every grant, active ones first, newest first."""
    return (
        AutonomyGrant.objects.for_tenant(tenant)
        .select_related("agent", "tool")
        .order_by(F("revoked_at").desc(nulls_first=True), "-granted_at")
    )


@dataclass(frozen=True)
class Rates:
    """Outcomes of decided requests for one tool or one reviewer."""

    label: str
    total: int
    approved: int
    rejected: int
    expired: int

    def pct(self, n: int) -> int:
        return round(100 * n / self.total) if self.total else 0

    @property
    def approve_pct(self) -> int:
        return self.pct(self.approved)

    @property
    def reject_pct(self) -> int:
        return self.pct(self.rejected)

    @property
    def expire_pct(self) -> int:
        return self.pct(self.expired)


@dataclass(frozen=True)
class Metrics:
    decided: int
    pending: int
    p50_seconds: float | None
    p95_seconds: float | None
    by_tool: list[Rates]
    by_reviewer: list[Rates]


class _Percentile(Aggregate):
    """PostgreSQL's percentile_disc: the smallest value at or above the fraction (nearest rank)."""

    function = "percentile_disc"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: Any, *, fraction: float) -> None:
        super().__init__(expression, fraction=float(fraction))


def _outcomes(qs: QuerySet[ApprovalRequest], by: str) -> list[Rates]:
    rows = (
        qs.values(by)
        .annotate(
            total=Count("id"),
            approved=Count("id", filter=Q(status="approved")),
            rejected=Count("id", filter=Q(status="rejected")),
            expired=Count("id", filter=Q(status="expired")),
        )
        .order_by("-total", by)
        .values_list(by, "total", "approved", "rejected", "expired")
    )
    return [Rates(label=r[0], total=r[1], approved=r[2], rejected=r[3], expired=r[4]) for r in rows]


def approval_metrics(*, tenant: Tenant, since: datetime | None = None) -> Metrics:
    """Time to decision (p50, p95, of human decisions) and approve / reject / expire rates per
    tool and per reviewer. Four aggregate queries, computed in PostgreSQL."""
    base = ApprovalRequest.objects.for_tenant(tenant)
    if since is not None:
        base = base.filter(created_at__gte=since)
    decided = base.filter(status__in=["approved", "rejected", "expired"])
    human = decided.filter(status__in=["approved", "rejected"])
    wait = Extract(F("decided_at") - F("created_at"), "epoch")
    waits = human.aggregate(p50=_Percentile(wait, fraction=0.5), p95=_Percentile(wait, fraction=0.95))
    by_tool = _outcomes(decided, "action")
    by_reviewer = _outcomes(human, "decided_by_label")
    return Metrics(
        decided=decided.count(),
        pending=base.filter(status="pending").count(),
        p50_seconds=float(waits["p50"]) if waits["p50"] is not None else None,
        p95_seconds=float(waits["p95"]) if waits["p95"] is not None else None,
        by_tool=by_tool,
        by_reviewer=by_reviewer,
    )


class AutonomyGrantFilterSet(StrictFilterSet):
    """The autonomy grants' filters: `active` true (not revoked) or false (revoked)."""

    active = YesNoFilter(method="filter_active", help_text="Only active (or only revoked) grants.")

    class Meta:
        model = AutonomyGrant
        fields: list[str] = []

    def filter_active(self, queryset: QuerySet[AutonomyGrant], name: str, value: bool) -> QuerySet[AutonomyGrant]:
        return queryset.filter(revoked_at__isnull=value)


class ApprovalRuleFilterSet(StrictFilterSet):
    """The approval rules list has no filters: any name given is refused."""

    class Meta:
        model = ApprovalRule
        fields: list[str] = []
