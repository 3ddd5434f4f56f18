"""API shapes of model control. Prices travel as USD decimal strings per million tokens ("2.50")
and are stored, and also returned read-only, as exact integer micro-USD."""

from __future__ import annotations

from typing import Any, ClassVar

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from catalog.models import LanguageModel, ModelPin, PinChange, Provider
from catalog.services import micros_to_usd, usd_to_micros
from tenants import strict
from tenants.errors import FieldError


@extend_schema_field(OpenApiTypes.STR)
class UsdPriceField(serializers.Field):
    """USD per million tokens as a decimal string ("2.50"); null or omitted means unpriced."""

    default_error_messages = {"invalid": 'Give a price in USD per million tokens as a string, e.g. "2.50".'}

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("allow_null", True)
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def to_representation(self, value: int | None) -> str | None:
        return micros_to_usd(value)

    def to_internal_value(self, data: Any) -> int | None:
        if not isinstance(data, str | int | float) or isinstance(data, bool):
            self.fail("invalid")
        try:
            return usd_to_micros(data, field=self.field_name or "price")
        except FieldError as exc:
            raise serializers.ValidationError(exc.detail) from None


@extend_schema_field(OpenApiTypes.UUID)
class TenantProviderField(serializers.PrimaryKeyRelatedField):
    """A provider id that must belong to the request's tenant (any other id: "does not exist")."""

    def get_queryset(self) -> Any:
        return Provider.objects.for_tenant(self.context["tenant"])


@extend_schema_field(OpenApiTypes.UUID)
class TenantModelField(serializers.PrimaryKeyRelatedField):
    """A model id that must belong to the request's tenant."""

    def get_queryset(self) -> Any:
        return LanguageModel.objects.for_tenant(self.context["tenant"]).select_related("provider")


# --- Providers ---------------------------------------------------------------------------------


class ProviderSerializer(strict.ModelSerializer):
    api_key_set = serializers.BooleanField(source="has_api_key", read_only=True, help_text="The key is never returned.")
    effective_base_url = serializers.CharField(read_only=True)

    class Meta:
        model = Provider
        fields = [
            "id",
            "name",
            "kind",
            "base_url",
            "effective_base_url",
            "api_key_set",
            "timeout_seconds",
            "max_retries",
            "enabled",
            "created_at",
        ]
        read_only_fields = fields


class ProviderWriteSerializer(strict.Serializer):
    name = serializers.CharField(max_length=100)
    kind = serializers.ChoiceField(choices=Provider.Kind.choices)
    base_url = serializers.CharField(max_length=200, allow_blank=True, required=False, default="")
    api_key = serializers.CharField(
        write_only=True,
        allow_blank=True,
        allow_null=True,
        required=False,
        trim_whitespace=True,
        help_text='Stored encrypted, never returned. On update: a string replaces it, "" or null clears it.',
    )
    timeout_seconds = serializers.FloatField(min_value=0.1, max_value=600, required=False, default=60.0)
    max_retries = serializers.IntegerField(min_value=0, max_value=10, required=False, default=2)
    enabled = serializers.BooleanField(required=False, default=True)


# --- Models ------------------------------------------------------------------------------------


class LanguageModelSerializer(strict.ModelSerializer):
    provider = serializers.UUIDField(source="provider_id", read_only=True)
    provider_name = serializers.CharField(source="provider.name", read_only=True)
    input_price = UsdPriceField(read_only=True)
    cached_input_price = UsdPriceField(read_only=True)
    output_price = UsdPriceField(read_only=True)
    input_price_micros = serializers.IntegerField(source="input_price", read_only=True, allow_null=True)
    cached_input_price_micros = serializers.IntegerField(source="cached_input_price", read_only=True, allow_null=True)
    output_price_micros = serializers.IntegerField(source="output_price", read_only=True, allow_null=True)
    is_priced = serializers.BooleanField(read_only=True)

    class Meta:
        model = LanguageModel
        fields = [
            "id",
            "provider",
            "provider_name",
            "model_id",
            "revision",
            "display_name",
            "input_price",
            "cached_input_price",
            "output_price",
            "input_price_micros",
            "cached_input_price_micros",
            "output_price_micros",
            "is_priced",
            "context_window",
            "max_output_tokens",
            "deprecation_date",
            "created_at",
        ]
        read_only_fields = fields


