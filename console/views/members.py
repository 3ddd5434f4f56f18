"""Members: list, invite by email, change role, remove; pending invitations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from console.access import ConsoleRequest, render_page, role_required
from console.forms import act, done, submit
from console.forms.tenants import InviteForm, RoleForm
from tenants import selectors, services
from tenants.audit import Actor
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
    submitted = submit(
        form, lambda data: services.member_invite(actor=Actor.from_request(request), tenant=request.tenant, **data)
    )
    if (result := submitted.value) is None:
        return _page(request, invite_form=form, status=submitted.status)()
    if result.membership is not None:
        message = f"{result.membership.user.email} was added as {result.membership.role}."
    else:
        message = f"Invitation sent to {form.cleaned_data['email']}."
    # The accept link is shown once, in the fragment an htmx invitation answers with.
    return done(request, message, to=_members_url(request), fragment=_page(request, accept_url=result.accept_url))


@role_required(Role.ADMIN)
@require_POST
def change_role(request: ConsoleRequest, pk: str) -> HttpResponse:
    membership = selectors.get_membership_for_tenant(request.tenant, pk)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose admin, reviewer or viewer.")
        return _after_change(request, 400)
    role = form.cleaned_data["role"]
    changed = act(
        request,
        lambda: services.member_change_role(actor=Actor.from_request(request), membership=membership, role=role),
        success=f"{membership.user.email} is now {role}.",
    )
    return _after_change(request, changed.status)


@role_required(Role.ADMIN)
@require_POST
def remove(request: ConsoleRequest, pk: str) -> HttpResponse:
    membership = selectors.get_membership_for_tenant(request.tenant, pk)
    removed = act(
        request,
        lambda: services.member_remove(actor=Actor.from_request(request), membership=membership),
        success=f"{membership.user.email} was removed from {request.tenant.name}.",
    )
    return _after_change(request, removed.status)


@role_required(Role.ADMIN)
@require_POST
def revoke_invitation(request: ConsoleRequest, pk: str) -> HttpResponse:
    invitation = selectors.get_invitation_for_tenant(request.tenant, pk)
    revoked = act(
        request,
        lambda: services.invitation_revoke(actor=Actor.from_request(request), invitation=invitation),
        success=f"The invitation of {invitation.email} was revoked.",
    )
    return _after_change(request, revoked.status)


def _members_url(request: ConsoleRequest) -> str:
    return reverse("console:members", kwargs={"tenant_slug": request.tenant.slug})


def _page(request: ConsoleRequest, *, status: int = 200, **extra: Any) -> Callable[[], HttpResponse]:
    """The members fragment (the whole page for a full request), rendered when called."""
    return lambda: render_page(
        request, "members/index.html", _context(request, **extra), fragment="members", status=status
    )


def _after_change(request: ConsoleRequest, status: int) -> HttpResponse:
    if request.htmx:
        return _page(request, status=status)()
    return redirect(_members_url(request))
