"""Sign in, sign out, the tenant switcher and invitation acceptance."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from console.forms import AcceptInvitationForm, EmailLoginForm, JoinForm, done, submit
from tenants import services
from tenants.models import Membership
from tenants.selectors import invitation_by_token, memberships_for_user


class LoginView(auth_views.LoginView):
    form_class = EmailLoginForm
    template_name = "registration/login.html"
    redirect_authenticated_user = True


class LogoutView(auth_views.LogoutView):
    pass


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Straight to the only tenant, else the switcher."""
    memberships = list(memberships_for_user(user=request.user)[:2])  # type: ignore[arg-type]
    if len(memberships) == 1:
        return redirect("console:dashboard", tenant_slug=memberships[0].tenant.slug)
    return redirect("console:tenants")


@login_required
def tenants(request: HttpRequest) -> HttpResponse:
    return TemplateResponse(request, "console/tenants.html", {})


@require_http_methods(["GET", "POST"])
def accept_invitation(request: HttpRequest, token: str) -> HttpResponse:
    invitation = invitation_by_token(token)
    if invitation is None or not invitation.is_open:
        return TemplateResponse(request, "registration/invitation.html", {"invalid": True}, status=404)
    signed_in = request.user.is_authenticated
    bound = request.POST if request.method == "POST" else None
    form = JoinForm(bound) if signed_in else AcceptInvitationForm(bound)
    status = 200
    if request.method == "POST":
        submitted = submit(form, lambda data: _accept(request, token, data))
        if (membership := submitted.value) is not None:
            to = reverse("console:dashboard", kwargs={"tenant_slug": membership.tenant.slug})
            return done(request, f"Welcome to {membership.tenant.name}.", to=to)
        status = submitted.status
    context = {"invitation": invitation, "form": form, "signed_in": signed_in}
    return TemplateResponse(request, "registration/invitation.html", context, status=status)


def _accept(request: HttpRequest, token: str, data: dict[str, Any]) -> Membership:
    """Join as the signed-in user, or create the invitee's account and sign it in."""
    if request.user.is_authenticated:
        return services.invitation_accept(token=token, user=request.user)
    membership = services.invitation_accept(token=token, name=data["name"], password=data["password"])
    login(request, membership.user, backend="django.contrib.auth.backends.ModelBackend")
    return membership
