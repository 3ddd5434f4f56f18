"""What each console page re-renders when one of its tenant's live events arrives.

Every tenant page opens one websocket (`/ws/t/<slug>/live/?page=<name>&…`, from base.html). The
consumer asks this registry what to push for each event:

- a `LivePage` subclass per page that updates in place, registered with `@live.page`. `name` is the
  page's `?page=` value (the view sets `live_query`, or it defaults to the URL name), `events` the
  event types it re-renders. One instance lives as long as the socket, so it can remember what the
  page shows (the rows of a filtered list). `render` runs in a sync thread and may query.
- `@live.everywhere("budget.alert", …)` renderers whose HTML goes to every tenant page (banners,
  navigation badges).

Both return out-of-band htmx HTML (`hx-swap-oob`) rendered from the page's own `{% partialdef %}`
blocks, or "" for nothing. They receive a membership re-read for the event, so a demoted user stops
seeing what their old role showed at once.

Registration happens at import: the console's view modules (`console/views/*.py`) hold their pages
and are all imported on first use.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import pkgutil
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import redis.exceptions

from tenants.models import Membership, Tenant

logger = logging.getLogger(__name__)

type Renderer = Callable[[Tenant, Membership, dict[str, Any]], str]


class LivePage:
    """One connected page: which events it re-renders, and how."""

    name: ClassVar[str]
    events: ClassVar[frozenset[str]]

    def __init__(self, tenant: Tenant, membership: Membership, params: dict[str, str]) -> None:
        self.tenant = tenant
        self.params = params

    def render(self, membership: Membership, event: dict[str, Any]) -> str:
        raise NotImplementedError


# What a broken or slow Redis raises through the channel layer: a read timeout, a dropped or
# refused connection. Each channel-layer call of the consumer is retried on these.
REDIS_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    ConnectionError,
    TimeoutError,
)
RETRY_DELAYS = (0.1, 0.3, 1.0)


async def with_retries[T](call: Callable[[], Awaitable[T]], *, what: str) -> T:
    """`await call()`, tried again after 0.1, 0.3 and 1 s when Redis fails; the last failure is
    raised (the consumer then closes the socket, and the page reconnects and refetches)."""
    for delay in RETRY_DELAYS:
        try:
            return await call()
        except REDIS_ERRORS as exc:
            logger.warning("live: %s failed (%s: %s); retrying in %.1f s", what, type(exc).__name__, exc, delay)
            await asyncio.sleep(delay)
    return await call()


_pages: dict[str, type[LivePage]] = {}
_everywhere: dict[str, list[Renderer]] = {}
_loaded = False


def page[P: type[LivePage]](cls: P) -> P:
    """Class decorator: register a page under its `name`."""
    if cls.name in _pages and _pages[cls.name] is not cls:
        raise ValueError(f"Two live pages are named {cls.name!r}: {_pages[cls.name]!r} and {cls!r}.")
    _pages[cls.name] = cls
    return cls


def everywhere(*event_types: str) -> Callable[[Renderer], Renderer]:
    """Decorator: `renderer(tenant, membership, event)` answers these events on every tenant page."""

    def register(renderer: Renderer) -> Renderer:
        for event_type in event_types:
            renderers = _everywhere.setdefault(event_type, [])
            if renderer not in renderers:
                renderers.append(renderer)
        return renderer

    return register


def _load() -> None:
    """Import every console view module once, so their registrations have run."""
    global _loaded
    if _loaded:
        return
    import console.views

    for module in pkgutil.iter_modules(console.views.__path__):
        importlib.import_module(f"console.views.{module.name}")
    _loaded = True


def connect(tenant: Tenant, membership: Membership, params: dict[str, str]) -> LivePage | None:
    """The page state for a socket opened with `params`, or None for a page with no live part of
    its own (it still gets the `everywhere` renderers)."""
    _load()
    cls = _pages.get(params.get("page", ""))
    return cls(tenant, membership, params) if cls is not None else None


def render(connected: LivePage | None, tenant: Tenant, membership: Membership, event: dict[str, Any]) -> str:
    """Everything to push to one socket for `event`. A renderer that fails is logged and skipped:
    one broken fragment must not silence the others."""
    _load()
    event_type = str(event.get("type", ""))
    renderers: list[Renderer] = list(_everywhere.get(event_type, []))
    if connected is not None and event_type in connected.events:
        renderers.append(lambda _tenant, member, payload: connected.render(member, payload))
    parts = []
    for renderer in renderers:
        try:
            parts.append(renderer(tenant, membership, event))
        except Exception:
            logger.exception("live render of %s failed", event_type)
    return "".join(parts)
