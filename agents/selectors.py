"""Reads of agents, tools, runs and the demo tables. Each returns a queryset scoped to one tenant,
or one row of it (the same 404 for another tenant's row and for no row)."""

from __future__ import annotations

import uuid
from typing import Any

import django_filters
from django.db.models import Prefetch, Q, QuerySet

from agents.models import Agent, AgentVersion, DemoEmail, DemoOrder, Run, Step, Tool
from tenants.filters import RehearsalFilter, StrictFilterSet, TenantRefField, YesNoFilter
from tenants.models import Tenant
from tenants.selectors import get_for_tenant


def tools_of(*, tenant: Tenant) -> QuerySet[Tool]:
    return Tool.objects.for_tenant(tenant).order_by("name")


def get_tool_for_tenant(tenant: Tenant, pk: Any) -> Tool:
    return get_for_tenant(Tool.objects.for_tenant(tenant), tenant, pk=pk)


def _with_current_version(queryset: QuerySet[Agent]) -> QuerySet[Agent]:
    """Agents with their current version and its tools: two queries however many agents."""
    return queryset.select_related("current_version").prefetch_related(
        Prefetch(
            "current_version__tools",
            queryset=Tool.objects.across_tenants("prefetched through the scoped agents").order_by("name"),
        )
    )


def agents_of(*, tenant: Tenant, include_archived: bool = False) -> QuerySet[Agent]:
    queryset = Agent.objects.for_tenant(tenant)
    if not include_archived:
        queryset = queryset.filter(archived=False)
    return _with_current_version(queryset.order_by("name"))


def get_agent_for_tenant(tenant: Tenant, pk: Any) -> Agent:
    return get_for_tenant(_with_current_version(Agent.objects.for_tenant(tenant)), tenant, pk=pk)


def find_agent(*, tenant: Tenant, ref: str) -> Agent | None:
    """The tenant's agent whose id or name is `ref`, archived or not; None when there is none."""
    queryset = _with_current_version(Agent.objects.for_tenant(tenant))
    agent = queryset.filter(name=ref).first()
    if agent is None and is_uuid(ref):
        agent = queryset.filter(pk=ref).first()
    return agent


class AgentRefField(TenantRefField):
    not_found = "no agent has the id or name {ref!r}."

    def resolve(self, ref: str) -> Any:
        assert self.tenant is not None
        return find_agent(tenant=self.tenant, ref=ref)


class AgentFilter(django_filters.Filter):
    """An agent by id or name, archived or not, resolved in the list's tenant: an unknown one is a
    bad value (400), never an empty list (the console may render it as a choice of the agents)."""

    field_class = AgentRefField

    def filter(self, qs: QuerySet[Any], value: Any) -> QuerySet[Any]:
        if value is None:
            return qs
        return qs.filter(**{self.field_name or "agent": value})


def find_tool(*, tenant: Tenant, ref: str) -> Tool | None:
    """The tenant's tool whose name or id is `ref`; None when there is none."""
    tools = Tool.objects.for_tenant(tenant)
    tool = tools.filter(name=ref).first()
    if tool is None and is_uuid(ref):
        tool = tools.filter(pk=ref).first()
    return tool


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def versions_of(*, agent: Agent) -> QuerySet[AgentVersion]:
    """The agent's versions, newest first, each with its tools and author (three queries)."""
    return (
        AgentVersion.objects.for_tenant(agent.tenant)
        .filter(agent=agent)
        .select_related("created_by")
        .prefetch_related(
            Prefetch(
                "tools", queryset=Tool.objects.across_tenants("prefetched through the scoped versions").order_by("name")
            )
        )
        .order_by("-number")
    )


