"""The audit log: filter by actor, action and time; read-only."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import HttpResponse

from console.access import ConsoleRequest, render_page, role_required
from console.forms import AuditFilterForm
from tenants import selectors
from tenants.models import Role

PAGE_SIZE = 50


@role_required(Role.ADMIN)
def audit_log(request: ConsoleRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_bound and form.is_valid() else {}
    events = selectors.audit_events(
        tenant=request.tenant,
        actor=filters.get("actor", ""),
        action=filters.get("action", ""),
        since=filters.get("since"),
        until=filters.get("until"),
    ).select_related(None)
    page = Paginator(events, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "page": page,
        "actions": selectors.audit_actions(tenant=request.tenant),
        "query": query.urlencode(),
    }
    status = 400 if form.is_bound and not form.is_valid() else 200
    return render_page(request, "audit/index.html", context, fragment="results", status=status)
