"""The session engine (settings.SESSION_ENGINE): Django's cached_db, whose cache is a read-through
copy of the session rows in PostgreSQL, treating a Redis failure as a cache miss. Without Redis,
logged-in pages keep working from the database instead of failing on the session."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.contrib.sessions.backends import cached_db
from django.core.cache import caches
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

_CALLS = {"get", "set", "delete", "aget", "aset", "adelete"}


class _CacheOrMiss:
    """The session cache's get/set/delete (and async forms), with a Redis failure logged and
    answered as a miss (None): the database is the session's truth."""

    def __init__(self, cache: Any) -> None:
        self._cache = cache

    def __contains__(self, key: str) -> bool:
        try:
            return key in self._cache
        except RedisError as exc:
            logger.warning("session cache skipped: Redis failed (%s: %s)", type(exc).__name__, exc)
            return False

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._cache, name)
        if name not in _CALLS:
            return method
        if name.startswith("a"):

            async def soft_async(*args: Any, **kwargs: Any) -> Any:
                try:
                    return await method(*args, **kwargs)
                except RedisError as exc:
                    logger.warning("session cache skipped: Redis failed (%s: %s)", type(exc).__name__, exc)
                    return None

            return soft_async

        def soft(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(*args, **kwargs)
            except RedisError as exc:
                logger.warning("session cache skipped: Redis failed (%s: %s)", type(exc).__name__, exc)
                return None

        return soft


class SessionStore(cached_db.SessionStore):
    def __init__(self, session_key: str | None = None) -> None:
        super().__init__(session_key)
        self._cache: Any = _CacheOrMiss(caches[settings.SESSION_CACHE_ALIAS])
