"""API shapes of the tenancy kernel."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from tenants import strict
from tenants.models import ApiKey, AuditEvent, Membership, Role, Scope


class TenantSerializer(strict.Serializer):
    id = serializers.UUIDField(read_only=True)
    slug = serializers.SlugField(read_only=True)
    name = serializers.CharField(read_only=True)
    timezone = serializers.CharField(read_only=True)
    status = serializers.CharField(read_only=True)


class MeSerializer(strict.Serializer):
    tenant = TenantSerializer()
    key = serializers.SerializerMethodField()
    scopes = serializers.ListField(child=serializers.CharField())

    def get_key(self, obj: dict[str, Any]) -> dict[str, Any]:
        key: ApiKey = obj["key"]
        return {"id": str(key.pk), "name": key.name, "prefix": key.display_prefix}


class MembershipSerializer(strict.ModelSerializer):
    email = serializers.EmailField(source="user.email", read_only=True)
    name = serializers.CharField(source="user.name", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "email", "name", "role", "created_at"]
        read_only_fields = ["id", "email", "name", "created_at"]


class InviteSerializer(strict.Serializer):
    email = serializers.EmailField()
    role = serializers.ChoiceField(choices=Role.choices, default=Role.VIEWER)


class RoleSerializer(strict.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class ApiKeySerializer(strict.ModelSerializer):
    prefix = serializers.CharField(source="display_prefix", read_only=True)
    created_by = serializers.EmailField(source="created_by.email", read_only=True, default=None)

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "name",
            "prefix",
            "scopes",
            "created_by",
            "created_at",
            "expires_at",
            "revoked_at",
            "last_used_at",
            "max_tokens_per_request",
        ]
        read_only_fields = fields


class ApiKeyCreateSerializer(strict.Serializer):
    name = serializers.CharField(max_length=100)
    scopes = serializers.ListField(
        child=serializers.CharField(max_length=64),
        min_length=1,
        help_text=(
            f"Built-in scopes ({', '.join(Scope.values)}) and any scope one of the tenant's tools "
            "requires (e.g. `orders:refund`): a key may be allowed one sensitive tool without being an admin key."
        ),
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True)
    max_tokens_per_request = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=10_000_000,
        help_text="Refuse any model call made with this key whose input + max output exceeds this many tokens.",
    )


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.CharField(read_only=True, help_text="The key itself. Shown once; only its hash is kept.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]
        read_only_fields = fields


class AuditEventSerializer(strict.ModelSerializer):
    actor = serializers.CharField(source="actor_label", read_only=True)

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "created_at",
            "actor",
            "action",
            "target_type",
            "target_id",
            "target_label",
            "before",
            "after",
            "ip_address",
        ]
        read_only_fields = fields
