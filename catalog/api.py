"""REST endpoints of model control: providers, models, pins and their change requests.

Reads need the `read` scope, writes `admin`. Every write is one service call; the services refuse
bad input with errors naming the field and record the audit rows.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from catalog import selectors, services
from catalog.models import LanguageModel, ModelPin, PinChange, Provider
from catalog.serializers import (
    LanguageModelSerializer,
    LanguageModelUpdateSerializer,
    LanguageModelWriteSerializer,
    PinChangeDecisionSerializer,
    PinChangeRequestSerializer,
    PinChangeSerializer,
    PinSerializer,
    ProviderSerializer,
    ProviderWriteSerializer,
)
from tenants.audit import Actor
from tenants.models import Scope
from tenants.viewsets import SCOPED_PER_REQUEST, TenantScopedViewSet

_READS: dict[str, str | None] = {"list": Scope.READ, "retrieve": Scope.READ, "*": Scope.ADMIN}


class ProviderViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet[Provider]):
    """Model providers. The API key is write-only: responses say only whether one is set."""

    queryset = Provider.objects.across_tenants(SCOPED_PER_REQUEST)
    serializer_class = ProviderSerializer
    required_scopes = _READS

    @extend_schema(request=ProviderWriteSerializer, responses={201: ProviderSerializer})
    def create(self, request: Request) -> Response:
        form = ProviderWriteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = dict(form.validated_data)
        data["api_key"] = data.get("api_key") or ""
        provider = services.provider_create(actor=Actor.from_request(request), tenant=self.tenant, **data)
        return Response(ProviderSerializer(provider).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ProviderWriteSerializer, responses=ProviderSerializer)
    def partial_update(self, request: Request, pk: str) -> Response:
        provider = self.get_object()
        form = ProviderWriteSerializer(data=request.data, partial=True)
        form.is_valid(raise_exception=True)
        data = dict(form.validated_data)
        changes: dict[str, Any] = {k: v for k, v in data.items() if k != "api_key"}
        if "api_key" in data:
            if data["api_key"]:
                changes["api_key"] = data["api_key"]
            else:
                changes["clear_api_key"] = True
        provider = services.provider_update(actor=Actor.from_request(request), provider=provider, **changes)
        return Response(ProviderSerializer(provider).data)

    def destroy(self, request: Request, pk: str) -> Response:
        services.provider_delete(actor=Actor.from_request(request), provider=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class LanguageModelViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet[LanguageModel]):
    """Exact model versions with prices (USD per million tokens) and limits. Floating names are
    refused (400 naming `model_id`); a self-hosted model needs a `revision`."""

    queryset = LanguageModel.objects.across_tenants(SCOPED_PER_REQUEST).select_related("provider")
    serializer_class = LanguageModelSerializer
    required_scopes = _READS

    @extend_schema(request=LanguageModelWriteSerializer, responses={201: LanguageModelSerializer})
    def create(self, request: Request) -> Response:
        form = LanguageModelWriteSerializer(data=request.data, context=self.get_serializer_context())
        form.is_valid(raise_exception=True)
        model = services.model_create(actor=Actor.from_request(request), tenant=self.tenant, **form.validated_data)
        return Response(LanguageModelSerializer(model).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=LanguageModelUpdateSerializer, responses=LanguageModelSerializer)
    def partial_update(self, request: Request, pk: str) -> Response:
        model = self.get_object()
        context = {**self.get_serializer_context(), "instance": model}
        form = LanguageModelUpdateSerializer(data=request.data, partial=True, context=context)
        form.is_valid(raise_exception=True)
        changes = {k: v for k, v in form.validated_data.items() if k not in LanguageModelUpdateSerializer.IDENTITY}
        model = services.model_update(actor=Actor.from_request(request), model=model, **changes)
        return Response(LanguageModelSerializer(model).data)

    def destroy(self, request: Request, pk: str) -> Response:
        services.model_delete(actor=Actor.from_request(request), model=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class PinViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet[ModelPin]):
    """Aliases and the exact model each is pinned to. A pin moves only through a change request:
    `POST /pins/{alias}/changes` (also for an alias not pinned yet), decided at
    `POST /pin-changes/{id}/decision`."""

    queryset = ModelPin.objects.across_tenants(SCOPED_PER_REQUEST).select_related("model__provider")
    serializer_class = PinSerializer
    lookup_field = "alias"
    lookup_value_regex = "[-a-zA-Z0-9_]+"
    required_scopes = {"list": Scope.READ, "retrieve": Scope.READ, "changes": Scope.READ, "*": Scope.ADMIN}

    @extend_schema(responses=PinChangeSerializer(many=True), summary="The alias's history: its applied changes")
    @action(detail=True, methods=["get"], url_path="changes")
    def changes(self, request: Request, alias: str) -> Response:
        history = selectors.pin_history(tenant=self.tenant, alias=alias)
        paginator = self.paginator
        assert paginator is not None
        page = paginator.paginate_queryset(history, request, view=self)
        return paginator.get_paginated_response(PinChangeSerializer(page, many=True).data)

    @extend_schema(request=PinChangeRequestSerializer, responses={201: PinChangeSerializer})
    @changes.mapping.post
    def request_change(self, request: Request, alias: str) -> Response:
        form = PinChangeRequestSerializer(data=request.data, context=self.get_serializer_context())
        form.is_valid(raise_exception=True)
        change = services.pin_change_request(
            actor=Actor.from_request(request),
            tenant=self.tenant,
            alias=alias,
            to_model=form.validated_data["model"],
            reason=form.validated_data["reason"],
        )
        return Response(PinChangeSerializer(change).data, status=status.HTTP_201_CREATED)


class PinChangeViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet[PinChange]):
    """Pin change requests, newest first; filter with `?status=pending` and `?alias=`."""

    queryset = PinChange.objects.across_tenants(SCOPED_PER_REQUEST).select_related(
        "from_model__provider", "to_model__provider"
    )
    serializer_class = PinChangeSerializer
    required_scopes = _READS

    filterset_class = selectors.PinChangeFilterSet

    @extend_schema(request=PinChangeDecisionSerializer, responses=PinChangeSerializer)
    @action(detail=True, methods=["post"])
    def decision(self, request: Request, pk: str) -> Response:
        """Approve (apply) or reject, once: a second decision is 409 naming who decided."""
        change = self.get_object()
        form = PinChangeDecisionSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        change = services.pin_change_decide(actor=Actor.from_request(request), change=change, **form.validated_data)
        return Response(PinChangeSerializer(change).data)

    @extend_schema(request=None, responses=PinChangeSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        change = services.pin_change_cancel(actor=Actor.from_request(request), change=self.get_object())
        return Response(PinChangeSerializer(change).data)
