"""Platform staff: every tenant, create one (inviting its first admin), suspend or reactivate."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_http_methods, require_POST

from console.access import render_page, staff_required
from console.forms import act, submit
from console.forms.tenants import TenantForm
from tenants import rls, services
from tenants.audit import Actor
from tenants.models import Tenant


def _context(**extra: Any) -> dict[str, Any]:
    # Read here, not in the template: the member counts cross tenants (row-level security).
    with rls.across_tenants("platform staff: every tenant with its member count"):
        tenants = list(Tenant.objects.annotate(member_count=Count("memberships")).order_by("name"))
    return {"tenants": tenants, "form": TenantForm(), **extra}


@staff_required
@require_http_methods(["GET", "POST"])
def tenants(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return render_page(request, "platform/tenants.html", _context())
    form = TenantForm(request.POST)
    submitted = submit(
        form,
        lambda data: services.tenant_create(
            actor=Actor.from_request(request),
            name=data["name"],
            slug=data["slug"],
            timezone_name=data["timezone"],
            admin_email=data["admin_email"],
        ),
    )
    if submitted.value is None:
        return render_page(
            request, "platform/tenants.html", _context(form=form), fragment="tenants", status=submitted.status
        )
    tenant, invite = submitted.value
    messages.success(request, f"Tenant {tenant.name} ({tenant.slug}) was created.")
    accept_url = invite.accept_url if invite else ""
    return render_page(
        request, "platform/tenants.html", _context(accept_url=accept_url), fragment="tenants", status=201
    )


@staff_required
@require_POST
def set_status(request: HttpRequest, pk: str) -> HttpResponse:
    # Platform staff act across tenants by design; this is the one unscoped lookup.
    tenant = get_object_or_404(Tenant, pk=pk)
    status = request.POST.get("status", "")
    act(
        request,
        lambda: services.tenant_set_status(actor=Actor.from_request(request), tenant=tenant, status=status),
        success=f"{tenant.name} is now {status}.",
    )
    if getattr(request, "htmx", None):
        return render_page(request, "platform/tenants.html", _context(), fragment="tenants")
    return redirect("console:platform_tenants")
