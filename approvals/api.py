"""REST endpoints of approvals. Thin adapters: a serializer checks types, one service decides, and
the tenant comes from the API key.

`GET /approvals/{id}?wait=N` is a plain async Django view rather than a DRF one: a waiter holds
no thread and no database connection while it waits. It subscribes to the request's channel-layer
group (channels_redis multiplexes every waiter of a process over one Redis receive loop) and is
woken by the decision's after-commit push, or answers the current state after N seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, JsonResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, mixins, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from agents.models import Run
from approvals import events, selectors, services
from approvals.models import ApprovalRequest
from approvals.serializers import (
    ApprovalCreatedSerializer,
    ApprovalCreateSerializer,
    ApprovalSerializer,
    DecisionSerializer,
)
from tenants.audit import Actor
from tenants.authentication import authenticate_key
from tenants.errors import FieldError, ServiceError, error_body
from tenants.models import ApiKey, Scope, Tenant
from tenants.viewsets import TenantScopedViewSet

MAX_WAIT_SECONDS = 60
# Any of these lets a key read a request (the client that asked, a reviewer, a reader).
READ_SCOPES = (Scope.APPROVALS_WRITE, Scope.APPROVALS_DECIDE, Scope.READ)


class ApprovalViewSet(mixins.ListModelMixin, TenantScopedViewSet[ApprovalRequest]):
    """Approval requests: external clients create them (`approvals:write`) and wait for the
    decision; reviewers list and decide them (`approvals:decide`)."""

    queryset = ApprovalRequest.objects.select_related("tenant", "run", "tool", "agent")
    serializer_class = ApprovalSerializer
    required_scopes = {
        "create": Scope.APPROVALS_WRITE,
        "list": Scope.APPROVALS_DECIDE,
        "decision": Scope.APPROVALS_DECIDE,
    }

    def scope_queryset(self, queryset: QuerySet[ApprovalRequest]) -> QuerySet[ApprovalRequest]:
        wanted = self.request.query_params.get("status", "") if self.action == "list" else ""
        if wanted:
            if wanted not in ApprovalRequest.Status.values:
                raise FieldError("status", f"one of {', '.join(ApprovalRequest.Status.values)}.")
            queryset = queryset.filter(status=wanted)
        return queryset

    @extend_schema(
        parameters=[OpenApiParameter("status", str, description="Only requests in this status (e.g. pending).")]
    )
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
            run = Run.objects.for_tenant(self.tenant).filter(pk=ref).first() if _is_uuid(ref) else None
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


def _is_uuid(value: str) -> bool:
    import uuid

    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


# --- The long-poll ----------------------------------------------------------------------------


def _error(status_code: int, type_: str, message: str) -> JsonResponse:
    response = JsonResponse(error_body(type_, message), status=status_code)
    if status_code == 401:
        response["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


def _authenticate(request: HttpRequest) -> ApiKey:
    header = request.headers.get("Authorization", "").split()
    if not header or header[0].lower() != "bearer":
        raise exceptions.NotAuthenticated("Authentication credentials were not provided.")
    if len(header) != 2:
        raise exceptions.AuthenticationFailed("Malformed Authorization header: use `Bearer <api key>`.")
    return authenticate_key(header[1])


def _read(tenant: Tenant, pk: str) -> dict[str, Any]:
    return dict(ApprovalSerializer(selectors.get_approval_for_tenant(tenant, pk)).data)


async def approval_detail(request: HttpRequest, pk: str) -> JsonResponse:
    """GET one request; `?wait=N` (0-60 s) holds the answer until it leaves `pending` or N seconds
    pass, then answers its current state (200 either way: check `status`)."""
    if request.method != "GET":
        return _error(405, "method_not_allowed", f'Method "{request.method}" not allowed.')
    try:
        key = await sync_to_async(_authenticate)(request)
    except exceptions.NotAuthenticated as exc:
        return _error(401, "not_authenticated", str(exc.detail))
    except exceptions.AuthenticationFailed as exc:
        return _error(401, "authentication_failed", str(exc.detail))
    except ServiceError as exc:
        return _error(exc.status_code, exc.type, exc.message)
    if not any(key.has_scope(s) for s in READ_SCOPES):
        return _error(403, "permission_denied", "This API key lacks the `approvals:write` or `read` scope.")
    raw_wait = request.GET.get("wait", "0")
    try:
        wait = float(raw_wait)
    except ValueError:
        wait = -1.0
    if not 0 <= wait <= MAX_WAIT_SECONDS:
        return _error(400, "validation_error", f"wait: a number of seconds from 0 to {MAX_WAIT_SECONDS}.")
    tenant = key.tenant
    try:
        body = await sync_to_async(_read)(tenant, pk)
    except Http404:
        return _error(404, "not_found", "Not found.")
    layer = get_channel_layer()
    if body["status"] != ApprovalRequest.Status.PENDING or wait == 0 or layer is None:
        return JsonResponse(body)
    group = events.waiters_group(body["id"])
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    try:
        # Read again after subscribing: a decision committed in between is not missed.
        body = await sync_to_async(_read)(tenant, pk)
        if body["status"] == ApprovalRequest.Status.PENDING:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(layer.receive(channel), timeout=wait)
            body = await sync_to_async(_read)(tenant, pk)
    finally:
        await layer.group_discard(group, channel)
    return JsonResponse(body)
