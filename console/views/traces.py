"""Traces: the explorer (filtered list with the ingestion health card), a trace's waterfall and
collapsible tree (subtrees loaded lazily, so a 10,000-span trace opens fast), a span's panel, the
session and end-user views, erasure of an end user, and the retention setting.

Every value that came from a client (names, inputs, outputs, attributes, errors, ids) is untrusted:
templates render it with the `reveal` filters (escaped, hidden characters shown), never |safe."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_POST

from agents.selectors import is_uuid
from console import live
from console.access import ConsoleRequest, render_page, role_required
from console.forms import act, done, submit
from console.forms.traces import RetentionForm
from tenants import services as tenant_services
from tenants.audit import Actor
from tenants.models import Membership, Role
from traces import selectors, services
from traces.models import Span, Trace

PAGE_SIZE = 50
# Parameters of console lists that are not filters: the cursor of older rows, a page number.
CONSOLE_PAGING = ("before", "page")
CHILDREN_PAGE = 200


def _cursor(trace: Trace) -> str:
    return f"{trace.started_at.isoformat()}|{trace.pk}"


def _after_cursor(queryset: Any, cursor: str) -> Any:
    """Rows strictly older than the cursor (started_at, id); a malformed cursor is ignored."""
    started, _, pk = cursor.partition("|")
    try:
        when, key = datetime.fromisoformat(started), int(pk)
    except ValueError:
        return queryset
    from django.db.models import Q

    return queryset.filter(Q(started_at__lt=when) | Q(started_at=when, pk__lt=key))


def _mark_rehearsals(tenant: Any, rows: list[Trace]) -> None:
    """Set `is_rehearsal` on the traces of eval runs (one query), for their badge."""
    from agents.selectors import is_uuid, rehearsal_runs

    run_ids = {t.run_id for t in rows if t.run_id and is_uuid(t.run_id)}
    rehearsed = {str(pk) for pk in rehearsal_runs(tenant=tenant).filter(pk__in=run_ids).values_list("pk", flat=True)}
    for trace in rows:
        trace.is_rehearsal = trace.run_id in rehearsed  # type: ignore[attr-defined]


def _mark_waiting(tenant: Any, rows: list[Trace]) -> None:
    """Set `is_waiting` on the traces of runs paused for a reviewer (one query), for their badge."""
    from agents.models import Run

    run_ids = {t.run_id for t in rows if t.run_id and is_uuid(t.run_id)}
    waiting = (
        {
            str(pk)
            for pk in Run.objects.for_tenant(tenant)
            .filter(pk__in=run_ids, status=Run.Status.AWAITING_APPROVAL)
            .values_list("pk", flat=True)
        }
        if run_ids
        else set()
    )
    for trace in rows:
        trace.is_waiting = trace.run_id in waiting  # type: ignore[attr-defined]


@role_required(Role.VIEWER)
def traces(request: ConsoleRequest) -> HttpResponse:
    """The newest traces matching the filters (kept in the URL), with the ingestion health card. A
    bad or unknown filter is shown next to its field (400) and lists nothing, never everything."""
    filters = selectors.TraceFilterSet(
        request.GET, selectors.traces_of(tenant=request.tenant), tenant=request.tenant, passthrough=CONSOLE_PAGING
    )
    valid = filters.is_valid()
    queryset = filters.qs if valid else Trace.objects.none()
    before = request.GET.get("before", "")
    if before:
        queryset = _after_cursor(queryset, before)
    rows = list(queryset[: PAGE_SIZE + 1])
    has_older = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    if request.GET.get("rehearsals"):
        _mark_rehearsals(request.tenant, rows)
    _mark_waiting(request.tenant, rows)
    query = {k: v for k, v in request.GET.items() if k in filters.filters and v} if valid else {}
    context = {
        "traces": rows,
        "form": filters.form,
        "older": _cursor(rows[-1]) if has_older else "",
        "paged": bool(before),
        "filter_query": urlencode(query),
        "health": selectors.ingest_health(tenant=request.tenant),
        "retention_days": services.trace_settings_for(request.tenant).retention_days,
        "is_admin": request.membership.has_role(Role.ADMIN),
    }
    return render_page(request, "traces/index.html", context, fragment="trace_list", status=200 if valid else 400)


@dataclass
class Node:
    """A span as the tree shows it: its bar on the waterfall (percent of the trace) and its
    subtree's rollup."""

    span: Span
    offset: float
    width: float
    rollup: selectors.Rollup
    children: int
    opened: list[Node] | None = None


