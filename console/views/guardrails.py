"""Guardrails in the console: the tenant's policy and the agents' overrides (admins edit them in a
validated rule editor), a try-it box that runs text through a policy and highlights what each
rule found, the trace-redaction setting, the list of guardrail events (with the signals that
fired, links to the run and its trace) and each event's page, and the reviewer feedback set:
admins mark an event as a false positive or a missed attack, see the set's effect beside the
policy, remove entries, and anyone downloads it as JSONL. Every member reads and tries; admins
change."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import NON_FIELD_ERRORS
from django.core.paginator import Paginator
from django.db.models import Count, Sum
from django.http import HttpResponse
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from agents.models import Agent
from console import live
from console.access import ConsoleRequest, render_page, role_required
from console.forms import done, submit
from console.forms.guardrails import FeedbackForm, RuleFormSet, TryForm, rules_initial
from guardrails import selectors, services
from guardrails.api import feedback_jsonl
from guardrails.checks import ACTION_RANK, CheckResult
from guardrails.detectors import DETECTORS
from guardrails.models import GuardrailEvent, GuardrailFeedback, Policy
from tenants.audit import Actor
from tenants.models import Membership, Role, Tenant
from tenants.selectors import get_for_tenant

EVENTS_PAGE = 50
RECENT_EVENTS = 10
RECENT_FEEDBACK = 10


# --- Highlighting ----------------------------------------------------------------------------------


@dataclass
class Segment:
    """A piece of the checked text; `marked` pieces are what findings matched."""

    text: str
    marked: bool = False
    title: str = ""
    action: str = ""


def highlight(text: str, checked: CheckResult) -> list[Segment]:
    """`text` cut into plain and marked segments: each character covered by a finding is marked
    with the reasons of every finding covering it (overlaps merge), the strictest action wins."""
    spans = [(f.finding.start, f.finding.end, f) for f in checked.findings if 0 <= f.finding.start < f.finding.end]
    if not spans:
        return [Segment(text)]
    cuts = sorted({0, len(text), *(s for s, _, _ in spans), *(e for _, e, _ in spans)})
    segments: list[Segment] = []
    for start, end in pairwise(cuts):
        covering = [f for s, e, f in spans if s <= start and end <= e]
        piece = text[start:end]
        if not covering:
            segments.append(Segment(piece))
            continue
        reasons = "; ".join(dict.fromkeys(f"{f.finding.detector}: {f.finding.reason}" for f in covering))
        action = max((f.action for f in covering), key=ACTION_RANK.__getitem__)
        segments.append(Segment(piece, marked=True, title=reasons, action=action))
    return segments


# --- Pages -------------------------------------------------------------------------------------------


def _feedback_summary(tenant: Tenant) -> dict[str, Any]:
    """The feedback set's effect for the policy page: entries and verdicts changed per kind, and
    the latest entries (two queries)."""
    rows = selectors.feedback_entries(tenant=tenant)
    totals = {kind: {"entries": 0, "hits": 0} for kind in GuardrailFeedback.Kind.values}
    for row in rows.order_by().values("kind").annotate(entries=Count("id"), hits=Sum("hits")):
        totals[row["kind"]] = {"entries": row["entries"], "hits": row["hits"] or 0}
    return {
        "false_positive": totals[GuardrailFeedback.Kind.FALSE_POSITIVE],
        "missed_attack": totals[GuardrailFeedback.Kind.MISSED_ATTACK],
        "total": sum(t["entries"] for t in totals.values()),
        "recent": list(rows[:RECENT_FEEDBACK]),
    }


def _overview(request: ConsoleRequest) -> dict[str, Any]:
    tenant = request.tenant
    policy = services.policy_ensure_default(tenant=tenant)
    return {
        "feedback": _feedback_summary(tenant),
        "policy": policy,
        "overrides": list(selectors.agent_overrides(tenant=tenant)),
        "settings": services.settings_for(tenant),
        "recent": list(selectors.guardrail_events(tenant=tenant)[:RECENT_EVENTS]),
        "detectors": [(name, label, stages, text) for name, (label, stages, text) in DETECTORS.items()],
        "is_admin": request.membership.has_role(Role.ADMIN),
        "agents_without_override": selectors.agents_without_override(tenant=tenant),
    }


@role_required(Role.VIEWER)
@require_http_methods(["GET"])
def guardrails(request: ConsoleRequest) -> HttpResponse:
    context = _overview(request) | {"try_form": TryForm(tenant=request.tenant), "result": None}
    return render_page(request, "guardrails/index.html", context)


@role_required(Role.VIEWER)
@require_POST
def guardrail_try(request: ConsoleRequest) -> HttpResponse:
    """Run the form's content through the agent's (or the tenant's) policy, recording nothing."""
    form = TryForm(request.POST, tenant=request.tenant)
    submitted = submit(
        form,
        lambda data: services.guardrail_check(
            tenant=request.tenant,
            stage=data["stage"],
            text=data.get("text") if data["stage"] != "tool_call" else None,
            tool=data.get("tool") or None,
            arguments=data.get("arguments") if data["stage"] == "tool_call" else None,
            agent=data.get("agent"),
            source=GuardrailEvent.Source.CONSOLE,
            record=False,
        ),
    )
    status, result = submitted.status, submitted.value
    segments = highlight(result.text, result) if result is not None else None
    context = {"try_form": form, "result": result, "segments": segments}
    if request.htmx and not request.htmx.boosted:
        return render_page(request, "guardrails/index.html", context, fragment="tryit", status=status)
    return render_page(request, "guardrails/index.html", _overview(request) | context, status=status)


def _editor(request: ConsoleRequest, *, agent: Agent | None) -> HttpResponse:
    tenant = request.tenant
    if agent is None:
        current = services.policy_ensure_default(tenant=tenant).rules
    else:
        found = selectors.agent_override(tenant=tenant, agent=agent)
        current = found.rules if found is not None else []
    status = 200
    if request.method == "POST":
        # Bound without `initial`: a row left as it was must still count (with initial data Django
        # would treat an unchanged spare row as empty and drop it).
        formset = RuleFormSet(request.POST)
        submitted = submit(
            formset,
            lambda _: services.policy_update(
                actor=Actor.from_request(request), tenant=tenant, agent=agent, rules=formset.rules()
            ),
        )
        if submitted.ok:
            who = f"{agent.name}'s override" if agent else "The tenant's policy"
            return done(request, f"{who} was saved.", to=reverse("console:guardrails", args=[tenant.slug]))
        status = submitted.status
    else:
        formset = RuleFormSet(initial=rules_initial(current))
    context = {
        "formset": formset,
        "agent": agent,
        "detectors": [(name, label, stages, text) for name, (label, stages, text) in DETECTORS.items()],
        "inherited": [r for r in services.policy_ensure_default(tenant=tenant).rules] if agent else [],
        "feedback": _feedback_summary(tenant),
    }
    return render_page(request, "guardrails/policy.html", context, status=status)


@role_required(Role.ADMIN)
@require_http_methods(["GET", "POST"])
def guardrail_policy(request: ConsoleRequest) -> HttpResponse:
    return _editor(request, agent=None)


@role_required(Role.ADMIN)
@require_http_methods(["GET", "POST"])
def guardrail_agent_policy(request: ConsoleRequest, pk: str) -> HttpResponse:
    agent = get_for_tenant(Agent.objects.for_tenant(request.tenant), request.tenant, pk=pk)
    return _editor(request, agent=agent)


@role_required(Role.ADMIN)
@require_POST
def guardrail_agent_policy_delete(request: ConsoleRequest, pk: str) -> HttpResponse:
    agent = get_for_tenant(Agent.objects.for_tenant(request.tenant), request.tenant, pk=pk)
    policy = get_for_tenant(Policy.objects.for_tenant(request.tenant), request.tenant, agent=agent)
    services.policy_delete(actor=Actor.from_request(request), policy=policy)
    messages.success(request, f"{agent.name} now follows the tenant's policy.")
    return redirect("console:guardrails", tenant_slug=request.tenant.slug)


@role_required(Role.ADMIN)
@require_POST
def guardrail_settings(request: ConsoleRequest) -> HttpResponse:
    redact = request.POST.get("redact_traces") == "on"
    services.guardrail_settings_update(actor=Actor.from_request(request), tenant=request.tenant, redact_traces=redact)
    messages.success(
        request, "Trace payloads are now redacted at ingestion." if redact else "Trace payloads are now stored as sent."
    )
    return redirect("console:guardrails", tenant_slug=request.tenant.slug)


@role_required(Role.VIEWER)
@require_http_methods(["GET"])
def guardrail_events(request: ConsoleRequest) -> HttpResponse:
    """What guardrails did, newest first, filtered (selectors.GuardrailEventFilterSet, as the API):
    a bad or unknown filter is shown next to its field (400) and lists nothing."""
    filters = _event_filters(request.tenant, request.GET)
    valid = filters.is_valid()
    events = filters.qs if valid else GuardrailEvent.objects.none()
    page = Paginator(events, EVENTS_PAGE).get_page(request.GET.get("page"))
    query = {k: v for k, v in request.GET.items() if k in filters.filters and v} if valid else {}
    context = {
        "page": page,
        "events": list(page.object_list),
        "form": filters.form,
        "filter_query": urlencode(query),
        "is_admin": request.membership.has_role(Role.ADMIN),
        "here": request.get_full_path(),
        # Only the first page follows new events live; with filters, the same filters apply.
        "live_query": urlencode({"page": "guardrail_events", **query}) if page.number == 1 else urlencode({"page": ""}),
    }
    return render_page(request, "guardrails/events.html", context, fragment="events", status=200 if valid else 400)


def _event_filters(tenant: Tenant, params: Any) -> selectors.GuardrailEventFilterSet:
    events = selectors.guardrail_events(tenant=tenant)
    return selectors.GuardrailEventFilterSet(params, events, tenant=tenant, passthrough=("page",))


@live.page
class GuardrailEventsLive(live.LivePage):
    """The events list shows a new event as soon as a check records it (first page, no filter)."""

    name = "guardrail_events"
    events = frozenset({"guardrails.event"})

    def render(self, membership: Membership, event: dict[str, Any]) -> str:
        filters = _event_filters(self.tenant, self.params)
        if not filters.is_valid():
            return ""
        rows = filters.qs
        return render_to_string(
            "guardrails/events.html#events",
            {
                "events": list(rows[:EVENTS_PAGE]),
                "tenant": self.tenant,
                "live": True,
                "page": None,
                "is_admin": membership.has_role(Role.ADMIN),
                "here": reverse("console:guardrail_events", args=[self.tenant.slug]),
            },
        )


@role_required(Role.VIEWER)
@require_http_methods(["GET"])
def guardrail_event(request: ConsoleRequest, pk: str) -> HttpResponse:
    """One event: its verdict, the signals that fired with their scores, the findings, the checked
    text as kept (masked), reviewers' marks, and (admins) the buttons to mark it."""
    event = get_for_tenant(selectors.guardrail_events(tenant=request.tenant), request.tenant, pk=pk)
    context = {
        "event": event,
        "marks": list(event.feedback.select_related("created_by").all()),
        "is_admin": request.membership.has_role(Role.ADMIN),
        "here": request.get_full_path(),
    }
    return render_page(request, "guardrails/event.html", context)


def _back(request: ConsoleRequest, fallback: str) -> str:
    """Where a form sends the reviewer back to: the page it was on (`next`, this site only)."""
    target = request.POST.get("next") or ""
    if target.startswith("/") and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return fallback


@role_required(Role.ADMIN)
@require_POST
def guardrail_event_feedback(request: ConsoleRequest, pk: str) -> HttpResponse:
    """Mark the event's text as a false positive or a missed attack (it applies to the next
    check); a mark that cannot be made is said on the event's page (400)."""
    event = get_for_tenant(selectors.guardrail_events(tenant=request.tenant), request.tenant, pk=pk)
    form = FeedbackForm(request.POST)
    submitted = submit(
        form,
        lambda data: services.feedback_mark(
            actor=Actor.from_request(request),
            tenant=request.tenant,
            kind=data["kind"],
            event=event,
            note=data["note"],
        ),
    )
    if (entry := submitted.value) is not None:
        effect = (
            "is let through from now on"
            if entry.kind == GuardrailFeedback.Kind.FALSE_POSITIVE
            else "is blocked from now on"
        )
        messages.success(request, f"Marked as {entry.get_kind_display().lower()}: this text {effect}.")
        back = _back(request, reverse("console:guardrail_event", args=[request.tenant.slug, event.pk]))
        if request.htmx:
            # A live-pushed row's form has no CSRF field: it posts through htmx, whose header
            # carries the token; the page is then reloaded with the confirmation.
            return HttpResponseClientRedirect(back)
        return redirect(back)
    said = {name: " ".join(str(e) for e in errors) for name, errors in form.errors.items()}
    error = "; ".join(why if name == NON_FIELD_ERRORS else f"{name}: {why}" for name, why in said.items())
    context = {
        "event": event,
        "marks": list(event.feedback.select_related("created_by").all()),
        "is_admin": True,
        "here": request.get_full_path(),
        "feedback_error": error,
    }
    return render_page(request, "guardrails/event.html", context, status=submitted.status)


@role_required(Role.ADMIN)
@require_POST
def guardrail_feedback_remove(request: ConsoleRequest, pk: str) -> HttpResponse:
    entry = get_for_tenant(GuardrailFeedback.objects.for_tenant(request.tenant), request.tenant, pk=pk)
    services.feedback_remove(actor=Actor.from_request(request), entry=entry)
    messages.success(request, f"The {entry.get_kind_display().lower()} was removed from the feedback set.")
    return redirect(_back(request, reverse("console:guardrails", args=[request.tenant.slug]) + "#feedback"))


@role_required(Role.VIEWER)
@require_http_methods(["GET"])
def guardrail_feedback_export(request: ConsoleRequest) -> HttpResponse:
    """The feedback set as JSONL (as the API's export), for retraining."""
    return feedback_jsonl(request.tenant)
