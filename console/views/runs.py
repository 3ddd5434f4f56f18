"""Runs: the list (filters, live rows) and a run's page (steps, tool calls, live status, cancel).

Every member reads runs; reviewers and admins may cancel one. Model output, tool arguments and
tool results are untrusted: templates render them escaped (never |safe), as text in <pre>."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.http import HttpResponse
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.views.decorators.http import require_POST

from agents import selectors, services
from agents.models import Run, Step
from agents.selectors import is_uuid
from agents.serializers import step_arguments, step_result, usd
from console import live
from console.access import ConsoleRequest, render_page, role_required
from console.forms import act
from console.templatetags.untrusted import pretty
from tenants.audit import Actor
from tenants.models import Membership, Role, Tenant

PAGE_SIZE = 50
FILTERS = ("agent", "status", "end_user_id", "session_id")


# Parameters of the runs list that are not filters: the cursor, and the live socket's page name.
LIST_PARAMS = ("before", "page")


def run_filters(tenant: Tenant, params: Any) -> selectors.RunFilterSet:
    """The list's filters (agents, API and console alike: selectors.RunFilterSet); the console
    shows the agent as a choice of the tenant's agents."""
    filters = selectors.RunFilterSet(params, selectors.runs_of(tenant=tenant), tenant=tenant, passthrough=LIST_PARAMS)
    agents = selectors.agents_of(tenant=tenant, include_archived=True).values_list("pk", "name")
    filters.form.fields["agent"].widget = forms.Select(choices=[("", "any agent"), *[(str(pk), n) for pk, n in agents]])
    return filters


@role_required(Role.VIEWER)
def runs(request: ConsoleRequest) -> HttpResponse:
    """The newest runs matching the filters; `before` pages to older ones. Rows update live."""
    filters = run_filters(request.tenant, request.GET)
    valid = filters.is_valid()
    queryset = filters.qs if valid else Run.objects.none()
    query = {k: v for k, v in request.GET.items() if k in filters.filters and v} if valid else {}
    before = request.GET.get("before", "")
    if before and is_uuid(before):
        # Ids are UUIDv7: older runs have smaller ids, so the last row's id is the cursor.
        queryset = queryset.filter(pk__lt=before)
    rows = list(queryset[: PAGE_SIZE + 1])
    has_older = len(rows) > PAGE_SIZE
    rows = _with_cost(rows[:PAGE_SIZE])
    context = {
        "runs": rows,
        "form": filters.form,
        "older": rows[-1].pk if has_older else None,
        "paged": bool(before),
        "filter_query": urlencode(query),
        "live_query": urlencode({"page": "runs", **query}),
        "can_cancel": request.membership.has_role(Role.REVIEWER),
    }
    return render_page(request, "runs/index.html", context, fragment="run_rows", status=200 if valid else 400)


def _with_cost(runs: list[Run]) -> list[Run]:
    """The runs, each with `cost_usd` for the template (micro-USD as dollars)."""
    for run in runs:
        run.cost_usd = usd(run.cost_micros)  # type: ignore[attr-defined]
    return runs


@dataclass(frozen=True)
class StepRow:
    """A step as the run page shows it: JSON pretty-printed (and escaped by the template)."""

    step: Step
    arguments: str
    result: str
    content: str
    tool_calls: str
    cost_usd: str


@dataclass(frozen=True)
class PageRedaction:
    """One redaction decision for a run's page: what the output guardrails masked in the run's
    answer (its PII types, secrets) is masked wherever it appears on the page (input, steps,
    tool arguments and results, conversation), so the answer never hides a value the steps
    below it show in clear. `reasons` (the guardrail events' own) are shown to admins."""

    entities: tuple[str, ...]
    secrets: bool
    reasons: tuple[str, ...]
    event_ids: tuple[str, ...]

    def apply(self, text: str) -> str:
        if not text or not text.strip():
            return text
        from guardrails import detectors
        from guardrails.detectors import pii, secrets

        found = pii.detect(text, entities=list(self.entities)) if self.entities else []
        if self.secrets:
            found += secrets.detect(text)
        return detectors.redact(text, found) if found else text


