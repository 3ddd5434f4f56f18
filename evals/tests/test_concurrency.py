"""The per-tenant bound holds under concurrent dispatchers: many threads, each on its own
PostgreSQL connection, dispatch the same tenant at once (as finishing cases do on many workers)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection

from evals import services
from evals.models import EvalResult, Suite
from evals.services import execution
from tenants import rls
from tenants.audit import Actor
from tenants.testing import Cast

pytestmark = pytest.mark.django_db(transaction=True)


def test_concurrent_dispatchers_never_exceed_the_tenants_bound(cast: Cast, settings: Any) -> None:
    settings.EVAL_CONCURRENCY_PER_TENANT = 3
    suite = Suite.objects.get(tenant=cast.acme, name__startswith="Support agent")
    for _ in range(2):
        services.eval_run_start(actor=Actor.system_actor("tests"), suite=suite, dispatch=False)
    barrier = threading.Barrier(8)
    started: list[str] = []
    lock = threading.Lock()

    def dispatch() -> None:
        try:
            barrier.wait()
            ids = services.eval_dispatch(tenant=cast.acme)
            with lock:
                started.extend(ids)
        finally:
            connection.close()

    # Tasks would be sent after commit: keep them out of the broker (no worker here).
    original = execution._send_cases
    execution._send_cases = lambda tenant_id, result_ids: None
    try:
        threads = [threading.Thread(target=rls.carried(dispatch)) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        execution._send_cases = original
    assert len(started) == len(set(started)) == 3
    assert EvalResult.objects.filter(tenant=cast.acme, status="running").count() == 3
