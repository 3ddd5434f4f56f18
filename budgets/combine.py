"""Concurrent reservations of one process admitted together, in one transaction and one commit;
their settlements and releases likewise.

Why: every reservation row-locks the counters it counts under until its transaction commits, and
a durable commit waits for the disk (0.1 to 3 ms here). Calls against one budget therefore queue
on its counter row, one commit after another: with eight clients of one tenant, the counter's
lock, held through each commit's wait, was what bounded the gateway's throughput, not its CPU.
PostgreSQL already groups the commits of concurrent transactions into one flush, but not while
each waits for the previous one's lock.

How: the first reservation that finds no batch of its tenant running in the process runs at
once, alone, as before (`budgets_reserve`: no latency is added to a lone call). Reservations of
that tenant that arrive while it runs wait; when it finishes, the oldest waiting one leads the
next batch, taking every waiting reservation of the tenant with it (up to MAX_BATCH), and admits
them all in one statement, `budgets_reserve_many` (migration 0010), which locks the union of
their counters in key order and admits each item exactly as it would be admitted alone, in
arrival order. So under load a batch forms from whatever arrived during the previous one's round
trip, and the lock and the commit's flush are paid once per batch instead of once per call. One
tenant per batch, and one batch at a time per tenant: under row-level security a transaction sees
one tenant's rows (tenants.rls), the leader's connection is in its own tenant's context, and the
calls of different tenants, which share no counter, never wait for each other.

Exactness: the same admission, in one transaction instead of several; each item sees the counters
as the items before it left them, so no budget is overspent and every counter change has its
ledger entry (budgets.services' docstring). A batch that fails (a database error, a deadlock
PostgreSQL detected: see migration 0010) wrote nothing; each of its reservations is then made
alone, by its own thread on its own connection.

Settlements and releases made outside a transaction (over REST) are combined the same way
(`endings`: `budgets_finish_many`, which locks every reservation of the batch in id order, then
every counter they hold in key order, before ending each as `budgets_finish` would alone).

Only what is made outside a transaction is combined: a reservation or settlement made inside the
caller's transaction (the run engine's step, an expiry sweep, a test's atomic block) must commit
or roll back with it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection

logger = logging.getLogger(__name__)

MAX_BATCH = 64
type Rows = list[tuple[Any, ...]]


class _BatchFailedError(Exception):
    """The batch failed: make this reservation alone."""


@dataclass(eq=False)
class _Waiting:
    tenant_id: Any
    item: str  # this reservation as one element of budgets_reserve_many's JSON array
    done: threading.Event = field(default_factory=threading.Event)
    lead: bool = False  # woken to lead the next batch rather than with its result
    rows: Rows | None = None
    error: BaseException | None = None


@dataclass
class Stats:
    """What the combiner did in this process (for tests and benchmarks)."""

    alone: int = 0  # reservations made by the single statement
    batches: int = 0  # budgets_reserve_many calls
    batched: int = 0  # reservations admitted by them
    failed: int = 0  # batches that failed (their reservations then made alone)


class Combiner:
    """One batch at a time per tenant: the calls of different tenants never wait for each other
    (their counters differ, and a batch holds one tenant's), those of one tenant go together."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[Any, list[_Waiting]] = {}  # by tenant; a tenant is here while it has a batch running
        self.stats = Stats()

    def run(self, tenant_id: Any, item: str, alone: Callable[[], Rows], many: Callable[[str], Rows]) -> Rows:
        """The rows of the single-call statement for this item: made `alone()` when nothing else
        of its tenant is running, else in a batch, `many(items_json)`, which returns (idx, *row)
        rows (a row whose first column is NULL stands for none: an item no budget counts)."""
        me = _Waiting(tenant_id, item)
        with self._lock:
            waiting = self._waiting.get(tenant_id)
            if waiting is None:
                self._waiting[tenant_id] = []
                me.lead = True
            else:
                waiting.append(me)
        if not me.lead:
            me.done.wait()
        if me.lead:
            self._lead(me, alone, many)
        if isinstance(me.error, _BatchFailedError):
            return alone()
        if me.error is not None:
            raise me.error
        assert me.rows is not None
        return me.rows

    def _lead(self, me: _Waiting, alone: Callable[[], Rows], many: Callable[[str], Rows]) -> None:
        with self._lock:
            waiting = self._waiting[me.tenant_id]
            batch = [me, *waiting[: MAX_BATCH - 1]]
            del waiting[: MAX_BATCH - 1]
        try:
            if len(batch) == 1:
                self.stats.alone += 1
                try:
                    me.rows = alone()
                except BaseException as exc:
                    me.error = exc
            else:
                self._run(batch, many)
        finally:
            self._hand_over(me.tenant_id)
            for member in batch[1:]:
                member.done.set()

    def _hand_over(self, tenant_id: Any) -> None:
        """A batch of the tenant ended: its oldest waiting call leads the next, or none is running."""
        with self._lock:
            waiting = self._waiting[tenant_id]
            if waiting:
                following = waiting.pop(0)
                following.lead = True
                following.done.set()
            else:
                del self._waiting[tenant_id]

    def _run(self, batch: list[_Waiting], many: Callable[[str], Rows]) -> None:
        try:
            rows = many("[" + ",".join(waiting.item for waiting in batch) + "]")
        except DatabaseError:
            logger.warning("budgets: a batch of %d reservations failed; each is made alone", len(batch), exc_info=True)
            self.stats.failed += 1
            for waiting in batch:
                waiting.error = _BatchFailedError()
            return
        except BaseException as exc:
            for waiting in batch:
                waiting.error = exc
            return
        self.stats.batches += 1
        self.stats.batched += len(batch)
        for waiting in batch:
            waiting.rows = []
        for idx, *row in rows:
            if row[0] is not None:  # a NULL hold: no budget counts this item
                batch[idx].rows.append(tuple(row))  # type: ignore[union-attr]


reservations = Combiner()  # budgets_reserve / budgets_reserve_many
endings = Combiner()  # budgets_finish / budgets_finish_many


def combinable() -> bool:
    """A reservation made now would commit on its own (no transaction is open on this thread's
    connection), so it may share a batch's."""
    return settings.BUDGETS_COMBINE and not connection.in_atomic_block
