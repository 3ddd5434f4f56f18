"""Span ingestion under row-level security goes through a temporary stage table (PostgreSQL's COPY
refuses a table with row-level security); the stage is created once per database session, and a
creation rolled back with its transaction is made again."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from tenants import rls
from tenants.testing import Cast
from traces import services
from traces.models import Span
from traces.tests.factories import span_item


class RolledBackError(Exception):
    pass


def ingest_then_roll_back(cast: Cast) -> None:
    with transaction.atomic():
        assert services.spans_ingest(tenant=cast.acme, items=[span_item()]).accepted == 1
        raise RolledBackError  # the stage's creation is rolled back with the spans


@pytest.mark.django_db(transaction=True)
def test_the_stage_is_made_once_per_session_and_again_after_a_rollback(cast: Cast) -> None:
    if not rls.enforcing():
        pytest.skip("the stage is used only under row-level security (TENANT_RLS)")
    connection.close()  # a new database session: no stage yet
    with pytest.raises(RolledBackError):
        ingest_then_roll_back(cast)
    session = connection.connection
    assert session not in services._staging
    receipt = services.spans_ingest(tenant=cast.acme, items=[span_item(), span_item()])
    assert receipt.accepted == 2
    assert session in services._staging  # committed: the next batch of this session skips the CREATE
    assert services.spans_ingest(tenant=cast.acme, items=[span_item()]).accepted == 1
    assert Span.objects.for_tenant(cast.acme).count() == 3
    connection.close()
    assert services.spans_ingest(tenant=cast.acme, items=[span_item()]).accepted == 1  # a new session: made again
    assert connection.connection in services._staging
