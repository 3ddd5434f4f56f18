"""Approvals: the live queue (bulk approve within one tool and risk tier), a request's page
(arguments with hidden Unicode made visible, the edit's diff, context, guardrail findings, the
decide form), history with filters, autonomy per agent and tool, metrics, and the rules.

Reviewers and admins see and decide requests; admins edit rules and revoke autonomy. Arguments
and context come from models and clients: they are untrusted and rendered escaped; the only
markup added to them is built here with format_html, which escapes every piece."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect
from django.template.defaultfilters import pluralize
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeString
from django.views.decorators.http import require_POST

from agents.models import Agent, Tool
from approvals import policy, selectors, services
from approvals.models import ApprovalRequest, ApprovalRule, AutonomyGrant, Risk
from console import approval_queue, live
from console.access import ConsoleRequest, render_page, role_required
from console.forms import act, done, submit
from console.forms.approvals import DecideForm, RuleForm
from console.templatetags.untrusted import has_hidden as has_hidden_text
from console.templatetags.untrusted import is_hidden, pretty, reveal_text
from tenants.audit import Actor
from tenants.models import Membership, Role, Tenant
from tenants.selectors import get_for_tenant

HISTORY_PAGE = 50

# --- Hidden Unicode: one definition for every page (console/templatetags/untrusted.py) ----------


def reveal(text: str) -> SafeString:
    return reveal_text(text)


def has_hidden(value: Any) -> bool:
    return has_hidden_text(pretty(value))


def editable_json(value: Any) -> str:
    """Pretty JSON for the edit box, with hidden characters written as `\\uXXXX` escapes: the
    reviewer sees them, and the JSON still decodes to exactly the same value."""

    def escape(char: str) -> str:
        if not is_hidden(char):
            return char
        encoded = char.encode("utf-16-be")
        return "".join(f"\\u{int.from_bytes(encoded[i : i + 2], 'big'):04x}" for i in range(0, len(encoded), 2))

    return "".join(escape(c) for c in json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True))


@dataclass(frozen=True)
class DiffLine:
    sign: str
    text: SafeString


def diff_lines(before: Any, after: Any) -> list[DiffLine]:
    """A line diff of the original and edited arguments (pretty JSON), hidden characters shown."""
    lines = difflib.ndiff(pretty(before).splitlines(), pretty(after).splitlines())
    return [DiffLine(sign=line[0], text=reveal(line[2:])) for line in lines if line[:1] in "+- "]


# --- The queue --------------------------------------------------------------------------------


def _queue_context(request: ConsoleRequest) -> dict[str, Any]:
    pending = list(approval_queue.pending_rows(selectors.approvals_pending(tenant=request.tenant))[:500])
    return {
        "groups": approval_queue.build_groups(request.tenant, pending),
        "pending": pending,
        "now": timezone.now(),
        "live_query": urlencode({"page": "approvals"}),
    }


@role_required(Role.REVIEWER)
def approvals(request: ConsoleRequest) -> HttpResponse:
    """The pending requests, oldest first, requests for the same call together; new ones appear
    and decided ones leave live."""
    return render_page(request, "approvals/index.html", _queue_context(request), fragment="queue")


@role_required(Role.REVIEWER)
@require_POST
def approvals_bulk(request: ConsoleRequest) -> HttpResponse:
    """Approve the selected requests (one action and one risk tier only), in two steps: the first
    post shows exactly what will be approved, the second (`confirm`) approves it."""
    ids = [i for i in request.POST.getlist("ids") if i]
    note = request.POST.get("note", "")
    queue = request.tenant.slug
    try:
        selected = list(
            approval_queue.pending_rows(selectors.approvals_pending(tenant=request.tenant).filter(pk__in=ids))
        )
    except ValidationError:
        selected = []
    if not selected:
        messages.error(request, "Select at least one pending request.")
        return redirect("console:approvals", tenant_slug=queue)
    if len({(a.action, a.risk) for a in selected}) > 1:
        messages.error(request, "Bulk approval is for requests of one action and one risk tier only.")
        return redirect("console:approvals", tenant_slug=queue)
    if not request.POST.get("confirm"):
        context = {"groups": approval_queue.build_groups(request.tenant, selected), "selected": selected, "note": note}
        return render_page(request, "approvals/bulk.html", context)
    approved = act(
        request,
        lambda: services.approvals_bulk_approve(
            tenant=request.tenant, actor=Actor.from_request(request), ids=[a.pk for a in selected], note=note
        ),
        success=lambda result: _bulk_approved(result[0], selected),
    )
    for problem in approved.value[1] if approved.value is not None else []:
        messages.warning(request, problem)
    return redirect("console:approvals", tenant_slug=queue)


def _bulk_approved(approved: list[ApprovalRequest], selected: list[ApprovalRequest]) -> str:
    approved = sorted(approved, key=lambda a: (a.created_at, a.pk))
    named = ", ".join(f"#{approval_queue.short_id(a)}" for a in approved)
    action = approved[0].action if approved else selected[0].action
    return f"Approved {len(approved)} {action} request{pluralize(len(approved))}: {named}."


@role_required(Role.REVIEWER)
def approvals_badge(request: ConsoleRequest) -> HttpResponse:
    """The navigation badge: how many requests are pending (loaded by every page's nav)."""
    count = selectors.approvals_pending_count(tenant=request.tenant)
    return HttpResponse(render_to_string("approvals/_badge.html", {"count": count, "tenant": request.tenant}))


# --- One request --------------------------------------------------------------------------------


def _detail_context(
    approval: ApprovalRequest, *, form: DecideForm | None = None, confirming: str = ""
) -> dict[str, Any]:
    context = approval.context if isinstance(approval.context, dict) else {}
    messages_: list[Any] = context.get("messages") or []
    findings: list[Any] = context.get("guardrail_findings") or []
    messages_ = messages_ if isinstance(messages_, list) else []
    findings = findings if isinstance(findings, list) else []
    shown: tuple[str, ...] = ("messages", "guardrail_findings", "run_id", "trace_id")
    if approval.gateway_request_id:  # what the gateway recorded, not what a client sent
        shown += ("gateway_request_id", "gateway_span_id", "end_user_id", "session_id")
    extra = {k: v for k, v in context.items() if k not in shown}
    votes = list(approval.votes.order_by("created_at"))
    return {
        "approval": approval,
        "short_id": approval_queue.short_id(approval),
        "summary": approval_queue.summarize(
            approval.tenant, approval.action, approval.effective_arguments, approval.tool
        ),
        "confirm_summary": (
            approval_queue.summarize(approval.tenant, approval.action, form.cleaned_data.get("parsed"), approval.tool)
            if confirming == "edit" and form is not None
            else ""
        ),
        "confirming": confirming,
        "arguments_html": reveal(pretty(approval.arguments)),
        "reason_html": reveal(approval.reason_detail),
        "hidden_found": has_hidden(approval.arguments) or has_hidden(context),
        "diff": diff_lines(approval.arguments, approval.edited_arguments) if approval.is_edited else [],
        "context_messages": [
            {"role": str(m.get("role", "")), "html": reveal(str(m.get("content", "")))}
            for m in messages_
            if isinstance(m, dict)
        ],
        "findings": [reveal(pretty(f.get("reason") if isinstance(f, dict) else f)) for f in findings],
        "extra_context": reveal(pretty(extra)) if extra else "",
        "trace_id": str(context.get("trace_id", "")),
        "end_user": str(context.get("end_user_id") or "") if approval.gateway_request_id else "",
        "votes": votes,
        "expires": approval_queue.Countdown.until(approval.expires_at, timezone.now()) if approval.is_pending else None,
        "approvals_so_far": sum(
            1 for v in votes if v.decision != "reject" and v.arguments_hash == approval.effective_hash
        ),
        "form": form or DecideForm(initial={"arguments": editable_json(approval.effective_arguments)}),
    }


@role_required(Role.REVIEWER)
def approval(request: ConsoleRequest, pk: str) -> HttpResponse:
    row = selectors.get_approval_for_tenant(request.tenant, pk)
    context = _detail_context(row)
    context["live_query"] = urlencode({"page": "approval", "approval": str(row.pk)})
    return render_page(request, "approvals/detail.html", context, fragment="decision")


@role_required(Role.REVIEWER)
@require_POST
def approval_decide(request: ConsoleRequest, pk: str) -> HttpResponse:
    """One service call: approve, reject (comment required) or edit. Approving an irreversible
    action first answers the form again asking to confirm (nothing decided yet); `cancel` goes
    back with the comment kept. A request already decided answers 409 with who decided.

    From the queue (`from=queue`: its keyboard's a and r, static/console/approvals.js) the same
    decision answers with the queue's decide dialog (approvals/index.html#queue_decide): the
    confirmation, the comment a rejection needs, an error, or the decision made; without htmx
    it leads back to the queue."""
    row = selectors.get_approval_for_tenant(request.tenant, pk)
    if request.POST.get("cancel"):
        kept = {"note": request.POST.get("note", ""), "arguments": request.POST.get("arguments", "")}
        return _decide_answer(request, row, DecideForm(initial=kept))
    form = DecideForm(request.POST, approval=row)
    submitted = submit(
        form,
        lambda data: (
            None
            if data["confirming"]
            else services.approval_decide(
                approval=row,
                actor=Actor.from_request(request),
                decision=data["decision"],
                note=data.get("note", ""),
                arguments=data.get("parsed") if data["decision"] == "edit" else None,
            )
        ),
    )
    if (decided := submitted.value) is not None:
        fresh = DecideForm(initial={"arguments": editable_json(decided.effective_arguments)})
        slug = request.tenant.slug
        return done(
            request,
            f"Request #{approval_queue.short_id(decided)} {decided.get_status_display().lower()}.",
            to=reverse("console:approvals", kwargs={"tenant_slug": slug})
            if request.POST.get("from") == "queue"
            else reverse("console:approval", kwargs={"tenant_slug": slug, "pk": decided.pk}),
            fragment=lambda: _decide_answer(request, decided, fresh, decided=True),
        )
    if not submitted.ok:  # the request as it is now: another reviewer may have decided it
        row = selectors.get_approval_for_tenant(request.tenant, pk)
    confirming = form.cleaned_data["confirming"] if submitted.ok else ""
    return _decide_answer(request, row, form, confirming=confirming, status=submitted.status)


def _decide_answer(
    request: ConsoleRequest,
    row: ApprovalRequest,
    form: DecideForm,
    *,
    confirming: str = "",
    decided: bool = False,
    status: int = 200,
) -> HttpResponse:
    """The decide form answered again: the request's decision section, or, from the queue through
    htmx, its decide dialog asking what comes next (to confirm an approval, or a rejection's
    comment; an edit is made on the request's page only: its confirmation is never asked there)."""
    context = _detail_context(row, form=form, confirming=confirming)
    if request.POST.get("from") == "queue" and request.htmx and not request.htmx.boosted:
        asked = request.POST.get("confirm") or request.POST.get("decision") or ""
        context["asking"] = asked if asked in ("approve", "reject") and not decided and confirming != "edit" else ""
        context["decided"] = decided
        return TemplateResponse(request, "approvals/index.html#queue_decide", context, status=status)
    return render_page(request, "approvals/detail.html", context, fragment="decision", status=status)


# --- History, autonomy, metrics -----------------------------------------------------------------


def _history_filters(tenant: Tenant, params: Any) -> selectors.ApprovalFilterSet:
    """The history's filters (selectors.ApprovalFilterSet, as the API's list), with the action and
    agent shown as choices of the tenant's and the times as local date-time inputs."""
    filters = selectors.ApprovalFilterSet(
        params, selectors.approvals_history(tenant=tenant), tenant=tenant, passthrough=("before",)
    )
    fields = filters.form.fields
    actions = selectors.approval_actions(tenant=tenant)
    fields["action"].widget = forms.Select(choices=[("", "any action"), *[(a, a) for a in actions]])
    for name in ("since", "until"):
        fields[name].widget = forms.DateTimeInput(attrs={"type": "datetime-local"})
    return filters


@role_required(Role.REVIEWER)
def approvals_history(request: ConsoleRequest) -> HttpResponse:
    """Every request, newest first, with filters; `before` pages to older ones."""
    filters = _history_filters(request.tenant, request.GET)
    form = filters.form
    status = 200
    rows: list[ApprovalRequest] = []
    older = ""
    if not filters.is_valid():
        status = 400
    else:
        qs = filters.qs
        before = request.GET.get("before", "")
        if before:
            try:
                qs = qs.filter(pk__lt=before)
            except (ValueError, TypeError):
                qs = qs.none()
        rows = list(qs[: HISTORY_PAGE + 1])
        if len(rows) > HISTORY_PAGE:
            query = request.GET.copy()
            query["before"] = str(rows[HISTORY_PAGE - 1].pk)
            older = query.urlencode()
        rows = rows[:HISTORY_PAGE]
    return render_page(
        request,
        "approvals/history.html",
        {"form": form, "rows": rows, "older": older},
        fragment="history_rows",
        status=status,
    )


@dataclass(frozen=True)
class AutonomyRow:
    agent: Agent
    tool: Tool
    streak: int
    needed: int | None
    grant: AutonomyGrant | None
    allowed: bool


@role_required(Role.REVIEWER)
def approvals_autonomy(request: ConsoleRequest) -> HttpResponse:
    """Per agent and tool that has asked for approval: the current streak of human approvals, what
    the rule needs, the active grant; and every grant and revocation ever."""
    tenant = request.tenant
    active = {
        (g.agent_id, g.tool_id): g for g in selectors.autonomy_grants(tenant=tenant).filter(revoked_at__isnull=True)
    }
    rows = []
    for agent, tool in selectors.approval_asking_pairs(tenant=tenant):
        rule = policy.rule_for(tenant=tenant, agent=agent, tool=tool)
        allowed = rule.autonomy_after is not None and (tool.risk != Risk.IRREVERSIBLE or rule.autonomy_irreversible)
        rows.append(
            AutonomyRow(
                agent=agent,
                tool=tool,
                streak=services.autonomy_streak(tenant=tenant, agent=agent, tool=tool),
                needed=rule.autonomy_after,
                grant=active.get((agent.pk, tool.pk)),
                allowed=allowed,
            )
        )
    context = {
        "rows": rows,
        "grants": list(selectors.autonomy_grants(tenant=tenant)[:200]),
        "can_revoke": request.membership.has_role(Role.ADMIN),
    }
    return render_page(request, "approvals/autonomy.html", context)


@role_required(Role.ADMIN)
@require_POST
def autonomy_revoke(request: ConsoleRequest, pk: str) -> HttpResponse:
    grant = get_for_tenant(
        AutonomyGrant.objects.for_tenant(request.tenant).select_related("tenant", "agent", "tool"),
        request.tenant,
        pk=pk,
    )
    act(
        request,
        lambda: services.autonomy_revoke(
            grant=grant, actor=Actor.from_request(request), reason=request.POST.get("reason", "")
        ),
        success=f"Autonomy of {grant.agent.name} for {grant.tool.name} revoked.",
    )
    return redirect("console:approvals_autonomy", tenant_slug=request.tenant.slug)


PERIODS = {"24h": timedelta(days=1), "7d": timedelta(days=7), "30d": timedelta(days=30), "all": None}


@role_required(Role.REVIEWER)
def approvals_metrics(request: ConsoleRequest) -> HttpResponse:
    """Time to decision p50/p95 and approve / reject / expire rates per tool and per reviewer."""
    period = request.GET.get("period", "7d")
    if period not in PERIODS:
        period = "7d"
    span = PERIODS[period]
    since = timezone.now() - span if span is not None else None
    metrics = selectors.approval_metrics(tenant=request.tenant, since=since)
    return render_page(request, "approvals/metrics.html", {"metrics": metrics, "period": period, "periods": PERIODS})


# --- Rules -------------------------------------------------------------------------------------


@role_required(Role.REVIEWER)
def approval_rules(request: ConsoleRequest) -> HttpResponse:
    """The tenant's rules (admins edit them; a rule for an agent and/or a tool overrides)."""
    tenant = request.tenant
    form = RuleForm(request.POST or None, tenant=tenant)
    status = 200
    if request.method == "POST":
        if not request.membership.has_role(Role.ADMIN):
            return HttpResponse("Only admins edit approval rules.", status=403)
        submitted = submit(
            form, lambda data: services.approval_rule_save(actor=Actor.from_request(request), tenant=tenant, **data)
        )
        if submitted.ok:
            return done(
                request, "Rule saved.", to=reverse("console:approval_rules", kwargs={"tenant_slug": tenant.slug})
            )
        status = submitted.status
    rules = list(selectors.approval_rules(tenant=tenant))
    has_default = any(r.is_default for r in rules)
    context = {
        "form": form,
        "rules": rules,
        "has_default": has_default,
        "can_edit": request.membership.has_role(Role.ADMIN),
    }
    return render_page(request, "approvals/rules.html", context, status=status)


@role_required(Role.ADMIN)
@require_POST
def approval_rule_delete(request: ConsoleRequest, pk: str) -> HttpResponse:
    rule = get_for_tenant(
        ApprovalRule.objects.for_tenant(request.tenant).select_related("tenant", "agent", "tool"), request.tenant, pk=pk
    )
    services.approval_rule_delete(actor=Actor.from_request(request), rule=rule)
    messages.success(request, f"Rule for {rule.target_label} removed.")
    return redirect("console:approval_rules", tenant_slug=request.tenant.slug)


# --- Live -----------------------------------------------------------------------------------


@live.everywhere("approval.changed")
def approvals_badge_live(tenant: Tenant, membership: Membership, event: dict[str, Any]) -> str:
    """The navigation badge on every page of a reviewer, recounted when a request changes."""
    if not membership.has_role(Role.REVIEWER):
        return ""
    count = selectors.approvals_pending_count(tenant=tenant)
    return render_to_string("approvals/_badge.html", {"count": count, "tenant": tenant, "oob": True})


@live.page
class LiveQueue(live.LivePage):
    """The queue: when a request changes, the group of its call (action and argument hash) is
    re-rendered from the database, appended if new, replaced if shown, removed once empty."""

    name = "approvals"
    events = frozenset({"approval.changed"})

    def __init__(self, tenant: Tenant, membership: Membership, params: dict[str, str]) -> None:
        super().__init__(tenant, membership, params)
        pending = selectors.approvals_pending(tenant=tenant).values_list("pk", "action", "arguments_hash")[:500]
        self.shown = {str(pk): approval_queue.group_key(action, h) for pk, action, h in pending}

    def render(self, membership: Membership, event: dict[str, Any]) -> str:
        if not membership.has_role(Role.REVIEWER):
            return ""
        approval_id = str(event.get("approval_id", ""))
        try:
            changed = (
                ApprovalRequest.objects.for_tenant(self.tenant)
                .filter(pk=approval_id)
                .values_list("action", "arguments_hash")
                .first()
            )
        except ValidationError:
            changed = None
        if changed is None:
            return ""
        key = approval_queue.group_key(*changed)
        group_shown = key in self.shown.values()
        rows = list(
            approval_queue.pending_rows(
                selectors.approvals_pending(tenant=self.tenant).filter(action=changed[0], arguments_hash=changed[1])
            )
        )
        if not rows and not group_shown:
            return ""
        before = len(self.shown)
        self.shown = {pk: k for pk, k in self.shown.items() if k != key} | {str(a.pk): key for a in rows}
        groups = approval_queue.build_groups(self.tenant, rows)
        context = {
            "tenant": self.tenant,
            "membership": membership,
            "key": key,
            "group": groups[0] if groups else None,
            "shown": group_shown,
            "remaining": len(self.shown),
            "bulk_changed": (before == 0) != (len(self.shown) == 0),
            "now": timezone.now(),
        }
        return render_to_string("approvals/index.html#queue_event", context)


@live.page
class LiveApproval(live.LivePage):
    """A request's page: its status and votes follow every change. While it is still pending only
    the status block is pushed, so a comment being written in the decide form is never lost; once
    decided, the whole decision section (without the form) replaces it."""

    name = "approval"
    events = frozenset({"approval.changed"})

    def render(self, membership: Membership, event: dict[str, Any]) -> str:
        if not membership.has_role(Role.REVIEWER) or str(event.get("approval_id")) != self.params.get("approval"):
            return ""
        row = ApprovalRequest.objects.for_tenant(self.tenant).select_related("tenant", "run", "tool", "agent")
        approval = row.filter(pk=event["approval_id"]).first()
        if approval is None:
            return ""
        context = {**_detail_context(approval), "tenant": self.tenant}
        if approval.is_pending:
            return render_to_string("approvals/detail.html#decision_state", {**context, "oob_state": True})
        return render_to_string("approvals/detail.html#decision", {**context, "oob_section": True})