def _nodes(trace: Trace, spans: list[Span], rollups: dict[str, selectors.Rollup]) -> list[Node]:
    total = max(trace.duration_ms, 0.001)
    nodes = []
    for span in spans:
        offset = (span.started_at - trace.started_at).total_seconds() * 1000 / total * 100
        width = max(span.duration_ms / total * 100, 0.3)
        rollup = rollups.get(span.span_id, selectors.Rollup(spans=1))
        nodes.append(
            Node(
                span=span,
                offset=round(min(max(offset, 0), 99.7), 3),
                width=round(min(width, 100 - min(max(offset, 0), 99.7)), 3),
                rollup=rollup,
                children=rollup.spans - 1,
            )
        )
    return nodes


def _trace_or_404(request: ConsoleRequest, trace_id: str) -> Trace:
    return selectors.get_trace_for_tenant(request.tenant, trace_id)


SPAN_ID = re.compile(r"^[0-9a-f]{16}$")
# How many top-level spans open their first level at once: what a reader looks at first.
OPEN_ROOTS = 5


def _open(found: Trace, nodes: list[Node], rollups: dict[str, selectors.Rollup], path: list[str]) -> None:
    """Load the first level under the first roots, and every level down to the selected span
    (`path`: its ancestors' ids, the root first), so a linked span is shown in its place."""
    for position, node in enumerate(nodes):
        on_path = bool(path) and node.span.span_id == path[0]
        if node.children and (on_path or (position < OPEN_ROOTS and node.span.parent_span_id == "")):
            kids = list(selectors.children_of(trace=found, parent_span_id=node.span.span_id, limit=CHILDREN_PAGE))
            node.opened = _nodes(found, kids, rollups)
            if on_path:
                _open(found, node.opened, rollups, path[1:])


@role_required(Role.VIEWER)
def trace(request: ConsoleRequest, trace_id: str) -> HttpResponse:
    """A trace: header with rollups and links, the top of its tree (roots and their children),
    deeper levels loaded when opened. `?span=<span id>` selects a span: its panel is shown and the
    tree opened down to it (the tree's links put it in the URL, so a selected span can be shared).
    A run waiting for a reviewer says so, with a link to the approval it waits for."""
    found = _trace_or_404(request, trace_id)
    status = 200
    selected: Span | None = None
    problem = ""
    wanted = request.GET.get("span", "").strip().lower()
    if wanted:
        if not SPAN_ID.match(wanted):
            problem, status = "The span to show must be a span id: 16 hex digits.", 400
        else:
            try:
                selected = selectors.get_span_for_tenant(request.tenant, found.trace_id, wanted)
            except Http404:
                problem, status = f"This trace has no span {wanted}.", 404
    rollups = selectors.subtree_rollups(trace=found)
    roots = list(selectors.children_of(trace=found, parent_span_id="", limit=CHILDREN_PAGE))
    nodes = _nodes(found, roots, rollups)
    _open(found, nodes, rollups, selectors.span_path(span=selected) if selected is not None else [])
    run_status = ""
    if found.run_id and is_uuid(found.run_id):
        from agents.models import Run

        run_status = (
            Run.objects.for_tenant(request.tenant).filter(pk=found.run_id).values_list("status", flat=True).first()
            or ""
        )
    waiting_for = selectors.pending_approval_span(trace=found) if run_status == "awaiting_approval" else None
    approval_id = str((waiting_for.attributes or {}).get("approval.id", "")) if waiting_for is not None else ""
    context = {
        "trace": found,
        "nodes": nodes,
        "more_roots": len(roots) == CHILDREN_PAGE,
        "run_exists": bool(run_status),
        "waiting": run_status == "awaiting_approval",
        "waiting_for": waiting_for,
        "waiting_approval_id": approval_id if is_uuid(approval_id) else "",
        "selected": selected,
        "span_problem": problem,
        **(_panel(selected) if selected is not None else {}),
    }
    return render_page(request, "traces/detail.html", context, status=status)


def _panel(item: Span) -> dict[str, Any]:
    """What the span panel shows: the span and its whole input and output (from the payload store
    when the span holds a capped preview)."""
    whole_input = selectors.span_payload(span=item, field_name="input") if item.input_truncated else None
    whole_output = selectors.span_payload(span=item, field_name="output") if item.output_truncated else None
    return {
        "span": item,
        "input": whole_input if whole_input is not None else item.input,
        "output": whole_output if whole_output is not None else item.output,
    }


