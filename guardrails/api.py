"""REST endpoints of guardrails: check content against the tenant's policy, list what guardrails
did, and read and edit the policies. Thin adapters: a serializer checks types, one service call decides, the tenant
comes from the API key."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from agents.selectors import find_agent
from guardrails import services
from guardrails.checks import CheckResult
from guardrails.models import GuardrailEvent, GuardrailFeedback, Policy
from guardrails.selectors import FeedbackFilterSet, GuardrailEventFilterSet, PolicyFilterSet
from guardrails.serializers import (
    CheckRequestSerializer,
    CheckResultSerializer,
    FeedbackCreateSerializer,
    FeedbackSerializer,
    GuardrailEventSerializer,
    PolicyCreateSerializer,
    PolicySerializer,
    PolicyWriteSerializer,
)
from guardrails.services import guardrail_check
from tenants.audit import Actor
from tenants.errors import FieldConflictError, FieldError
from tenants.models import ApiKey, Scope
from tenants.viewsets import SCOPED_PER_REQUEST, TenantScopedViewSet


def result_body(checked: CheckResult) -> dict[str, Any]:
    """The check's answer. Findings carry the excerpts of the caller's own text (it sent it)."""
    redacted = checked.redacted
    return {
        "allowed": checked.allowed,
        "action": checked.action,
        "reason": checked.reason,
        "findings": [f.as_dict() for f in checked.findings],
        "redacted_text": checked.redacted_text,
        "redacted_arguments": redacted if isinstance(redacted, dict) else None,
        "latency_us": checked.latency_us,
    }


class GuardrailCheckViewSet(TenantScopedViewSet[GuardrailEvent]):
    """`POST /guardrails/check`: run content through the policy of the agent (or the tenant's)."""

    queryset = GuardrailEvent.objects.across_tenants(SCOPED_PER_REQUEST)
    required_scopes = {"create": Scope.GUARDRAILS_CHECK}

    @extend_schema(request=CheckRequestSerializer, responses=CheckResultSerializer)
    def create(self, request: Request) -> Response:
        """Check one stage's content: `text` for input and output, `tool` + `arguments` for a tool
        call, `text` or `result` for a tool result. `allowed` is false for block and
        require_approval; a redaction returns `redacted_text` (and `redacted_arguments` for a
        tool call). A verdict other than allow is recorded as a guardrail event."""
        form = CheckRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        agent = None
        if ref := (data.get("agent") or "").strip():
            agent = find_agent(tenant=self.tenant, ref=ref)
            if agent is None:
                raise FieldError("agent", f"no agent has the id or name {ref!r}.")
        checked = guardrail_check(
            tenant=self.tenant,
            stage=data["stage"],
            text=data.get("text"),
            tool=data.get("tool"),
            arguments=data.get("arguments"),
            result=data.get("result"),
            agent=agent,
            api_key=request.auth if isinstance(request.auth, ApiKey) else None,
        )
        return Response(result_body(checked))


class GuardrailEventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet[GuardrailEvent]):
    """What guardrails flagged, redacted, blocked or sent for approval, newest first. Excerpts of
    personal data and secrets are masked."""

    queryset = GuardrailEvent.objects.across_tenants(SCOPED_PER_REQUEST).prefetch_related("feedback")
    serializer_class = GuardrailEventSerializer
    required_scopes = {"list": Scope.READ, "retrieve": Scope.READ}
    filterset_class = GuardrailEventFilterSet

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)


class GuardrailPolicyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet[Policy]):
    """The tenant's policy (`agent` null) and the agents' overrides, for keeping guardrails as code.
    Reading needs `read`; changing needs `admin` (audited). Rules are validated like the console's
    editor: a bad rule is a 400 naming its position and field."""

    queryset = Policy.objects.across_tenants(SCOPED_PER_REQUEST).select_related("agent")
    serializer_class = PolicySerializer
    required_scopes = {"list": Scope.READ, "retrieve": Scope.READ, "*": Scope.ADMIN}
    filterset_class = PolicyFilterSet

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.policy_ensure_default(tenant=self.tenant)  # a new tenant's defaults show up too
        return super().list(request, *args, **kwargs)

    @extend_schema(request=PolicyCreateSerializer, responses={201: PolicySerializer})
    def create(self, request: Request) -> Response:
        """Create an agent's override (409 when it has one: update it instead)."""
        form = PolicyCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        ref = form.validated_data["agent"].strip()
        agent = find_agent(tenant=self.tenant, ref=ref)
        if agent is None:
            raise FieldError("agent", f"no agent has the id or name {ref!r}.")
        if Policy.objects.for_tenant(self.tenant).filter(agent=agent).exists():
            raise FieldConflictError("agent", f"{agent.name} has an override already; update it instead.")
        policy = services.policy_update(
            actor=Actor.from_request(request), tenant=self.tenant, agent=agent, rules=form.validated_data["rules"]
        )
        return Response(PolicySerializer(policy).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=PolicyWriteSerializer, responses=PolicySerializer)
    def update(self, request: Request, pk: str) -> Response:
        """Replace the policy's rules."""
        policy = self.get_object()
        form = PolicyWriteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        policy = services.policy_update(
            actor=Actor.from_request(request),
            tenant=self.tenant,
            agent=policy.agent,
            rules=form.validated_data["rules"],
        )
        return Response(PolicySerializer(policy).data)

    def destroy(self, request: Request, pk: str) -> Response:
        """Remove an agent's override (the tenant's own policy cannot be removed: 400)."""
        services.policy_delete(actor=Actor.from_request(request), policy=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class GuardrailFeedbackViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet[GuardrailFeedback]
):
    """The tenant's feedback set: texts reviewers marked as false positives (let through) or
    missed attacks (blocked), applied to every check from the next one on (matching: exact
    normalised text, or a near-duplicate for the injection detector; see guardrails.feedback).
    Reading and the JSONL export need `read`; marking and removing need `admin` (audited)."""

    queryset = GuardrailFeedback.objects.across_tenants(SCOPED_PER_REQUEST)
    serializer_class = FeedbackSerializer
    required_scopes = {"list": Scope.READ, "retrieve": Scope.READ, "export": Scope.READ, "*": Scope.ADMIN}
    filterset_class = FeedbackFilterSet

    @extend_schema(request=FeedbackCreateSerializer, responses={201: FeedbackSerializer})
    def create(self, request: Request) -> Response:
        """Mark a guardrail event's text (`event`), or a `text` at a `stage` (a missed attack no
        event recorded), as `false_positive` or `missed_attack`. Marking a text the set holds
        already replaces its entry."""
        form = FeedbackCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        event = None
        if "event" in data:
            event = GuardrailEvent.objects.for_tenant(self.tenant).filter(pk=data["event"]).first()
            if event is None:
                raise FieldError("event", "no guardrail event of this tenant has this id.")
        entry = services.feedback_mark(
            actor=Actor.from_request(request),
            tenant=self.tenant,
            kind=data["kind"],
            event=event,
            stage=data.get("stage"),
            text=data.get("text"),
            detectors=data.get("detectors"),
            note=data.get("note", ""),
        )
        return Response(FeedbackSerializer(entry).data, status=status.HTTP_201_CREATED)

    def destroy(self, request: Request, pk: str) -> Response:
        """Remove an entry: checks stop applying it at once."""
        services.feedback_remove(actor=Actor.from_request(request), entry=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        filters=False,
        responses={(200, "application/x-ndjson"): OpenApiResponse(description="One JSON object a line.")},
    )
    @action(detail=False, methods=["get"], url_path="export")
    def export(self, request: Request) -> HttpResponse:
        """The feedback set as JSONL for retraining the injection model: one row a text, with its
        masked `text`, `label` (benign or injection), `kind`, `stage`, `mode`, `detectors`,
        `note`, `event` and `created_at`, oldest first."""
        return feedback_jsonl(self.tenant)


def feedback_jsonl(tenant: Any) -> HttpResponse:
    """The export as a JSONL download (the API's and the console's): at most MAX_FEEDBACK rows of
    at most 4,000 characters of text each, so built whole."""
    rows = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in services.feedback_export(tenant=tenant))
    response = HttpResponse(rows, content_type="application/x-ndjson; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="guardrail-feedback-{tenant.slug}.jsonl"'
    return response
