"""REST endpoints of approvals. Thin adapters: a serializer checks types, one service decides, and
the tenant comes from the API key. `GET /approvals/{id}?wait=N` is an async long-poll (see
approvals.longpoll), not a DRF view."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import HttpRequest, JsonResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from agents.models import Run
from approvals import longpoll, services
from approvals.models import ApprovalRequest
from approvals.serializers import (
    ApprovalCreatedSerializer,
    ApprovalCreateSerializer,
    ApprovalSerializer,
    DecisionSerializer,
)
from tenants.audit import Actor
from tenants.errors import FieldError, error_body
from tenants.models import Scope
from tenants.viewsets import TenantScopedViewSet


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
    if status_code == 429:
        response["Retry-After"] = str(body["error"]["retry_after"])
    return response
