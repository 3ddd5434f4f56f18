"""REST endpoints for evals: suites and cases (CRUD, JSONL import and export), eval runs (start,
read with per-case results and the comparison with the baseline, cancel, accept as baseline),
reviews, and the pin-change gate (report, override). Thin adapters over services and selectors;
the tenant comes from the API key (TenantScopedViewSet)."""

from __future__ import annotations

from typing import Any, ClassVar, cast

from django.db.models import QuerySet
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser, JSONParser
from rest_framework.request import Request
from rest_framework.response import Response

from agents.models import Run
from agents.selectors import find_agent, is_uuid
from catalog.models import LanguageModel, PinChange
from evals import selectors, services
from evals.models import Case, EvalResult, EvalRun, Review, Suite
from evals.serializers import (
    CaseSerializer,
    CaseWriteSerializer,
    EvalRunDetailSerializer,
    EvalRunSerializer,
    FromTraceSerializer,
    ImportSerializer,
    OverrideSerializer,
    ReviewSerializer,
    ReviewWriteSerializer,
    StartRunSerializer,
    SuiteSerializer,
    SuiteWriteSerializer,
)
from tenants.audit import Actor
from tenants.errors import FieldError
from tenants.models import Scope, Tenant
from tenants.selectors import get_for_tenant
from tenants.viewsets import SCOPED_PER_REQUEST, TenantScopedViewSet

_READS: dict[str, str | None] = {"list": Scope.READ, "retrieve": Scope.READ, "*": Scope.ADMIN}


class JsonLinesParser(BaseParser):
    """A JSONL (or plain text) body, handed over as text: the service parses it line by line."""

    media_type = "application/x-ndjson"

    # The body is text, not a mapping: the import action reads it as such.
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> str:  # type: ignore[override]
        try:
            return stream.read().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ParseError("The JSONL body is not UTF-8.") from exc


class PlainTextParser(JsonLinesParser):
    media_type = "text/plain"


def _agent(tenant: Tenant, ref: Any) -> Any:
    agent = find_agent(tenant=tenant, ref=str(ref or "").strip())
    if agent is None:
        raise FieldError("agent", f"no agent has the id or name {ref!r}.")
    return agent


def _model(tenant: Tenant, ref: str) -> LanguageModel:
    models = LanguageModel.objects.for_tenant(tenant).select_related("provider")
    found = list(models.filter(model_id=ref)[:2])
    if not found and is_uuid(ref):
        found = list(models.filter(pk=ref))
    if not found:
        raise FieldError("model", f"no model {ref!r} in this tenant (give an exact model id).")
    if len(found) > 1:
        raise FieldError("model", f"several providers serve {ref!r}; give the model's id instead.")
    return found[0]


class SuiteViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet[Suite]):
    """Eval suites. Reading needs `read`; changing needs `admin` (audited); starting a run needs
    `runs:write`."""

    queryset = Suite.objects.across_tenants(SCOPED_PER_REQUEST).select_related("agent", "baseline")
    serializer_class = SuiteSerializer
    required_scopes: ClassVar[dict[str, str | None]] = {
        **_READS,
        "cases": Scope.READ,
        "add_case": Scope.ADMIN,
        "export": Scope.READ,
        "runs": Scope.READ,
        "start_run": Scope.RUNS_WRITE,
    }

    def scope_queryset(self, queryset: QuerySet[Suite]) -> QuerySet[Suite]:
        return selectors.suites_of(tenant=self.tenant)

    @extend_schema(request=SuiteWriteSerializer, responses={201: SuiteSerializer})
    def create(self, request: Request) -> Response:
        form = SuiteWriteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = dict(form.validated_data)
        agent = _agent(self.tenant, data.pop("agent"))
        suite = services.suite_create(actor=Actor.from_request(request), tenant=self.tenant, agent=agent, **data)
        return Response(SuiteSerializer(suite).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=SuiteWriteSerializer, responses=SuiteSerializer)
    def partial_update(self, request: Request, pk: str) -> Response:
        return self._update(request, partial=True)

    @extend_schema(request=SuiteWriteSerializer, responses=SuiteSerializer)
    def update(self, request: Request, pk: str) -> Response:
        return self._update(request, partial=False)

    def _update(self, request: Request, *, partial: bool) -> Response:
        suite = self.get_object()
        form = SuiteWriteSerializer(data=request.data, partial=partial)
        form.is_valid(raise_exception=True)
        data = dict(form.validated_data)
        if "agent" in data:
            data["agent"] = _agent(self.tenant, data["agent"])
        suite = services.suite_update(actor=Actor.from_request(request), suite=suite, **data)
        return Response(SuiteSerializer(selectors.get_suite_for_tenant(self.tenant, suite.pk)).data)

    def destroy(self, request: Request, pk: str) -> Response:
        services.suite_delete(actor=Actor.from_request(request), suite=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses=CaseSerializer(many=True))
    @action(detail=True, methods=["get"])
    def cases(self, request: Request, pk: str) -> Response:
        """The suite's cases, oldest first."""
        suite = self.get_object()
        page = self.paginate_queryset(cast(Any, selectors.cases_of(suite=suite)))
        return self.get_paginated_response(CaseSerializer(page, many=True).data)

    @extend_schema(request=CaseWriteSerializer, responses={201: CaseSerializer})
    @cases.mapping.post
    def add_case(self, request: Request, pk: str) -> Response:
        """Add a case (`admin`; assertions are validated, a bad one is named by its position)."""
        suite = self.get_object()
        form = CaseWriteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        case = services.case_create(actor=Actor.from_request(request), suite=suite, **form.validated_data)
        return Response(CaseSerializer(case).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ImportSerializer, responses={201: CaseSerializer(many=True)})
    @action(
        detail=True,
        methods=["post"],
        url_path="cases/import",
        parser_classes=[JSONParser, JsonLinesParser, PlainTextParser],
    )
    def import_cases(self, request: Request, pk: str) -> Response:
        """Add cases from JSONL: `{"jsonl": "..."}`, or the JSONL itself as the body
        (Content-Type application/x-ndjson or text/plain). All or none."""
        suite = self.get_object()
        if isinstance(request.data, dict):
            form = ImportSerializer(data=request.data)
            form.is_valid(raise_exception=True)
            text = form.validated_data["jsonl"]
        else:
            text = str(request.data)
        cases = services.cases_import(actor=Actor.from_request(request), suite=suite, text=text)
        return Response(CaseSerializer(cases, many=True).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=FromTraceSerializer, responses={201: CaseSerializer})
    @action(detail=True, methods=["post"], url_path="cases/from-trace")
    def from_trace(self, request: Request, pk: str) -> Response:
        """Turn a production trace into a new case of the suite (`admin`): the run behind it, or
        its root span's input with its output as the expected output."""
        suite = self.get_object()
        form = FromTraceSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        case = services.case_from_trace(
            actor=Actor.from_request(request), suite=suite, trace_id=form.validated_data["trace_id"]
        )
        return Response(CaseSerializer(case).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={(200, "application/x-ndjson"): OpenApiResponse(description="One case per line.")})
    @action(detail=True, methods=["get"], url_path="cases/export")
    def export(self, request: Request, pk: str) -> HttpResponse:
        """Every case of the suite as JSONL (importable as it is)."""
        suite = self.get_object()
        body = "".join(services.case_as_json_line(case) for case in selectors.cases_of(suite=suite))
        response = HttpResponse(body, content_type="application/x-ndjson; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="suite-{suite.pk}.jsonl"'
        return response

    @extend_schema(responses=EvalRunSerializer(many=True))
    @action(detail=True, methods=["get"])
    def runs(self, request: Request, pk: str) -> Response:
        """The suite's eval runs, newest first."""
        suite = self.get_object()
        page = self.paginate_queryset(cast(Any, selectors.eval_runs_of(tenant=self.tenant, suite=suite)))
        return self.get_paginated_response(EvalRunSerializer(page, many=True).data)

    @extend_schema(request=StartRunSerializer, responses={202: EvalRunSerializer})
    @runs.mapping.post
    def start_run(self, request: Request, pk: str) -> Response:
        """Start an eval run of every case (`runs:write`), on the pinned model or `{model}` → 202;
        poll GET /evals/runs/{id}."""
        suite = self.get_object()
        form = StartRunSerializer(data=request.data or {})
        form.is_valid(raise_exception=True)
        ref = (form.validated_data.get("model") or "").strip()
        model = _model(self.tenant, ref) if ref else None
        eval_run = services.eval_run_start(
            actor=Actor.from_request(request), suite=suite, model=model, trigger=EvalRun.Trigger.API
        )
        return Response(EvalRunSerializer(eval_run).data, status=status.HTTP_202_ACCEPTED)


class CaseViewSet(mixins.RetrieveModelMixin, TenantScopedViewSet[Case]):
    """One case: read (`read`), change or delete (`admin`, audited)."""

    queryset = Case.objects.across_tenants(SCOPED_PER_REQUEST).select_related("suite")
    serializer_class = CaseSerializer
    required_scopes: ClassVar[dict[str, str | None]] = _READS

    @extend_schema(request=CaseWriteSerializer, responses=CaseSerializer)
    def partial_update(self, request: Request, pk: str) -> Response:
        case = self.get_object()
        form = CaseWriteSerializer(data=request.data, partial=True)
        form.is_valid(raise_exception=True)
        case = services.case_update(actor=Actor.from_request(request), case=case, **form.validated_data)
        return Response(CaseSerializer(case).data)

    @extend_schema(request=CaseWriteSerializer, responses=CaseSerializer)
    def update(self, request: Request, pk: str) -> Response:
        case = self.get_object()
        form = CaseWriteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        case = services.case_update(actor=Actor.from_request(request), case=case, **form.validated_data)
        return Response(CaseSerializer(case).data)

    def destroy(self, request: Request, pk: str) -> Response:
        services.case_delete(actor=Actor.from_request(request), case=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class EvalRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet[EvalRun]):
    """Eval runs, newest first (`?suite=`, `?status=`); one comes with its per-case results and
    the comparison with its suite's baseline."""

    queryset = EvalRun.objects.across_tenants(SCOPED_PER_REQUEST).select_related(
        "suite__agent__current_version", "model", "agent_version", "tenant"
    )
    serializer_class = EvalRunSerializer
    required_scopes: ClassVar[dict[str, str | None]] = {**_READS, "cancel": Scope.RUNS_WRITE, "accept": Scope.ADMIN}

    filterset_class = selectors.EvalRunFilterSet

    def scope_queryset(self, queryset: QuerySet[EvalRun]) -> QuerySet[EvalRun]:
        return queryset.order_by("-created_at")

    @extend_schema(responses=EvalRunDetailSerializer)
    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(EvalRunDetailSerializer(self.get_object()).data)

    @extend_schema(request=None, responses=EvalRunSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        """Stop the run: pending cases are skipped, running ones stop between steps (409 once finished)."""
        eval_run = services.eval_run_cancel(actor=Actor.from_request(request), eval_run=self.get_object())
        return Response(EvalRunSerializer(eval_run).data)

    @extend_schema(request=None, responses=SuiteSerializer)
    @action(detail=True, methods=["post"])
    def accept(self, request: Request, pk: str) -> Response:
        """Make this run its suite's baseline (audited)."""
        suite = services.eval_run_accept(actor=Actor.from_request(request), eval_run=self.get_object())
        return Response(SuiteSerializer(selectors.get_suite_for_tenant(self.tenant, suite.pk)).data)


class ReviewViewSet(mixins.ListModelMixin, TenantScopedViewSet[Review]):
    """Human reviews: a 1-5 score and a comment on an eval result or a production run."""

    queryset = Review.objects.across_tenants(SCOPED_PER_REQUEST)
    serializer_class = ReviewSerializer
    required_scopes: ClassVar[dict[str, str | None]] = {"list": Scope.READ, "*": Scope.ADMIN}

    def scope_queryset(self, queryset: QuerySet[Review]) -> QuerySet[Review]:
        return queryset.order_by("-created_at")

    @extend_schema(request=ReviewWriteSerializer, responses={201: ReviewSerializer})
    def create(self, request: Request) -> Response:
        form = ReviewWriteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = dict(form.validated_data)
        result = run = None
        if data.get("result"):
            result = get_for_tenant(
                EvalResult.objects.for_tenant(self.tenant).select_related("tenant"), self.tenant, pk=data["result"]
            )
        if data.get("run"):
            run = get_for_tenant(Run.objects.for_tenant(self.tenant), self.tenant, pk=data["run"])
        review = services.review_create(
            actor=Actor.from_request(request),
            tenant=self.tenant,
            score=data["score"],
            comment=data.get("comment", ""),
            result=result,
            run=run,
        )
        return Response(ReviewSerializer(review).data, status=status.HTTP_201_CREATED)


class GateViewSet(TenantScopedViewSet[PinChange]):
    """The eval gate of a pin change: each gating suite's run on the candidate compared with its
    baseline (`read`), and the admin's written override (`admin`, audited)."""

    queryset = PinChange.objects.across_tenants(SCOPED_PER_REQUEST).select_related("tenant", "to_model", "from_model")
    required_scopes: ClassVar[dict[str, str | None]] = {"retrieve": Scope.READ, "override": Scope.ADMIN}

    @extend_schema(responses=OpenApiResponse(description="The gate report."))
    def retrieve(self, request: Request, pk: str) -> Response:
        report = selectors.gate_report(self.get_object())
        return Response(
            {
                "pin_change": str(report.change.pk),
                "passes": report.passes,
                "problems": report.problems,
                "override": {
                    "reason": report.override.reason,
                    "by": report.override.by_label,
                    "at": report.override.created_at,
                    "holds": report.override_holds,
                    "problems": report.override.problems,
                }
                if report.override
                else None,
                "suites": [
                    {
                        "suite": str(s.suite.pk),
                        "name": s.suite.name,
                        "run": str(s.run.pk) if s.run else None,
                        "run_status": s.run.status if s.run else None,
                        "run_finished_at": s.run.finished_at if s.run else None,
                        "newer_runs": [
                            {"id": str(r.pk), "status": r.status, "finished_at": r.finished_at} for r in s.newer
                        ],
                        "notes": s.notes,
                        "baseline": str(s.baseline.pk) if s.baseline else None,
                        "problem": s.problem,
                        "comparison": s.comparison.as_dict() if s.comparison else None,
                    }
                    for s in report.suites
                ],
            }
        )

    @extend_schema(request=OverrideSerializer, responses={201: OpenApiResponse(description="The override.")})
    @action(detail=True, methods=["post"])
    def override(self, request: Request, pk: str) -> Response:
        form = OverrideSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        override = services.gate_override(
            actor=Actor.from_request(request), change=self.get_object(), reason=form.validated_data["reason"]
        )
        return Response(
            {"pin_change": str(override.pin_change_id), "reason": override.reason, "by": override.by_label},
            status=status.HTTP_201_CREATED,
        )
