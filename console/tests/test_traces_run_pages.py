"""A run's trace in the console (issue 19): named after its agent with an input preview in the list,
"waiting for approval" with a link while the run is paused, and a selected span in the URL
(`?span=`): its panel shown and the tree opened down to it; a bad or unknown span refused."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from agents import hooks, runtime
from agents.models import Run
from agents.tests.test_runtime import ScriptedClient, Setup, answer, build
from approvals import services as approvals
from approvals.tests.support import paused, request_of, reviewer
from budgets.models import Budget
from budgets.tests.factories import make_budget
from tenants.models import Membership, Role, User
from traces.models import Span
from traces.tests.factories import make_trace

pytestmark = pytest.mark.django_db


def _text(response: Any) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


@pytest.fixture
def setup(monkeypatch: pytest.MonkeyPatch) -> Setup:
    monkeypatch.setattr("agents.tasks.execute_run.delay", lambda *args: None)
    made = build()
    make_budget(made.tenant, scope=Budget.Scope.TENANT, limit=10_000_000)
    return made


def viewer(client: Client, setup: Setup) -> None:
    user = User.objects.create_user(f"viv-{setup.tenant.slug}@example.test", "pw-123456789", name="Viv")
    Membership.objects.create(tenant=setup.tenant, user=user, role=Role.VIEWER)
    client.force_login(user)


def span_of(run: Run, **filters: Any) -> Span:
    return Span.objects.for_tenant(run.tenant).get(trace_id=run.trace_id, **filters)


def test_a_paused_runs_trace_says_it_waits_for_approval_with_a_link(
    client: Client, setup: Setup, django_capture_on_commit_callbacks: Any
) -> None:
    run = paused(setup)
    viewer(client, setup)
    url = reverse("console:trace", args=[setup.tenant.slug, run.trace_id])
    page = _text(client.get(url))
    approval = request_of(run)
    waiting = span_of(run, kind="approval")
    assert 'data-testid="trace-waiting"' in page and "Waiting for approval" in page
    assert reverse("console:approval", args=[setup.tenant.slug, approval.pk]) in page
    assert f"{url}?span={waiting.span_id}" in page
    # The tree shows the approval under the run's root, named after the agent.
    assert "<h1>Support</h1>" in page and "approval refund_order" in page
    assert 'data-testid="trace-input-preview">Please refund order T-1001.<' in page

    listed = _text(client.get(reverse("console:traces", args=[setup.tenant.slug])))
    assert 'data-testid="trace-row-waiting"' in listed and "waiting for approval" in listed

    with django_capture_on_commit_callbacks(execute=True):
        approvals.approval_decide(approval=approval, actor=reviewer(setup.tenant), decision="approve", note="ok")
    run.refresh_from_db()
    runtime.execute(run, client=ScriptedClient(answer("Refunded.")))
    page = _text(client.get(url))
    assert 'data-testid="trace-waiting"' not in page and page.count('data-kind="agent"') == 1
    listed = _text(client.get(reverse("console:traces", args=[setup.tenant.slug])))
    assert 'data-testid="trace-row-waiting"' not in listed


def test_a_selected_span_is_in_the_url_and_opens_the_tree_down_to_it(client: Client, setup: Setup) -> None:
    run = runtime.execute(setup.start("Hi there"), client=ScriptedClient(answer("Hello!")))
    viewer(client, setup)
    url = reverse("console:trace", args=[setup.tenant.slug, run.trace_id])
    llm = span_of(run, kind="llm")
    settle = span_of(run, kind="budget", name="budget settle")

    plain = _text(client.get(url))
    # The tree's links put the span in the URL (the href, and the URL htmx pushes).
    assert f'hx-push-url="{url}?span={llm.span_id}"' in plain and f'href="{url}?span={llm.span_id}"' in plain
    assert "budget settle" not in plain  # below the llm span: loaded when opened

    page = _text(client.get(url, {"span": settle.span_id}))
    assert f'id="span-{settle.span_id}"' in page and "budget.settled_micros" in page
    assert "budget settle" in page and 'aria-current="true"' in page  # the llm span opened to show it

    page = _text(client.get(url, {"span": llm.span_id.upper()}))
    assert f'id="span-{llm.span_id}"' in page
    assert "Hi there" in page and "Hello!" in page  # the prompt and the completion


def test_a_bad_or_unknown_span_in_the_url_is_refused_in_the_panel(client: Client, setup: Setup) -> None:
    run = runtime.execute(setup.start("Hi"), client=ScriptedClient(answer("Hello")))
    viewer(client, setup)
    url = reverse("console:trace", args=[setup.tenant.slug, run.trace_id])
    bad = client.get(url, {"span": "<script>"})
    assert bad.status_code == 400 and "16 hex digits" in _text(bad) and "<script>" not in bad.content.decode()
    unknown = client.get(url, {"span": "0123456789abcdef"})
    assert unknown.status_code == 404 and "This trace has no span 0123456789abcdef." in _text(unknown)
    # Another trace's span is not this trace's.
    other = runtime.execute(setup.start("Hi"), client=ScriptedClient(answer("Hello")))
    assert client.get(url, {"span": hooks.run_span_id(other)}).status_code == 404


def test_the_list_shows_the_agent_and_what_each_trace_was_asked(client: Client, setup: Setup) -> None:
    run = runtime.execute(setup.start("Where is order T-1001, please?"), client=ScriptedClient(answer("Shipped.")))
    viewer(client, setup)
    url = reverse("console:traces", args=[setup.tenant.slug])
    page = _text(client.get(url))
    row = page[page.index(f'id="trace-{run.trace_id}"') :]
    assert 'data-testid="input-preview">Where is order T-1001, please?<' in row
    assert re.search(rf"\?agent={run.agent_id}\" title=\"This agent[^\"]*traces\">Support</a>", row), row[:1500]
    # Still a fixed number of queries, however many traces are listed.
    with CaptureQueriesContext(connection) as few:
        client.get(url)
    for _ in range(4):
        make_trace(setup.tenant)
    with CaptureQueriesContext(connection) as many:
        client.get(url)
    assert len(many) == len(few)
