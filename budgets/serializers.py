"""API shapes of budgets and reservations. Input serializers check types; services decide."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from django.utils import timezone
from rest_framework import serializers

from budgets.models import Budget, BudgetCounter, LedgerEntry, Reservation
from budgets.services import MAX_THRESHOLD, MAX_TOKENS
from tenants import strict


class BudgetSerializer(strict.ModelSerializer):
    webhook_secret_set = serializers.SerializerMethodField(help_text="Whether alert webhooks are signed.")

    def get_webhook_secret_set(self, budget: Budget) -> bool:
        return bool(budget.webhook_secret_encrypted)

    class Meta:
        model = Budget
        fields = [
            "id",
            "name",
            "scope",
            "agent",
            "period",
            "unit",
            "limit",
            "thresholds",
            "on_exceed",
            "enabled",
            "meter_anonymous",
            "notify_emails",
            "webhook_url",
            "webhook_secret_set",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class BudgetWriteSerializer(strict.Serializer):
    name = serializers.CharField(max_length=100)
    scope = serializers.ChoiceField(choices=Budget.Scope.choices, default=Budget.Scope.TENANT)
    agent = serializers.CharField(
        required=False, allow_null=True, help_text="Narrow the budget to one agent (its id or name)."
    )
    period = serializers.ChoiceField(choices=Budget.Period.choices, default=Budget.Period.MONTH)
    unit = serializers.ChoiceField(choices=Budget.Unit.choices, default=Budget.Unit.USD_MICROS)
    limit = serializers.IntegerField(min_value=1, max_value=2**62, help_text="In micro-USD or tokens.")
    thresholds = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_THRESHOLD),
        required=False,
        max_length=20,
        help_text="Alert at these percentages of the limit (default 70, 80, 100).",
    )
    on_exceed = serializers.ChoiceField(choices=Budget.OnExceed.choices, default=Budget.OnExceed.BLOCK)
    enabled = serializers.BooleanField(default=True)
    meter_anonymous = serializers.BooleanField(
        default=False,
        help_text="A per-end-user or per-session budget applies only to calls that name an end user (a session); "
        "true also counts the calls that name none, together in one anonymous bucket.",
    )
    notify_emails = serializers.ListField(
        child=serializers.EmailField(), required=False, max_length=20, help_text="Emailed when a threshold is crossed."
    )
    webhook_url = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=500,
        help_text="Alerts are POSTed here as signed JSON (X-AOC-Signature), retried with backoff.",
    )
    webhook_secret = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=200,
        write_only=True,
        help_text="Signs alert webhooks (HMAC-SHA256 of `timestamp.body`). Write-only; empty removes it.",
    )


class CounterSerializer(strict.ModelSerializer):
    class Meta:
        model = BudgetCounter
        fields = ["scope_value", "settled", "reserved"]
        read_only_fields = fields


class MemberUsageSerializer(strict.Serializer):
    member = serializers.CharField(help_text='The scope value ("" for the anonymous bucket).')
    used = serializers.IntegerField(help_text="Settled spend.")
    reserved = serializers.IntegerField()
    remaining = serializers.IntegerField(help_text="limit - used - reserved, at least 0.")


class UsageSerializer(strict.Serializer):
    budget = serializers.UUIDField(source="budget.pk")
    unit = serializers.CharField(source="budget.unit")
    limit = serializers.IntegerField(source="budget.limit")
    period_start = serializers.DateTimeField()
    resets_at = serializers.DateTimeField(allow_null=True)
    settled = serializers.IntegerField()
    reserved = serializers.IntegerField()
    remaining = serializers.IntegerField(
        help_text="What is left: of the whole limit for a tenant budget; for a per-member budget, of the member "
        "asked about (?member=) or else the top member, each member counting against the whole limit."
    )
    scope = serializers.CharField(source="budget.scope")
    members_metered = serializers.IntegerField(help_text="Members (scope values) counted this period.")
    members_over = serializers.IntegerField(help_text="Members at or past the limit.")
    member = MemberUsageSerializer(allow_null=True, help_text="Whom `remaining` is for (null for a tenant budget).")
    members = MemberUsageSerializer(many=True, help_text="The top members by settled + reserved.")
    top = CounterSerializer(source="counters", many=True, help_text="The biggest scope values, by settled + reserved.")


class ReservationCreateSerializer(strict.Serializer):
    model = serializers.CharField(max_length=200, help_text="A pinned alias or an exact model id.")
    input_tokens = serializers.IntegerField(
        min_value=0,
        max_value=MAX_TOKENS,
        required=False,
        allow_null=True,
        help_text="Also accepted as `prompt_tokens`.",
    )
    input_text = serializers.CharField(
        required=False, allow_blank=True, trim_whitespace=False, max_length=4 * MAX_TOKENS
    )
    max_output_tokens = serializers.IntegerField(
        min_value=0, max_value=MAX_TOKENS, help_text="Also accepted as `max_tokens` or `max_completion_tokens`."
    )
    end_user_id = serializers.CharField(
        max_length=200, required=False, allow_blank=True, default="", help_text="Also accepted as `user`."
    )
    session_id = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    agent = serializers.CharField(required=False, allow_null=True, help_text="The agent's id or name.")

    # OpenAI's names for the same things (a client coming from its API writes those).
    aliases: ClassVar[dict[str, tuple[str, bool]]] = {
        "max_tokens": ("max_output_tokens", True),
        "max_completion_tokens": ("max_output_tokens", True),
        "prompt_tokens": ("input_tokens", True),
        "user": ("end_user_id", True),
        "end_user": ("end_user_id", False),
        "session": ("session_id", False),
    }

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("input_tokens") is None and "input_text" not in attrs:
            raise serializers.ValidationError({"input_tokens": ["Send input_tokens or input_text."]})
        return attrs


def plain_reservation_input(data: Any) -> dict[str, Any] | None:
    """ReservationCreateSerializer's validated_data for a body that is plainly valid, without
    building the serializer (its fields are deep-copied for every instance: about 0.1 ms on every
    model call's path): JSON whose fields already have the exact types and forms the serializer
    would keep (whole numbers in range, ASCII text without a NUL, no blank model or agent). None
    for anything else, which the serializer then validates and words the errors of. test_api
    checks that what this accepts, the serializer accepts with the same values."""
    if type(data) is not dict or not data.keys() <= _RESERVATION_FIELDS:
        return None
    model = _text(data.get("model"), 200)
    max_output_tokens = _count(data.get("max_output_tokens"))
    if not model or max_output_tokens is None:
        return None
    plain: dict[str, Any] = {"model": model, "max_output_tokens": max_output_tokens}
    if "input_tokens" in data:
        if data["input_tokens"] is not None and _count(data["input_tokens"]) is None:
            return None
        plain["input_tokens"] = data["input_tokens"]
    if "input_text" in data:
        if _text(data["input_text"], 4 * MAX_TOKENS, strip=False) is None:
            return None
        plain["input_text"] = data["input_text"]
    if plain.get("input_tokens") is None and "input_text" not in plain:
        return None
    for field in ("end_user_id", "session_id"):
        value = _text(data.get(field, ""), 200)
        if value is None:
            return None
        plain[field] = value
    if "agent" in data:
        agent = data["agent"]
        if agent is not None:
            agent = _text(agent, None)
            if not agent:  # not plain text, or blank
                return None
        plain["agent"] = agent
    return plain


def plain_settle_input(data: Any) -> dict[str, Any] | None:
    """SettleSerializer's validated_data for a plainly valid body (see plain_reservation_input)."""
    if type(data) is not dict or not data.keys() <= _SETTLE_FIELDS:
        return None
    plain = {
        "input_tokens": _count(data.get("input_tokens")),
        "output_tokens": _count(data.get("output_tokens")),
        "cached_input_tokens": _count(data.get("cached_input_tokens", 0)),
        "estimated": data.get("estimated", False),
    }
    if None in plain.values() or type(plain["estimated"]) is not bool:
        return None
    return plain


# A body with any other name (unknown, or another API's alias) goes to the serializer, which
# renames or refuses it.
_RESERVATION_FIELDS = frozenset(
    {"model", "input_tokens", "input_text", "max_output_tokens", "end_user_id", "session_id", "agent"}
)
_SETTLE_FIELDS = frozenset({"input_tokens", "output_tokens", "cached_input_tokens", "estimated"})


def _count(value: Any) -> int | None:
    return value if type(value) is int and 0 <= value <= MAX_TOKENS else None


def _text(value: Any, max_length: int | None, *, strip: bool = True) -> str | None:
    # ASCII: no surrogate to refuse; the serializer strips (unless told not to) before it measures.
    if type(value) is not str or not value.isascii() or "\x00" in value:
        return None
    if strip:
        value = value.strip()
    return value if max_length is None or len(value) <= max_length else None


class ReservationSerializer(strict.ModelSerializer):
    model = serializers.CharField(source="model.model_id", read_only=True)
    amount = serializers.IntegerField(source="worst_case_micros", read_only=True, help_text="Worst case, micro-USD.")
    unit = serializers.SerializerMethodField()
    tokens = serializers.IntegerField(source="worst_case_tokens", read_only=True, help_text="Worst case, tokens.")

    class Meta:
        model = Reservation
        fields = [
            "id",
            "status",
            "model",
            "amount",
            "unit",
            "tokens",
            "input_tokens",
            "input_tokens_estimated",
            "max_output_tokens",
            "end_user_id",
            "session_id",
            "agent",
            "actual_input_tokens",
            "actual_output_tokens",
            "actual_micros",
            "usage_estimated",
            "created_at",
            "expires_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_unit(self, reservation: Reservation) -> str:
        return Budget.Unit.USD_MICROS.value


def reservation_body(reservation: Reservation) -> dict[str, Any]:
    """`ReservationSerializer(reservation).data`, built directly. The reservation endpoints are on
    every model call's path, and a ModelSerializer builds its 19 fields anew for each instance
    (about 0.5 ms a response, more than the reservation's own SQL); test_api checks the two agree.
    A field added to ReservationSerializer must be added here too."""
    return {
        "id": str(reservation.pk),
        "status": str(reservation.status),
        "model": reservation.model.model_id,
        "amount": reservation.worst_case_micros,
        "unit": Budget.Unit.USD_MICROS.value,
        "tokens": reservation.worst_case_tokens,
        "input_tokens": reservation.input_tokens,
        "input_tokens_estimated": reservation.input_tokens_estimated,
        "max_output_tokens": reservation.max_output_tokens,
        "end_user_id": reservation.end_user_id,
        "session_id": reservation.session_id,
        "agent": reservation.agent_id,
        "actual_input_tokens": reservation.actual_input_tokens,
        "actual_output_tokens": reservation.actual_output_tokens,
        "actual_micros": reservation.actual_micros,
        "usage_estimated": reservation.usage_estimated,
        "created_at": _iso(reservation.created_at),
        "expires_at": _iso(reservation.expires_at),
        "finished_at": _iso(reservation.finished_at),
    }


def _iso(value: datetime | None) -> str | None:
    """A datetime as DRF's DateTimeField writes it: in the current time zone, ISO 8601, UTC as Z."""
    if value is None:
        return None
    text = value.astimezone(timezone.get_current_timezone()).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


class SettleSerializer(strict.Serializer):
    input_tokens = serializers.IntegerField(
        min_value=0, max_value=MAX_TOKENS, help_text="Also accepted as `prompt_tokens`."
    )
    output_tokens = serializers.IntegerField(
        min_value=0, max_value=MAX_TOKENS, help_text="Also accepted as `completion_tokens`."
    )
    cached_input_tokens = serializers.IntegerField(min_value=0, max_value=MAX_TOKENS, required=False, default=0)
    estimated = serializers.BooleanField(required=False, default=False, help_text="True when usage is an estimate.")

    # The names of OpenAI's `usage` object, so a client can send it as the provider answered it.
    aliases: ClassVar[dict[str, tuple[str, bool]]] = {
        "prompt_tokens": ("input_tokens", True),
        "completion_tokens": ("output_tokens", True),
        "total_tokens": ("output_tokens", False),
    }


class AdjustSerializer(strict.Serializer):
    settled_delta = serializers.IntegerField(help_text="Added to the spend (negative to refund), in the budget's unit.")
    note = serializers.CharField(max_length=200, help_text="Why.")
    scope_value = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class LedgerEntrySerializer(strict.ModelSerializer):
    class Meta:
        model = LedgerEntry
        fields = ["id", "kind", "counter", "reservation", "reserved_delta", "settled_delta", "note", "created_at"]
        read_only_fields = fields
