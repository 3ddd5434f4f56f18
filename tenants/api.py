"""REST endpoints of the tenancy kernel: who am I, members, API keys and the audit log."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from tenants import selectors, services
from tenants.audit import Actor
from tenants.models import ApiKey, AuditEvent, Membership, Scope
from tenants.serializers import (
    ApiKeyCreatedSerializer,
    ApiKeyCreateSerializer,
    ApiKeySerializer,
    AuditEventSerializer,
    InviteSerializer,
    MembershipSerializer,
    MeSerializer,
    RoleSerializer,
)
from tenants.viewsets import SCOPED_PER_REQUEST, TenantScopedViewSet


class MeView(APIView):
    """The API key's tenant, name and scopes. Any valid key may call it."""

    required_scopes: dict[str, str | None] = {"*": None}

    @extend_schema(responses=MeSerializer)
    def get(self, request: Request) -> Response:
        key: ApiKey = request.auth  # type: ignore[assignment]
        data = {"tenant": key.tenant, "key": key, "scopes": key.scopes}
        return Response(MeSerializer(data).data)


class MemberViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet[Membership]):
    """The tenant's members. Adding one invites by email (at once for an existing account)."""

    queryset = Membership.objects.across_tenants(SCOPED_PER_REQUEST).select_related("user")
    serializer_class = MembershipSerializer
    required_scopes = {"*": Scope.ADMIN}

    @extend_schema(request=InviteSerializer, responses={201: MembershipSerializer, 202: None})
    def create(self, request: Request) -> Response:
        form = InviteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        result = services.member_invite(actor=Actor.from_request(request), tenant=self.tenant, **form.validated_data)
        if result.membership is not None:
            return Response(MembershipSerializer(result.membership).data, status=status.HTTP_201_CREATED)
        assert result.invitation is not None
        return Response(
            {
                "invitation": {
                    "id": str(result.invitation.pk),
                    "email": result.invitation.email,
                    "role": result.invitation.role,
                    "expires_at": result.invitation.expires_at,
                    "accept_url": result.accept_url,
                }
            },
            status=status.HTTP_202_ACCEPTED,
        )

    @extend_schema(request=RoleSerializer, responses=MembershipSerializer)
    def partial_update(self, request: Request, pk: str) -> Response:
        membership = self.get_object()
        form = RoleSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        membership = services.member_change_role(
            actor=Actor.from_request(request), membership=membership, role=form.validated_data["role"]
        )
        return Response(MembershipSerializer(membership).data)

    def destroy(self, request: Request, pk: str) -> Response:
        services.member_remove(actor=Actor.from_request(request), membership=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class ApiKeyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet[ApiKey]):
    """The tenant's API keys. The key itself is returned once, by create."""

    queryset = ApiKey.objects.across_tenants(SCOPED_PER_REQUEST).select_related("created_by")
    serializer_class = ApiKeySerializer
    required_scopes = {"*": Scope.ADMIN}

    @extend_schema(request=ApiKeyCreateSerializer, responses={201: ApiKeyCreatedSerializer})
    def create(self, request: Request) -> Response:
        form = ApiKeyCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        key, plaintext = services.api_key_create(
            actor=Actor.from_request(request), tenant=self.tenant, **form.validated_data
        )
        key.key = plaintext  # type: ignore[attr-defined]
        return Response(ApiKeyCreatedSerializer(key).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=ApiKeySerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str) -> Response:
        key = services.api_key_revoke(actor=Actor.from_request(request), api_key=self.get_object())
        return Response(ApiKeySerializer(key).data)

    def destroy(self, request: Request, pk: str) -> Response:
        services.api_key_revoke(actor=Actor.from_request(request), api_key=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class AuditEventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet[AuditEvent]):
    """The tenant's audit log, newest first; read-only (nothing can change it)."""

    queryset = AuditEvent.objects.across_tenants(SCOPED_PER_REQUEST)
    serializer_class = AuditEventSerializer
    required_scopes = {"*": Scope.ADMIN}

    filterset_class = selectors.AuditEventFilterSet
