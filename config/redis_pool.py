"""One Redis connection pool per process for Django's cache.

Django's RedisCache keeps its pool on the cache instance, and `caches["default"]` is one instance
per asgiref context: every `sync_to_async` call (the gateway's and the long-poll's thread hops)
got a fresh instance, hence a fresh pool and a new TCP or Unix-socket connection for its first
command, about 1 ms each, on every model call. With this pool class every instance of the process
shares one pool per URL. redis-py pools are thread-safe and reset themselves in a forked child
(Celery's prefork workers), so sharing is safe.
"""

from __future__ import annotations

import threading
from typing import Any

import redis

_pools: dict[tuple[str, tuple[tuple[str, str], ...]], redis.ConnectionPool] = {}
_lock = threading.Lock()


class SharedConnectionPool(redis.ConnectionPool):
    """`from_url` answers the process's pool for that URL and options, made once."""

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> Any:
        key = (url, tuple(sorted((name, repr(value)) for name, value in kwargs.items() if name != "driver_info")))
        with _lock:
            pool = _pools.get(key)
            if pool is None:
                pool = _pools[key] = super().from_url(url, **kwargs)
            return pool


_client: redis.Redis | None = None


def client() -> redis.Redis:
    """A Redis client on the default cache's pool, made once per process: redis-py builds its
    table of response callbacks in every `Redis()` (about 0.2 ms), and Django's cache makes one
    per command. For the commands on the path of every call (tenants.cache, tenants.throttling).
    Keys are the cache's (`cache.make_key`); integers are stored as digits, as the cache does."""
    global _client
    if _client is not None:
        # Not through `cache._cache`: each asgiref context builds its own RedisCacheClient, and
        # its DriverInfo reads the package metadata (about 0.3 ms).
        return _client
    from django.core.cache import cache

    pool = cache._cache._get_connection_pool(True)  # type: ignore[attr-defined]
    with _lock:
        if _client is None:
            _client = redis.Redis(connection_pool=pool)
        return _client
