"""REST endpoints of approvals. Thin adapters: a serializer checks types, one service decides, and
the tenant comes from the API key. `GET /approvals/{id}?wait=N` is an async long-poll (see
approvals.longpoll), not a DRF view."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import HttpRequest, JsonResponse
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from agents.models import Agent, Run, Tool
from agents.selectors import find_agent, find_tool, is_uuid
from approvals import longpoll, services
from approvals.models import ApprovalRequest, ApprovalRule, AutonomyGrant
from approvals.selectors import ApprovalFilterSet, ApprovalRuleFilterSet, AutonomyGrantFilterSet
from approvals.serializers import (
    ApprovalCreatedSerializer,
    ApprovalCreateSerializer,
    ApprovalRuleCreateSerializer,
    ApprovalRuleSerializer,
    ApprovalRuleWriteSerializer,
    ApprovalSerializer,
    AutonomyGrantSerializer,
    AutonomyRevokeSerializer,
    DecisionSerializer,
)
from tenants.audit import Actor
from tenants.errors import ConflictError, FieldError, error_body
from tenants.models import Scope
from tenants.viewsets import SCOPED_PER_REQUEST, TenantScopedViewSet


class ApprovalViewSet(mixins.ListModelMixin, TenantScopedViewSet[ApprovalRequest]):
    """Approval requests: external clients create them (`approvals:write`) and wait for the
    decision; reviewers list and decide them (`approvals:decide`)."""

    queryset = ApprovalRequest.objects.across_tenants(SCOPED_PER_REQUEST).select_related(
        "tenant", "run", "tool", "agent"
    )
    serializer_class = ApprovalSerializer
    required_scopes = {
        "create": Scope.APPROVALS_WRITE,
        "list": Scope.APPROVALS_DECIDE,
        "decision": Scope.APPROVALS_DECIDE,
    }

    filterset_class = ApprovalFilterSet

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The tenant's requests, newest first."""
        return super().list(request, *args, **kwargs)

    @extend_schema(request=ApprovalCreateSerializer, responses={201: ApprovalCreatedSerializer})
    def create(self, request: Request) -> Response:
        """Ask for a human decision on an action the client performs itself. The answer carries
        `callback_secret` once, when a callback_url was given."""
        form = ApprovalCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data: dict[str, Any] = dict(form.validated_data)
        run = None
        if ref := data.pop("run", None):
            run = Run.objects.for_tenant(self.tenant).filter(pk=ref).first() if is_uuid(ref) else None
            if run is None:
                raise FieldError("run", f"no run of this tenant has the id {ref!r}.")
        created = services.approval_request_create(
            actor=Actor.from_request(request), tenant=self.tenant, run=run, **data
        )
        body = dict(ApprovalSerializer(created.approval).data)
        if created.callback_secret:
            body["callback_secret"] = created.callback_secret
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(request=DecisionSerializer, responses={200: ApprovalSerializer})
    @action(detail=True, methods=["post"])
    def decision(self, request: Request, pk: str) -> Response:
        """Approve, reject (a note is required) or edit (new arguments, re-validated against the
        tool's schema and re-checked by guardrails). Decided once: a later decision answers 409
        naming who decided (`decided_by`, `status`)."""
        approval = self.get_object()
        form = DecisionSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        approval = services.approval_decide(
            approval=approval,
            actor=Actor.from_request(request),
            decision=data["decision"],
            note=data.get("note", ""),
            arguments=data.get("arguments"),
        )
        return Response(ApprovalSerializer(approval).data)


# --- The long-poll ----------------------------------------------------------------------------


async def approval_detail(request: HttpRequest, pk: str) -> JsonResponse:
    """GET one request; `?wait=N` (0-60 s) holds the answer until it leaves `pending` or N seconds
    pass, then answers its current state (200 either way: check `status`). Under the ASGI server a
    waiting GET is answered by approvals.longpoll.LongPollRouter before Django's middleware."""
    if request.method != "GET":
        return JsonResponse(error_body("method_not_allowed", f'Method "{request.method}" not allowed.'), status=405)
    status_code, body = await longpoll.answer(
        authorization=request.headers.get("Authorization", ""),
        pk=pk,
        raw_wait=request.GET.get("wait", "0"),
        db=longpoll.in_request,
    )
    response = JsonResponse(body, status=status_code)
    if status_code == 401:
        response["WWW-Authenticate"] = 'Bearer realm="api"'
    if status_code in (429, 503):
        response["Retry-After"] = str(body["error"]["retry_after"])
    return response