@role_required(Role.VIEWER)
def trace_children(request: ConsoleRequest, trace_id: str, span_id: str) -> HttpResponse:
    """One page of a span's children (the tree's lazy level); `offset` pages further."""
    found = _trace_or_404(request, trace_id)
    parent = selectors.get_span_for_tenant(request.tenant, found.trace_id, span_id)
    try:
        offset = max(int(request.GET.get("offset", "0")), 0)
    except ValueError:
        offset = 0
    rollups = selectors.subtree_rollups(trace=found)
    kids = list(selectors.children_of(trace=found, parent_span_id=parent.span_id, offset=offset, limit=CHILDREN_PAGE))
    context = {
        "trace": found,
        "parent": parent,
        "nodes": _nodes(found, kids, rollups),
        "next_offset": offset + CHILDREN_PAGE if len(kids) == CHILDREN_PAGE else None,
    }
    return render_page(request, "traces/children.html", context, fragment="children")


@role_required(Role.VIEWER)
def span(request: ConsoleRequest, trace_id: str, span_id: str) -> HttpResponse:
    """A span's panel: input, output (whole, when the span holds a capped preview), attributes,
    error and stack, usage, links."""
    found = _trace_or_404(request, trace_id)
    item = selectors.get_span_for_tenant(request.tenant, found.trace_id, span_id)
    context = {"trace": found, **_panel(item)}
    return render_page(request, "traces/span.html", context, fragment="span_panel")


@role_required(Role.VIEWER)
def session(request: ConsoleRequest, session_id: str) -> HttpResponse:
    """Every trace of a session, in order (at most 500)."""
    rows = list(selectors.sessions_traces(tenant=request.tenant, session_id=session_id)[:500])
    if not rows:
        raise Http404("No traces in this session.")
    context = {"session_id": session_id, "traces": rows}
    return render_page(request, "traces/session.html", context)


@role_required(Role.VIEWER)
def end_user(request: ConsoleRequest, end_user_id: str) -> HttpResponse:
    """An end user's traces and sessions; admins may erase them."""
    rows = list(selectors.end_user_traces(tenant=request.tenant, end_user_id=end_user_id)[:200])
    if not rows:
        raise Http404("No traces for this end user.")
    context = {
        "end_user_id": end_user_id,
        "traces": rows,
        "sessions": selectors.end_user_sessions(tenant=request.tenant, end_user_id=end_user_id),
        "is_admin": request.membership.has_role(Role.ADMIN),
    }
    return render_page(request, "traces/end_user.html", context)


@role_required(Role.ADMIN)
@require_POST
def end_user_erase(request: ConsoleRequest, end_user_id: str) -> HttpResponse:
    """Erase the end user (traces, spans, payloads, runs' content; budget amounts pseudonymised)."""
    erased = act(
        request,
        lambda: tenant_services.end_user_erase(
            actor=Actor.from_request(request), tenant=request.tenant, end_user_id=end_user_id
        ),
    )
    if (receipt := erased.value) is not None and receipt["erased"]:
        counts = ", ".join(f"{count} {kind.replace('_', ' ')}" for kind, count in receipt["counts"].items() if count)
        messages.success(request, f"Erased as {receipt['end_user']}: {counts or 'nothing was stored'}.")
    elif receipt is not None:
        messages.info(request, "Nothing is stored for this end user: nothing was erased.")
    return redirect("console:traces", tenant_slug=request.tenant.slug)


@role_required(Role.ADMIN)
def trace_settings(request: ConsoleRequest) -> HttpResponse:
    """Retention: how many days spans are kept (beat deletes older ones), and what is stored."""
    status = 200
    if request.method == "POST":
        form = RetentionForm(request.POST)
        submitted = submit(
            form,
            lambda data: services.trace_settings_update(
                actor=Actor.from_request(request), tenant=request.tenant, retention_days=data["retention_days"]
            ),
        )
        if submitted.ok:
            days = form.cleaned_data["retention_days"]
            to = reverse("console:trace_settings", args=[request.tenant.slug])
            return done(request, f"Spans are now kept {days} days.", to=to)
        status = submitted.status
    else:
        form = RetentionForm(initial={"retention_days": services.trace_settings_for(request.tenant).retention_days})
    context = {"form": form, "health": selectors.ingest_health(tenant=request.tenant)}
    return render_page(request, "traces/settings.html", context, status=status)


# --- Live: what the websocket sends the traces page when spans are stored ------------------------


@live.page
class LiveTraces(live.LivePage):
    """The traces list: its ingestion card re-rendered, and a link to show the newest traces (the
    list itself is not replaced: its filters change in the page without reconnecting the socket)."""

    name = "traces"
    events = frozenset({"traces.ingested"})

    def render(self, membership: Membership, event: dict[str, Any]) -> str:
        context = {
            "tenant": self.tenant,
            "live": True,
            "health": selectors.ingest_health(tenant=self.tenant),
            "retention_days": services.trace_settings_for(self.tenant).retention_days,
        }
        return render_to_string("traces/index.html#ingest_health", context) + render_to_string(
            "traces/index.html#traces_new", context
        )
