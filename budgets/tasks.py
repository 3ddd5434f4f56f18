"""Celery tasks of budgets: release reservations whose client never settled them."""

from __future__ import annotations

import logging

from celery import shared_task

from budgets.services import budget_expire_stale

logger = logging.getLogger(__name__)


@shared_task(name="budgets.tasks.expire_stale_reservations", ignore_result=True)
def expire_stale_reservations() -> int:
    """Release every open reservation past its TTL (beat, every BUDGET_EXPIRE_INTERVAL_SECONDS)."""
    expired = budget_expire_stale()
    if expired:
        logger.info("expired %d stale budget reservations", expired)
    return expired
