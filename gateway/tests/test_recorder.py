"""The recorder's batching: records submitted within the linger share one batch, and a caller of
wait_idle does not wait out the linger."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from gateway import recorder
from tenants.models import Tenant

pytestmark = pytest.mark.django_db(transaction=True)


class Counting(recorder.Recorder):
    """A recorder that notes the size of every batch it writes."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    def _write(self, batch: list[Any]) -> None:
        self.batches.append(len(batch))
        super()._write(batch)


def record(done: list[int], n: int) -> recorder.Record:
    def write() -> recorder.Written:
        done.append(n)
        return recorder.Written()

    return write


@pytest.fixture
def tenant_id() -> Any:
    return Tenant.objects.create(slug="recorded", name="Recorded").pk


def test_records_submitted_within_the_linger_are_written_in_one_batch(settings: Any, tenant_id: Any) -> None:
    settings.GATEWAY_RECORDER_LINGER_SECONDS = 2.0
    counting, done = Counting(), list[int]()
    for n in range(5):  # 0.2 s from the first to the last, well inside the first's 2 s
        if n:
            time.sleep(0.05)
        counting.submit(record(done, n), tenant_id=tenant_id)
    # Nobody waits (no wait_idle): the batch is written when the linger ends.
    deadline = time.monotonic() + 10
    while counting.pending and time.monotonic() < deadline:
        time.sleep(0.01)
    assert counting.pending == 0
    assert counting.batches == [5] and done == [0, 1, 2, 3, 4]


def test_wait_idle_cuts_the_linger_short(settings: Any, tenant_id: Any) -> None:
    settings.GATEWAY_RECORDER_LINGER_SECONDS = 30.0
    counting, done = Counting(), list[int]()
    counting.submit(record(done, 1), tenant_id=tenant_id)
    counting.submit(record(done, 2), tenant_id=tenant_id)
    waited: list[bool] = []
    waiter = threading.Thread(target=lambda: waited.append(counting.wait_idle(10)))
    waiter.start()
    waiter.join(15)
    assert waited == [True], "wait_idle returned before the records were written, or timed out"
    assert done == [1, 2] and counting.batches == [2]
    # A later wait with nothing pending answers at once, and the next record lingers again.
    assert counting.wait_idle(0.01)
    counting.submit(record(done, 3), tenant_id=tenant_id)
    time.sleep(0.2)
    assert done == [1, 2], "a record alone waits for the linger"
    assert counting.wait_idle(10) and done == [1, 2, 3]
