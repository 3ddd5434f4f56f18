"""Periodic work of the kernel: a heartbeat that proves the worker and beat are alive."""

from __future__ import annotations

from celery import shared_task
from django.core.cache import cache
from django.utils import timezone

HEARTBEAT_KEY = "worker:heartbeat"


@shared_task(name="tenants.tasks.heartbeat", ignore_result=True)
def heartbeat() -> None:
    """Scheduled by beat, run by a worker: the dashboard shows how long ago it last ran."""
    cache.set(HEARTBEAT_KEY, timezone.now().isoformat(), timeout=None)
