"""REST endpoints for traces: native batch ingest, the filtered list, one trace with its spans, and
the erasure of an end user. Thin adapters over traces.services and traces.selectors."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from tenants import services as tenant_services
from tenants.audit import Actor
from tenants.errors import ServiceError
from tenants.models import ApiKey, Scope
from tenants.pagination import CursorPagination
from tenants.viewsets import SCOPED_PER_REQUEST, TenantScopedViewSet
from traces import selectors, services
from traces.ingest import MAX_BATCH_BYTES, MAX_SPANS_PER_BATCH
from traces.models import Trace
from traces.serializers import (
    ErasureReceiptSerializer,
    IngestReceiptSerializer,
    IngestRequestSerializer,
    TraceDetailSerializer,
    TraceSerializer,
)

MAX_SPANS_IN_DETAIL = 20_000


class BatchTooLargeError(ServiceError):
    type = "batch_too_large"
    status_code = 413


class ByStart(CursorPagination):
    ordering = ("-started_at", "-id")  # type: ignore[assignment]  # DRF accepts a tuple


def _refuse_batch(request: Request, reason: str, message: str, count: int, exc: type[ServiceError]) -> None:
    """Count a refused request (every span in it, when known) and raise the API error."""
    services.rejections_count(tenant=request.tenant, counts={reason: count}, messages={reason: message})  # type: ignore[attr-defined]
    raise exc(message)


class TraceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet[Trace]):
    """Traces of the tenant. Reading needs `read`; ingesting needs `traces:write`."""

    queryset = Trace.objects.across_tenants(SCOPED_PER_REQUEST)
    serializer_class = TraceSerializer
    pagination_class = ByStart
    lookup_field = "trace_id"
    required_scopes = {"list": Scope.READ, "retrieve": Scope.READ, "ingest": Scope.TRACES_WRITE}

    filterset_class = selectors.TraceFilterSet

    def scope_queryset(self, queryset: QuerySet[Trace]) -> QuerySet[Trace]:
        if self.action == "list":
            return selectors.traces_of(tenant=self.tenant)
        return queryset

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Newest first, cursor-paginated; filters combine (AND)."""
        return super().list(request, *args, **kwargs)

    @extend_schema(responses=TraceDetailSerializer)
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:  # type: ignore[override]
        """The trace with its spans (by start time; at most 20,000, then `spans_truncated`)."""
        trace = selectors.get_trace_for_tenant(self.tenant, kwargs["trace_id"])
        spans, truncated = selectors.spans_json(trace=trace, limit=MAX_SPANS_IN_DETAIL)
        # TraceDetailSerializer's shape, with the spans array spliced in as PostgreSQL wrote it.
        head = JSONRenderer().render(TraceSerializer(trace).data)
        body = b'%s,"spans":%s,"spans_truncated":%s}' % (
            head[:-1],
            spans.encode(),
            b"true" if truncated else b"false",
        )
        return HttpResponse(body, content_type="application/json")

    @extend_schema(
        request=IngestRequestSerializer,
        responses={
            200: IngestReceiptSerializer,
            413: OpenApiResponse(description=f"More than {MAX_SPANS_PER_BATCH} spans or {MAX_BATCH_BYTES} bytes."),
        },
    )
    @action(detail=False, methods=["post"])
    def ingest(self, request: Request) -> Response:
        """Store a batch of spans, idempotent on (trace_id, span_id): a replay creates nothing twice.
        Answers a receipt with one result per item (accepted, duplicate or rejected with a reason);
        a bad item never fails the others. Accepted spans are queryable when this answers."""
        length = int(request.META.get("CONTENT_LENGTH") or 0)
        if length > MAX_BATCH_BYTES:
            _refuse_batch(
                request,
                "batch_too_large",
                f"The batch is {length} bytes; the limit is {MAX_BATCH_BYTES}. Send smaller batches.",
                1,
                BatchTooLargeError,
            )
        body = request.data
        spans = body.get("spans") if isinstance(body, dict) else None
        if not isinstance(spans, list):
            _refuse_batch(request, "malformed_request", 'The body must be {"spans": [...]}.', 1, ServiceError)
            raise AssertionError  # unreachable: _refuse_batch raises
        if len(spans) > MAX_SPANS_PER_BATCH:
            _refuse_batch(
                request,
                "batch_too_many_spans",
                f"The batch has {len(spans)} spans; the limit is {MAX_SPANS_PER_BATCH}.",
                len(spans),
                BatchTooLargeError,
            )
        key = request.auth if isinstance(request.auth, ApiKey) else None
        receipt = services.spans_ingest(tenant=self.tenant, items=spans, api_key=key, size_bytes=length)
        assert receipt.batch is not None
        data = {
            "receipt_id": receipt.batch.pk,
            "received_at": receipt.batch.received_at,
            "accepted": receipt.accepted,
            "duplicates": receipt.duplicates,
            "rejected": receipt.rejected,
            "results": [r.as_dict() for r in receipt.results],
        }
        return Response(IngestReceiptSerializer(data).data, status=status.HTTP_200_OK)


class EndUserViewSet(TenantScopedViewSet[Trace]):
    """Erase an end user's data (admin): DELETE /end-users/{end_user_id}."""

    queryset = Trace.objects.across_tenants(SCOPED_PER_REQUEST)
    lookup_field = "end_user_id"
    required_scopes = {"destroy": Scope.ADMIN}

    @extend_schema(request=None, responses=ErasureReceiptSerializer)
    def destroy(self, request: Request, end_user_id: str) -> Response:
        """Erase their traces, spans, payloads and runs' inputs and outputs; budget amounts stay
        under a pseudonym; audited. Answers the receipt with counts per kind; for an end user with
        nothing stored, zeros and `erased: false`, and no erasure is audited."""
        receipt = tenant_services.end_user_erase(
            actor=Actor.from_request(request), tenant=self.tenant, end_user_id=end_user_id
        )
        return Response(ErasureReceiptSerializer(receipt).data)
