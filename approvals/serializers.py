"""API shapes of approvals. Input serializers check types; services decide."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from approvals.models import ApprovalRequest, Reason, Risk
from approvals.services import MAX_EXPIRES_IN


class ApprovalSerializer(serializers.ModelSerializer):
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


class ApprovalCreateSerializer(serializers.Serializer):
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
            required=False, help_text="What a reviewer should see (a JSON object)."
        )


class ApprovalCreatedSerializer(ApprovalSerializer):
    callback_secret = serializers.CharField(
        read_only=True, help_text="Signs the callback webhook (X-AOC-Signature); shown only now."
    )

    class Meta(ApprovalSerializer.Meta):
        fields = [*ApprovalSerializer.Meta.fields, "callback_secret"]
        read_only_fields = fields


class DecisionSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=["approve", "reject", "edit"])
    note = serializers.CharField(required=False, allow_blank=True, max_length=5000, default="")
    arguments = serializers.JSONField(required=False, help_text="The edited arguments (edit only).")