def runs_of(
    *,
    tenant: Tenant,
    agent: Agent | None = None,
    status: str = "",
    end_user_id: str = "",
    session_id: str = "",
) -> QuerySet[Run]:
    """The tenant's runs, newest first, with their agent and version (one query per page)."""
    queryset = Run.objects.for_tenant(tenant).select_related("agent", "agent_version")
    if agent is not None:
        queryset = queryset.filter(agent=agent)
    if status:
        queryset = queryset.filter(status=status)
    if end_user_id:
        queryset = queryset.filter(end_user_id=end_user_id)
    if session_id:
        queryset = queryset.filter(session_id=session_id)
    return queryset.order_by("-created_at", "-id")


def get_run_for_tenant(tenant: Tenant, pk: Any) -> Run:
    return get_for_tenant(
        Run.objects.for_tenant(tenant).select_related("agent", "agent_version", "created_by", "api_key"), tenant, pk=pk
    )


def steps_of(*, run: Run) -> QuerySet[Step]:
    return Step.objects.for_tenant(run.tenant).filter(run=run).order_by("index")


def demo_orders_of(*, tenant: Tenant) -> QuerySet[DemoOrder]:
    return DemoOrder.objects.for_tenant(tenant).order_by("number")


def demo_emails_of(*, tenant: Tenant) -> QuerySet[DemoEmail]:
    return DemoEmail.objects.for_tenant(tenant).select_related("run").order_by("-created_at")


def rehearsal_runs(*, tenant: Tenant | None) -> QuerySet[Run]:
    """Eval cases' runs (rehearsals): their metadata names the eval result they execute."""
    if tenant is None:
        queryset = Run.objects.across_tenants("tenant=None asks for every tenant's rehearsals")
    else:
        queryset = Run.objects.for_tenant(tenant)
    return queryset.filter(metadata__has_key="eval_result")


ACTION_OUTCOMES = [
    ("any", "any action not done"),
    ("rejected", "an action rejected"),
    ("expired", "an approval expired"),
    ("blocked", "an action blocked"),
]


class RunFilterSet(StrictFilterSet):
    """The runs list's filters, for the API and the console: agent (id or name), status, end user,
    session, what did not happen (`actions`: rejected, expired, blocked or any) and rehearsals
    (eval runs, left out unless asked for)."""

    agent = AgentFilter(help_text="The agent's id or name.")
    status = django_filters.ChoiceFilter(choices=Run.Status.choices, empty_label="any status")
    actions = django_filters.ChoiceFilter(
        choices=ACTION_OUTCOMES,
        method="filter_actions",
        empty_label="any outcome",
        label="Actions",
        help_text="Runs with a tool call rejected by a reviewer, expired, blocked by a guardrail, or any of these.",
    )
    end_user_id = django_filters.CharFilter(max_length=200, label="End user")
    session_id = django_filters.CharFilter(max_length=200, label="Session")
    rehearsals = RehearsalFilter(rehearsal=lambda tenant: Q(metadata__has_key="eval_result"))

    class Meta:
        model = Run
        fields: list[str] = []

    def filter_actions(self, queryset: QuerySet[Run], name: str, value: str) -> QuerySet[Run]:
        if value == "any":
            return queryset.filter(Q(actions_rejected__gt=0) | Q(actions_expired__gt=0) | Q(actions_blocked__gt=0))
        return queryset.filter(**{f"actions_{value}__gt": 0})


class AgentFilterSet(StrictFilterSet):
    """The agents list's filters: archived agents are left out unless `archived` is true."""

    archived = YesNoFilter(method="filter_archived", help_text="Include archived agents (default false).")

    class Meta:
        model = Agent
        fields: list[str] = []

    def filter_queryset(self, queryset: QuerySet[Agent]) -> QuerySet[Agent]:
        if not self.form.cleaned_data.get("archived"):
            queryset = queryset.filter(archived=False)
        return super().filter_queryset(queryset)

    def filter_archived(self, queryset: QuerySet[Agent], name: str, value: bool) -> QuerySet[Agent]:
        return queryset  # applied in filter_queryset, where "not given" means false


class ToolFilterSet(StrictFilterSet):
    """The tools list has no filters: any name given is refused."""

    class Meta:
        model = Tool
        fields: list[str] = []
