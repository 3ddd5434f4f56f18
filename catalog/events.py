"""Live events of model control, pushed to the tenant's websocket group after commit.

The console's live consumer maps an event type to the partials it re-renders (console/consumers.py);
a type it does not map is dropped there, so sending one is always safe.
"""

from __future__ import annotations

from typing import Literal, TypedDict

from tenants.events import send_after_commit
from tenants.models import Tenant


class PinsChanged(TypedDict):
    """A pin moved, or a pin change was requested, decided or cancelled."""

    type: Literal["pins.changed"]


class CatalogChanged(TypedDict):
    """A provider or model was added, edited or deleted."""

    type: Literal["catalog.changed"]


CatalogEvent = PinsChanged | CatalogChanged


def send_pins_changed(tenant: Tenant) -> None:
    send_after_commit(tenant, PinsChanged(type="pins.changed"))


def send_catalog_changed(tenant: Tenant) -> None:
    send_after_commit(tenant, CatalogChanged(type="catalog.changed"))