class LanguageModelWriteSerializer(strict.Serializer):
    provider = TenantProviderField()
    model_id = serializers.CharField(max_length=200)
    revision = serializers.CharField(max_length=200, allow_blank=True, required=False, default="")
    display_name = serializers.CharField(max_length=200, allow_blank=True, required=False, default="")
    input_price = UsdPriceField()
    cached_input_price = UsdPriceField()
    output_price = UsdPriceField()
    context_window = serializers.IntegerField(min_value=1, max_value=2**31 - 1)
    max_output_tokens = serializers.IntegerField(min_value=1, max_value=2**31 - 1)
    deprecation_date = serializers.DateField(allow_null=True, required=False, default=None)

    aliases: ClassVar[dict[str, tuple[str, bool]]] = {
        "input_price_per_million": ("input_price", False),
        "cached_input_price_per_million": ("cached_input_price", False),
        "output_price_per_million": ("output_price", False),
        "max_tokens": ("max_output_tokens", False),
        "model": ("model_id", False),
    }


class LanguageModelUpdateSerializer(LanguageModelWriteSerializer):
    """PATCH: every field optional; provider, model_id and revision are the model's identity and
    may only be repeated unchanged."""

    IDENTITY = ("provider", "model_id", "revision")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        model: LanguageModel = self.context["instance"]
        current = {"provider": model.provider, "model_id": model.model_id, "revision": model.revision}
        for field in self.IDENTITY:
            if field in attrs and attrs[field] != current[field]:
                raise serializers.ValidationError(
                    {field: ["An exact model version cannot change; add another model and request a pin change."]}
                )
        return attrs


class _ModelBrief(strict.ModelSerializer):
    provider_name = serializers.CharField(source="provider.name", read_only=True)

    class Meta:
        model = LanguageModel
        fields = ["id", "model_id", "revision", "provider_name"]
        read_only_fields = fields


# --- Pins --------------------------------------------------------------------------------------


class PinSerializer(strict.ModelSerializer):
    model = LanguageModelSerializer(read_only=True)

    class Meta:
        model = ModelPin
        fields = ["alias", "model", "updated_at"]
        read_only_fields = fields


class PinChangeSerializer(strict.ModelSerializer):
    from_model = serializers.SerializerMethodField()
    to_model = serializers.SerializerMethodField()
    requested_by = serializers.CharField(source="requested_by_label", read_only=True)
    decided_by = serializers.CharField(source="decided_by_label", read_only=True)

    class Meta:
        model = PinChange
        fields = [
            "id",
            "alias",
            "status",
            "from_model",
            "to_model",
            "reason",
            "requested_by",
            "created_at",
            "decided_by",
            "decision_note",
            "decided_at",
        ]
        read_only_fields = fields

    @extend_schema_field(_ModelBrief(allow_null=True))
    def get_from_model(self, change: PinChange) -> dict[str, Any] | None:
        return _ModelBrief(change.from_model).data if change.from_model is not None else None

    @extend_schema_field(_ModelBrief)
    def get_to_model(self, change: PinChange) -> dict[str, Any]:
        return _ModelBrief(change.to_model).data


class PinChangeRequestSerializer(strict.Serializer):
    model = TenantModelField(help_text="The id of the model the alias should point at.")
    reason = serializers.CharField(max_length=2000)


class PinChangeDecisionSerializer(strict.Serializer):
    approve = serializers.BooleanField(help_text="true applies the change, false rejects it.")
    note = serializers.CharField(max_length=2000, allow_blank=True, required=False, default="")
