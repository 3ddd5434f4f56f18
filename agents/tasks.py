"""Celery tasks of the run engine: execute a run, and re-queue runs whose worker died.

Both take ids and re-fetch through the tenant's scope. Only named transient failures are retried:
a live lease held by another execution (RunLeaseHeldError: retried when it would expire) and a lost
database connection; anything else is the engine's to record on the run.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from celery import Task, shared_task
from django.db.models import Q
from django.http import Http404
from django.utils import timezone

from agents import runtime
from agents.models import Run
from tenants.models import Tenant
from tenants.selectors import get_for_tenant

logger = logging.getLogger(__name__)

# Retries while another execution holds the lease: each waits for the lease to expire (at most
# RUN_LEASE_SECONDS), so this bounds how long a duplicate delivery keeps watching a live run.
LEASE_HELD_RETRIES = 120
DATABASE_RETRIES = 5
REQUEUE_BATCH = 500


@shared_task(name="agents.tasks.execute_run", bind=True, ignore_result=True, max_retries=None)
def execute_run(self: Task[Any, Any], tenant_id: str, run_id: str) -> None:
    """Execute the run until it finishes or waits for a reviewer (see agents.runtime)."""
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None:
        logger.warning("execute_run: no tenant %s (run %s)", tenant_id, run_id)
        return
    try:
        run = get_for_tenant(Run.objects.for_tenant(tenant).select_related("tenant"), tenant, pk=run_id)
    except Http404:
        logger.warning("execute_run: no run %s in tenant %s", run_id, tenant_id)
        return
    owner = f"{runtime.new_lease_owner()}:{self.request.id or 'eager'}"
    try:
        runtime.execute(run, owner=owner)
    except runtime.RunLeaseHeldError as exc:
        if self.request.retries >= LEASE_HELD_RETRIES:
            logger.error("execute_run: run %s is still held by another execution; giving up", run_id)
            return
        raise self.retry(countdown=exc.retry_in + 1, exc=exc) from exc
    except runtime.TRANSIENT_DATABASE_ERRORS as exc:
        if self.request.retries >= DATABASE_RETRIES:
            raise
        raise self.retry(countdown=2 ** (self.request.retries + 1), exc=exc) from exc


@shared_task(name="agents.tasks.requeue_stuck_runs", ignore_result=True)
def requeue_stuck_runs() -> int:
    """Scheduled by beat: send execute_run again for running runs whose lease expired (their worker
    died and the broker did not redeliver the task). Returns how many were re-queued. A run
    re-queued twice is harmless: only one execution can claim it."""
    now = timezone.now()
    # Each task re-fetches its run through the tenant.
    grace = timedelta(seconds=runtime.lease_seconds() / 3)
    stuck = list(
        Run.objects.across_tenants("beat's sweep of runs whose worker died")
        .filter(status=Run.Status.RUNNING)
        .filter(Q(lease_expires_at__lt=now - grace) | Q(lease_expires_at__isnull=True))
        .order_by("lease_expires_at")
        .values_list("tenant_id", "pk")[:REQUEUE_BATCH]
    )
    for tenant_id, run_id in stuck:
        logger.warning("run %s: its worker's lease expired; re-queued", run_id)
        execute_run.delay(str(tenant_id), str(run_id))
    return len(stuck)
