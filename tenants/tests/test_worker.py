"""A real Celery worker, on the real Redis broker, runs the heartbeat that beat schedules."""

from __future__ import annotations

import time

import pytest
from celery.contrib.testing.worker import start_worker
from django.conf import settings
from django.core.cache import cache

from config.celery import app
from tenants.tasks import HEARTBEAT_KEY, heartbeat


@pytest.mark.django_db(transaction=True)
def test_a_worker_runs_the_heartbeat_and_the_dashboard_sees_it(celery_queue: None) -> None:
    cache.delete(HEARTBEAT_KEY)
    assert "heartbeat" in settings.CELERY_BEAT_SCHEDULE
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        heartbeat.delay()  # results are ignored: wait for the effect instead
        deadline = time.monotonic() + 15
        while cache.get(HEARTBEAT_KEY) is None and time.monotonic() < deadline:
            time.sleep(0.1)
    assert cache.get(HEARTBEAT_KEY) is not None
