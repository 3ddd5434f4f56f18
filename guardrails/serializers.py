"""API shapes of guardrail checks and policies. Input serializers check types; services decide."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from guardrails.models import GuardrailEvent, GuardrailFeedback, Policy, Stage
from tenants import strict


class StrictCharField(serializers.CharField):
    """A string, not a number or a boolean turned into one."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            raise serializers.ValidationError("A string.")
        return str(super().to_internal_value(data))


class CheckRequestSerializer(strict.Serializer):
    stage = serializers.ChoiceField(choices=Stage.choices)
    text = StrictCharField(
        required=False, allow_blank=True, trim_whitespace=False, help_text="input, output, tool_result: the text."
    )
    tool = serializers.CharField(required=False, max_length=64, help_text="tool_call, tool_result: the tool's name.")
    arguments = serializers.JSONField(required=False, help_text="tool_call: the arguments (a JSON object).")
    result = serializers.JSONField(required=False, help_text="tool_result: a JSON result instead of `text`.")
    agent = serializers.CharField(required=False, allow_null=True, help_text="The agent's id or name.")

    def validate_arguments(self, value: Any) -> Any:
        if not isinstance(value, dict):
            raise serializers.ValidationError("A JSON object.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        stage = attrs["stage"]
        if stage in ("input", "output") and "text" not in attrs:
            raise serializers.ValidationError({"text": [f"The {stage} stage checks a text: send text."]})
        if stage == "tool_call":
            if not attrs.get("tool"):
                raise serializers.ValidationError({"tool": ["A tool call names its tool."]})
            if "arguments" not in attrs:
                raise serializers.ValidationError({"arguments": ["A tool call has arguments (a JSON object)."]})
        if stage == "tool_result" and "text" not in attrs and "result" not in attrs:
            raise serializers.ValidationError({"text": ["Send the tool's result as text or result."]})
        return attrs


class FindingSerializer(strict.Serializer):
    detector = serializers.CharField()
    type = serializers.CharField()
    score = serializers.FloatField()
    reason = serializers.CharField()
    start = serializers.IntegerField(help_text="Offset of the match in the checked text.")
    end = serializers.IntegerField()
    excerpt = serializers.CharField()
    rule = serializers.IntegerField(help_text="Position (0-based) of the rule that found it.")
    action = serializers.CharField(help_text="That rule's action.")


class CheckResultSerializer(strict.Serializer):
    allowed = serializers.BooleanField()
    action = serializers.ChoiceField(choices=["allow", "flag", "redact", "require_approval", "block"])
    reason = serializers.CharField(allow_blank=True)
    findings = FindingSerializer(many=True)
    redacted_text = serializers.CharField(allow_null=True, required=False)
    redacted_arguments = serializers.JSONField(allow_null=True, required=False)
    latency_us = serializers.IntegerField()


class RuleSerializer(strict.Serializer):
    stage = serializers.ChoiceField(choices=Stage.choices)
    detector = serializers.CharField()
    parameters = serializers.JSONField(required=False)
    action = serializers.ChoiceField(choices=["block", "redact", "flag", "require_approval"])


class PolicySerializer(strict.ModelSerializer):
    agent_name = serializers.CharField(source="agent.name", read_only=True, default=None)
    rules = RuleSerializer(many=True, read_only=True)

    class Meta:
        model = Policy
        fields = ["id", "agent", "agent_name", "rules", "updated_at"]
        read_only_fields = fields


class PolicyWriteSerializer(strict.Serializer):
    rules = serializers.JSONField(help_text="The ordered rules; each {stage, detector, parameters, action}.")


class PolicyCreateSerializer(PolicyWriteSerializer):
    agent = serializers.CharField(help_text="The agent the override is for (its id or name).")


class SignalSerializer(strict.Serializer):
    detector = serializers.CharField()
    type = serializers.CharField(help_text="The pattern family, finding type, `learned` or `score` (the fused score).")
    score = serializers.FloatField(help_text="The signal's own weight or score (0-1).")
    rule = serializers.IntegerField(help_text="Position (0-based) of the rule; -1 for the tenant's feedback set.")
    action = serializers.CharField(help_text="That rule's action.")
    count = serializers.IntegerField(required=False, help_text="How many findings of this type (when not 1).")
    detail = serializers.CharField(required=False, help_text="E.g. the model's probability, the threshold.")


@extend_schema_field(
    {"type": "string", "enum": list(GuardrailFeedback.Kind.values)}, component_name="GuardrailFeedbackKind"
)
class FeedbackKindField(serializers.ChoiceField):
    """A feedback entry's kind, as its own schema component: named after the field, its enum would
    collide with other apps' `kind` enums."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=GuardrailFeedback.Kind.choices, **kwargs)


class EventFeedbackSerializer(strict.ModelSerializer):
    kind = FeedbackKindField(read_only=True)

    class Meta:
        model = GuardrailFeedback
        fields = ["id", "kind", "created_at"]
        read_only_fields = fields


class GuardrailEventSerializer(strict.ModelSerializer):
    signals = SignalSerializer(many=True, read_only=True)
    text = serializers.CharField(
        read_only=True, help_text="The checked text with personal data and secrets masked (its first 4,000 characters)."
    )
    feedback = EventFeedbackSerializer(many=True, read_only=True, help_text="Reviewers' marks on this event's text.")

    class Meta:
        model = GuardrailEvent
        fields = [
            "id",
            "created_at",
            "stage",
            "action",
            "reason",
            "detectors",
            "findings",
            "signals",
            "text",
            "feedback",
            "source",
            "agent",
            "run",
            "tool_name",
            "trace_id",
            "span_id",
            "latency_us",
        ]
        read_only_fields = fields


class FeedbackSerializer(strict.ModelSerializer):
    kind = FeedbackKindField(read_only=True)

    class Meta:
        model = GuardrailFeedback
        fields = [
            "id",
            "kind",
            "stage",
            "text",
            "detectors",
            "note",
            "event",
            "created_at",
            "hits",
            "last_matched_at",
        ]
        read_only_fields = fields


class FeedbackCreateSerializer(strict.Serializer):
    kind = FeedbackKindField()
    event = serializers.UUIDField(required=False, help_text="The guardrail event whose text is marked.")
    stage = serializers.ChoiceField(
        choices=Stage.choices, required=False, help_text="Without an event: the stage the text is checked at."
    )
    text = StrictCharField(
        required=False,
        trim_whitespace=False,
        help_text="Without an event: the text to mark (masked before it is kept).",
    )
    detectors = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="A false positive: the detectors whose findings it leaves out (injection, pii, secrets, custom).",
    )
    note = StrictCharField(required=False, allow_blank=True, max_length=500)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "event" in attrs:
            if "stage" in attrs or "text" in attrs:
                raise serializers.ValidationError({"event": ["Send an event or a stage and a text, not both."]})
        elif "stage" not in attrs or "text" not in attrs:
            raise serializers.ValidationError({"event": ["Send the event to mark, or a stage and a text."]})
        return attrs
