"""REST endpoints for budgets and reservations. Thin adapters: a serializer checks types, one
service call decides, and the tenant comes from the API key (TenantScopedViewSet)."""

from __future__ import annotations

import threading
import time
from typing import Any

from django.db import InterfaceError, OperationalError, connection
from django.db.models import QuerySet
from django.http import HttpRequest
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils import json

from agents.selectors import find_agent
from budgets import selectors, services
from budgets.errors import BudgetFieldError, DatabaseUnavailableError
from budgets.models import Budget, Reservation
from budgets.serializers import (
    AdjustSerializer,
    BudgetSerializer,
    BudgetWriteSerializer,
    LedgerEntrySerializer,
    ReservationCreateSerializer,
    ReservationSerializer,
    SettleSerializer,
    UsageSerializer,
    plain_reservation_input,
    plain_settle_input,
    reservation_body,
)
from tenants import cache as config_cache
from tenants.audit import Actor
from tenants.models import ApiKey, Scope
from tenants.viewsets import SCOPED_PER_REQUEST, TenantScopedViewSet


class BudgetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet[Budget]):
    """The tenant's budgets. Reading needs `read`; changing needs `admin` (audited). A budget that
    has counted anything cannot be deleted (409): disable it instead."""

    queryset = Budget.objects.across_tenants(SCOPED_PER_REQUEST).select_related("agent")
    serializer_class = BudgetSerializer
    required_scopes = {"list": Scope.READ, "retrieve": Scope.READ, "usage": Scope.READ, "*": Scope.ADMIN}
    filterset_class = selectors.BudgetFilterSet

    def scope_queryset(self, queryset: QuerySet[Budget]) -> QuerySet[Budget]:
        return queryset.order_by("-id")

    @extend_schema(request=BudgetWriteSerializer, responses={201: BudgetSerializer})
    def create(self, request: Request) -> Response:
        form = BudgetWriteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        budget = services.budget_create(actor=Actor.from_request(request), tenant=self.tenant, **form.validated_data)
        return Response(BudgetSerializer(budget).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=BudgetWriteSerializer, responses=BudgetSerializer)
    def update(self, request: Request, pk: str) -> Response:
        return self._update(request, partial=False)

    @extend_schema(request=BudgetWriteSerializer, responses=BudgetSerializer)
    def partial_update(self, request: Request, pk: str) -> Response:
        return self._update(request, partial=True)

    def _update(self, request: Request, *, partial: bool) -> Response:
        budget = self.get_object()
        form = BudgetWriteSerializer(data=request.data, partial=partial)
        form.is_valid(raise_exception=True)
        changes = dict(form.validated_data)
        if not partial:
            # PUT means "exactly these settings": what was left out takes its default, except the
            # unit, which never changes (a default would refuse every PUT on a tokens budget).
            changes.setdefault("thresholds", [70, 80, 100])
            changes.setdefault("agent", None)
            changes.setdefault("notify_emails", [])
            changes.setdefault("webhook_url", "")  # the secret is write-only: left out, it is kept
            if "unit" not in request.data:
                changes.pop("unit", None)
        budget = services.budget_update(actor=Actor.from_request(request), budget=budget, **changes)
        return Response(BudgetSerializer(budget).data)

    def destroy(self, request: Request, pk: str) -> Response:
        services.budget_delete(actor=Actor.from_request(request), budget=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=AdjustSerializer, responses={201: LedgerEntrySerializer})
    @action(detail=True, methods=["post"])
    def adjust(self, request: Request, pk: str) -> Response:
        """Correct the current period's spend of one counter (an `adjust` ledger entry, audited)."""
        budget = self.get_object()
        form = AdjustSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        entry = services.budget_adjust(actor=Actor.from_request(request), budget=budget, **form.validated_data)
        return Response(LedgerEntrySerializer(entry).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        responses=UsageSerializer,
        parameters=[
            OpenApiParameter("member", str, description="A member (end user, session, …) whose remaining to answer."),
            OpenApiParameter("top", int, description="How many top members to list (1-100, default 10)."),
        ],
    )
    @action(detail=True, methods=["get"])
    def usage(self, request: Request, pk: str) -> Response:
        """The current period: settled, reserved and the limit, and the top consumers (by scope value);
        for a per-member budget, what the member asked about (or the top member) has left."""
        budget = self.get_object()
        unknown = sorted(set(request.query_params) - {"member", "top", "format"})
        if unknown:
            raise BudgetFieldError(unknown[0], "is not a filter of usage (member, top).")
        member = request.query_params.get("member")
        if member is not None and (len(member) > 200 or not budget.per_member):
            raise BudgetFieldError("member", "at most 200 characters, and only for a budget counted per member.")
        try:
            top = int(request.query_params.get("top", "10"))
        except ValueError:
            top = 0
        if not 1 <= top <= 100:
            raise BudgetFieldError("top", "must be a whole number from 1 to 100.")
        usage = selectors.budget_usage(budget=budget, top=top, member=member)
        return Response(UsageSerializer(usage).data)


