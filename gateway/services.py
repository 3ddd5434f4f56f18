"""Writes of the gateway: what an API key's calls are for (KeyBinding)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from gateway.models import KeyBinding
from tenants import cache as config_cache
from tenants.audit import Actor
from tenants.errors import FieldError
from tenants.services import audit_record

if TYPE_CHECKING:
    from agents.models import Agent
    from tenants.models import ApiKey

END_USER = re.compile(r"^[\x21-\x7e]{1,200}$")  # as X-AOC-End-User: printable ASCII, no spaces


def key_binding_set(*, actor: Actor, api_key: ApiKey, agent: Agent | None, end_user_id: str = "") -> KeyBinding | None:
    """Bind every gateway call of `api_key` to `agent` and `end_user_id` (either may be empty),
    or unbind it when both are; audited. The binding wins over the request's X-AOC-Agent,
    X-AOC-End-User and `user`. FieldError for an agent of another tenant or an archived one, or
    an end user that is not 1 to 200 printable characters without spaces."""
    end_user_id = end_user_id.strip()
    if end_user_id and not END_USER.match(end_user_id):
        raise FieldError("end_user_id", "1 to 200 printable characters without spaces, as X-AOC-End-User takes")
    if agent is not None and (agent.tenant_id != api_key.tenant_id or agent.archived):
        raise FieldError("agent", "an active agent of this tenant")
    with transaction.atomic():
        found = KeyBinding.objects.for_tenant(api_key.tenant).select_for_update().filter(api_key=api_key).first()
        before = {"agent": str(found.agent_id or ""), "end_user_id": found.end_user_id} if found else {}
        after = {"agent": str(agent.pk) if agent else "", "end_user_id": end_user_id}
        if agent is None and not end_user_id:
            if found is not None:
                found.delete()
            binding = None
        else:
            binding = found or KeyBinding(tenant=api_key.tenant, api_key=api_key)
            binding.agent, binding.end_user_id, binding.updated_at = agent, end_user_id, timezone.now()
            binding.save()
        audit_record(
            tenant=api_key.tenant,
            actor=actor,
            action="gateway.key_binding_set",
            target=api_key,
            before=before,
            after=after if binding is not None else {},
        )
    return binding


def binding_of(api_key: ApiKey) -> KeyBinding | None:
    """The key's binding (with its agent and the agent's current version), from the configuration
    cache (tenants.cache), else one query."""
    return config_cache.cached(
        "gateway_key_binding",
        api_key.pk,
        lambda: (
            KeyBinding.objects.for_tenant(api_key.tenant)
            .select_related("agent__current_version")
            .filter(api_key=api_key)
            .first()
        ),
    )
