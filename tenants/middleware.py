"""Resolves the tenant of a console URL (`/t/<slug>/...`) and the signed-in user's membership."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from tenants import rls
from tenants.selectors import membership_for_slug


class TenantMiddleware:
    """Sets `request.tenant` and `request.membership` for views under `/t/<tenant_slug>/`.

    A visitor who is not signed in is sent to the login page; a signed-in user who is not a member
    gets the same 404 as for a tenant that does not exist; a suspended tenant answers 403 with the
    reason. The `tenant_slug` URL argument is consumed here, so views receive the tenant instead.

    Row-level security (tenants.rls): each request starts with no tenant in the database context
    and, under `/t/<slug>/`, enters the member's tenant; the context found is restored at its end.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.tenant = None  # type: ignore[attr-defined]
        request.membership = None  # type: ignore[attr-defined]
        with rls.no_tenant():
            return self.get_response(request)

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., Any],
        view_args: tuple[Any, ...],
        view_kwargs: dict[str, Any],
    ) -> HttpResponse | None:
        slug = view_kwargs.pop("tenant_slug", None)
        if slug is None:
            return None
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        membership = membership_for_slug(user=request.user, slug=slug)
        if membership is None:
            raise Http404("No such tenant.")
        tenant = membership.tenant
        if not tenant.is_active:
            return TemplateResponse(request, "console/suspended.html", {"suspended_tenant": tenant}, status=403)
        rls.enter_tenant(tenant.pk)
        request.tenant = tenant  # type: ignore[attr-defined]
        request.membership = membership  # type: ignore[attr-defined]
        return None
