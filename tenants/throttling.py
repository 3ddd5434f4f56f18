"""Per-key rate limits, counted in Redis (the default cache) so every web process shares them.

The count is a sliding-window counter: one Redis counter per key and window (the rate's period),
and the request is allowed while `this window's count + last window's count times the part of last
window still inside the sliding period` stays within the rate. It costs one pipelined round trip
(INCR, EXPIRE, GET) and constant memory, where DRF's own throttle reads and rewrites the list of
every request's timestamp in the period (a pickled list of 20,000 floats at 20,000/min), on the
path of every API call and every gateway model call. A refused request is not counted.

`Window` is one request's count, split into the commands and the verdict, so a caller can send the
commands in a round trip it makes anyway: the gateway sends them with the configuration version's
GET (gateway.calls, tenants.cache.snapshot's `along`), one round trip where there were two.
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
        window = Window(self.key, limit, period, self.timer())
        pipe = redis_client().pipeline(transaction=False)
        window.queue(pipe)
        try:
            results = pipe.execute()
        except RedisError as exc:
            # Redis down: the API keeps answering, unthrottled, rather than refuse every call.
            logger.warning("throttle skipped: Redis failed (%s: %s)", type(exc).__name__, exc)
            return True
        self._wait = window.verdict(results)
        return self._wait is None

    def wait(self) -> float | None:
        return getattr(self, "_wait", None)

    def timer(self) -> float:
        return time.time()


class Window:
    """One request counted against `name`'s sliding window: `queue` adds the three commands to a
    pipeline, `verdict` reads their three results (None: allowed; else the seconds to wait, and the
    count taken back). `undo` takes back a count whose request was not made after all."""

    def __init__(self, name: str, limit: int, period: int, now: float) -> None:
        self.limit, self.period, self.now = limit, period, now
        self.window = int(now // period)
        self.current, self.previous = (cache.make_key(f"{name}:{w}") for w in (self.window, self.window - 1))
        self.decided = False  # verdict() or undo() ran: the count is accounted for

    def queue(self, pipe: Any) -> None:
        pipe.incr(self.current)
        pipe.expire(self.current, self.period * 2)
        pipe.get(self.previous)

    def verdict(self, results: list[Any]) -> float | None:
        self.decided = True
        count, _, before = results
        overlap = 1.0 - (self.now - self.window * self.period) / self.period
        before_count = int(before or 0)
        if count + before_count * overlap <= self.limit:
            return None
        self._take_back()  # a refused request does not count
        # Free again once enough of the last window has slid out (or this window has ended).
        end = (self.window + 1) * self.period - self.now
        if before_count:
            needed = (count - 1 + before_count * overlap - self.limit + 1) / before_count * self.period
            return max(min(needed, end), 0.001)
        return end

    def undo(self) -> None:
        if not self.decided:
            self.decided = True
            self._take_back()

    def _take_back(self) -> None:
        try:
            redis_client().decr(self.current)
        except RedisError as exc:
            logger.warning("throttle: a count could not be taken back (%s: %s)", type(exc).__name__, exc)


def key_window(key: ApiKey) -> Window | None:
    """A count of one request of `key` against the per-key allowance every API view uses, to be
    sent and decided by the caller; None when no limit applies."""
    from rest_framework.views import APIView  # DRF's views import the throttle classes: not at load

    throttle = ApiKeyRateThrottle()
    limit, period = throttle.parse_rate(throttle.rate)
    if limit is None or period is None:
        return None
    name = throttle.get_cache_key(cast(Request, SimpleNamespace(auth=key)), APIView())
    return Window(name, limit, period, throttle.timer()) if name is not None else None


def key_throttle_wait(key: ApiKey) -> float | None:
    """For a view outside DRF (the approvals long-poll): count one request of `key` against the
    same per-key allowance as every API view, and return the seconds to wait when it is used up,
    or None when the request may go ahead."""
    from rest_framework.views import APIView  # DRF's views import the throttle classes: not at load

    throttle = ApiKeyRateThrottle()
    if throttle.allow_request(cast(Request, SimpleNamespace(auth=key)), APIView()):
        return None
    return throttle.wait() or 1.0
