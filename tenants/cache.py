"""Configuration read on every model call (API keys, pins, guardrail policies and settings), kept
in each process and thrown away the moment anything it was built from changes.

Every cached value is stored under the configuration version it was read at. The version is one
integer in Redis, shared by every web and worker process; a write to a watched model bumps it
after its transaction commits. A reader takes the version first, then the value (from memory when
it was stored under that version, else from the database), so a value read before a commit is
never served after the bump: the next read sees a newer version and loads again. Changes are rare
(an admin's edit), so one version for everything costs nothing in hit rate and makes correctness
easy to see; checking it costs one Redis GET per `snapshot()` block, about 0.1 ms on loopback,
against the 1 to 3 queries each value costs.

    with config_cache.snapshot():                 # one GET of the version for the whole block
        key = config_cache.cached("api_key", prefix, load=lambda: ...)

`watch(Model, ...)` (from an app's `ready()`) bumps the version on every save and delete of
those models and on a queryset `.update()` of them (tenants.models.WatchedQuerySet); raw SQL on a
watched table must call `invalidate()` itself. Fields named in `ignore` (a key's last use) change
nothing cached. When Redis cannot be reached, nothing is cached and every read goes to the database.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Any, TypeVar

from django.core.cache import cache
from django.db import transaction
from django.db.models import Model
from django.db.models.signals import post_delete, post_save

from config.redis_pool import client as redis_client

logger = logging.getLogger(__name__)

T = TypeVar("T")
VERSION_KEY = "config-version"
MAX_ENTRIES = 10_000  # per process: a bound, not a policy (entries are small; a full cache is cleared)

_entries: dict[tuple[str, Hashable], tuple[int, Any]] = {}
_watched: dict[type[Model], frozenset[str]] = {}  # model -> fields whose change invalidates nothing
_local = threading.local()
_lock = threading.Lock()


def _read_version(along: Callable[[Any], None] | None = None) -> tuple[int | None, list[Any]]:
    """The version, and the results of the commands `along` adds to the same round trip (none
    when Redis failed: the caller sends them itself, or goes without)."""
    try:
        key = cache.make_key(VERSION_KEY)  # ours: no need of the per-character validation
        if along is None:
            value, results = redis_client().get(key), []
        else:
            pipe = redis_client().pipeline(transaction=False)
            pipe.get(key)
            along(pipe)
            value, *results = pipe.execute()
        if value is None:
            cache.add(VERSION_KEY, 1, timeout=None)
            value = cache.get(VERSION_KEY)
        return (int(value) if value is not None else None), results
    except Exception:  # Redis down: no caching, never a failed call
        logger.warning("config cache: the version could not be read; reading from the database", exc_info=True)
        return None, []


def version() -> int | None:
    """The configuration version (the snapshot's, inside `snapshot()`), or None without Redis."""
    held = getattr(_local, "version", None)
    return held[0] if held is not None else _read_version()[0]


@contextlib.contextmanager
def snapshot(along: Callable[[Any], None] | None = None) -> Iterator[list[Any]]:
    """Read the version once for every `cached` call in the block (nested blocks share it).

    `along(pipeline)` may add Redis commands to the version's round trip; the block gets their
    results (inside another snapshot they are sent alone; an empty list when Redis failed)."""
    if getattr(_local, "version", None) is not None:
        yield _along_alone(along) if along is not None else []
        return
    read, results = _read_version(along)
    _local.version = (read,)
    try:
        yield results
    finally:
        _local.version = None


def _along_alone(along: Callable[[Any], None]) -> list[Any]:
    try:
        pipe = redis_client().pipeline(transaction=False)
        along(pipe)
        return list(pipe.execute())
    except Exception:  # as _read_version: Redis down never fails a call (the caller goes without)
        logger.warning("config cache: commands sent alone failed", exc_info=True)
        return []


def peek(name: str, key: Hashable) -> Any:
    """The value last loaded for (name, key) in this process, at whatever version (None if none):
    a guess, for work that is checked once the snapshot's version is known (`cached` then answers
    from memory when the guess was current)."""
    entry = _entries.get((name, key))
    return entry[1] if entry is not None else None


def cached[T](name: str, key: Hashable, load: Callable[[], T]) -> T:
    """`load()`'s value for (name, key) as of the current version: from memory when it was loaded
    at this version, else loaded now and kept. Values are shared between threads: treat them as
    read-only."""
    current = version()
    if current is None:
        return load()
    entry = _entries.get((name, key))
    if entry is not None and entry[0] == current:
        return entry[1]
    value = load()
    with _lock:
        if len(_entries) >= MAX_ENTRIES:
            _entries.clear()
        _entries[(name, key)] = (current, value)
    return value


def invalidate() -> None:
    """Forget this process's entries now (its own next read sees the change, even inside the
    writing transaction), and bump the version for every process once the transaction commits."""
    clear_local()
    transaction.on_commit(_bump)


def _bump() -> None:
    try:
        try:
            cache.incr(VERSION_KEY)
        except ValueError:  # no version yet: start one above any a reader could hold
            cache.add(VERSION_KEY, 2, timeout=None)
    except Exception:
        # Without Redis nothing was cached either (readers fall back to the database).
        logger.warning("config cache: the version could not be bumped", exc_info=True)
    with _lock:
        _entries.clear()


def _on_change(sender: type[Model], **kwargs: Any) -> None:
    fields = kwargs.get("update_fields")
    if fields is not None and set(fields) <= _watched.get(sender, frozenset()):
        return
    invalidate()


def changes_cached(model: type[Model], fields: Iterable[str]) -> bool:
    """Whether an update of `fields` of `model` rows changes something cached."""
    ignored = _watched.get(model)
    return ignored is not None and not set(fields) <= ignored


def watch(*models: type[Model], ignore: Iterable[str] = ()) -> None:
    """Bump the version whenever a row of one of `models` is saved, updated or deleted (except an
    update of `ignore` fields only)."""
    for model in models:
        _watched[model] = frozenset(ignore)
        post_save.connect(_on_change, sender=model, dispatch_uid=f"config-cache-save-{model._meta.label}")
        post_delete.connect(_on_change, sender=model, dispatch_uid=f"config-cache-delete-{model._meta.label}")


def clear_local() -> None:
    """Forget this process's entries (tests that change rows behind the ORM's back)."""
    with _lock:
        _entries.clear()
