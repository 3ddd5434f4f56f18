"""Celery tasks of evals: dispatch a tenant's pending cases, execute one case, sweep stuck cases,
and score sampled production runs (online evals).

Each takes ids, re-fetches through the tenant's scope and calls one service. Retried on named
failures only: a live lease on the case's agent run (another execution holds it) and a lost
database connection.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, shared_task
from django.http import Http404

from agents import runtime
from evals import online, services
from evals.models import EvalResult
from tenants.models import Tenant
from tenants.selectors import get_for_tenant

logger = logging.getLogger(__name__)

DATABASE_RETRIES = 5
LEASE_HELD_RETRIES = 120


@shared_task(name="evals.tasks.dispatch", ignore_result=True)
def dispatch(tenant_id: str) -> int:
    """Start the tenant's pending cases up to its concurrency bound."""
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None:
        return 0
    return len(services.eval_dispatch(tenant=tenant))


@shared_task(name="evals.tasks.execute_case", bind=True, ignore_result=True, max_retries=None)
def execute_case(self: Task[Any, Any], tenant_id: str, result_id: str) -> None:
    """Execute one eval case and score it (see evals.services.eval_result_execute)."""
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None:
        return
    try:
        result = get_for_tenant(EvalResult.objects.for_tenant(tenant).select_related("tenant"), tenant, pk=result_id)
    except Http404:
        logger.warning("execute_case: no result %s in tenant %s", result_id, tenant_id)
        return
    try:
        services.eval_result_execute(result=result)
    except runtime.RunLeaseHeldError as exc:
        if self.request.retries >= LEASE_HELD_RETRIES:
            logger.error("execute_case: the run of result %s is still held elsewhere; giving up", result_id)
            return
        raise self.retry(countdown=exc.retry_in + 1, exc=exc) from exc
    except runtime.TRANSIENT_DATABASE_ERRORS as exc:
        if self.request.retries >= DATABASE_RETRIES:
            raise
        raise self.retry(countdown=2 ** (self.request.retries + 1), exc=exc) from exc


@shared_task(name="evals.tasks.sweep", ignore_result=True)
def sweep() -> int:
    """Scheduled by beat: re-send cases whose worker died (running with a finished or an
    expired agent run), and dispatch tenants with pending cases and free slots."""
    return services.eval_sweep(resend=lambda tenant_id, result_id: execute_case.delay(tenant_id, result_id))


@shared_task(name="evals.tasks.online_evals", ignore_result=True)
def online_evals() -> int:
    """Scheduled by beat: score the sampled production runs of every enabled online eval, and
    raise a quality alert where the pass rate dropped beyond its threshold."""
    return online.score_all()
