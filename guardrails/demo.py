"""The demo tenants' guardrails: the default policy, created up front so the console shows it."""

from __future__ import annotations

from guardrails.services import policy_ensure_default, settings_for
from tenants.models import Tenant


def seed_guardrails(tenant: Tenant) -> None:
    """The tenant's default policy and settings (idempotent)."""
    policy_ensure_default(tenant=tenant)
    settings_for(tenant)
