"""Human-in-the-loop approvals: requests bound to one action and one argument hash, the reviewers'
votes on them, the per-tenant rules that decide what needs a human, and autonomy grants."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.postgres.fields import ArrayField
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.timezone import now

from agents.models import Agent, Run, Tool
from tenants.ids import new_id
from tenants.models import ApiKey, TenantOwned, User

DEFAULT_TIMEOUT_SECONDS = 15 * 60


class Risk(models.TextChoices):
    """How bad a wrong action is; the same tiers as a tool's risk."""

    READ = "read", "Read"
    WRITE = "write", "Write"
    IRREVERSIBLE = "irreversible", "Irreversible"


class Reason(models.TextChoices):
    """Why a request needs a human."""

    IRREVERSIBLE = "irreversible", "Irreversible action"
    GUARDRAIL = "guardrail", "A guardrail asked for review"
    BUDGET = "budget", "Over budget"
    LOW_CONFIDENCE = "low_confidence", "Low model confidence"
    NOVEL = "novel", "Never approved before"
    POLICY = "policy", "Approval policy"


class OnReject(models.TextChoices):
    """What a rejection does to the run that asked."""

    TOOL_ERROR = "tool_error", "Tell the model (a tool error with the comment)"
    END_RUN = "end_run", "End the run"


class ApprovalRule(TenantOwned):
    """What needs a human for a tenant, optionally narrowed to one agent and/or one tool."""

    class Mode(models.TextChoices):
        ALWAYS = "always", "Always ask a human"
        NEVER = "never", "Never ask"
        RISK = "risk", "By risk tier"

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    # Both empty: the tenant's default. The most specific rule wins: agent+tool, tool, agent, default.
    agent = models.ForeignKey(Agent, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    tool = models.ForeignKey(Tool, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.RISK)
    risk_tiers = ArrayField(
        models.CharField(max_length=16, choices=Risk.choices), default=list, blank=True, help_text="Tiers that ask."
    )
    confidence_threshold = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Ask when the model reports a confidence below this (0 to 1).",
    )
    novelty = models.BooleanField(default=False, help_text="Ask for a tool and argument shape never approved before.")
    quorum = models.PositiveSmallIntegerField(default=1, validators=[MinValueValidator(1), MaxValueValidator(10)])
    timeout_seconds = models.PositiveIntegerField(
        default=DEFAULT_TIMEOUT_SECONDS, validators=[MinValueValidator(10), MaxValueValidator(7 * 24 * 3600)]
    )
    escalate_at_share = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.05), MaxValueValidator(0.95)],
        help_text="Notify admins when this share of the timeout has passed (e.g. 0.5).",
    )
    escalation_emails = ArrayField(models.EmailField(), default=list, blank=True)
    escalation_webhook_url = models.URLField(blank=True)
    escalation_webhook_secret_encrypted = models.TextField(blank=True, editable=False)
    on_reject = models.CharField(max_length=16, choices=OnReject.choices, default=OnReject.TOOL_ERROR)
    # Progressive autonomy: after this many consecutive human approvals (no rejection, no edit) of
    # one agent's tool, calls are approved without a human. None: never.
    autonomy_after = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(1000)]
    )
    autonomy_irreversible = models.BooleanField(
        default=False, help_text="Let autonomy cover irreversible tools too (off unless explicitly allowed)."
    )
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(default=now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "agent", "tool"], name="approvalrule_unique_target", nulls_distinct=False
            )
        ]

    def __str__(self) -> str:
        return f"approval rule for {self.target_label}"

    @property
    def target_label(self) -> str:
        if self.agent_id and self.tool_id:
            return f"{self.agent} · {self.tool}"
        if self.tool_id:
            return f"tool {self.tool}"
        if self.agent_id:
            return f"agent {self.agent}"
        return "the whole tenant"

    @property
    def is_default(self) -> bool:
        return self.agent_id is None and self.tool_id is None


