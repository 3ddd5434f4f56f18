"""REST endpoints for agents, tools and runs. Thin adapters: a serializer checks types, one service
call decides, and the tenant comes from the API key (TenantScopedViewSet)."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response

from agents import selectors, services
from agents.models import Agent, Run, Tool
from agents.serializers import (
    AgentSerializer,
    AgentVersionSerializer,
    AgentWriteSerializer,
    RunCreateSerializer,
    RunDetailSerializer,
    RunSerializer,
    ToolSavedSerializer,
    ToolSerializer,
    ToolUpdateSerializer,
    ToolWriteSerializer,
)
from tenants.audit import Actor
from tenants.errors import FieldError
from tenants.models import ApiKey, Scope
from tenants.pagination import CursorPagination
from tenants.permissions import HasApiKey
from tenants.viewsets import SCOPED_PER_REQUEST, TenantScopedViewSet

# Reading configuration needs `read`; changing it needs `admin` (the default).
CONFIG_SCOPES: dict[str, str | None] = {"list": Scope.READ, "retrieve": Scope.READ, "versions": Scope.READ}


class ByName(CursorPagination):
    """Tools and agents read best by name, which is unique in a tenant (a stable cursor)."""

    ordering = "name"


class ToolViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet[Tool]):
    """The tenant's tools. A webhook tool's signing secret is returned once, when generated."""

    queryset = Tool.objects.across_tenants(SCOPED_PER_REQUEST).order_by("name")
    serializer_class = ToolSerializer
    pagination_class = ByName
    required_scopes = {**CONFIG_SCOPES, "*": Scope.ADMIN}
    filterset_class = selectors.ToolFilterSet

    @extend_schema(request=ToolWriteSerializer, responses={201: ToolSavedSerializer})
    def create(self, request: Request) -> Response:
        form = ToolWriteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        saved = services.tool_create(actor=Actor.from_request(request), tenant=self.tenant, **form.validated_data)
        return Response(_saved(saved), status=status.HTTP_201_CREATED)

    @extend_schema(request=ToolUpdateSerializer, responses=ToolSavedSerializer)
    def update(self, request: Request, pk: str) -> Response:
        return self._update(request, partial=False)

    @extend_schema(request=ToolUpdateSerializer, responses=ToolSavedSerializer)
    def partial_update(self, request: Request, pk: str) -> Response:
        return self._update(request, partial=True)

    def _update(self, request: Request, *, partial: bool) -> Response:
        tool = self.get_object()
        form = ToolUpdateSerializer(data=request.data, partial=partial)
        form.is_valid(raise_exception=True)
        saved = services.tool_update(actor=Actor.from_request(request), tool=tool, **form.validated_data)
        return Response(_saved(saved))

    def destroy(self, request: Request, pk: str) -> Response:
        services.tool_delete(actor=Actor.from_request(request), tool=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


def _saved(saved: services.ToolSaved) -> dict[str, Any]:
    saved.tool.signing_secret = saved.signing_secret  # type: ignore[attr-defined]
    return dict(ToolSavedSerializer(saved.tool).data)


class AgentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet[Agent]):
    """The tenant's agents, each shown as its current version. Every change makes a new version
    (`GET /agents/{id}/versions` lists them); runs keep the version they started with. DELETE
    archives: the agent starts no new runs, and its history stays."""

    queryset = (
        Agent.objects.across_tenants(SCOPED_PER_REQUEST)
        .select_related("current_version")
        .prefetch_related(
            Prefetch(
                "current_version__tools",
                queryset=Tool.objects.across_tenants("prefetched through the scoped agents").order_by("name"),
            )
        )
    )
    serializer_class = AgentSerializer
    pagination_class = ByName
    required_scopes = {**CONFIG_SCOPES, "*": Scope.ADMIN}

    filterset_class = selectors.AgentFilterSet

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(request=AgentWriteSerializer, responses={201: AgentSerializer})
    def create(self, request: Request) -> Response:
        form = AgentWriteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        agent = services.agent_create(actor=Actor.from_request(request), tenant=self.tenant, **form.validated_data)
        return Response(self._fresh(agent), status=status.HTTP_201_CREATED)

    @extend_schema(request=AgentWriteSerializer, responses=AgentSerializer)
    def update(self, request: Request, pk: str) -> Response:
        return self._update(request, partial=False)

    @extend_schema(request=AgentWriteSerializer, responses=AgentSerializer)
    def partial_update(self, request: Request, pk: str) -> Response:
        return self._update(request, partial=True)

    def _update(self, request: Request, *, partial: bool) -> Response:
        agent = self.get_object()
        form = AgentWriteSerializer(data=request.data, partial=partial)
        form.is_valid(raise_exception=True)
        agent = services.agent_update(actor=Actor.from_request(request), agent=agent, **form.validated_data)
        return Response(self._fresh(agent))

    def destroy(self, request: Request, pk: str) -> Response:
        services.agent_archive(actor=Actor.from_request(request), agent=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses=AgentVersionSerializer(many=True))
    @action(detail=True, methods=["get"])
    def versions(self, request: Request, pk: str) -> Response:
        """Every version of the agent, newest first."""
        agent = self.get_object()
        paginator = CursorPagination()
        page = paginator.paginate_queryset(selectors.versions_of(agent=agent), request, view=self)
        return paginator.get_paginated_response(AgentVersionSerializer(page, many=True).data)

    def _fresh(self, agent: Agent) -> dict[str, Any]:
        return dict(AgentSerializer(selectors.get_agent_for_tenant(self.tenant, agent.pk)).data)


class CanReadRuns(BasePermission):
    """Reading runs needs `read` or `runs:write` (a client that starts runs may follow them)."""

    message = "This API key lacks the `read` or `runs:write` scope."

    def has_permission(self, request: Request, view: Any) -> bool:
        if getattr(view, "action", None) not in {"list", "retrieve"}:
            return True
        key = request.auth
        return isinstance(key, ApiKey) and (key.has_scope(Scope.READ) or key.has_scope(Scope.RUNS_WRITE))


class RunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet[Run]):
    """Runs: start one (202, executed by a worker), follow it, cancel it."""

    queryset = Run.objects.across_tenants(SCOPED_PER_REQUEST).select_related("agent", "agent_version")
    serializer_class = RunSerializer
    permission_classes = [HasApiKey, CanReadRuns]
    required_scopes = {"create": Scope.RUNS_WRITE, "cancel": Scope.RUNS_WRITE, "list": None, "retrieve": None}

    def get_serializer_class(self) -> type[RunSerializer]:
        return RunDetailSerializer if self.action == "retrieve" else RunSerializer

    filterset_class = selectors.RunFilterSet

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(request=RunCreateSerializer, responses={202: RunSerializer})
    def create(self, request: Request) -> Response:
        form = RunCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = dict(form.validated_data)
        ref = data.pop("agent")
        agent = selectors.find_agent(tenant=self.tenant, ref=ref)
        if agent is None:
            raise FieldError("agent", f"no agent has the id or name {ref!r}.")
        key = request.auth if isinstance(request.auth, ApiKey) else None
        run = services.run_create(
            actor=Actor.from_request(request), tenant=self.tenant, agent=agent, api_key=key, **data
        )
        return Response(RunSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses=RunSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        """Cancel the run: at once when queued or waiting, before its next step when running."""
        run = services.run_cancel(actor=Actor.from_request(request), run=self.get_object())
        return Response(RunSerializer(run).data)
