"""Per-key rate limits, counted in Redis (the default cache) so every web process shares them."""

from __future__ import annotations

from typing import Any

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
