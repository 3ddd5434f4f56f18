"""The configuration cache (tenants.cache): values read on every call are served from memory until
anything they were built from changes, here or in another process."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache as redis_cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from catalog.models import ModelPin
from catalog.selectors import pinned_model
from tenants import cache as config_cache
from tenants.authentication import authenticate_key
from tenants.models import ApiKey
from tenants.testing import Cast, make_key, version_reads


def _queries(fn: Any) -> int:
    with CaptureQueriesContext(connection) as captured:
        fn()
    return len(captured.captured_queries)


@pytest.mark.django_db
def test_a_pin_is_read_once_then_served_from_memory(cast: Cast) -> None:
    config_cache.clear_local()
    first = pinned_model(tenant=cast.acme, alias="default")
    assert _queries(lambda: pinned_model(tenant=cast.acme, alias="default")) == 0
    assert pinned_model(tenant=cast.acme, alias="default") == first
    # Another tenant's alias of the same name is its own entry.
    assert pinned_model(tenant=cast.globex, alias="default").tenant_id == cast.globex.pk


@pytest.mark.django_db
def test_saving_a_watched_row_is_seen_by_the_next_read(cast: Cast) -> None:
    from catalog.models import LanguageModel

    current = pinned_model(tenant=cast.acme, alias="default")
    other = LanguageModel.objects.create(
        tenant=cast.acme,
        provider=current.provider,
        model_id="other-model-2025-01-01",
        input_price=1,
        output_price=1,
        context_window=8000,
        max_output_tokens=1000,
    )
    pin = ModelPin.objects.for_tenant(cast.acme).get(alias="default")
    pin.model = other
    pin.save()
    assert pinned_model(tenant=cast.acme, alias="default") == other


@pytest.mark.django_db
def test_a_queryset_update_of_a_key_refuses_it_at_once_but_its_last_use_does_not_invalidate(cast: Cast) -> None:
    from django.utils import timezone
    from rest_framework.exceptions import AuthenticationFailed

    key, secret = make_key(cast.acme, "admin")
    assert authenticate_key(secret).pk == key.pk
    before = redis_cache.get(config_cache.VERSION_KEY)
    with config_cache.snapshot():
        ApiKey.objects.for_tenant(cast.acme).filter(pk=key.pk).update(last_used_at=timezone.now())
        assert _queries(lambda: authenticate_key(secret)) == 0  # still cached: nothing it holds changed
    ApiKey.objects.for_tenant(cast.acme).filter(pk=key.pk).update(revoked_at=timezone.now())
    with pytest.raises(AuthenticationFailed, match="revoked"):
        authenticate_key(secret)
    assert redis_cache.get(config_cache.VERSION_KEY) == before  # the bump waits for the commit


@pytest.mark.django_db(transaction=True)
def test_a_change_committed_by_another_process_is_seen_through_the_shared_version(cast: Cast) -> None:
    first = pinned_model(tenant=cast.acme, alias="default")
    assert _queries(lambda: pinned_model(tenant=cast.acme, alias="default")) == 0
    # Another process commits a change: it bumps the version in Redis; this process's memory is untouched.
    redis_cache.incr(config_cache.VERSION_KEY)
    assert _queries(lambda: pinned_model(tenant=cast.acme, alias="default")) == 1
    assert pinned_model(tenant=cast.acme, alias="default") == first


@pytest.mark.django_db(transaction=True)
def test_a_commit_here_bumps_the_version_every_process_reads(cast: Cast) -> None:
    before = int(redis_cache.get(config_cache.VERSION_KEY) or 0)
    pin = ModelPin.objects.for_tenant(cast.acme).get(alias="default")
    pin.save()
    assert int(redis_cache.get(config_cache.VERSION_KEY)) > before


@pytest.mark.django_db
def test_one_snapshot_reads_the_version_once(cast: Cast, monkeypatch: pytest.MonkeyPatch) -> None:
    reads = version_reads(monkeypatch)
    with config_cache.snapshot():
        pinned_model(tenant=cast.acme, alias="default")
        pinned_model(tenant=cast.globex, alias="default")
        with config_cache.snapshot():
            pinned_model(tenant=cast.acme, alias="default")
    assert len(reads) == 1


@pytest.mark.django_db
def test_without_redis_every_read_goes_to_the_database(cast: Cast, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config_cache, "_read_version", lambda along=None: (None, []))
    pinned_model(tenant=cast.acme, alias="default")
    assert _queries(lambda: pinned_model(tenant=cast.acme, alias="default")) == 1
