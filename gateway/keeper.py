"""Budget holds of gateway calls that are still running, kept from expiring.

A reservation expires BUDGET_RESERVATION_TTL_SECONDS after it was made (120 s by default), so
that a client or process that died never blocks a budget for long. A gateway call may run longer:
a stream from a reasoning model, a slow provider. (An answer held while a reviewer decides on a
tool call is settled before the hold, gateway.holds.) Released mid-call, its hold would stop
counting against the budget while the call still spends, and other calls could be admitted past
the limit. So every admitted call is tracked
here until its settlement is written (gateway.recorder), and one thread per process extends the
holds of every tracked call each third of the TTL, one UPDATE per tenant
(budgets.services.budget_hold_extend). A process that dies stops extending: its holds expire by
TTL as before. A call is never kept longer than GATEWAY_MAX_CALL_SECONDS (an hour by default), so
a call lost to a bug cannot hold a budget for ever.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import close_old_connections

from tenants import rls

if TYPE_CHECKING:
    from gateway.calls import Call

logger = logging.getLogger(__name__)

_running: dict[str, Call] = {}  # request id -> call, while its hold must not expire
_lock = threading.Lock()
_thread: threading.Thread | None = None


def track(call: Call) -> None:
    """Keep `call`'s holds until `done(call)`."""
    global _thread
    if not any(d.reservation_id for d in call.admission.reservations):
        return
    with _lock:
        _running[call.request_id] = call
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_run, name="gateway-hold-keeper", daemon=True)
            _thread.start()


def done(call: Call) -> None:
    with _lock:
        _running.pop(call.request_id, None)


def running() -> int:
    return len(_running)


TICK_SECONDS = 0.5


def _run() -> None:
    last = time.monotonic()
    while True:
        time.sleep(TICK_SECONDS)  # the TTL is read each tick: a changed setting applies at once
        if not _running or time.monotonic() - last < settings.BUDGET_RESERVATION_TTL_SECONDS / 3:
            continue
        last = time.monotonic()
        try:
            extend()
        except Exception:
            logger.exception("gateway: could not extend the budget holds of running calls")
        finally:
            close_old_connections()


def extend() -> int:
    """Extend the holds of every running call by the TTL from now; forget calls past their
    deadline. Returns how many reservations were extended."""
    from budgets.services import budget_hold_extend

    deadline = settings.GATEWAY_MAX_CALL_SECONDS
    now = time.perf_counter()
    by_tenant: dict[Any, tuple[Any, list[str]]] = defaultdict(lambda: (None, []))
    with _lock:
        for request_id, call in list(_running.items()):
            if now - call.started > deadline:
                logger.warning("gateway call %s ran past %s s: its budget hold may now expire", request_id, deadline)
                del _running[request_id]
                continue
            tenant = call.context.tenant
            ids = [d.reservation_id for d in call.admission.reservations if d.reservation_id]
            by_tenant[tenant.pk] = (tenant, [*by_tenant[tenant.pk][1], *ids])
    extended = 0
    for tenant, ids in by_tenant.values():
        with rls.tenant_context(tenant.pk):
            extended += budget_hold_extend(
                tenant=tenant, reservation_ids=ids, seconds=settings.BUDGET_RESERVATION_TTL_SECONDS
            )
    return extended
