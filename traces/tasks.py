"""Celery tasks of traces: retention, run by beat."""

from __future__ import annotations

import logging

from celery import shared_task

from tenants.models import Tenant
from traces import services

logger = logging.getLogger(__name__)


@shared_task(name="traces.tasks.expire_traces", ignore_result=True)
def expire_traces() -> dict[str, int]:
    """Scheduled by beat: delete each tenant's traces older than its retention, in bounded batches
    (services.traces_expire); what is left over is deleted by the next sweep. Returns the totals."""
    totals = {"traces": 0, "spans": 0, "payloads": 0, "receipts": 0}
    # Across tenants on purpose: a system sweep; each tenant's rows are deleted through its scope,
    # at most services.RETENTION_BATCH x 20 traces per tenant per sweep.
    for tenant in Tenant.objects.order_by("pk").iterator():
        for name, count in services.traces_expire(tenant=tenant).items():
            totals[name] += count
    if totals["traces"]:
        logger.info("retention: deleted %s", totals)
    return totals
