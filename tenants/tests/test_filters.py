"""Every list's filters, API and console alike (tenants.filters): an unknown name or a bad value is
refused naming it (400), never answered with the whole list; the OpenAPI schema lists them; eval
rehearsals are left out of production lists unless asked for."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from agents.models import Agent, Run
from budgets.models import Budget
from budgets.tests.factories import make_budget
from guardrails.models import GuardrailEvent
from tenants.testing import ApiClient, Cast, assert_error
from traces.tests.factories import make_trace

pytestmark = pytest.mark.django_db

LISTS = [
    "trace-list",
    "guardrail-event-list",
    "guardrail-policy-list",
    "budget-list",
    "run-list",
    "approval-list",
    "approval-rule-list",
    "autonomy-grant-list",
    "agent-list",
    "tool-list",
]


def _agent(cast: Cast, name: str = "Support agent") -> Agent:
    return Agent.objects.for_tenant(cast.acme).select_related("current_version").get(name=name)


def _run(cast: Cast, *, rehearsal: bool = False, **fields: Any) -> Run:
    agent = _agent(cast)
    assert agent.current_version is not None
    metadata = {"eval_run": "e", "eval_result": "r"} if rehearsal else {}
    return Run.objects.create(
        tenant=cast.acme, agent=agent, agent_version=agent.current_version, input="x", metadata=metadata, **fields
    )


@pytest.mark.parametrize("name", LISTS)
def test_every_list_refuses_an_unknown_filter_naming_it(acme_admin_api: ApiClient, name: str) -> None:
    body = assert_error(acme_admin_api.get(reverse(name) + "?colour=red"), 400, "validation_error")
    assert body["message"].startswith("colour: is not a filter of this list")
    assert "colour" in body["fields"]


@pytest.mark.parametrize("name", LISTS)
def test_every_list_still_pages_with_its_cursor_and_page_size(acme_admin_api: ApiClient, name: str) -> None:
    assert acme_admin_api.get(reverse(name) + "?page_size=1").status_code == 200


def test_a_bad_value_is_refused_naming_the_filter(acme_admin_api: ApiClient) -> None:
    body = assert_error(acme_admin_api.get(reverse("trace-list") + "?since=yesterday"), 400)
    assert body["message"].startswith("since: is not an ISO 8601 time")
    body = assert_error(acme_admin_api.get(reverse("run-list") + "?actions=forgotten"), 400)
    assert "actions" in body["fields"]
    body = assert_error(acme_admin_api.get(reverse("guardrail-event-list") + "?agent=nobody"), 400)
    assert body["message"] == "agent: no agent has the id or name 'nobody'."
    assert_error(acme_admin_api.get(reverse("budget-list") + "?enabled=perhaps"), 400)


def test_guardrail_events_filter_by_agent(acme_admin_api: ApiClient, cast: Cast) -> None:
    agent = _agent(cast)
    GuardrailEvent.objects.create(tenant=cast.acme, stage="input", action="block", reason="mine", agent=agent)
    GuardrailEvent.objects.create(tenant=cast.acme, stage="input", action="block", reason="no agent")
    results = acme_admin_api.get(reverse("guardrail-event-list") + f"?agent={agent.pk}").json()["results"]
    assert [e["reason"] for e in results] == ["mine"]


def test_budgets_filter_by_agent(acme_admin_api: ApiClient, cast: Cast) -> None:
    agent = _agent(cast)
    mine = make_budget(cast.acme, limit=1_000_000, scope=Budget.Scope.AGENT, agent=agent)
    make_budget(cast.acme, limit=1_000_000)
    results = acme_admin_api.get(reverse("budget-list") + f"?agent={agent.name}").json()["results"]
    assert [b["id"] for b in results] == [str(mine.pk)]


def test_the_schema_lists_the_filters(client: Client) -> None:
    schema = client.get("/api/v1/schema/?format=json").json()
    params = {p["name"] for p in schema["paths"]["/api/v1/guardrails/events/"]["get"]["parameters"]}
    assert {"action", "stage", "agent", "run", "rehearsals", "cursor"} <= params
    params = {p["name"] for p in schema["paths"]["/api/v1/runs/"]["get"]["parameters"]}
    assert {"agent", "status", "actions", "rehearsals", "end_user_id", "session_id"} <= params
    params = {p["name"] for p in schema["paths"]["/api/v1/traces/"]["get"]["parameters"]}
    assert {"since", "until", "q", "min_cost_usd", "rehearsals"} <= params


# --- Rehearsals -------------------------------------------------------------------------------------


def test_rehearsals_are_left_out_of_production_lists_unless_asked_for(acme_admin_api: ApiClient, cast: Cast) -> None:
    real, rehearsal = _run(cast), _run(cast, rehearsal=True)
    for run in (real, rehearsal):
        make_trace(cast.acme, run_id=str(run.pk))
        GuardrailEvent.objects.create(tenant=cast.acme, stage="input", action="flag", reason=str(run.pk), run=run)

    def ids(name: str, query: str = "", key: str = "id") -> set[str]:
        return {str(r[key]) for r in acme_admin_api.get(reverse(name) + query).json()["results"]}

    assert ids("run-list") == {str(real.pk)}
    assert ids("run-list", "?rehearsals=include") == {str(real.pk), str(rehearsal.pk)}
    assert ids("run-list", "?rehearsals=only") == {str(rehearsal.pk)}
    assert ids("guardrail-event-list", key="reason") == {str(real.pk)}
    assert ids("guardrail-event-list", "?rehearsals=only", key="reason") == {str(rehearsal.pk)}
    assert ids("trace-list", key="run_id") == {str(real.pk)}
    assert ids("trace-list", "?rehearsals=include", key="run_id") == {str(real.pk), str(rehearsal.pk)}
    listed = acme_admin_api.get(reverse("run-list") + "?rehearsals=only").json()["results"]
    assert listed[0]["is_rehearsal"] is True


def test_the_console_lists_hide_rehearsals_and_badge_them_when_shown(alice_client: Client, cast: Cast) -> None:
    _run(cast), _run(cast, rehearsal=True)
    url = reverse("console:runs", args=["acme"])
    assert alice_client.get(url).content.decode().count('data-testid="rehearsal"') == 0
    html = alice_client.get(url + "?rehearsals=include").content.decode()
    assert html.count('data-testid="run-status"') == 2 and html.count('data-testid="rehearsal"') == 1


# --- The console ------------------------------------------------------------------------------------


def test_a_bad_console_filter_is_shown_next_to_its_field_and_lists_nothing(alice_client: Client, cast: Cast) -> None:
    make_trace(cast.acme, name="visible flow")
    url = reverse("console:traces", args=["acme"])
    assert "visible flow" in alice_client.get(url).content.decode()
    response = alice_client.get(url + "?since=yesterday")
    html = response.content.decode()
    assert response.status_code == 400
    assert "visible flow" not in html
    error = html.split('id="filter-error-since"', 1)[1].split("</small>", 1)[0]
    assert "is not an ISO 8601 time" in error


def test_an_unknown_console_filter_is_named(alice_client: Client) -> None:
    for name in ("console:traces", "console:runs", "console:guardrail_events", "console:approvals_history"):
        response = alice_client.get(reverse(name, args=["acme"]) + "?colour=red")
        assert response.status_code == 400, name
        assert "&#x27;colour&#x27; is not a filter of this list" in response.content.decode(), name


def test_the_budgets_ledger_refuses_an_unknown_filter(alice_client: Client) -> None:
    response = alice_client.get(reverse("console:budget_ledger", args=["acme"]) + "?colour=red")
    assert response.status_code == 400
    assert "&#x27;colour&#x27; is not a filter of this list" in response.content.decode()


def test_the_agents_page_shows_archived_agents_on_request_and_refuses_a_bad_value(
    alice_client: Client, cast: Cast
) -> None:
    agent = _agent(cast)
    agent.archived = True
    agent.save(update_fields=["archived"])
    url = reverse("console:agents", args=["acme"])
    assert "Support agent" not in alice_client.get(url).content.decode()
    assert "Support agent" in alice_client.get(url + "?archived=1").content.decode()
    response = alice_client.get(url + "?archived=perhaps")
    assert response.status_code == 400 and "Support agent" not in response.content.decode()
