"""Django's Redis cache with one client per process (the CACHES backend in settings).

Django's RedisCache builds its RedisCacheClient once per cache instance, and `caches["default"]`
is one instance per asgiref context: every `sync_to_async` call (the gateway's and the long-poll's
thread hops) got a fresh one, with a fresh connection pool (a new TCP or Unix-socket connection
for its first command, about 1 ms) and a DriverInfo that reads the package metadata (about
0.3 ms). And RedisCacheClient builds a new `redis.Redis` for every command (its table of response
callbacks, about 0.1 ms). Here every instance of the process shares one client, with one pool
and one `redis.Redis` per pool. redis-py clients and pools are thread-safe and reset their
connections in a forked child (Celery's prefork workers), so sharing is safe.
"""

from __future__ import annotations

import threading
from functools import cached_property
from typing import Any

import redis
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient as DjangoRedisCacheClient

_lock = threading.Lock()
_shared: dict[tuple[Any, ...], SharedRedisCacheClient] = {}


class SharedRedisCacheClient(DjangoRedisCacheClient):
    """One `redis.Redis` per pool, made on first use, instead of one per command."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, redis.Redis] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> redis.Redis:
        pool = self._get_connection_pool(write)  # type: ignore[attr-defined]
        found = self._clients.get(id(pool))
        if found is None:
            with _lock:
                found = self._clients.setdefault(id(pool), redis.Redis(connection_pool=pool))
        return found


class RedisCache(DjangoRedisCache):
    """Django's RedisCache, whose client is the process's one for this location and options."""

    @cached_property
    def _cache(self) -> SharedRedisCacheClient:
        servers, options = self._servers, self._options  # type: ignore[attr-defined]
        key = (tuple(servers), repr(sorted(options.items())))
        found = _shared.get(key)
        if found is None:
            with _lock:
                found = _shared.get(key)
                if found is None:
                    found = _shared[key] = SharedRedisCacheClient(servers, **options)
        return found


def client() -> redis.Redis:
    """The default cache's Redis client, for the commands on the path of every call
    (tenants.cache, tenants.throttling). Keys are the cache's (`cache.make_key`); integers are
    stored as digits, as the cache does."""
    from django.core.cache import cache

    return cache._cache.get_client(write=True)  # type: ignore[attr-defined]
