"""Retention: each tenant's traces older than its retention are deleted by the beat task, in
bounded batches, with their spans and payloads; newer ones and other tenants' stay."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from tenants.audit import Actor
from tenants.testing import Cast
from traces import services
from traces.models import IngestBatch, Span, SpanPayload, Trace
from traces.tasks import expire_traces
from traces.tests.factories import make_trace, span_item

pytestmark = pytest.mark.django_db


def aged(trace: Trace, days: int) -> None:
    when = timezone.now() - timedelta(days=days)
    Trace.objects.filter(pk=trace.pk).update(started_at=when, ended_at=when)


def test_the_beat_task_deletes_only_traces_past_each_tenants_retention(cast: Cast) -> None:
    services.trace_settings_update(actor=Actor.system_actor("tests"), tenant=cast.acme, retention_days=7)
    old = make_trace(cast.acme)
    big = span_item(input="y" * 20_000)
    services.spans_ingest(tenant=cast.acme, items=[big])
    old_big = Trace.objects.for_tenant(cast.acme).get(trace_id=big["trace_id"])
    recent = make_trace(cast.acme)
    globex_old = make_trace(cast.globex)  # Globex keeps the default 30 days
    for trace in (old, old_big, globex_old):
        aged(trace, 10)
    aged(recent, 3)

    IngestBatch.objects.for_tenant(cast.acme).update(received_at=timezone.now() - timedelta(days=10))
    receipts = IngestBatch.objects.for_tenant(cast.acme).count()

    totals = expire_traces()

    assert totals == {"traces": 2, "spans": 4, "payloads": 1, "receipts": receipts}
    assert not IngestBatch.objects.for_tenant(cast.acme).exists()
    remaining = set(Trace.objects.values_list("trace_id", flat=True))
    assert remaining >= {recent.trace_id, globex_old.trace_id}
    assert not remaining & {old.trace_id, old_big.trace_id}
    assert not Span.objects.filter(trace_id__in=[old.trace_id, old_big.trace_id]).exists()
    assert not SpanPayload.objects.filter(trace_id=old_big.trace_id).exists()
    assert "traces.tasks.expire_traces" in {e["task"] for e in settings.CELERY_BEAT_SCHEDULE.values()}


def test_expiry_works_in_bounded_batches(cast: Cast, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "RETENTION_BATCH", 2)
    traces = [make_trace(cast.acme, children=0) for _ in range(5)]
    for trace in traces:
        aged(trace, 40)
    assert services.traces_expire(tenant=cast.acme, max_batches=2)["traces"] == 4
    assert services.traces_expire(tenant=cast.acme, max_batches=2)["traces"] == 1
    assert not Trace.objects.for_tenant(cast.acme).exists()


def test_retention_outside_1_to_3650_days_is_refused(cast: Cast) -> None:
    from tenants.errors import FieldError

    for days in (0, 3651):
        with pytest.raises(FieldError):
            services.trace_settings_update(actor=Actor.system_actor("tests"), tenant=cast.acme, retention_days=days)