class ApprovalRequest(TenantOwned):
    """One action waiting for (or past) a human decision, bound to one argument hash."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        EXPIRED = "expired", "Expired"
        CANCELLED = "cancelled", "Cancelled"

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    # An agent run's tool call (run, step, call) or an external client's action (no run needed).
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    step_index = models.PositiveIntegerField(null=True, blank=True)
    call_id = models.CharField(max_length=200, blank=True)
    # A tool call a model proposed in a gateway call (no run): the gateway request (x-request-id)
    # whose answer waits for the decision. The trace, end user and conversation are in `context`.
    gateway_request_id = models.CharField(max_length=64, blank=True)
    agent = models.ForeignKey(Agent, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    tool = models.ForeignKey(Tool, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    action = models.CharField(max_length=200, help_text="The tool or action name.")
    arguments = models.JSONField(default=dict)
    arguments_hash = models.CharField(max_length=64)
    arguments_shape = models.CharField(max_length=64, blank=True)
    # Set when a reviewer edited the arguments: exactly what was approved.
    edited_arguments = models.JSONField(null=True, blank=True)
    edited_arguments_hash = models.CharField(max_length=64, blank=True)
    risk = models.CharField(max_length=16, choices=Risk.choices)
    reason = models.CharField(max_length=16, choices=Reason.choices)
    reason_detail = models.TextField(blank=True)
    context = models.JSONField(default=dict, blank=True)
    rule = models.ForeignKey(ApprovalRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    quorum = models.PositiveSmallIntegerField(default=1)
    on_reject = models.CharField(max_length=16, choices=OnReject.choices, default=OnReject.TOOL_ERROR)
    requested_by_api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    requester_label = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=now)
    expires_at = models.DateTimeField()
    escalate_at = models.DateTimeField(null=True, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    decided_by_label = models.CharField(max_length=200, blank=True)
    decision_note = models.TextField(blank=True)
    callback_url = models.URLField(max_length=2000, blank=True)
    callback_secret_encrypted = models.TextField(blank=True, editable=False)
    callback_delivered_at = models.DateTimeField(null=True, blank=True)
    callback_attempts = models.PositiveSmallIntegerField(default=0)
    callback_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["tenant", "status", "-created_at"], name="approval_tenant_status_time"),
            models.Index(fields=["status", "expires_at"], name="approval_status_expiry"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "call_id"], condition=Q(run__isnull=False), name="approval_once_per_call"
            ),
            models.UniqueConstraint(
                fields=["tenant", "gateway_request_id", "call_id"],
                condition=~Q(gateway_request_id=""),
                name="approval_once_per_gateway_call",
            ),
        ]

    def __str__(self) -> str:
        return f"approval of {self.action} ({self.status})"

    @property
    def is_pending(self) -> bool:
        return self.status == self.Status.PENDING

    @property
    def is_edited(self) -> bool:
        return self.edited_arguments is not None

    @property
    def effective_arguments(self) -> Any:
        """What a decision approves: the edited arguments if a reviewer edited them."""
        return self.edited_arguments if self.edited_arguments is not None else self.arguments

    @property
    def effective_hash(self) -> str:
        return self.edited_arguments_hash or self.arguments_hash

    @property
    def wait(self) -> timedelta | None:
        """How long the request waited for its decision (None while pending)."""
        return self.decided_at - self.created_at if self.decided_at else None

    @property
    def seconds_left(self) -> int:
        return max(0, int((self.expires_at - timezone.now()).total_seconds()))


class ApprovalVote(TenantOwned):
    """One reviewer's vote on a request; a quorum of approvals (of the same arguments) approves it."""

    class Decision(models.TextChoices):
        APPROVE = "approve", "Approve"
        REJECT = "reject", "Reject"
        EDIT = "edit", "Edit and approve"

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="votes")
    decision = models.CharField(max_length=16, choices=Decision.choices)
    # Who voted, as a stable key (user or API key id) so one reviewer counts once.
    voter = models.CharField(max_length=64)
    voter_label = models.CharField(max_length=200)
    user = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    note = models.TextField(blank=True)
    arguments_hash = models.CharField(max_length=64, help_text="The arguments this vote is for.")
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["created_at"]
        constraints = [models.UniqueConstraint(fields=["request", "voter"], name="approvalvote_once_per_voter")]

    def __str__(self) -> str:
        return f"{self.voter_label} {self.decision}"


class AutonomyGrant(TenantOwned):
    """An agent allowed to call one tool without a human, earned by consecutive approvals."""

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="+")
    tool = models.ForeignKey(Tool, on_delete=models.CASCADE, related_name="+")
    streak = models.PositiveIntegerField(help_text="Consecutive human approvals when granted.")
    granted_at = models.DateTimeField(default=now)
    granted_by_label = models.CharField(max_length=200)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by_label = models.CharField(max_length=200, blank=True)
    revoke_reason = models.CharField(max_length=300, blank=True)
    auto_approved = models.PositiveIntegerField(default=0, help_text="Calls approved by this grant.")

    class Meta:
        ordering = ["-granted_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["agent", "tool"], condition=Q(revoked_at__isnull=True), name="autonomy_one_active_grant"
            )
        ]

    def __str__(self) -> str:
        return f"autonomy of {self.agent_id} for {self.tool_id}"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
