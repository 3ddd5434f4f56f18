"""Who may see a console page: the typed request, and role and staff checks."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any, Concatenate

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from tenants.models import Membership, Role, Tenant, User

if TYPE_CHECKING:
    from django_htmx.middleware import HtmxDetails


class ConsoleRequest(HttpRequest):
    """A request inside `/t/<slug>/`: TenantMiddleware has set tenant and membership."""

    user: User
    tenant: Tenant
    membership: Membership
    htmx: HtmxDetails


type ConsoleView = Callable[Concatenate[ConsoleRequest, ...], HttpResponse]


def role_required(role: Role) -> Callable[[ConsoleView], Callable[..., HttpResponse]]:
    """A tenant page for members whose role is at least `role`; others get 403."""

    def decorator(view: ConsoleView) -> Callable[..., HttpResponse]:
        @login_required
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            membership = getattr(request, "membership", None)
            if membership is None:
                raise RuntimeError(f"{view.__name__} is a tenant view: route it under t/<slug:tenant_slug>/")
            if not membership.has_role(role):
                raise PermissionDenied(f"This page needs the {role} role.")
            return view(request, *args, **kwargs)  # type: ignore[arg-type]

        wrapper.required_role = role  # type: ignore[attr-defined]
        return wrapper

    return decorator


def staff_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A platform page for staff only; signed-in non-staff get 403."""

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_staff:
            raise PermissionDenied("This page is for platform staff.")
        return view(request, *args, **kwargs)

    return wrapper


def render_page(
    request: HttpRequest, template: str, context: dict[str, Any], *, fragment: str = "", status: int = 200
) -> TemplateResponse:
    """Render the page, or only `fragment` of it for an htmx request that is not a boosted navigation."""
    htmx = getattr(request, "htmx", None)
    name = f"{template}#{fragment}" if fragment and htmx and not htmx.boosted else template
    return TemplateResponse(request, name, context, status=status)