def page_redaction(run: Run) -> PageRedaction | None:
    """The run's redaction decision, from the output guardrail events that redacted its answer
    (one query), or None when nothing of its answer was masked."""
    from guardrails.models import GuardrailEvent

    events = list(
        GuardrailEvent.objects.for_tenant(run.tenant)
        .filter(run=run, stage="output", action="redact")
        .values_list("id", "reason", "findings")
    )
    entities: set[str] = set()
    masks_secrets = False
    for _, _, findings in events:
        for finding in findings if isinstance(findings, list) else []:
            if not isinstance(finding, dict) or finding.get("action") not in (None, "redact"):
                continue
            if finding.get("detector") == "pii" and finding.get("type"):
                entities.add(str(finding["type"]))
            elif finding.get("detector") == "secrets":
                masks_secrets = True
    if not entities and not masks_secrets:
        return None
    return PageRedaction(
        entities=tuple(sorted(entities)),
        secrets=masks_secrets,
        reasons=tuple(dict.fromkeys(str(reason) for _, reason, _ in events)),
        event_ids=tuple(str(pk) for pk, _, _ in events),
    )


def _step_rows(run: Run, redaction: PageRedaction | None = None) -> list[StepRow]:
    mask = redaction.apply if redaction is not None else (lambda text: text)
    rows = []
    for step in selectors.steps_of(run=run):
        response = step.response if isinstance(step.response, dict) else {}
        rows.append(
            StepRow(
                step=step,
                arguments=mask(pretty(step_arguments(step))),
                result=mask(pretty(step_result(step))),
                content=mask(str(response.get("content") or "")) if step.kind == Step.Kind.MODEL else "",
                tool_calls=mask(pretty(response.get("tool_calls"))) if step.kind == Step.Kind.MODEL else "",
                cost_usd=usd(step.cost_micros),
            )
        )
    return rows


def _pending_steps(run: Run) -> list[Any]:
    """The tool calls a run waits on a reviewer for, each under the step number it will run as
    (the number its approval page gives): one query, none unless the run is waiting."""
    if run.status != Run.Status.AWAITING_APPROVAL:
        return []
    from approvals.models import ApprovalRequest

    return list(
        ApprovalRequest.objects.for_tenant(run.tenant)
        .filter(run=run, status=ApprovalRequest.Status.PENDING, step_index__isnull=False)
        .select_related("tool")
        .order_by("step_index", "created_at")
    )


def run_context(run: Run, *, can_cancel: bool) -> dict[str, Any]:
    """What the run page's live part shows; the websocket renders it with this too."""
    duration = None
    if run.started_at and run.finished_at:
        duration = (run.finished_at - run.started_at).total_seconds()
    redaction = page_redaction(run) if run.is_finished else None
    mask = redaction.apply if redaction is not None else (lambda text: text)
    return {
        "run": run,
        "redaction": redaction,
        "run_input": mask(run.input if isinstance(run.input, str) else pretty(run.input)),
        "steps": _step_rows(run, redaction),
        "pending_steps": _pending_steps(run),
        "conversation": [
            {
                **m,
                "content": mask(m["content"]) if isinstance(m.get("content"), str) else m.get("content"),
                "tool_calls_json": mask(pretty(m.get("tool_calls"))) if m.get("tool_calls") else "",
            }
            for m in (run.messages if isinstance(run.messages, list) else [])
            if isinstance(m, dict)
        ],
        "cost_usd": usd(run.cost_micros),
        "duration": duration,
        "can_cancel": can_cancel and not run.is_finished,
    }


