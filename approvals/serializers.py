"""API shapes of approvals. Input serializers check types; services decide."""

from __future__ import annotations

from typing import Any, ClassVar

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from approvals.models import ApprovalRequest, ApprovalRule, AutonomyGrant, OnReject, Reason, Risk
from approvals.services import MAX_EXPIRES_IN, RULE_FIELDS
from tenants import strict


class ApprovalSerializer(strict.ModelSerializer):
    """One request as clients see it: what was asked, and (once decided) exactly what was approved."""

    approved_arguments = serializers.SerializerMethodField(
        help_text="What the decision approved: the edited arguments when edited (null unless approved)."
    )
    edited = serializers.BooleanField(source="is_edited", read_only=True)
    decided_by = serializers.CharField(source="decided_by_label", read_only=True)
    note = serializers.CharField(source="decision_note", read_only=True)
    requester = serializers.CharField(source="requester_label", read_only=True)

    class Meta:
        model = ApprovalRequest
        fields = [
            "id",
            "status",
            "action",
            "arguments",
            "arguments_hash",
            "edited",
            "edited_arguments",
            "edited_arguments_hash",
            "approved_arguments",
            "risk",
            "reason",
            "reason_detail",
            "context",
            "run",
            "call_id",
            "gateway_request_id",
            "quorum",
            "requester",
            "created_at",
            "expires_at",
            "escalated_at",
            "decided_at",
            "decided_by",
            "note",
            "callback_url",
        ]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.OBJECT)
    @extend_schema_field({"type": "object", "nullable": True, "additionalProperties": True})
    def get_approved_arguments(self, approval: ApprovalRequest) -> object:
        return approval.effective_arguments if approval.status == ApprovalRequest.Status.APPROVED else None


class ApprovalCreateSerializer(strict.Serializer):
    action = serializers.CharField(max_length=200, help_text="The action the client will perform if approved.")
    arguments = serializers.JSONField(help_text="Its arguments (a JSON object); the approval binds their hash.")
    risk = serializers.ChoiceField(choices=Risk.choices)
    reason = serializers.ChoiceField(choices=Reason.choices)
    run = serializers.CharField(required=False, help_text="A run of this tenant the action belongs to.")
    expires_in = serializers.IntegerField(required=False, min_value=10, max_value=MAX_EXPIRES_IN)
    callback_url = serializers.CharField(
        required=False, allow_blank=True, max_length=2000, help_text="Receives the decision as a signed webhook."
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Declared here: a `context` class attribute would shadow Serializer.context.
        self.fields["context"] = serializers.JSONField(
            required=False,
            help_text="What a reviewer should see (a JSON object). `guardrail_findings` is the console's "
            "own guardrails' and is refused; send a client's findings under another key.",
        )


class ApprovalCreatedSerializer(ApprovalSerializer):
    callback_secret = serializers.CharField(
        read_only=True, help_text="Signs the callback webhook (X-AOC-Signature); shown only now."
    )

    class Meta(ApprovalSerializer.Meta):
        fields = [*ApprovalSerializer.Meta.fields, "callback_secret"]
        read_only_fields = fields


class DecisionSerializer(strict.Serializer):
    decision = serializers.ChoiceField(choices=["approve", "reject", "edit"])
    note = serializers.CharField(required=False, allow_blank=True, max_length=5000, default="")
    arguments = serializers.JSONField(required=False, help_text="The edited arguments (edit only).")


# --- Rules and autonomy (policy as code) --------------------------------------------------------


class ApprovalRuleSerializer(strict.ModelSerializer):
    """A rule as stored: the tenant default (agent and tool null) or an override."""

    agent_name = serializers.CharField(source="agent.name", read_only=True, default=None)
    tool_name = serializers.CharField(source="tool.name", read_only=True, default=None)
    escalation_webhook_secret_set = serializers.SerializerMethodField()

    class Meta:
        model = ApprovalRule
        fields = [
            "id",
            "agent",
            "agent_name",
            "tool",
            "tool_name",
            *RULE_FIELDS,
            "escalation_webhook_secret_set",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_escalation_webhook_secret_set(self, rule: ApprovalRule) -> bool:
        return bool(rule.escalation_webhook_secret_encrypted)


class ApprovalRuleWriteSerializer(strict.Serializer):
    """The settings to change (PATCH) or to start from (POST); what is left out keeps its value,
    or the built-in default for a new rule. Ranges are checked by the service (400 naming the field)."""

    mode = serializers.ChoiceField(choices=ApprovalRule.Mode.choices, required=False)
    risk_tiers = serializers.ListField(child=serializers.ChoiceField(choices=Risk.choices), required=False)
    confidence_threshold = serializers.FloatField(required=False, allow_null=True)
    novelty = serializers.BooleanField(required=False)
    quorum = serializers.IntegerField(required=False)
    timeout_seconds = serializers.IntegerField(required=False)
    escalate_at_share = serializers.FloatField(required=False, allow_null=True)
    escalation_emails = serializers.ListField(child=serializers.EmailField(), required=False)
    escalation_webhook_url = serializers.URLField(required=False, allow_blank=True)
    escalation_webhook_secret = serializers.CharField(
        required=False, allow_blank=True, write_only=True, help_text="Signs the escalation webhook; never shown again."
    )
    on_reject = serializers.ChoiceField(choices=OnReject.choices, required=False)
    autonomy_after = serializers.IntegerField(required=False, allow_null=True)
    autonomy_irreversible = serializers.BooleanField(required=False)

    # Unknown fields are refused (tenants.strict); a change's agent and tool say why.
    refusals: ClassVar[dict[str, str]] = {
        "agent": "a rule's agent and tool stay; create another rule.",
        "tool": "a rule's agent and tool stay; create another rule.",
    }


class ApprovalRuleCreateSerializer(ApprovalRuleWriteSerializer):
    agent = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, help_text="The agent (id or name); omit for any agent."
    )
    tool = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, help_text="The tool (id or name); omit for any tool."
    )


class AutonomyGrantSerializer(strict.ModelSerializer):
    agent_name = serializers.CharField(source="agent.name", read_only=True)
    tool_name = serializers.CharField(source="tool.name", read_only=True)
    active = serializers.BooleanField(source="is_active", read_only=True)

    class Meta:
        model = AutonomyGrant
        fields = [
            "id",
            "agent",
            "agent_name",
            "tool",
            "tool_name",
            "active",
            "streak",
            "granted_at",
            "granted_by_label",
            "auto_approved",
            "revoked_at",
            "revoked_by_label",
            "revoke_reason",
        ]
        read_only_fields = fields


class AutonomyRevokeSerializer(strict.Serializer):
    reason = serializers.CharField(max_length=300, help_text="Why (e.g. the incident); audited.")
