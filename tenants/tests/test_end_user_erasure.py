"""Erasing an end user through the API and the console: an id with nothing stored answers zero
counts and `erased: false`, and no audit event claims an erasure; a real erasure is audited."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from tenants.models import AuditEvent
from tenants.testing import ApiClient, Cast
from traces.tests.factories import make_trace

pytestmark = pytest.mark.django_db


def test_erasing_an_end_user_who_never_existed_audits_no_erasure(acme_admin_api: ApiClient, cast: Cast) -> None:
    make_trace(cast.acme, end_user_id="ann")
    response = acme_admin_api.delete(reverse("end-user-detail", args=["nobody-ever"]))
    assert response.status_code == 200, response.content
    receipt = response.json()
    assert receipt["erased"] is False
    assert set(receipt["counts"].values()) == {0}
    assert not AuditEvent.objects.for_tenant(cast.acme).filter(action="end_user.erased").exists()


def test_erasing_an_end_user_with_data_is_audited_as_an_erasure(acme_admin_api: ApiClient, cast: Cast) -> None:
    make_trace(cast.acme, end_user_id="ann")
    receipt = acme_admin_api.delete(reverse("end-user-detail", args=["ann"])).json()
    assert receipt["erased"] is True and receipt["counts"]["traces"] == 1
    event = AuditEvent.objects.for_tenant(cast.acme).get(action="end_user.erased")
    assert event.target_label == receipt["end_user"]


def test_the_console_says_nothing_was_erased_for_an_unknown_end_user(alice_client: Client, cast: Cast) -> None:
    response = alice_client.post(reverse("console:trace_end_user_erase", args=["acme", "nobody-ever"]), follow=True)
    assert "nothing was erased" in response.content.decode()
    assert not AuditEvent.objects.for_tenant(cast.acme).filter(action="end_user.erased").exists()
