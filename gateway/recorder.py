"""What the console keeps of a gateway call, written off the client's path.

A call's answer (and its cost and budget headers, computed in memory) goes to the client first;
the settlement, the output verdict, the spans and the request-log row are handed here and written
by one thread per process, which takes every record waiting (up to MAX_BATCH): each record settles
its call in a transaction of its own (one statement; so one bad record never loses the others,
and no transaction holds two calls' counters at once) and hands back its spans and rows, which
are then written for the whole batch at once (one span ingest per tenant, one INSERT per table)
in one transaction that does not wait for the disk (they are not the ledger). A durable commit
costs 0.1 to 3 ms of fsync on this machine, depending on the disk's other work; written on the
path of each call, the four commits of a call were most of its added latency. Here they cost the
client nothing, and the spans and rows of many calls share one.

Records wait up to settings.GATEWAY_RECORDER_LINGER_SECONDS (0.05 s) for others to share a batch.
What this costs in exactness: nothing. A call's worst case stays reserved until its record is
written, so its budget is only held up to that much longer, never overspent; a call's spans and
request-log row appear that much later. What it costs when
the process dies (SIGKILL, a crash) with records waiting: those calls are not settled; their
reservations expire by TTL (budgets.services.budget_expire_stale) and the ledger still balances,
as for a process killed mid-stream. A normal shutdown (SIGTERM, Ctrl-C) writes what is waiting
before the process exits (atexit). `wait_idle()` blocks until everything submitted so far is
written: for tests, and for anyone who must read the ledger right after a call.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import Model

from budgets.services import Ending, finished_ahead
from tenants import rls

if TYPE_CHECKING:
    from traces.services import SpanBatch

logger = logging.getLogger(__name__)

MAX_BATCH = 64  # records per transaction
SHUTDOWN_SECONDS = 10.0
_HURRY = object()  # put in the queue by wait_idle: write what is waiting now, without lingering


@dataclass
class Written:
    """What a record leaves to be written with the rest of its batch."""

    spans: SpanBatch | None = None
    rows: list[Model] = field(default_factory=list)


type Record = Callable[[], Written | None]


@dataclass
class _Submitted:
    record: Record
    tenant_id: Any  # whose rows it writes: its context under row-level security (tenants.rls)
    endings: list[Ending] = field(default_factory=list)  # the reservations its record ends


class Recorder:
    """A queue of records and the thread that writes them (started on first use)."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[_Submitted | object] = queue.SimpleQueue()  # records, and _HURRY
        self._pending = 0
        self._idle = threading.Condition()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def submit(self, record: Record, *, tenant_id: Any, endings: list[Ending] | None = None) -> None:
        """Queue `record` to be written. `endings`: the reservations it settles or releases, with
        their figures, ended ahead for the whole batch in one statement (budgets.services.
        finished_ahead)."""
        with self._idle:
            self._pending += 1
        self._ensure_thread()
        self._queue.put(_Submitted(record, tenant_id, endings or []))

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until every record submitted so far is written (cutting the batch's wait for
        more short); False on timeout."""
        with self._idle:
            if self._pending == 0:
                return True
        self._queue.put(_HURRY)
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout=timeout)

    @property
    def pending(self) -> int:
        return self._pending

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="gateway-recorder", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if not isinstance(first, _Submitted):
                continue  # a _HURRY with nothing waiting
            batch = [first]
            # Wait for the calls that follow (settings.GATEWAY_RECORDER_LINGER_SECONDS, 0.05 s):
            # a batch's writes cost much the same for one record as for many (one settlement
            # statement and its durable commit, one span statement, one INSERT, one transaction),
            # and that CPU is taken from the calls in flight. Measured in process
            # (bench/gateway_cpu.py --batch N), the recorder's CPU a call, its own and
            # PostgreSQL's: 3.3 + 3.0 ms written alone, 2.1 + 1.5 in threes, 1.5 + 0.9 in
            # eights, 0.8 + 0.6 in batches of 24. But a bigger batch is a longer burst of CPU,
            # which the calls running meanwhile wait behind: at one client 20 ms gave the best
            # p99 and the worst p50, 0.1 s the reverse, 0.05 s most of 0.1 s's p50 and CPU at a
            # p99 near 20 ms's (docs/BENCHMARKS.md, session 29).
            deadline = time.monotonic() + settings.GATEWAY_RECORDER_LINGER_SECONDS
            while len(batch) < MAX_BATCH:
                wait = deadline - time.monotonic()
                try:
                    item = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if not isinstance(item, _Submitted):  # _HURRY: someone waits; take what is queued, and write
                    deadline = 0.0
                    continue
                batch.append(item)
            try:
                self._write(batch)
            finally:
                with self._idle:
                    self._pending -= len(batch)
                    self._idle.notify_all()

    def _write(self, batch: list[_Submitted]) -> None:
        from tenants import cache as config_cache

        close_old_connections()
        with config_cache.snapshot(), contextlib.ExitStack() as ended:
            # The batch's settlements first, one statement and one durable commit per tenant
            # (budgets_finish_many: every reservation locked in id order, then every counter in
            # key order, the one lock order of the services), instead of one commit per call, each
            # holding the counters it settles, which every admission of the same budget waits for.
            # Then each record in a transaction of its own, its settlement read back from that
            # statement's result; a record whose ending failed there ends it alone, as before.
            endings: dict[Any, list[Ending]] = defaultdict(list)
            for submitted in batch:
                endings[submitted.tenant_id].extend(submitted.endings)
            for tenant_id, of_tenant in endings.items():
                if of_tenant:
                    with rls.tenant_context(tenant_id):
                        ended.enter_context(finished_ahead(tenant_id, of_tenant))
            written = [_attempt(record) for record in batch]
            try:
                with transaction.atomic():
                    # Spans and log rows are not the ledger: their commit does not wait for the
                    # disk (a database crash may lose the last fraction of a second of them), so
                    # the admissions' and settlements' own commits do not queue behind its fsync.
                    with connection.cursor() as cursor:
                        cursor.execute("SET LOCAL synchronous_commit TO off")
                    _flush(written)
            except Exception:
                logger.exception("gateway recorder: the spans and log rows of %d records were lost", len(batch))


def _attempt(submitted: _Submitted) -> Written | None:
    try:
        with rls.tenant_context(submitted.tenant_id), transaction.atomic():
            return submitted.record()
    except Exception:
        logger.exception("gateway recorder: a record failed (its reservation expires by TTL)")
        return None


def _flush(written: list[Written | None]) -> None:
    """The batch's spans, one ingest per tenant, and its rows, one INSERT per model."""
    from traces.services import SpanBatch

    spans: dict[Any, SpanBatch] = {}
    rows: dict[tuple[type[Model], Any], list[Model]] = defaultdict(list)  # by model and tenant
    for item in written:
        if item is None:
            continue
        if item.spans is not None and item.spans.items:
            merged = spans.setdefault(item.spans.tenant.pk, SpanBatch(item.spans.tenant))
            merged.items.extend(item.spans.items)
            item.spans.items = []
        for row in item.rows:
            rows[type(row), row.tenant_id].append(row)  # type: ignore[attr-defined]
    for merged in spans.values():
        with rls.tenant_context(merged.tenant.pk):
            merged.write()  # a savepoint of its own; logs what it could not write
    for (model, tenant_id), of_model in rows.items():
        try:
            with rls.tenant_context(tenant_id), transaction.atomic():
                model._default_manager.bulk_create(of_model)
        except Exception:
            logger.exception("gateway recorder: %d %s rows were not written", len(of_model), model.__name__)


recorder = Recorder()


def submit(record: Record, *, tenant_id: Any, endings: list[Ending] | None = None) -> None:
    recorder.submit(record, tenant_id=tenant_id, endings=endings)


def wait_idle(timeout: float = 10.0) -> bool:
    return recorder.wait_idle(timeout)


@atexit.register
def _flush_at_exit() -> None:
    if recorder.pending and not recorder.wait_idle(SHUTDOWN_SECONDS):
        logger.error("gateway recorder: %d records were not written before exit", recorder.pending)