# --- Rules and autonomy (policy as code) --------------------------------------------------------


class ApprovalRuleViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet[ApprovalRule]):
    """What needs a human: the tenant's default rule (agent and tool null; without one the
    built-in default applies: irreversible tools ask) and overrides per agent, tool or both (the
    most specific wins). Reading needs `read`; changing needs `admin` (audited)."""

    queryset = ApprovalRule.objects.across_tenants(SCOPED_PER_REQUEST).select_related("agent", "tool")
    serializer_class = ApprovalRuleSerializer
    required_scopes = {"list": Scope.READ, "retrieve": Scope.READ, "*": Scope.ADMIN}
    filterset_class = ApprovalRuleFilterSet

    def scope_queryset(self, queryset: QuerySet[ApprovalRule]) -> QuerySet[ApprovalRule]:
        return queryset.order_by("agent__name", "tool__name", "created_at")

    @extend_schema(request=ApprovalRuleCreateSerializer, responses={201: ApprovalRuleSerializer})
    def create(self, request: Request) -> Response:
        """Create the rule for `agent` and/or `tool` (both omitted: the tenant default). 409 when
        that rule exists: change it with PATCH instead."""
        form = ApprovalRuleCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data: dict[str, Any] = dict(form.validated_data)
        agent = _agent(self.tenant, data.pop("agent", None))
        tool = _tool(self.tenant, data.pop("tool", None))
        existing = ApprovalRule.objects.for_tenant(self.tenant).filter(agent=agent, tool=tool).first()
        if existing is not None:
            raise ConflictError(f"That rule exists already (id {existing.pk}): change it with PATCH.")
        secret = data.pop("escalation_webhook_secret", None)
        rule = services.approval_rule_save(
            actor=Actor.from_request(request), tenant=self.tenant, agent=agent, tool=tool, webhook_secret=secret, **data
        )
        return Response(ApprovalRuleSerializer(rule).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ApprovalRuleWriteSerializer, responses=ApprovalRuleSerializer)
    def partial_update(self, request: Request, pk: str) -> Response:
        """Change some of the rule's settings (its agent and tool stay)."""
        rule = self.get_object()
        form = ApprovalRuleWriteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data: dict[str, Any] = dict(form.validated_data)
        secret = data.pop("escalation_webhook_secret", None)
        rule = services.approval_rule_save(
            actor=Actor.from_request(request),
            tenant=self.tenant,
            agent=rule.agent,
            tool=rule.tool,
            webhook_secret=secret,
            **data,
        )
        return Response(ApprovalRuleSerializer(rule).data)

    def destroy(self, request: Request, pk: str) -> Response:
        """Remove the rule: the less specific one (in the end the built-in default) applies again."""
        services.approval_rule_delete(actor=Actor.from_request(request), rule=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


def _agent(tenant: Any, ref: str | None) -> Agent | None:
    if not (ref or "").strip():
        return None
    agent = find_agent(tenant=tenant, ref=str(ref).strip())
    if agent is None:
        raise FieldError("agent", f"no agent has the id or name {ref!r}.")
    return agent


def _tool(tenant: Any, ref: str | None) -> Tool | None:
    if not (ref or "").strip():
        return None
    tool = find_tool(tenant=tenant, ref=str(ref).strip())
    if tool is None:
        raise FieldError("tool", f"no tool has the id or name {ref!r}.")
    return tool


class AutonomyGrantViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet[AutonomyGrant]):
    """Autonomy agents earned per tool (newest first), active and revoked; an admin revokes one
    (e.g. from an incident bot) with a reason, audited."""

    queryset = AutonomyGrant.objects.across_tenants(SCOPED_PER_REQUEST).select_related("agent", "tool")
    serializer_class = AutonomyGrantSerializer
    required_scopes = {"list": Scope.READ, "retrieve": Scope.READ, "revoke": Scope.ADMIN}

    filterset_class = AutonomyGrantFilterSet

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(request=AutonomyRevokeSerializer, responses={200: AutonomyGrantSerializer})
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str) -> Response:
        """Take the agent's autonomy for the tool back: its next calls ask a human. 409 when the
        grant was already revoked (naming by whom)."""
        grant = self.get_object()
        form = AutonomyRevokeSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        grant = services.autonomy_revoke(
            grant=grant, actor=Actor.from_request(request), reason=form.validated_data["reason"]
        )
        return Response(AutonomyGrantSerializer(grant).data)
