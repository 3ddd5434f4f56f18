"""Budget alerts delivered by signed webhook: once, retried while the receiver fails, never to an
internal address."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from agents.tests.test_tools import Receiver
from budgets import services
from budgets.errors import BudgetFieldError
from budgets.models import BudgetAlert
from budgets.tasks import deliver_budget_alert_webhook
from budgets.tests.factories import SYSTEM, make_budget
from tenants.models import AuditEvent
from tenants.testing import Cast
from tenants.webhooks import WebhookFailedError, sign

pytestmark = pytest.mark.django_db


SECRET = "s3cret"


def _cross(cast: Cast, url: str, secret: str | None = SECRET) -> BudgetAlert:
    make_budget(cast.acme, name="Hooked", limit=2_500, thresholds=[50], webhook_url=url, webhook_secret=secret)
    services.budget_reserve(tenant=cast.acme, model="default", input_tokens=1000, max_output_tokens=1000)
    return BudgetAlert.objects.for_tenant(cast.acme).select_related("budget", "tenant").get()


def test_an_alert_is_posted_once_signed_with_the_budgets_secret(
    cast: Cast,
    receiver: Receiver,
    allow_loopback: None,
    django_capture_on_commit_callbacks: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    queued: list[tuple[str, ...]] = []
    monkeypatch.setattr(deliver_budget_alert_webhook, "delay", lambda *args: queued.append(args))
    with django_capture_on_commit_callbacks(execute=True):
        alert = _cross(cast, receiver.url)
    assert queued == [(str(cast.acme.pk), str(alert.pk))]  # queued after commit, by ids
    deliver_budget_alert_webhook(str(cast.acme.pk), str(alert.pk))
    deliver_budget_alert_webhook(str(cast.acme.pk), str(alert.pk))  # a redelivered task sends nothing more
    assert len(receiver.received) == 1
    (got,) = receiver.received
    assert got.headers["x-aoc-event"] == "budget.alert"
    assert got.headers["x-aoc-signature"] == sign("s3cret", got.headers["x-aoc-timestamp"], got.body)
    payload = json.loads(got.body)
    assert payload | {"id": "", "created_at": "", "period_start": ""} == {
        "type": "budget.alert",
        "id": "",
        "tenant": "acme",
        "budget": {"id": str(alert.budget_id), "name": "Hooked", "scope": "tenant", "unit": "usd_micros"},
        "threshold": 50,
        "scope_value": "",
        "used": 2_000,
        "limit": 2_500,
        "period_start": "",
        "created_at": "",
        "blocks": True,
    }
    alert.refresh_from_db()
    assert alert.webhook_delivered_at is not None and alert.webhook_attempts == 1 and alert.webhook_error == ""


def test_a_failing_receiver_is_retried_and_each_attempt_is_recorded(
    cast: Cast, receiver: Receiver, allow_loopback: None
) -> None:
    alert = _cross(cast, receiver.url, secret=None)
    receiver.status = 503
    with pytest.raises(WebhookFailedError):  # a worker retries it with backoff (autoretry_for)
        deliver_budget_alert_webhook(str(cast.acme.pk), str(alert.pk))
    alert.refresh_from_db()
    assert (alert.webhook_attempts, alert.webhook_delivered_at) == (1, None)
    assert "HTTP 503" in alert.webhook_error
    receiver.status = 200
    deliver_budget_alert_webhook(str(cast.acme.pk), str(alert.pk))
    alert.refresh_from_db()
    assert alert.webhook_attempts == 2 and alert.webhook_delivered_at is not None and alert.webhook_error == ""
    assert "x-aoc-signature" not in receiver.received[-1].headers  # no secret: unsigned
    retried_on = getattr(deliver_budget_alert_webhook, "autoretry_for", ())
    assert retried_on == (WebhookFailedError, httpx.HTTPError)


def test_an_internal_address_is_refused_and_not_retried(cast: Cast, receiver: Receiver, settings: Any) -> None:
    settings.WEBHOOK_ALLOWED_HOSTS = []
    with pytest.raises(BudgetFieldError) as refused:
        make_budget(cast.acme, limit=5, webhook_url=receiver.url)  # plain http, not allow-listed
    assert refused.value.field == "webhook_url"
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    alert = _cross(cast, receiver.url)
    settings.WEBHOOK_ALLOWED_HOSTS = []
    deliver_budget_alert_webhook(str(cast.acme.pk), str(alert.pk))  # returns: retrying cannot help
    alert.refresh_from_db()
    assert receiver.received == [] and alert.webhook_delivered_at is None
    assert alert.webhook_error.startswith("refused:")


def test_the_secret_is_write_only_and_its_change_is_audited_without_the_value(cast: Cast) -> None:
    budget = make_budget(cast.acme, limit=5, webhook_url="https://hooks.example.com/aoc", webhook_secret="one")
    assert budget.webhook_secret_encrypted and "one" not in budget.webhook_secret_encrypted
    budget = services.budget_update(actor=SYSTEM, budget=budget, webhook_secret="two")
    event = AuditEvent.objects.for_tenant(cast.acme).filter(action="budget.update").latest("created_at")
    assert event.after is not None and event.after["webhook_secret"] == "changed"
    assert "two" not in json.dumps(event.after)
    budget = services.budget_update(actor=SYSTEM, budget=budget, name="renamed")  # None keeps the secret
    assert budget.webhook_secret_encrypted
    budget = services.budget_update(actor=SYSTEM, budget=budget, webhook_secret="")
    assert budget.webhook_secret_encrypted == ""
    with pytest.raises(BudgetFieldError) as bad:
        services.budget_update(actor=SYSTEM, budget=budget, webhook_url="ftp://example.com/x")
    assert bad.value.field == "webhook_url"
