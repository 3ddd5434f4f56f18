"""Sign in, sign out, the tenant switcher and invitation acceptance."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_http_methods

from console.forms import AcceptInvitationForm, EmailLoginForm
from tenants import services
from tenants.errors import ServiceError
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
    form = AcceptInvitationForm(request.POST or None) if not signed_in else None
    error = ""
    if request.method == "POST" and (signed_in or (form is not None and form.is_valid())):
        try:
            if signed_in:
                membership = services.invitation_accept(token=token, user=request.user)  # type: ignore[arg-type]
            else:
                assert form is not None
                membership = services.invitation_accept(
                    token=token, name=form.cleaned_data["name"], password=form.cleaned_data["password"]
                )
                login(request, membership.user, backend="django.contrib.auth.backends.ModelBackend")
        except ServiceError as exc:
            error = exc.message
        else:
            messages.success(request, f"Welcome to {membership.tenant.name}.")
            return redirect("console:dashboard", tenant_slug=membership.tenant.slug)
    context = {"invitation": invitation, "form": form, "error": error, "signed_in": signed_in}
    return TemplateResponse(request, "registration/invitation.html", context, status=400 if error else 200)
