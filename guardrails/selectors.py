"""Reads of guardrail policies and events."""

from __future__ import annotations

import django_filters
from django.db.models import Q, QuerySet

from agents.models import Agent
from agents.selectors import AgentFilter
from guardrails.models import Action, GuardrailEvent, GuardrailFeedback, Policy, Stage
from tenants.filters import RehearsalFilter, StrictFilterSet
from tenants.models import Tenant


def agent_overrides(*, tenant: Tenant) -> QuerySet[Policy]:
    """The agents' override policies, by agent name (one query with the agents)."""
    return Policy.objects.for_tenant(tenant).filter(agent__isnull=False).select_related("agent").order_by("agent__name")


def agents_without_override(*, tenant: Tenant) -> QuerySet[Agent]:
    """The agents (not archived) that follow the tenant's policy, by name (one query)."""
    overridden = Policy.objects.for_tenant(tenant).filter(agent__isnull=False).values("agent_id")
    return Agent.objects.for_tenant(tenant).filter(archived=False).exclude(pk__in=overridden).order_by("name")


def agent_override(*, tenant: Tenant, agent: Agent) -> Policy | None:
    """`agent`'s override policy, or None when it follows the tenant's (one query)."""
    return Policy.objects.for_tenant(tenant).filter(agent=agent).first()


def guardrail_events(
    *, tenant: Tenant, action: str = "", stage: str = "", agent_id: str = "", run_id: str = ""
) -> QuerySet[GuardrailEvent]:
    """The tenant's guardrail events, newest first, optionally narrowed (with agent and run, and
    their feedback marks in one more query)."""
    events = (
        GuardrailEvent.objects.for_tenant(tenant)
        .select_related("agent", "run")
        .prefetch_related("feedback")
        .order_by("-created_at")
    )
    if action:
        events = events.filter(action=action)
    if stage:
        events = events.filter(stage=stage)
    if agent_id:
        events = events.filter(agent_id=agent_id)
    if run_id:
        events = events.filter(run_id=run_id)
    return events


class GuardrailEventFilterSet(StrictFilterSet):
    """The events list's filters, for the API and the console: action, stage, agent (id or name),
    run, and rehearsals (events of eval runs, left out unless asked for)."""

    action = django_filters.ChoiceFilter(choices=Action.choices, empty_label="any action")
    stage = django_filters.ChoiceFilter(choices=Stage.choices, empty_label="any stage")
    agent = AgentFilter(help_text="The agent's id or name.")
    run = django_filters.UUIDFilter(field_name="run_id", help_text="A run id.")
    rehearsals = RehearsalFilter(rehearsal=lambda tenant: Q(run__metadata__has_key="eval_result"))

    class Meta:
        model = GuardrailEvent
        fields: list[str] = []


class PolicyFilterSet(StrictFilterSet):
    """The policies list has no filters: any name given is refused."""

    class Meta:
        model = Policy
        fields: list[str] = []


def feedback_entries(*, tenant: Tenant) -> QuerySet[GuardrailFeedback]:
    """The tenant's feedback set, newest first (with who marked each)."""
    return GuardrailFeedback.objects.for_tenant(tenant).select_related("created_by").order_by("-created_at")


class FeedbackFilterSet(StrictFilterSet):
    """The feedback set's filters: kind and stage."""

    kind = django_filters.ChoiceFilter(choices=GuardrailFeedback.Kind.choices, empty_label="any kind")
    stage = django_filters.ChoiceFilter(choices=Stage.choices, empty_label="any stage")

    class Meta:
        model = GuardrailFeedback
        fields: list[str] = []
