"""The reservation endpoints read a plain JSON body without DRF's parser machinery
(budgets.api._json_body): every body, plain or not, is answered exactly as `request.data` answers
it, and the configuration version is read once for a whole request."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from budgets import api as budgets_api
from budgets.tests.factories import make_budget
from tenants.models import Scope
from tenants.testing import Cast, version_reads

pytestmark = pytest.mark.django_db

PLAIN = '{"model": "default", "input_tokens": 10, "max_output_tokens": 10}'
# (body, content type): plain ones, and every way a body can differ from plain JSON in UTF-8.
BODIES: list[tuple[bytes, str]] = [
    (PLAIN.encode(), "application/json"),
    (PLAIN.encode(), "application/json; charset=utf-8"),
    (PLAIN.encode(), "application/json; charset=UTF-8"),
    (PLAIN.encode(), "Application/JSON"),
    (PLAIN.encode("utf-16"), "application/json"),
    (PLAIN.encode("utf-16"), "application/json; charset=utf-16"),
    (b"\xef\xbb\xbf" + PLAIN.encode(), "application/json"),  # a UTF-8 byte order mark
    (PLAIN.replace("default", "d\u00e9fault").encode("latin-1"), "application/json"),
    (PLAIN.replace("default", "d\u00e9fault").encode("latin-1"), "application/json; charset=latin-1"),
    (PLAIN.replace("default", "d\u00e9fault").encode(), "application/json; charset=latin-1"),
    # ASCII bytes that mean another text in the charset named: "+AGQ-efault" is "default" in UTF-7.
    (PLAIN.replace("default", "+AGQ-efault").encode(), "application/json; charset=utf-7"),
    (PLAIN.replace("10}", "NaN}").encode(), "application/json"),
    (PLAIN.replace("10}", "Infinity}").encode(), "application/json"),
    (PLAIN.replace("10}", "1e400}").encode(), "application/json"),
    (PLAIN.replace("10}", "123456789012345678901234567890}").encode(), "application/json"),
    (PLAIN.replace("default", "\\ud800").encode(), "application/json"),
    (PLAIN[:-1].encode(), "application/json"),  # truncated
    (PLAIN.encode() + b" []", "application/json"),  # trailing data
    (b"[" * 100_000 + b"]" * 100_000, "application/json"),  # deeper than Python's parser recurses
    (b"", "application/json"),
    (b"null", "application/json"),
    (b'"text"', "application/json"),
    (b"model=default&input_tokens=10&max_output_tokens=10", "application/x-www-form-urlencoded"),
    (PLAIN.encode(), "text/plain"),
]


def answers(client: Any, key: str, path: str, bodies: list[tuple[bytes, str]]) -> list[tuple[int, Any]]:
    """Each body's status and JSON answer (ids and times left out: they differ between calls)."""
    found = []
    for body, content_type in bodies:
        response = client.generic("POST", path, body, content_type=content_type, headers={"Authorization": key})
        data = response.json()
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if k not in {"id", "created_at", "expires_at", "finished_at"}}
        found.append((response.status_code, data))
    return found


@pytest.mark.parametrize("action", ["reserve", "settle"])
def test_every_body_is_answered_as_drf_answers_it(
    cast: Cast, client: Any, api: Any, monkeypatch: pytest.MonkeyPatch, action: str
) -> None:
    make_budget(cast.acme, limit=10**9)
    key = f"Bearer {api(Scope.BUDGETS_RESERVE).key}"
    bodies = BODIES
    if action == "settle":
        bodies = [
            (body.replace(b'"model": "default", ', b"").replace(b"max_output", b"output"), ct) for body, ct in BODIES
        ]

    def paths() -> list[str]:
        if action == "reserve":
            return [reverse("reservation-list")] * len(bodies)
        held = [
            answers(client, key, reverse("reservation-list"), [(PLAIN.encode(), "application/json")]) for _ in bodies
        ]
        assert all(status == 201 for ((status, _),) in held)
        return [reverse("reservation-settle", args=[pk]) for pk in _ids(cast, len(bodies))]

    fast = [answers(client, key, path, [body])[0] for path, body in zip(paths(), bodies, strict=True)]
    monkeypatch.setattr(budgets_api, "_json_body", lambda request: request.data)
    drf = [answers(client, key, path, [body])[0] for path, body in zip(paths(), bodies, strict=True)]
    assert fast == drf
    assert fast[0][0] == (201 if action == "reserve" else 200)
    assert all(status < 500 for status, _ in fast)


def _ids(cast: Cast, n: int) -> list[str]:
    from budgets.models import Reservation

    open_ones = Reservation.objects.for_tenant(cast.acme).filter(status="open").order_by("-created_at")
    return [str(pk) for pk in open_ones.values_list("pk", flat=True)[:n]]


def test_a_reservation_reads_the_configuration_version_once(
    cast: Cast, client: Any, api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_budget(cast.acme, limit=10**9)
    key = f"Bearer {api(Scope.BUDGETS_RESERVE).key}"
    reads = version_reads(monkeypatch)
    ((status, _),) = answers(client, key, reverse("reservation-list"), [(PLAIN.encode(), "application/json")])
    assert status == 201
    assert len(reads) == 1  # the key and the model's pin from one version
