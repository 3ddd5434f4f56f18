"""One row per gateway request: the console's request log and usage per key (the trace holds the
detail). Written by gateway.calls when a request ends, refused or answered."""

from __future__ import annotations

from django.db import models
from django.utils.timezone import now

from tenants.models import ApiKey, TenantOwned


class GatewayRequest(TenantOwned):
    id = models.BigAutoField(primary_key=True)
    api_key = models.ForeignKey(ApiKey, null=True, on_delete=models.SET_NULL, related_name="+")
    request_id = models.CharField(max_length=40)
    endpoint = models.CharField(max_length=40)
    alias = models.CharField(max_length=200)
    model_id = models.CharField(max_length=200, blank=True)
    stream = models.BooleanField(default=False)
    status = models.PositiveSmallIntegerField()
    error_code = models.CharField(max_length=64, blank=True)
    end_user_id = models.CharField(max_length=200, blank=True)
    session_id = models.CharField(max_length=200, blank=True)
    agent_id = models.CharField(max_length=64, blank=True)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cost_micros = models.BigIntegerField(default=0)
    latency_ms = models.FloatField(default=0)
    trace_id = models.CharField(max_length=32)
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="gateway_req_recent"),
            models.Index(fields=["tenant", "api_key", "-created_at"], name="gateway_req_key"),
        ]

    def __str__(self) -> str:
        return f"{self.endpoint} {self.alias} {self.status}"


class KeyBinding(TenantOwned):
    """What every gateway call made with one API key is for, whatever the request says: a catalog
    agent (its guardrail policy, tools and approval rules) and an end user (its budgets)."""

    api_key = models.OneToOneField(ApiKey, on_delete=models.CASCADE, related_name="+")
    # PROTECT: a key bound to an agent must never silently lose the policy it was bound to.
    agent = models.ForeignKey("agents.Agent", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    end_user_id = models.CharField(max_length=200, blank=True)
    updated_at = models.DateTimeField(default=now)

    def __str__(self) -> str:
        return f"binding of key {self.api_key_id}"
