"""Evals pages: contracts for every page, and what each page does (suites, the case editor with
validated assertions, a run with its comparison, the review queue, the gate on a pin change)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from agents import runtime
from agents.models import Run
from catalog import services as catalog_services
from catalog.models import LanguageModel, PinChange
from evals import services
from evals.models import Case, EvalRun, Review, Suite
from evals.tests.conftest import candidate_model, run_cases, seeded_run
from tenants.audit import Actor
from tenants.models import AuditEvent, Role
from tenants.testing import Cast, ConsolePageContract

SYSTEM = Actor.system_actor("tests")


def _suite(cast: Cast) -> Suite:
    return Suite.objects.for_tenant(cast.acme).select_related("tenant", "agent").get(name__startswith="Support agent")


def _case(cast: Cast) -> Case:
    return Case.objects.for_tenant(cast.acme).filter(suite=_suite(cast)).order_by("created_at").first()  # type: ignore[return-value]


def _run(cast: Cast) -> EvalRun:
    return seeded_run(cast)


def _production_run(cast: Cast) -> Run:
    suite = _suite(cast)
    version = suite.agent.current_version
    assert version is not None
    return runtime.execute(
        Run.objects.create(tenant=cast.acme, agent=suite.agent, agent_version=version, input="Where is A-1001?")
    )


def _change(cast: Cast) -> PinChange:
    change = PinChange.objects.for_tenant(cast.acme).filter(alias="classifier", status="pending").first()
    return change or catalog_services.pin_change_request(
        actor=Actor(user=cast.alice), tenant=cast.acme, alias="classifier", to_model=candidate_model(cast), reason="x"
    )


def _text(response: Any) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def _case_form(**overrides: str) -> dict[str, str]:
    return {
        "form": "case",
        "name": "Greets",
        "input": "Hello!",
        "approval": "approve",
        "assertions": '[{"type": "tool_not_called", "name": "lookup_order"}]',
        "tool_results": "",
        "context": "",
        **overrides,
    }


# --- Contracts ---------------------------------------------------------------------------------


class TestEvalsPage(ConsolePageContract):
    url_name = "console:evals"

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug])


class TestEvalOnline(ConsolePageContract):
    url_name = "console:eval_online"
    role = Role.ADMIN
    method = "post"

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug])

    def data(self, cast: Cast) -> dict[str, Any]:
        return {
            "agent": str(_suite(cast).agent_id),
            "sample_rate": "0.5",
            "pass_threshold": "0.5",
            "alert_drop": "0.2",
            "window_hours": "24",
            "enabled": "on",
        }


class TestEvalReviews(ConsolePageContract):
    url_name = "console:eval_reviews"
    role = Role.REVIEWER

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug])


class TestEvalSuite(ConsolePageContract):
    url_name = "console:eval_suite"
    object_scoped = True

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug, _suite(cast).pk])


class TestEvalSuiteRun(ConsolePageContract):
    url_name = "console:eval_suite_run"
    role = Role.REVIEWER
    method = "post"
    object_scoped = True

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug, _suite(cast).pk])


class TestEvalSuiteImport(ConsolePageContract):
    url_name = "console:eval_suite_import"
    role = Role.ADMIN
    method = "post"
    object_scoped = True

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug, _suite(cast).pk])

    def data(self, cast: Cast) -> dict[str, Any]:
        return {"jsonl": '{"input": "Hi"}'}


class TestEvalCase(ConsolePageContract):
    url_name = "console:eval_case"
    object_scoped = True

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug, _case(cast).pk])


class TestEvalCaseDelete(ConsolePageContract):
    url_name = "console:eval_case_delete"
    role = Role.ADMIN
    method = "post"
    object_scoped = True

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug, _case(cast).pk])


class TestEvalRun(ConsolePageContract):
    url_name = "console:eval_run"
    object_scoped = True

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug, _run(cast).pk])


class TestEvalRunCancel(ConsolePageContract):
    url_name = "console:eval_run_cancel"
    role = Role.REVIEWER
    method = "post"
    object_scoped = True

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug, _run(cast).pk])


class TestEvalRunAccept(ConsolePageContract):
    url_name = "console:eval_run_accept"
    role = Role.ADMIN
    method = "post"
    object_scoped = True

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug, _run(cast).pk])


class TestEvalCaseFromRun(ConsolePageContract):
    url_name = "console:eval_case_from_run"
    role = Role.ADMIN
    method = "post"
    object_scoped = True

    def url(self, cast: Cast, slug: str = "acme") -> str:
        run = Run.objects.for_tenant(cast.acme).filter(input="From production").first()
        if run is None:
            suite = _suite(cast)
            assert suite.agent.current_version is not None
            run = Run.objects.create(
                tenant=cast.acme, agent=suite.agent, agent_version=suite.agent.current_version, input="From production"
            )
        return reverse(self.url_name, args=[slug, run.pk])

    def data(self, cast: Cast) -> dict[str, Any]:
        return {"suite": str(_suite(cast).pk)}


class TestEvalCaseFromTrace(ConsolePageContract):
    url_name = "console:eval_case_from_trace"
    role = Role.ADMIN
    method = "post"

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug])

    def data(self, cast: Cast) -> dict[str, Any]:
        from traces.models import Trace
        from traces.tests.factories import make_trace

        trace = Trace.objects.for_tenant(cast.acme).first() or make_trace(cast.acme, input="Where is A-1001?")
        return {"trace_id": trace.trace_id, "suite": str(_suite(cast).pk)}


class TestEvalGateOverride(ConsolePageContract):
    url_name = "console:eval_gate_override"
    role = Role.ADMIN
    method = "post"
    object_scoped = True

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug, _change(cast).pk])

    def data(self, cast: Cast) -> dict[str, Any]:
        return {"reason": "Low risk, checked by hand."}


# --- What the pages do ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_evals_page_lists_the_demo_suite_and_admins_create_one(client: Client, cast: Cast) -> None:
    client.force_login(cast.vera)
    page = _text(client.get(reverse("console:evals", args=["acme"])))
    assert "Support agent: the ten must-dos" in page and "New suite" not in page
    client.force_login(cast.alice)
    url = reverse("console:evals", args=["acme"])
    bad = client.post(url, {"name": "", "agent": str(_suite(cast).agent_id), "tolerance": "0", "run_budget_usd": "1"})
    assert bad.status_code == 400
    made = client.post(
        url, {"name": "Smoke", "agent": str(_suite(cast).agent_id), "tolerance": "0.1", "run_budget_usd": "0.5"}
    )
    suite = Suite.objects.get(tenant=cast.acme, name="Smoke")
    assert made.status_code == 302 and suite.run_budget_micros == 500_000 and suite.tolerance == 0.1


@pytest.mark.django_db
def test_an_admin_sets_a_suites_sandbox_fixtures_and_a_bad_one_is_named_beside_the_field(
    client: Client, cast: Cast
) -> None:
    suite = _suite(cast)
    client.force_login(cast.alice)
    url = reverse("console:eval_suite", args=["acme", suite.pk])
    settings = {
        "form": "settings",
        "name": suite.name,
        "agent": str(suite.agent_id),
        "tolerance": "0.1",
        "run_budget_usd": "0.2",
        "gates_pin_changes": "on",
    }
    bad = client.post(url, {**settings, "fixtures": '{"orders": [{"order_number": "nope"}]}'})
    assert bad.status_code == 400 and "orders[0].order_number must look like A-1001" in _text(bad)
    orders = '{"orders": [{"order_number": "A-1002", "customer_email": "k@example.com", "item": "Espresso machine", '
    orders += '"amount_cents": 34950, "status": "refunded"}]}'
    assert client.post(url, {**settings, "fixtures": orders}).status_code == 302
    suite.refresh_from_db()
    assert suite.fixtures["orders"][0]["status"] == "refunded"
    assert "Espresso machine" in _text(client.get(url))  # shown back in the settings form
    # Emptied: the demo orders again.
    assert client.post(url, {**settings, "fixtures": ""}).status_code == 302
    suite.refresh_from_db()
    assert suite.fixtures == {}


@pytest.mark.django_db
def test_the_case_editor_names_a_bad_assertion_and_saves_a_good_case(client: Client, cast: Cast) -> None:
    client.force_login(cast.alice)
    url = reverse("console:eval_suite", args=["acme", _suite(cast).pk])
    not_json = client.post(url, _case_form(assertions="[{"))
    assert not_json.status_code == 400 and "Not JSON" in _text(not_json)
    bad = client.post(url, _case_form(assertions='[{"type": "regex", "pattern": "("}]'))
    assert bad.status_code == 400
    assert "assertion 1 (regex): the pattern does not compile" in _text(bad)
    assert client.post(url, _case_form()).status_code == 302
    case = Case.objects.get(tenant=cast.acme, name="Greets")
    assert case.assertions == [{"type": "tool_not_called", "name": "lookup_order"}]
    # The editor shows it back as JSON, and saves changes.
    edit = reverse("console:eval_case", args=["acme", case.pk])
    assert "tool_not_called" in _text(client.get(edit))
    saved = client.post(edit, {**_case_form(critical="on", tool_results='{"lookup_order": {"error": "down"}}')})
    case.refresh_from_db()
    assert saved.status_code == 302 and case.critical and case.tool_results == {"lookup_order": {"error": "down"}}
    client.force_login(cast.vera)
    assert client.post(edit, _case_form()).status_code == 403


@pytest.mark.django_db
def test_the_run_page_shows_each_case_escaped_and_the_comparison(client: Client, cast: Cast) -> None:
    suite = _suite(cast)
    run_cases(services.eval_run_start(actor=SYSTEM, suite=suite, dispatch=False))
    case = Case.objects.get(suite=suite, name="Answers a greeting without tools")
    services.case_update(actor=SYSTEM, case=case, input="<script>alert(1)</script> Hello!")
    second = run_cases(services.eval_run_start(actor=SYSTEM, suite=suite, dispatch=False))
    client.force_login(cast.vera)
    page = client.get(reverse("console:eval_run", args=["acme", second.pk]))
    text = _text(page)
    assert page.status_code == 200
    assert 'data-status="succeeded"' in text and "10/10" in text
    assert "Against the baseline" in text and 'data-testid="regressions">0</strong> regressions' in text
    assert '<span data-testid="pass-rate-delta">+0 points</span>' in text
    assert "<script>alert(1)</script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert text.count('class="eval-result') == 10
    assert "Accept as the baseline" not in text  # a viewer
    client.force_login(cast.alice)
    assert "Accept as the baseline" in _text(client.get(reverse("console:eval_run", args=["acme", second.pk])))
    assert client.post(reverse("console:eval_run_accept", args=["acme", second.pk])).status_code == 302
    suite.refresh_from_db()
    assert suite.baseline_id == second.pk


@pytest.mark.django_db
def test_starting_a_run_from_the_console_on_a_chosen_model(client: Client, cast: Cast) -> None:
    client.force_login(cast.bob)
    model = candidate_model(cast)
    response = client.post(reverse("console:eval_suite_run", args=["acme", _suite(cast).pk]), {"model": str(model.pk)})
    eval_run = EvalRun.objects.for_tenant(cast.acme).get(trigger="console")
    assert response.status_code == 302 and response["Location"].endswith(f"/evals/runs/{eval_run.pk}/")
    assert eval_run.model == model and eval_run.candidate
    other = LanguageModel.objects.for_tenant(cast.globex).first()
    assert other is not None
    assert (
        client.post(
            reverse("console:eval_suite_run", args=["acme", _suite(cast).pk]), {"model": str(other.pk)}
        ).status_code
        == 404
    )


@pytest.mark.django_db
def test_reviewers_score_outputs_and_an_admin_turns_a_run_into_a_case(client: Client, cast: Cast) -> None:
    production = _production_run(cast)
    client.force_login(cast.bob)
    queue = _text(client.get(reverse("console:eval_reviews", args=["acme"])))
    assert f'data-run="{production.pk}"' in queue and "Make it a case" not in queue
    url = reverse("console:eval_reviews", args=["acme"])
    assert client.post(url, {"run": str(production.pk), "score": "4", "comment": "Clear."}).status_code == 302
    review = Review.objects.get(tenant=cast.acme, run=production)
    assert (review.score, review.comment, review.reviewer_label) == (4, "Clear.", "bob@acme.test")
    assert f'data-run="{production.pk}"' not in _text(client.get(url))
    client.force_login(cast.alice)
    other = _production_run(cast)
    response = client.post(
        reverse("console:eval_case_from_run", args=["acme", other.pk]), {"suite": str(_suite(cast).pk)}
    )
    case = Case.objects.get(tenant=cast.acme, source_run=other)
    assert response.status_code == 302 and response["Location"].endswith(f"/evals/cases/{case.pk}/")


@pytest.mark.django_db
def test_the_pin_change_page_shows_the_gate_and_an_admin_overrides_it(client: Client, cast: Cast) -> None:
    suite = _suite(cast)
    run_cases(services.eval_run_start(actor=SYSTEM, suite=suite, dispatch=False))  # the baseline
    model = candidate_model(cast)
    change = catalog_services.pin_change_request(
        actor=Actor(user=cast.alice), tenant=cast.acme, alias="default", to_model=model, reason="Newer"
    )
    client.force_login(cast.alice)
    page = _text(client.get(reverse("console:pin_change", args=["acme", change.pk])))
    assert "Eval gate" in page and "Refuses approval" in page and "still running on the candidate" in page
    assert 'id="gate-override-form"' in page
    response = client.post(
        reverse("console:eval_gate_override", args=["acme", change.pk]), {"reason": "Vendor confirmed the fix."}
    )
    assert response.status_code == 302
    assert AuditEvent.objects.filter(tenant=cast.acme, action="eval_gate.override").exists()
    page = _text(client.get(reverse("console:pin_change", args=["acme", change.pk])))
    assert "Overridden</strong> by alice@acme.test (" in page and "): Vendor confirmed the fix." in page
    assert (
        client.post(reverse("console:pin_change_decide", args=["acme", change.pk]), {"approve": "1"}).status_code == 302
    )
    change.refresh_from_db()
    assert change.status == "applied"


@pytest.mark.django_db
def test_the_quality_chart_data_is_on_the_page(client: Client, cast: Cast) -> None:
    from evals import online

    config = online.online_eval_configure(
        actor=SYSTEM, tenant=cast.acme, agent=_suite(cast).agent, sample_rate=1.0, window_hours=1
    )
    _production_run(cast)
    from evals.models import OnlineEval

    OnlineEval.objects.filter(pk=config.pk).update(scanned_until=None)
    config.refresh_from_db()
    assert online.score_config(config) == 1
    client.force_login(cast.vera)
    response = client.get(reverse("console:evals", args=["acme"]))
    data = json.loads(re.search(r'id="quality-data"[^>]*>(.*?)</script>', response.content.decode()).group(1))  # type: ignore[union-attr]
    assert data[0]["agent"] == "Support agent" and data[0]["pass_rate"] == 1.0


@pytest.mark.django_db
def test_a_quality_alert_and_an_eval_run_change_render_live(cast: Cast) -> None:
    from console import live

    membership = cast.membership(cast.vera)
    banner = live.render(
        None,
        cast.acme,
        membership,
        {"type": "evals.quality_alert", "alert_id": "a1", "agent_id": "x", "message": "Pass rate <b>fell</b>."},
    )
    assert 'data-testid="quality-alert-banner"' in banner and "Pass rate &lt;b&gt;fell&lt;/b&gt;." in banner
    run = _run(cast)
    page = live.connect(cast.acme, membership, {"page": "eval_run", "eval_run": str(run.pk)})
    assert page is not None
    event = {"type": "eval_run.changed", "eval_run_id": str(run.pk), "status": "queued", "completed": 0, "total": 10}
    html = live.render(page, cast.acme, membership, event)
    assert 'id="eval-run-live" hx-swap-oob="true"' in html and 'data-status="queued"' in html
    assert live.render(page, cast.acme, membership, {**event, "eval_run_id": "other"}) == ""
