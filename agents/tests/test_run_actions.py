"""Honest statuses: a run counts the tool calls a reviewer rejected, that expired or that a
guardrail blocked; the runs list (API and console) filters by them and says
"Succeeded · 1 action rejected"."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from agents import runtime
from agents.models import Run
from agents.tests.test_runtime import ScriptedClient, answer
from approvals import services
from approvals.tests.support import paused, request_of, reviewer
from tenants.models import Membership, Role
from tenants.testing import make_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("agents.tasks.execute_run.delay", lambda *args: None)


def _rejected_run() -> Run:
    run = paused()
    services.approval_decide(approval=request_of(run), actor=reviewer(run.tenant), decision="reject", note="No.")
    run.refresh_from_db()
    return runtime.execute(run, client=ScriptedClient(answer("The refund was declined.")))


def test_a_run_that_succeeds_after_a_rejection_counts_it(no_tasks: None) -> None:
    run = _rejected_run()
    assert run.status == Run.Status.SUCCEEDED
    assert (run.actions_rejected, run.actions_expired, run.actions_blocked) == (1, 0, 0)
    assert run.actions_summary == "1 action rejected"


def test_an_expired_approval_is_counted_as_expired_not_rejected(no_tasks: None) -> None:
    run = paused()
    runtime.resume_after_approval(run=run, call_id="c1", approved=False, expired=True)
    run.refresh_from_db()
    run = runtime.execute(run, client=ScriptedClient(answer("Nobody decided in time.")))
    assert (run.actions_rejected, run.actions_expired) == (0, 1)
    assert run.actions_summary == "1 action expired"


def test_the_runs_list_filters_by_what_did_not_happen(no_tasks: None, client: Client) -> None:
    rejected = _rejected_run()
    tenant = rejected.tenant
    agent = rejected.agent
    plain = runtime.execute(
        Run.objects.create(tenant=tenant, agent=agent, agent_version=rejected.agent_version, input="hi"),
        client=ScriptedClient(answer("Hello.")),
    )
    _, key = make_key(tenant, "read")
    auth: dict[str, Any] = {"HTTP_AUTHORIZATION": f"Bearer {key}"}

    def listed(query: str) -> list[str]:
        response = client.get(reverse("run-list") + query, **auth)
        assert response.status_code == 200, response.content
        return [r["id"] for r in response.json()["results"]]

    assert set(listed("")) == {str(rejected.pk), str(plain.pk)}
    assert listed("?actions=rejected") == [str(rejected.pk)]
    assert listed("?actions=any") == [str(rejected.pk)]
    assert listed("?actions=blocked") == []
    body = client.get(reverse("run-list") + "?actions=rejected", **auth).json()["results"][0]
    assert (body["status"], body["actions_rejected"]) == ("succeeded", 1)

    user = reviewer(tenant, name="vic", role=Role.VIEWER).user
    assert user is not None and Membership.objects.filter(user=user).exists()
    client.force_login(user)
    html = client.get(reverse("console:runs", args=[tenant.slug]) + "?actions=rejected").content.decode()
    assert html.count('data-testid="run-status"') == 1
    assert 'data-testid="run-actions">· 1 action rejected<' in html


def test_the_approval_page_and_the_run_page_number_the_waiting_call_alike(client: Client) -> None:
    run = paused()
    approval = request_of(run)
    user = reviewer(run.tenant, name="rex").user
    assert user is not None
    client.force_login(user)

    approval_html = client.get(reverse("console:approval", args=[run.tenant.slug, approval.pk])).content.decode()
    run_html = client.get(reverse("console:run", args=[run.tenant.slug, run.pk])).content.decode()

    step = approval.step_index
    assert step is not None and step == run.step_count  # the number the tool call will run as
    assert f'#step-{step}" data-testid="approval-step">step {step}<' in approval_html
    pending = run_html.split(f'id="step-{step}"', 1)[1].split("</article>", 1)[0]
    assert 'data-testid="pending-step"' in pending and f"{step}. Tool <code>refund_order</code>" in pending
    assert "call <code>c1</code>" in pending


def test_a_run_cancelled_after_a_rejection_still_counts_it(no_tasks: None) -> None:
    from agents.services import run_cancel

    run = paused()
    services.approval_decide(approval=request_of(run), actor=reviewer(run.tenant), decision="reject", note="No.")
    run.refresh_from_db()
    run = run_cancel(actor=reviewer(run.tenant, name="cy"), run=run)
    assert run.status == Run.Status.CANCELLED and run.actions_rejected == 1
    run.refresh_from_db()
    assert run.actions_summary == "1 action rejected"