@role_required(Role.VIEWER)
def run(request: ConsoleRequest, pk: str) -> HttpResponse:
    run = selectors.get_run_for_tenant(request.tenant, pk)
    context = run_context(run, can_cancel=request.membership.has_role(Role.REVIEWER))
    context["live_query"] = urlencode({"page": "run", "run": str(run.pk)})
    return render_page(request, "runs/detail.html", context, fragment="run_live")


@role_required(Role.REVIEWER)
@require_POST
def run_cancel(request: ConsoleRequest, pk: str) -> HttpResponse:
    run = selectors.get_run_for_tenant(request.tenant, pk)
    act(
        request,
        lambda: services.run_cancel(actor=Actor.from_request(request), run=run),
        success=lambda cancelled: (
            "The run was cancelled."
            if cancelled.status == Run.Status.CANCELLED
            else "Cancel requested: the worker stops the run before its next step."
        ),
    )
    return redirect("console:run", tenant_slug=request.tenant.slug, pk=run.pk)


# --- Live: what the websocket sends a runs page when a run changes ------------------------------


@dataclass
class LiveRunsPage:
    """The state of one connected runs page (the list with its filters, or one run's page):
    which rows it shows, so a change swaps an existing row and prepends a new one."""

    page: str
    run_id: str = ""
    filtered: Any = None  # the list's rows (a queryset), narrowed by its filters
    shown: set[str] = field(default_factory=set)
    empty: bool = False

    @classmethod
    def connect(cls, tenant: Tenant, params: dict[str, str]) -> LiveRunsPage:
        page = params.get("page", "")
        if page == "run":
            return cls(page="run", run_id=params.get("run", ""))
        filters = run_filters(tenant, params)
        filtered = filters.qs if filters.is_valid() else Run.objects.none()
        shown = {str(pk) for pk in filtered.values_list("pk", flat=True)[:PAGE_SIZE]}
        return cls(page="runs", filtered=filtered, shown=shown, empty=not shown)

    def render(self, tenant: Tenant, membership: Membership, event: dict[str, Any]) -> str:
        """The HTML to push for a `run.changed` event: out-of-band swaps of what this page shows
        of the run, or "" when the page does not show it."""
        run_id = str(event.get("run_id", ""))
        can_cancel = membership.has_role(Role.REVIEWER)
        if self.page == "run":
            if run_id != self.run_id:
                return ""
            run = selectors.runs_of(tenant=tenant).filter(pk=run_id).first()
            if run is None:
                return ""
            context = {**run_context(run, can_cancel=can_cancel), "tenant": tenant, "live": True}
            return render_to_string("runs/detail.html#run_live", context)
        if run_id in self.shown:
            run = selectors.runs_of(tenant=tenant).filter(pk=run_id).first()
            if run is None:
                return ""
            context = {"run": _with_cost([run])[0], "tenant": tenant, "live": True, "can_cancel": can_cancel}
            return render_to_string("runs/index.html#run_row", context)
        run = self.filtered.filter(pk=run_id).first() if self.filtered is not None else None
        if run is None:
            return ""
        self.shown.add(run_id)
        context = {"run": _with_cost([run])[0], "tenant": tenant, "can_cancel": can_cancel, "clear_empty": self.empty}
        self.empty = False
        return render_to_string("runs/index.html#run_new", context)


@live.page
class LiveRunList(live.LivePage):
    """The runs list: a changed run's row is swapped, a new one matching the filters prepended."""

    name = "runs"
    events = frozenset({"run.changed"})

    def __init__(self, tenant: Tenant, membership: Membership, params: dict[str, str]) -> None:
        super().__init__(tenant, membership, params)
        self.state = LiveRunsPage.connect(tenant, params)

    def render(self, membership: Membership, event: dict[str, Any]) -> str:
        return self.state.render(self.tenant, membership, event)


@live.page
class LiveRun(LiveRunList):
    """One run's page: its status, steps and tool calls as they happen."""

    name = "run"
