"""Reservations over REST on a kept database connection: a connection that answered a moment ago is
used without Django's per-request health check, and one that died meanwhile is answered with a
retryable 503, never a 500, after which the client's retry goes through."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django.db import connection, connections
from django.db.backends.postgresql.base import DatabaseWrapper

from budgets import api
from budgets.models import Reservation
from budgets.tests.factories import make_budget
from tenants import rls
from tenants.testing import Cast, make_key

RESERVE = {"model": "default", "input_tokens": 200, "max_output_tokens": 200}
SETTLE = {"input_tokens": 200, "output_tokens": 100}


@pytest.fixture
def one_thread_server(transactional_db: None) -> Iterator[str]:
    """Django's WSGI app served by one thread, request after request, keeping its database
    connection between them (CONN_MAX_AGE 60), as a gunicorn thread does. Yields its base URL."""
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

    from django.core.wsgi import get_wsgi_application

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    connections.settings["default"]["CONN_MAX_AGE"] = 60
    server = WSGIServer(("127.0.0.1", 0), Quiet)
    server.set_app(get_wsgi_application())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        connections.settings["default"]["CONN_MAX_AGE"] = 0
        _terminate_other_connections()  # the server thread's kept connection would block teardown


def _terminate_other_connections() -> None:
    # As the owner: the app role (TENANT_RLS) may not end another role's connections.
    with rls.as_owner(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture
def health_checks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every health check Django runs (is_usable), in any thread."""
    checks: list[int] = []
    usable = DatabaseWrapper.is_usable

    def counted(self: DatabaseWrapper) -> bool:
        checks.append(1)
        return usable(self)

    monkeypatch.setattr(DatabaseWrapper, "is_usable", counted)
    return checks


@pytest.mark.django_db(transaction=True)
def test_a_connection_that_just_answered_skips_the_health_check(
    cast: Cast, one_thread_server: str, health_checks: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api, "HEALTHY_FOR_SECONDS", 600.0)
    make_budget(cast.acme, limit=10**9)
    _, key = make_key(cast.acme, ["budgets:reserve"])
    with httpx.Client(base_url=one_thread_server, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
        first = http.post("/api/v1/reservations", json=RESERVE)
        assert first.status_code == 201, first.text
        before = len(health_checks)
        for _ in range(3):
            held = http.post("/api/v1/reservations", json=RESERVE)
            assert held.status_code == 201, held.text
            assert http.post(f"/api/v1/reservations/{held.json()['id']}/settle", json=SETTLE).status_code == 200
    assert len(health_checks) == before  # six requests on a connection that had just answered: no SELECT 1


@pytest.mark.django_db(transaction=True)
def test_a_connection_that_died_is_a_retryable_503_and_the_retry_goes_through(
    cast: Cast, one_thread_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database drops every connection (a restart) between two requests: the next reservation
    and the next settlement are each answered 503 `unavailable` with Retry-After, never
    500, having written nothing; their retries are 201 and 200."""
    monkeypatch.setattr(api, "HEALTHY_FOR_SECONDS", 600.0)  # a slow machine's pauses do not bring the check back
    make_budget(cast.acme, limit=10**9)
    _, key = make_key(cast.acme, ["budgets:reserve"])
    with httpx.Client(base_url=one_thread_server, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:

        def until_answered(path: str, body: dict[str, Any]) -> tuple[list[httpx.Response], httpx.Response]:
            failed: list[httpx.Response] = []
            for _ in range(5):
                reply = http.post(path, json=body)
                if reply.status_code != 503:
                    return failed, reply
                failed.append(reply)
            pytest.fail(f"{path}: still 503 after 5 tries")

        held = http.post("/api/v1/reservations", json=RESERVE)
        assert held.status_code == 201, held.text
        open_before = Reservation.objects.for_tenant(cast.acme).count()
        _terminate_other_connections()
        failed, reserved = until_answered("/api/v1/reservations", RESERVE)
        assert reserved.status_code == 201, reserved.text
        assert [r.status_code for r in failed] == [503]
        error = failed[0].json()["error"]
        assert (error["type"], error["retry_after"], failed[0].headers["Retry-After"]) == (
            "unavailable",
            1,
            "1",
        )
        assert Reservation.objects.for_tenant(cast.acme).count() == open_before + 1  # the 503 held nothing

        _terminate_other_connections()
        failed, settled = until_answered(f"/api/v1/reservations/{reserved.json()['id']}/settle", SETTLE)
        assert settled.status_code == 200, settled.text
        assert [r.status_code for r in failed] == [503]
        assert settled.json()["status"] == "settled"
