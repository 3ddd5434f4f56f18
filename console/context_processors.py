"""Template context every console page needs: the tenant switcher and the current role."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest

from tenants.selectors import memberships_for_user


def console(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    membership = getattr(request, "membership", None)
    return {
        # Lazy: evaluated only by pages that render the switcher.
        "my_memberships": memberships_for_user(user=user),
        "tenant": getattr(request, "tenant", None),
        "membership": membership,
        "is_admin": membership is not None and membership.has_role("admin"),
        "is_reviewer": membership is not None and membership.has_role("reviewer"),
        # Every tenant page opens the live socket; a page that updates in place sets its own
        # `live_query` (see console/live.py), the rest are named after their URL.
        "live_query": urlencode({"page": _url_name(request)}),
    }


def _url_name(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    return match.url_name or "" if match is not None else ""
