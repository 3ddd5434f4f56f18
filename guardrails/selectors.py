"""Reads of guardrail policies and events."""

from __future__ import annotations

from django.db.models import QuerySet

from guardrails.models import GuardrailEvent, Policy
from tenants.models import Tenant


def agent_overrides(*, tenant: Tenant) -> QuerySet[Policy]:
    """The agents' override policies, by agent name (one query with the agents)."""
    return Policy.objects.for_tenant(tenant).filter(agent__isnull=False).select_related("agent").order_by("agent__name")


def guardrail_events(
    *, tenant: Tenant, action: str = "", stage: str = "", agent_id: str = "", run_id: str = ""
) -> QuerySet[GuardrailEvent]:
    """The tenant's guardrail events, newest first, optionally narrowed (with agent and run)."""
    events = GuardrailEvent.objects.for_tenant(tenant).select_related("agent", "run").order_by("-created_at")
    if action:
        events = events.filter(action=action)
    if stage:
        events = events.filter(stage=stage)
    if agent_id:
        events = events.filter(agent_id=agent_id)
    if run_id:
        events = events.filter(run_id=run_id)
    return events
