"""A paused run's trace in real Chromium (issue 19): it says it waits for approval, with the pending
approval span under the run's root; choosing a span shows its prompt and completion and puts it in
the URL, and that URL opens the same span again (reloaded, or shared)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from agents.tests.test_runtime import build
from approvals.tests.support import paused, request_of
from budgets.models import Budget
from budgets.tests.factories import make_budget
from tenants.models import Membership, Role, User
from traces.models import Span

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_paused_runs_trace_shows_its_approval_and_keeps_the_selected_span_in_the_url(
    page_for: Callable[[], Any], live_asgi: str
) -> None:
    setup = build()
    make_budget(setup.tenant, scope=Budget.Scope.TENANT, limit=10_000_000)
    run = paused(setup)
    approval = request_of(run)
    spans = Span.objects.for_tenant(run.tenant).filter(trace_id=run.trace_id)
    llm = spans.get(kind="llm")
    settle = spans.get(kind="budget", name="budget settle")
    user = User.objects.create_user(f"rev-{setup.tenant.slug}@example.test", "demo-password-1", name="Rev")
    Membership.objects.create(tenant=setup.tenant, user=user, role=Role.REVIEWER)

    page = page_for()
    page.goto("/login/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill("demo-password-1")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/t/[a-z0-9-]+/$"))

    # The list: named after the agent, with what it was asked.
    page.goto(f"/t/{setup.tenant.slug}/traces/")
    row = page.locator(f"#trace-{run.trace_id}")
    assert row.get_by_test_id("trace-agent").inner_text() == "Support"
    assert row.get_by_test_id("input-preview").inner_text() == "Please refund order T-1001."
    row.get_by_role("link", name="Support", exact=True).first.click()
    page.wait_for_url(re.compile(rf"/traces/{run.trace_id}/$"))

    # Waiting for approval, with a link to the request; the approval is in the tree.
    waiting = page.get_by_test_id("trace-waiting")
    assert "Waiting for approval" in waiting.inner_text()
    assert waiting.get_by_test_id("trace-waiting-approval").get_attribute("href") == (
        f"/t/{setup.tenant.slug}/approvals/{approval.pk}/"
    )
    tree = page.locator("#span-tree")
    assert tree.locator('li[data-kind="approval"]').count() == 1
    assert tree.locator('li[data-kind="agent"]').count() == 1  # one root across the pause

    # Choosing the model call shows the prompt and the completion, and puts the span in the URL.
    tree.locator(f'a[data-span="{llm.span_id}"]').click()
    panel = page.locator(f"#span-panel #span-{llm.span_id}")
    panel.wait_for()
    assert "Please refund order T-1001." in panel.get_by_test_id("span-input").inner_text()
    assert "refund_order" in panel.get_by_test_id("span-output").inner_text()
    page.wait_for_url(re.compile(rf"\?span={llm.span_id}$"))
    assert tree.locator(f'a[data-span="{llm.span_id}"]').get_attribute("aria-current") == "true"

    # The approval span: pending, with the arguments the reviewer is asked about.
    tree.locator('li[data-kind="approval"] a[data-span]').click()
    page.locator('#span-panel article[id^="span-"] >> text=approval refund_order').wait_for()
    page.wait_for_url(re.compile(r"\?span=[0-9a-f]{16}$"))
    assert '"approval.decision": "pending"' in page.get_by_test_id("span-attributes").inner_text()
    assert tree.locator(f'a[data-span="{llm.span_id}"]').get_attribute("aria-current") is None

    # Back: the model call's URL again.
    page.go_back()
    page.wait_for_url(re.compile(rf"\?span={llm.span_id}$"))

    # Reloaded from the URL: the same span, its panel and its place in the tree.
    page.reload()
    assert page.locator(f"#span-panel #span-{llm.span_id}").is_visible()
    assert tree.locator(f'a[data-span="{llm.span_id}"]').get_attribute("aria-current") == "true"

    # A shared link to a span deeper down opens the tree to it.
    page.goto(f"/t/{setup.tenant.slug}/traces/{run.trace_id}/?span={settle.span_id}")
    assert page.locator(f"#span-panel #span-{settle.span_id}").is_visible()
    link = tree.locator(f'a[data-span="{settle.span_id}"]')
    assert link.is_visible() and link.get_attribute("aria-current") == "true"
    assert "budget.settled_micros" in page.get_by_test_id("span-attributes").inner_text()
