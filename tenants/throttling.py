"""Per-key rate limits, counted in Redis (the default cache) so every web process shares them.

The count is a sliding-window counter: one Redis counter per key and window (the rate's period),
and the request is allowed while `this window's count + last window's count times the part of last
window still inside the sliding period` stays within the rate. It costs one pipelined round trip
(INCR, EXPIRE, GET) and constant memory, where DRF's own throttle reads and rewrites the list of
every request's timestamp in the period (a pickled list of 20,000 floats at 20,000/min), on the
path of every API call and every gateway model call. A refused request is not counted.
"""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace
from typing import Any, cast

from django.core.cache import cache
from redis.exceptions import RedisError
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from config.redis_pool import client as redis_client
from tenants.models import ApiKey

logger = logging.getLogger(__name__)


class ApiKeyRateThrottle(SimpleRateThrottle):
    scope = "api_key"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        key = request.auth
        if isinstance(key, ApiKey):
            return f"throttle:key:{key.pk}"
        return f"throttle:ip:{self.get_ident(request)}"

    def allow_request(self, request: Request, view: Any) -> bool:
        limit, period = self.parse_rate(self.rate)
        if limit is None or period is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        now = self.timer()
        window = int(now // period)
        current, previous = (cache.make_and_validate_key(f"{self.key}:{w}") for w in (window, window - 1))
        client = redis_client()
        pipe = client.pipeline(transaction=False)
        pipe.incr(current)
        pipe.expire(current, period * 2)
        pipe.get(previous)
        try:
            count, _, before = pipe.execute()
        except RedisError as exc:
            # Redis down: the API keeps answering, unthrottled, rather than refuse every call.
            logger.warning("throttle skipped: Redis failed (%s: %s)", type(exc).__name__, exc)
            return True
        overlap = 1.0 - (now - window * period) / period
        if count + int(before or 0) * overlap <= limit:
            return True
        client.decr(current)  # a refused request does not count
        # Free again once enough of the last window has slid out (or this window has ended).
        before_count = int(before or 0)
        if before_count:
            needed = (count - 1 + before_count * overlap - limit + 1) / before_count * period
            self._wait = max(min(needed, (window + 1) * period - now), 0.001)
        else:
            self._wait = (window + 1) * period - now
        return False

    def wait(self) -> float | None:
        return getattr(self, "_wait", None)

    def timer(self) -> float:
        return time.time()


def key_throttle_wait(key: ApiKey) -> float | None:
    """For a view outside DRF (the approvals long-poll): count one request of `key` against the
    same per-key allowance as every API view, and return the seconds to wait when it is used up,
    or None when the request may go ahead."""
    from rest_framework.views import APIView  # DRF's views import the throttle classes: not at load

    throttle = ApiKeyRateThrottle()
    if throttle.allow_request(cast(Request, SimpleNamespace(auth=key)), APIView()):
        return None
    return throttle.wait() or 1.0
