"""Live events of guardrails, pushed to the tenant's websocket group after commit."""

from __future__ import annotations

from typing import Literal, TypedDict

from tenants.events import send_after_commit
from tenants.models import Tenant


class GuardrailsChanged(TypedDict):
    """A policy or an override was edited or removed."""

    type: Literal["guardrails.changed"]


class GuardrailEventRecorded(TypedDict):
    """A check flagged, redacted, blocked or asked for approval: the events list shows it."""

    type: Literal["guardrails.event"]
    action: str
    stage: str


def send_guardrails_changed(tenant: Tenant) -> None:
    send_after_commit(tenant, GuardrailsChanged(type="guardrails.changed"))


def send_guardrail_event(tenant: Tenant, *, action: str, stage: str) -> None:
    send_after_commit(tenant, GuardrailEventRecorded(type="guardrails.event", action=action, stage=stage))
