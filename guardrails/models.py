"""Guardrail policies (per tenant, with per-agent overrides), the tenant's guardrail settings, and
the events a check leaves behind (what was blocked, redacted or flagged, and why)."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.timezone import now

from agents.models import Agent, Run
from tenants.ids import new_id
from tenants.models import ApiKey, TenantOwned, User

STAGES = ("input", "output", "tool_call", "tool_result")
EVENT_TEXT_CHARS = 4_000


class Stage(models.TextChoices):
    INPUT = "input", "Input"
    OUTPUT = "output", "Output"
    TOOL_CALL = "tool_call", "Tool call"
    TOOL_RESULT = "tool_result", "Tool result"


class Action(models.TextChoices):
    """What a rule does when its detector finds something, from mildest to strictest."""

    FLAG = "flag", "Flag"
    REDACT = "redact", "Redact"
    REQUIRE_APPROVAL = "require_approval", "Require approval"
    BLOCK = "block", "Block"


class Policy(TenantOwned):
    """A tenant's ordered guardrail rules (agent null), or one agent's override of some stages."""

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    agent = models.ForeignKey(Agent, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    # [{"stage", "detector", "parameters", "action"}, …] in the order they run; validated by
    # guardrails.services.policy_update before it is saved.
    rules = models.JSONField(default=list)
    updated_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(default=now)

    class Meta:
        verbose_name_plural = "policies"
        constraints = [
            models.UniqueConstraint(fields=["tenant"], condition=Q(agent__isnull=True), name="policy_one_default"),
            models.UniqueConstraint(fields=["tenant", "agent"], name="policy_one_per_agent"),
        ]

    def __str__(self) -> str:
        return f"policy of {self.agent_id or 'the tenant'}"

    @property
    def stages(self) -> set[str]:
        """The stages this policy has rules for (an agent override replaces only these)."""
        return {rule["stage"] for rule in self.rules}


class GuardrailSettings(TenantOwned):
    """A tenant's guardrail settings."""

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    redact_traces = models.BooleanField(
        default=True, help_text="Mask personal data and secrets in trace payloads when they are ingested."
    )
    updated_at = models.DateTimeField(default=now)

    class Meta:
        verbose_name_plural = "guardrail settings"
        constraints = [models.UniqueConstraint(fields=["tenant"], name="guardrailsettings_one_per_tenant")]

    def __str__(self) -> str:
        return f"guardrail settings of {self.tenant_id}"


class GuardrailEvent(TenantOwned):
    """One verdict that did something (flag, redact, require approval, block): where, why, and the
    run and trace it belongs to. Findings keep no personal data or secret: their excerpts are masked."""

    class Source(models.TextChoices):
        RUN = "run", "Agent run"
        API = "api", "Check API"
        CONSOLE = "console", "Console try-it"
        GATEWAY = "gateway", "Gateway"

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    created_at = models.DateTimeField(default=now, db_index=True)
    stage = models.CharField(max_length=16, choices=Stage.choices)
    action = models.CharField(max_length=20, choices=Action.choices, db_index=True)
    reason = models.TextField()
    detectors = models.JSONField(default=list)
    findings = models.JSONField(default=list)
    # What fired and with what score (guardrails.checks.signals): names and numbers, never the
    # matched text; at most checks.MAX_SIGNALS rows.
    signals = models.JSONField(default=list, blank=True)
    # The checked text with personal data and secrets masked, cut to EVENT_TEXT_CHARS, for the
    # reviewer who judges the verdict and for the feedback export; and, for matching feedback
    # (guardrails.feedback), the hash and 5-gram sketch of the whole normalised text as checked.
    text = models.TextField(blank=True)
    fingerprint = models.CharField(max_length=64, blank=True)
    sketch = models.JSONField(default=list, blank=True)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.RUN)
    agent = models.ForeignKey(Agent, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    tool_name = models.CharField(max_length=64, blank=True)
    trace_id = models.CharField(max_length=32, blank=True)
    span_id = models.CharField(max_length=16, blank=True)
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    latency_us = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["tenant", "-created_at"], name="guardrailevent_tenant_time")]

    def __str__(self) -> str:
        return f"{self.action} at {self.stage} ({self.reason[:40]})"


class GuardrailFeedback(TenantOwned):
    """A reviewer's verdict on a checked text: a false positive (let through from then on) or a
    missed attack (blocked from then on), at one stage; matched as guardrails.feedback says."""

    class Kind(models.TextChoices):
        FALSE_POSITIVE = "false_positive", "False positive"
        MISSED_ATTACK = "missed_attack", "Missed attack"

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    stage = models.CharField(max_length=16, choices=Stage.choices)
    fingerprint = models.CharField(max_length=64)
    sketch = models.JSONField(default=list, blank=True)
    # The text with personal data and secrets masked (what the export holds), cut to EVENT_TEXT_CHARS.
    text = models.TextField(blank=True)
    # A false positive: the detectors whose findings it leaves out.
    detectors = models.JSONField(default=list, blank=True)
    note = models.CharField(max_length=500, blank=True)
    event = models.ForeignKey(GuardrailEvent, null=True, blank=True, on_delete=models.SET_NULL, related_name="feedback")
    created_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=now)
    # How often it changed a verdict since, and when last (not audited: counters).
    hits = models.PositiveIntegerField(default=0)
    last_matched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "stage", "fingerprint"], name="guardrailfeedback_one_per_text"),
        ]
        indexes = [models.Index(fields=["tenant", "-created_at"], name="guardrailfeedback_tenant_time")]

    def __str__(self) -> str:
        return f"{self.kind} at {self.stage}"

    @property
    def label(self) -> str:
        """Training label of the export: a false positive is benign, a missed attack injection."""
        return "benign" if self.kind == self.Kind.FALSE_POSITIVE else "injection"
