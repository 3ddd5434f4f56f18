"""Liveness for load balancers and `make run`: the database and Redis answer."""

from __future__ import annotations

from django.core.cache import cache
from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from redis.exceptions import RedisError


def healthz(request: HttpRequest) -> JsonResponse:
    checks = {"database": False, "redis": False}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            checks["database"] = cursor.fetchone() == (1,)
    except DatabaseError:
        checks["database"] = False
    try:
        cache.set("healthz", "1", timeout=5)
        checks["redis"] = cache.get("healthz") == "1"
    except RedisError:
        checks["redis"] = False
    ok = all(checks.values())
    return JsonResponse({"status": "ok" if ok else "degraded", **checks}, status=200 if ok else 503)