# A connection that answered a reservation request of this thread this recently is used without
# Django's health check (CONN_HEALTH_CHECKS: a `SELECT 1` round trip at the first query of every
# request, two a reserve+settle pair), as the gateway's admission does (gateway/calls.py). If it
# died meanwhile (a database restart or failover within these seconds), the request's one statement
# fails before anything is written (a dead connection runs nothing) and is answered 503
# `unavailable` with Retry-After, never 500; the connection is then closed, so the retry
# reconnects. A connection idle for longer is checked as before. A connection that dies while its
# statement runs was never covered by the health check: the same 503 then (a reservation the
# statement may have committed is held until its TTL; a repeated settlement answers 409).
HEALTHY_FOR_SECONDS = 5.0
_healthy = threading.local()
# The answers a reservation request gives once its statement has run (a refusal before any, such as
# a bad field, says nothing about the connection).
ANSWERED_BY_THE_DATABASE = frozenset({200, 201, 402, 404, 409})


EXCEEDED = OpenApiResponse(
    description="budget_exceeded: the error names the budget, its scope and scope value, limit, used, reserved, "
    "unit and resets_at."
)


class ReservationViewSet(mixins.RetrieveModelMixin, TenantScopedViewSet[Reservation]):
    """Reserve a model call's worst-case cost before making it, settle it with the real usage after
    (or release it if the call failed). An open reservation expires after its TTL."""

    queryset = Reservation.objects.across_tenants(SCOPED_PER_REQUEST).select_related("model", "tenant")
    serializer_class = ReservationSerializer
    required_scopes = {
        "create": Scope.BUDGETS_RESERVE,
        "retrieve": Scope.BUDGETS_RESERVE,
        "settle": Scope.BUDGETS_RESERVE,
        "release": Scope.BUDGETS_RESERVE,
    }

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        if connection.connection is not None and time.monotonic() - getattr(_healthy, "at", -1e9) < HEALTHY_FOR_SECONDS:
            connection.health_check_done = True  # type: ignore[attr-defined]  # Django's, on every backend
        # One read of the configuration version (a Redis GET) for the API key and the model's pin,
        # instead of one each: both come from the configuration as of the request's start.
        with config_cache.snapshot():
            response = super().dispatch(request, *args, **kwargs)
        if response.status_code in ANSWERED_BY_THE_DATABASE:
            _healthy.at = time.monotonic()
        return response

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, OperationalError | InterfaceError):
            # The connection died (HEALTHY_FOR_SECONDS): a retryable answer, never a 500. Django
            # closes the connection when the request ends (its is_usable fails), so the retry
            # opens a new one.
            exc = DatabaseUnavailableError("The console's database did not answer; retry the request.", retry_after=1)
            response = super().handle_exception(exc)
            response["Retry-After"] = "1"
            return response
        return super().handle_exception(exc)

    @extend_schema(request=ReservationCreateSerializer, responses={201: ReservationSerializer, 402: EXCEEDED})
    def create(self, request: Request) -> Response:
        data = plain_reservation_input(_json_body(request))
        if data is None:
            form = ReservationCreateSerializer(data=request.data)
            form.is_valid(raise_exception=True)
            data = dict(form.validated_data)
        agent = None
        if ref := (data.pop("agent", None) or "").strip():
            agent = find_agent(tenant=self.tenant, ref=ref)
            if agent is None:
                raise BudgetFieldError("agent", f"no agent has the id or name {ref!r}.")
        key = request.auth if isinstance(request.auth, ApiKey) else None
        reservation = services.budget_reserve(tenant=self.tenant, agent=agent, api_key=key, **data)
        return Response(reservation_body(reservation), status=status.HTTP_201_CREATED)

    @extend_schema(request=SettleSerializer, responses=ReservationSerializer)
    @action(detail=True, methods=["post"])
    def settle(self, request: Request, pk: str) -> Response:
        """Settle with the provider's usage (409 when already settled or released)."""
        usage = plain_settle_input(_json_body(request))
        if usage is None:
            form = SettleSerializer(data=request.data)
            form.is_valid(raise_exception=True)
            usage = dict(form.validated_data)
        # By id and the key's tenant, in one statement: the service answers the same 404 as
        # get_object for another tenant's reservation and for none.
        reservation = services.budget_settle(reservation=pk, tenant=self.tenant, **usage)
        return Response(reservation_body(reservation))

    @extend_schema(request=None, responses=ReservationSerializer)
    @action(detail=True, methods=["post"])
    def release(self, request: Request, pk: str) -> Response:
        """The call failed: nothing was spent (409 when not open)."""
        reservation = services.budget_release(reservation=pk, tenant=self.tenant)
        return Response(reservation_body(reservation))


def _json_body(request: Request) -> Any:
    """`request.data` for a JSON body in UTF-8, parsed as DRF's JSON parser parses it (strictly: no
    NaN or Infinity) without its per-request machinery (choosing a parser, a decoding stream), about
    0.1 ms of a reservation's or settlement's CPU. Anything else (another media type or charset, a
    body that does not parse) is `request.data`, which answers its errors as before; and a body
    that is not plain (plain_reservation_input) is read again by the serializer from `request.data`.
    test_api_body checks that every kind of body is answered as with `request.data` alone."""
    django_request = request._request
    if (
        django_request.content_type == "application/json"
        and (django_request.content_params or {}).get("charset", "utf-8").lower() == "utf-8"
    ):
        try:
            return json.loads(django_request.body.decode("utf-8"))
        except (ValueError, RecursionError):
            pass
    return request.data
