"""Per-key rate limits, counted in Redis (the default cache) so every web process shares them."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from tenants.models import ApiKey


class ApiKeyRateThrottle(SimpleRateThrottle):
    scope = "api_key"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        key = request.auth
        if isinstance(key, ApiKey):
            return f"throttle:key:{key.pk}"
        return f"throttle:ip:{self.get_ident(request)}"


def key_throttle_wait(key: ApiKey) -> float | None:
    """For a view outside DRF (the approvals long-poll): count one request of `key` against the
    same per-key allowance as every API view, and return the seconds to wait when it is used up,
    or None when the request may go ahead."""
    from rest_framework.views import APIView  # DRF's views import the throttle classes: not at load

    throttle = ApiKeyRateThrottle()
    if throttle.allow_request(cast(Request, SimpleNamespace(auth=key)), APIView()):
        return None
    return throttle.wait() or 1.0
