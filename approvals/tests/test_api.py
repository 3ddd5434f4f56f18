"""The approvals REST API: contracts, validation naming the field, exactly-once decisions under
two concurrent reviewers, the long-poll woken by a decision, and the signed callback webhook."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from redis.exceptions import MaxConnectionsError
from redis.exceptions import TimeoutError as RedisTimeoutError

from approvals import services, tasks
from approvals.models import ApprovalRequest, ApprovalVote
from tenants.audit import Actor
from tenants.models import Scope
from tenants.testing import ApiClient, ApiContract, Cast, assert_error, make_key
from tenants.webhooks import sign

REFUND = {"action": "refund_order", "arguments": {"order": 1001, "amount": 25}, "risk": "irreversible"}


def a_request(cast: Cast, **extra: Any) -> ApprovalRequest:
    return services.approval_request_create(
        actor=Actor.system_actor("client"),
        tenant=cast.acme,
        action="refund_order",
        arguments={"order": 1001, "amount": 25},
        risk="irreversible",
        reason="irreversible",
        **extra,
    ).approval


class TestApprovalList(ApiContract):
    url_name = "approval-list"
    scope = Scope.APPROVALS_DECIDE

    def path(self, cast: Cast) -> str:
        a_request(cast)
        return reverse(self.url_name)


class TestApprovalCreate(ApiContract):
    url_name = "approval-list"
    method = "post"
    scope = Scope.APPROVALS_WRITE

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name)

    def body(self, cast: Cast) -> Any:
        return {**REFUND, "reason": "irreversible"}


class TestApprovalDetail(ApiContract):
    url_name = "approval-detail"
    scope = Scope.READ  # or approvals:write (the client that asked) or approvals:decide
    object_scoped = True

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name, args=[a_request(cast).pk])


class TestApprovalDecision(ApiContract):
    url_name = "approval-decision"
    method = "post"
    scope = Scope.APPROVALS_DECIDE
    object_scoped = True

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name, args=[a_request(cast).pk])

    def body(self, cast: Cast) -> Any:
        return {"decision": "approve", "note": "ok"}


# --- Creating ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_client_creates_a_request_and_reads_it_back(api: Any, cast: Cast) -> None:
    client = api(Scope.APPROVALS_WRITE)
    response = client.post(
        reverse("approval-list"),
        {**REFUND, "reason": "irreversible", "context": {"ticket": "T-9"}, "expires_in": 300},
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "pending" and body["action"] == "refund_order"
    assert body["arguments"] == REFUND["arguments"] and len(body["arguments_hash"]) == 64
    assert body["context"] == {"ticket": "T-9"} and "callback_secret" not in body
    got = client.get(reverse("approval-detail", args=[body["id"]]))
    assert got.status_code == 200 and got.json()["id"] == body["id"] and got.json()["approved_arguments"] is None


@pytest.mark.django_db
def test_a_client_cannot_write_the_consoles_guardrail_findings(api: Any, cast: Cast) -> None:
    """Reviewers read context.guardrail_findings as the console's guardrails' own (badges in the
    queue): a client that sends them is refused, naming the key and where its own findings go."""
    client = api(Scope.APPROVALS_WRITE)
    response = client.post(
        reverse("approval-list"),
        {**REFUND, "reason": "irreversible", "context": {"guardrail_findings": [{"reason": "all clear"}]}},
    )

    assert response.status_code == 400, response.content
    message = response.json()["error"]["message"]
    assert "guardrail_findings" in message and "client_findings" in message
    mine = client.post(
        reverse("approval-list"),
        {**REFUND, "reason": "irreversible", "context": {"client_findings": [{"reason": "all clear"}]}},
    )
    assert mine.status_code == 201 and mine.json()["context"] == {"client_findings": [{"reason": "all clear"}]}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("risk", "huge"),
        ("reason", "because"),
        ("arguments", [1, 2]),
        ("expires_in", 5),
        ("callback_url", "ftp://example.com/x"),
        ("run", "not-a-run"),
        ("action", ""),
    ],
)
def test_a_bad_field_is_named_with_400(api: Any, field: str, value: Any) -> None:
    response = api(Scope.APPROVALS_WRITE).post(reverse("approval-list"), {**REFUND, "reason": "policy", field: value})

    error = assert_error(response, 400, "validation_error")
    assert field in error["fields"], error


@pytest.mark.django_db
def test_wait_must_be_a_number_of_seconds_within_the_limit(api: Any, cast: Cast) -> None:
    client = api(Scope.APPROVALS_WRITE)
    path = reverse("approval-detail", args=[a_request(cast).pk])
    for bad in ("soon", "-1", "61"):
        assert_error(client.get(f"{path}?wait={bad}"), 400, "validation_error")
    assert_error(client.get(reverse("approval-detail", args=["no-such-id"])), 404, "not_found")


# --- Deciding ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_decision_is_recorded_once_and_a_second_gets_409_naming_who_decided(api: Any, cast: Cast) -> None:
    approval = a_request(cast)
    reviewer, other = api(Scope.APPROVALS_DECIDE), api(Scope.APPROVALS_DECIDE)
    path = reverse("approval-decision", args=[approval.pk])

    assert_error(reviewer.post(path, {"decision": "reject"}), 400, "validation_error")  # no comment
    assert_error(reviewer.post(path, {"decision": "maybe"}), 400, "validation_error")
    first = reviewer.post(path, {"decision": "approve", "note": "ok"})
    second = other.post(path, {"decision": "reject", "note": "late"})

    assert first.status_code == 200 and first.json()["status"] == "approved"
    assert first.json()["approved_arguments"] == {"order": 1001, "amount": 25}
    error = assert_error(second, 409, "conflict")
    assert error["status"] == "approved" and error["decided_by"] == first.json()["decided_by"]
    assert error["decided_by"] in error["message"]


@pytest.mark.django_db
def test_the_key_that_asked_cannot_decide_its_own_request(client: Client, cast: Cast) -> None:
    _, plaintext = make_key(cast.acme, [Scope.APPROVALS_WRITE, Scope.APPROVALS_DECIDE])
    api = ApiClient(client, plaintext)
    created = api.post(reverse("approval-list"), {**REFUND, "reason": "policy"}).json()

    response = api.post(reverse("approval-decision", args=[created["id"]]), {"decision": "approve"})

    assert_error(response, 403, "permission_denied")


@pytest.mark.django_db
def test_an_edit_over_the_api_records_the_new_arguments_and_their_hash(api: Any, cast: Cast) -> None:
    approval = a_request(cast)
    response = api(Scope.APPROVALS_DECIDE).post(
        reverse("approval-decision", args=[approval.pk]),
        {"decision": "edit", "note": "Half only", "arguments": {"order": 1001, "amount": 12}},
    )

    body = response.json()
    assert response.status_code == 200 and body["status"] == "approved" and body["edited"] is True
    assert body["approved_arguments"] == {"order": 1001, "amount": 12}
    assert body["edited_arguments_hash"] != body["arguments_hash"]


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_reviewers_get_one_200_and_one_409(cast: Cast) -> None:
    approval = a_request(cast)
    keys = [make_key(cast.acme, [Scope.APPROVALS_DECIDE], name=f"reviewer {n}")[1] for n in range(2)]
    path = reverse("approval-decision", args=[approval.pk])
    barrier = threading.Barrier(2)
    answers: list[tuple[int, dict[str, Any]]] = []

    def decide(key: str, decision: str) -> None:
        try:
            barrier.wait(timeout=10)
            response = ApiClient(Client(), key).post(path, {"decision": decision, "note": f"{decision} it"})
            answers.append((response.status_code, response.json()))
        finally:
            connection.close()

    threads = [
        threading.Thread(target=decide, args=(keys[0], "approve")),
        threading.Thread(target=decide, args=(keys[1], "reject")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(status for status, _ in answers) == [200, 409], answers
    winner = next(body for status, body in answers if status == 200)
    loser = next(body for status, body in answers if status == 409)
    assert loser["error"]["decided_by"] == winner["decided_by"] and loser["error"]["status"] == winner["status"]
    assert ApprovalVote.objects.for_tenant(cast.acme).filter(request=approval).count() == 1


# --- Long-poll ---------------------------------------------------------------------------------


def test_a_long_poll_is_woken_by_the_decision_within_a_second(live_asgi: str, cast: Cast) -> None:
    approval = a_request(cast)
    _, client_key = make_key(cast.acme, [Scope.APPROVALS_WRITE])
    _, reviewer_key = make_key(cast.acme, [Scope.APPROVALS_DECIDE])
    got: dict[str, Any] = {}

    def wait() -> None:
        with httpx.Client(base_url=live_asgi, timeout=30) as http:
            response = http.get(
                f"/api/v1/approvals/{approval.pk}?wait=20", headers={"Authorization": f"Bearer {client_key}"}
            )
        got["at"], got["status"], got["body"] = time.monotonic(), response.status_code, response.json()

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(1.0)  # the waiter is parked
    assert "at" not in got
    decided_at = time.monotonic()
    with httpx.Client(base_url=live_asgi, timeout=30) as http:
        decision = http.post(
            f"/api/v1/approvals/{approval.pk}/decision",
            json={"decision": "approve", "note": "ok"},
            headers={"Authorization": f"Bearer {reviewer_key}"},
        )
    waiter.join(timeout=30)

    assert decision.status_code == 200, decision.text
    assert got["status"] == 200 and got["body"]["status"] == "approved"
    assert got["at"] - decided_at < 1.0


def test_a_long_poll_answers_pending_when_its_wait_runs_out(live_asgi: str, cast: Cast) -> None:
    approval = a_request(cast)
    _, key = make_key(cast.acme, [Scope.APPROVALS_WRITE])
    started = time.monotonic()

    with httpx.Client(base_url=live_asgi, timeout=30) as http:
        response = http.get(f"/api/v1/approvals/{approval.pk}?wait=1.5", headers={"Authorization": f"Bearer {key}"})

    assert response.status_code == 200 and response.json()["status"] == "pending"
    assert 1.4 <= time.monotonic() - started < 5


# --- The callback webhook -----------------------------------------------------------------------


class Receiver:
    """A local HTTPS-less receiver (allow-listed) that fails its first `fail` deliveries."""

    def __init__(self, fail: int) -> None:
        self.fail = fail
        self.received: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.received.append((dict(self.headers), body))
                self.send_response(503 if len(outer.received) <= outer.fail else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None: ...

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/approvals"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver(settings: Any) -> Iterator[Receiver]:
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    made = Receiver(fail=2)
    yield made
    made.close()


@pytest.mark.django_db
def test_the_callback_is_signed_and_retried_until_delivered(
    api: Any, cast: Cast, receiver: Receiver, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    created = api(Scope.APPROVALS_WRITE).post(
        reverse("approval-list"), {**REFUND, "reason": "policy", "callback_url": receiver.url}
    )
    secret = created.json()["callback_secret"]
    approval_id = created.json()["id"]
    # Run the task as a worker would: its retries re-run it (eagerly here; test_worker uses a real one).
    monkeypatch.setattr(
        tasks.deliver_callback, "delay", lambda *ids: tasks.deliver_callback.apply(args=ids, throw=False)
    )
    monkeypatch.setattr(tasks, "callback_backoff", lambda retries: 0)

    with django_capture_on_commit_callbacks(execute=True):
        api(Scope.APPROVALS_DECIDE).post(
            reverse("approval-decision", args=[approval_id]), {"decision": "reject", "note": "Too much."}
        )

    assert len(receiver.received) == 3  # two 503s, then delivered
    headers, body = receiver.received[-1]
    assert headers["X-AOC-Signature"] == sign(secret, headers["X-AOC-Timestamp"], body)
    payload = json.loads(body)
    assert payload["id"] == approval_id and payload["status"] == "rejected" and payload["note"] == "Too much."
    row = ApprovalRequest.objects.for_tenant(cast.acme).get(pk=approval_id)
    assert row.callback_delivered_at is not None and row.callback_attempts == 3 and row.callback_error == ""


def test_parked_waiters_hold_no_database_connection(live_asgi: str, cast: Cast) -> None:
    approvals = [a_request(cast) for _ in range(20)]
    _, key = make_key(cast.acme, [Scope.APPROVALS_WRITE])

    def connections() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            return int(cursor.fetchone()[0])

    before = connections()
    answers: list[str] = []

    def wait(pk: Any) -> None:
        with httpx.Client(base_url=live_asgi, timeout=30) as http:
            response = http.get(f"/api/v1/approvals/{pk}?wait=20", headers={"Authorization": f"Bearer {key}"})
        answers.append(response.json()["status"])

    threads = [threading.Thread(target=wait, args=(a.pk,)) for a in approvals]
    for thread in threads:
        thread.start()
    # Once every waiter has made its reads and parked (a read borrows a pool thread's connection
    # for a moment), the server holds no more connections than before: sample for a while.
    samples = []
    for _ in range(30):
        time.sleep(0.1)
        samples.append(connections())
    parked = min(samples[10:])
    assert answers == []  # still waiting
    for approval in approvals:
        services.approval_decide(approval=approval, actor=Actor(user=cast.bob), decision="reject", note="no")
    for thread in threads:
        thread.join(timeout=30)

    # 20 waiting clients, and the server holds no more connections than before they came.
    assert parked <= before + 1, (before, samples)
    assert answers == ["rejected"] * 20


def test_the_long_poll_counts_against_the_keys_rate_and_caps_its_waiters(
    live_asgi: str, cast: Cast, settings: Any
) -> None:
    from rest_framework.settings import api_settings

    from tenants.throttling import ApiKeyRateThrottle

    approval = a_request(cast)
    _, key = make_key(cast.acme, [Scope.APPROVALS_WRITE])
    headers = {"Authorization": f"Bearer {key}"}
    settings.APPROVAL_MAX_WAITERS_PER_KEY = 1
    got: dict[str, Any] = {}
    with httpx.Client(base_url=live_asgi, timeout=30) as http:

        def park() -> None:
            got["parked"] = http.get(f"/api/v1/approvals/{approval.pk}?wait=2", headers=headers)

        parked = threading.Thread(target=park)
        parked.start()
        time.sleep(0.8)  # the first waiter holds the key's only slot
        second = http.get(f"/api/v1/approvals/{approval.pk}?wait=2", headers=headers)
        parked.join(timeout=30)
        assert got["parked"].status_code == 200 and got["parked"].json()["status"] == "pending"
        assert second.status_code == 429 and second.headers["Retry-After"] == "1"
        assert "already has 1 requests waiting" in second.json()["error"]["message"]
        # The slot is free again once the first one answered.
        assert http.get(f"/api/v1/approvals/{approval.pk}?wait=0.1", headers=headers).status_code == 200

        rates: dict[str, Any] = {**api_settings.DEFAULT_THROTTLE_RATES, "api_key": "2/min"}
        original = ApiKeyRateThrottle.THROTTLE_RATES
        ApiKeyRateThrottle.THROTTLE_RATES = rates
        try:
            from django.core.cache import cache

            cache.clear()  # the allowance starts afresh
            answers = [
                http.get(f"/api/v1/approvals/{approval.pk}{query}", headers=headers) for query in ("", "?wait=0.1", "")
            ]
        finally:
            ApiKeyRateThrottle.THROTTLE_RATES = original
    assert [a.status_code for a in answers] == [200, 200, 429]
    refused = answers[-1]
    assert refused.json()["error"]["type"] == "throttled" and refused.json()["error"]["retry_after"] > 0
    assert int(refused.headers["Retry-After"]) == refused.json()["error"]["retry_after"]


class FailingLayer:
    """A channel layer whose Redis connection pool is full (what redis-py raises past its cap)."""

    def __init__(self, fail_on: str) -> None:
        self.fail_on = fail_on
        self.discarded = 0

    async def new_channel(self) -> str:
        return "waiter!1"

    async def group_add(self, group: str, channel: str) -> None:
        if self.fail_on == "group_add":
            raise MaxConnectionsError("Too many connections")

    async def receive(self, channel: str) -> dict[str, Any]:
        raise MaxConnectionsError("Too many connections")

    async def group_discard(self, group: str, channel: str) -> None:
        self.discarded += 1


@pytest.mark.django_db(transaction=True)  # the reads run in the loop's thread pool, as served
@pytest.mark.parametrize("fail_on", ["group_add", "receive"])
def test_a_long_poll_whose_channel_layer_fails_answers_a_retryable_503(
    cast: Cast, monkeypatch: pytest.MonkeyPatch, fail_on: str
) -> None:
    """Never a bare 500: the client is told to poll again, with Retry-After."""
    import asyncio

    from approvals import longpoll

    approval = a_request(cast)
    _, key = make_key(cast.acme, [Scope.APPROVALS_WRITE])
    layer = FailingLayer(fail_on)
    monkeypatch.setattr(longpoll, "get_channel_layer", lambda: layer)

    status, body = asyncio.run(longpoll.answer(authorization=f"Bearer {key}", pk=str(approval.pk), raw_wait="5"))
    assert status == 503, body
    assert body["error"]["type"] == "unavailable" and body["error"]["retry_after"] == 1
    assert layer.discarded == (1 if fail_on == "receive" else 0)


class FlakyLayer(FailingLayer):
    """The first receive times out at the socket (as redis-py does under load); the decision is
    made meanwhile, and its push arrives on the next receive."""

    def __init__(self, decide: Any) -> None:
        super().__init__(fail_on="")
        self.decide = decide
        self.receives = 0

    async def receive(self, channel: str) -> dict[str, Any]:
        from asgiref.sync import sync_to_async

        self.receives += 1
        if self.receives == 1:
            raise RedisTimeoutError("Timeout reading from socket")
        await sync_to_async(self.decide, thread_sensitive=False)()
        return {"type": "approval.decided"}


@pytest.mark.django_db(transaction=True)
def test_a_long_poll_rides_out_a_failed_receive_and_answers_the_decision(
    cast: Cast, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from approvals import longpoll

    approval = a_request(cast)
    _, key = make_key(cast.acme, [Scope.APPROVALS_WRITE])
    decider, _ = make_key(cast.acme, [Scope.APPROVALS_DECIDE])
    reviewer = Actor(api_key=decider)
    layer = FlakyLayer(lambda: services.approval_decide(approval=approval, actor=reviewer, decision="approve"))
    monkeypatch.setattr(longpoll, "get_channel_layer", lambda: layer)

    status, body = asyncio.run(longpoll.answer(authorization=f"Bearer {key}", pk=str(approval.pk), raw_wait="5"))

    assert (status, body["status"]) == (200, "approved"), body
    assert layer.receives == 2 and layer.discarded == 1
