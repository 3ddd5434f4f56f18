"""Members: list, invite by email, change role, remove; pending invitations."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_http_methods, require_POST

from console.access import ConsoleRequest, render_page, role_required
from console.forms import InviteForm, RoleForm
from tenants import selectors, services
from tenants.audit import Actor
from tenants.errors import ServiceError
from tenants.models import Role


def _context(request: ConsoleRequest, **extra: Any) -> dict[str, Any]:
    return {
        "members": selectors.members_of(tenant=request.tenant),
        "invitations": selectors.invitations_open(tenant=request.tenant).select_related("invited_by"),
        "roles": Role.choices,
        "invite_form": InviteForm(),
        **extra,
    }


@role_required(Role.VIEWER)
@require_http_methods(["GET", "POST"])
def members(request: ConsoleRequest) -> HttpResponse:
    """GET lists members; POST (admins) invites one."""
    if request.method == "GET":
        return render_page(request, "members/index.html", _context(request))
    if not request.membership.has_role(Role.ADMIN):
        raise PermissionDenied("Only tenant admins can manage members.")
    form = InviteForm(request.POST)
    status = 400
    accept_url = ""
    if form.is_valid():
        try:
            result = services.member_invite(
                actor=Actor.from_request(request), tenant=request.tenant, **form.cleaned_data
            )
        except ServiceError as exc:
            form.add_error(None, exc.message)
            status = 409 if exc.status_code == 409 else 400
        else:
            if result.membership is not None:
                messages.success(request, f"{result.membership.user.email} was added as {result.membership.role}.")
            else:
                messages.success(request, f"Invitation sent to {form.cleaned_data['email']}.")
                accept_url = result.accept_url
            if not request.htmx:
                return redirect("console:members", tenant_slug=request.tenant.slug)
            form, status = InviteForm(), 200
    return render_page(
        request,
        "members/index.html",
        _context(request, invite_form=form, accept_url=accept_url),
        fragment="members",
        status=status,
    )


@role_required(Role.ADMIN)
@require_POST
def change_role(request: ConsoleRequest, pk: str) -> HttpResponse:
    membership = selectors.get_membership_for_tenant(request.tenant, pk)
    form = RoleForm(request.POST)
    status = 200
    if not form.is_valid():
        messages.error(request, "Choose admin, reviewer or viewer.")
        status = 400
    else:
        try:
            services.member_change_role(
                actor=Actor.from_request(request), membership=membership, role=form.cleaned_data["role"]
            )
        except ServiceError as exc:
            messages.error(request, exc.message)
            status = exc.status_code
        else:
            messages.success(request, f"{membership.user.email} is now {form.cleaned_data['role']}.")
    return _after_change(request, status)


@role_required(Role.ADMIN)
@require_POST
def remove(request: ConsoleRequest, pk: str) -> HttpResponse:
    membership = selectors.get_membership_for_tenant(request.tenant, pk)
    status = 200
    try:
        services.member_remove(actor=Actor.from_request(request), membership=membership)
    except ServiceError as exc:
        messages.error(request, exc.message)
        status = exc.status_code
    else:
        messages.success(request, f"{membership.user.email} was removed from {request.tenant.name}.")
    return _after_change(request, status)


@role_required(Role.ADMIN)
@require_POST
def revoke_invitation(request: ConsoleRequest, pk: str) -> HttpResponse:
    invitation = selectors.get_invitation_for_tenant(request.tenant, pk)
    status = 200
    try:
        services.invitation_revoke(actor=Actor.from_request(request), invitation=invitation)
    except ServiceError as exc:
        messages.error(request, exc.message)
        status = exc.status_code
    else:
        messages.success(request, f"The invitation of {invitation.email} was revoked.")
    return _after_change(request, status)


def _after_change(request: ConsoleRequest, status: int) -> HttpResponse:
    if request.htmx:
        return render_page(request, "members/index.html", _context(request), fragment="members", status=status)
    return redirect("console:members", tenant_slug=request.tenant.slug)
