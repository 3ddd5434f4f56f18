"""The console's audit log refuses a filter it does not have, as every list does (issue 20)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from tenants.testing import Cast


@pytest.mark.django_db
def test_the_audit_log_refuses_an_unknown_filter_and_a_bad_value_above_the_list(cast: Cast, client: Client) -> None:
    client.force_login(cast.alice)
    url = reverse("console:audit", args=[cast.acme.slug])
    unknown = client.get(url, {"colour": "red"})
    assert unknown.status_code == 400
    assert "&#x27;colour&#x27; is not a filter of this list" in unknown.content.decode()
    bad = client.get(url, {"since": "yesterday"})
    assert bad.status_code == 400 and "Enter a valid date/time." in bad.content.decode()
    assert client.get(url, {"actor": "alice", "page": "1"}).status_code == 200
