"""API permissions: every call needs a key, and each view names the scope it requires."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from tenants.models import ApiKey, Scope


class HasApiKey(BasePermission):
    """Any valid key; the view's `required_scopes` (per action, or `"*"`) narrows it."""

    message = "This API key lacks the scope this call needs."

    def has_permission(self, request: Request, view: Any) -> bool:
        key = request.auth
        if not isinstance(key, ApiKey):
            return False
        scope = required_scope(view)
        if scope is None:
            return True
        if not key.has_scope(scope):
            self.message = f"This API key lacks the `{scope}` scope."
            return False
        return True


def required_scope(view: Any) -> str | None:
    """The scope the current action needs: `required_scopes[action]`, else `required_scopes["*"]`."""
    scopes: dict[str, str | None] = getattr(view, "required_scopes", {})
    action = getattr(view, "action", None) or (view.request.method.lower() if getattr(view, "request", None) else "")
    if action in scopes:
        return scopes[action]
    return scopes.get("*", Scope.ADMIN)
