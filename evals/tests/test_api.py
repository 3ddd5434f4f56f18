"""The evals REST API: every route's contract (credentials, scope, tenant), and what each does,
with clear 4xx answers for bad input."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from catalog import services as catalog_services
from catalog.models import PinChange
from evals import services
from evals.models import Case, EvalRun, Suite
from evals.tests.conftest import candidate_model, run_cases, seeded_run
from tenants.audit import Actor
from tenants.models import Scope
from tenants.testing import ApiClient, ApiContract, Cast, assert_error

pytestmark = pytest.mark.django_db


def demo_suite(cast: Cast) -> Suite:
    return Suite.objects.for_tenant(cast.acme).select_related("tenant", "agent").get(name__startswith="Support agent")


def open_change(cast: Cast) -> PinChange:
    change = PinChange.objects.for_tenant(cast.acme).filter(alias="classifier", status="pending").first()
    if change is None:
        change = catalog_services.pin_change_request(
            actor=Actor(user=cast.alice),
            tenant=cast.acme,
            alias="classifier",
            to_model=candidate_model(cast),
            reason="try it",
        )
    return change


# --- Contracts ------------------------------------------------------------------------------------


class TestSuiteList(ApiContract):
    url_name = "eval-suite-list"
    scope = Scope.READ

    def path(self, cast: Cast) -> str:
        return "/api/v1/evals/suites"


class TestSuiteCreate(ApiContract):
    url_name = "eval-suite-list"
    method = "post"

    def path(self, cast: Cast) -> str:
        return "/api/v1/evals/suites"

    def body(self, cast: Cast) -> Any:
        return {"name": f"Suite {Suite.objects.count()}", "agent": "Support agent"}


class TestSuiteDetail(ApiContract):
    url_name = "eval-suite-detail"
    scope = Scope.READ
    object_scoped = True

    def path(self, cast: Cast) -> str:
        return f"/api/v1/evals/suites/{demo_suite(cast).pk}"


class TestSuiteUpdate(ApiContract):
    url_name = "eval-suite-detail"
    method = "patch"
    object_scoped = True

    def path(self, cast: Cast) -> str:
        return f"/api/v1/evals/suites/{demo_suite(cast).pk}"

    def body(self, cast: Cast) -> Any:
        return {"tolerance": 0.05}


class TestSuiteCases(ApiContract):
    url_name = "eval-suite-cases"
    scope = Scope.READ
    object_scoped = True

    def path(self, cast: Cast) -> str:
        return f"/api/v1/evals/suites/{demo_suite(cast).pk}/cases"


class TestSuiteAddCase(ApiContract):
    url_name = "eval-suite-cases"
    method = "post"
    object_scoped = True

    def path(self, cast: Cast) -> str:
        return f"/api/v1/evals/suites/{demo_suite(cast).pk}/cases"

    def body(self, cast: Cast) -> Any:
        return {"input": "Where is A-1001?", "assertions": [{"type": "contains", "value": "A-1001"}]}


class TestSuiteImport(ApiContract):
    url_name = "eval-suite-import-cases"
    method = "post"
    object_scoped = True

    def path(self, cast: Cast) -> str:
        return f"/api/v1/evals/suites/{demo_suite(cast).pk}/cases/import"

    def body(self, cast: Cast) -> Any:
        return {"jsonl": '{"input": "Hello"}\n'}


class TestSuiteCaseFromTrace(ApiContract):
    url_name = "eval-suite-from-trace"
    method = "post"
    object_scoped = True

    def path(self, cast: Cast) -> str:
        return f"/api/v1/evals/suites/{demo_suite(cast).pk}/cases/from-trace"

    def body(self, cast: Cast) -> Any:
        from traces.models import Trace
        from traces.tests.factories import make_trace

        trace = Trace.objects.for_tenant(cast.acme).first() or make_trace(cast.acme, input="Where is A-1001?")
        return {"trace_id": trace.trace_id}


class TestSuiteExport(ApiContract):
    url_name = "eval-suite-export"
    scope = Scope.READ
    object_scoped = True

    def path(self, cast: Cast) -> str:
        return f"/api/v1/evals/suites/{demo_suite(cast).pk}/cases/export"


class TestSuiteRuns(ApiContract):
    url_name = "eval-suite-runs"
    scope = Scope.READ
    object_scoped = True

    def path(self, cast: Cast) -> str:
        return f"/api/v1/evals/suites/{demo_suite(cast).pk}/runs"


class TestSuiteStartRun(ApiContract):
    url_name = "eval-suite-runs"
    method = "post"
    scope = Scope.RUNS_WRITE
    object_scoped = True

    def path(self, cast: Cast) -> str:
        return f"/api/v1/evals/suites/{demo_suite(cast).pk}/runs"


class TestCaseDetail(ApiContract):
    url_name = "eval-case-detail"
    scope = Scope.READ
    object_scoped = True

    def path(self, cast: Cast) -> str:
        return f"/api/v1/evals/cases/{Case.objects.for_tenant(cast.acme).first().pk}"  # type: ignore[union-attr]


class TestCaseDelete(ApiContract):
    url_name = "eval-case-detail"
    method = "delete"
    object_scoped = True

    def path(self, cast: Cast) -> str:
        return f"/api/v1/evals/cases/{Case.objects.for_tenant(cast.acme).first().pk}"  # type: ignore[union-attr]


class TestRunList(ApiContract):
    url_name = "eval-run-list"
    scope = Scope.READ

    def path(self, cast: Cast) -> str:
        return "/api/v1/evals/runs"


class TestRunDetail(ApiContract):
    url_name = "eval-run-detail"
    scope = Scope.READ
    object_scoped = True

    def path(self, cast: Cast) -> str:
        return f"/api/v1/evals/runs/{seeded_run(cast).pk}"


class TestRunCancel(ApiContract):
    url_name = "eval-run-cancel"
    method = "post"
    scope = Scope.RUNS_WRITE
    object_scoped = True
    ok_statuses = (200, 409)  # the second allowed call finds it cancelled already

    def path(self, cast: Cast) -> str:
        return f"/api/v1/evals/runs/{seeded_run(cast).pk}/cancel"


class TestRunAccept(ApiContract):
    url_name = "eval-run-accept"
    method = "post"
    object_scoped = True

    def path(self, cast: Cast) -> str:
        run = seeded_run(cast)
        EvalRun.objects.filter(pk=run.pk).update(status="succeeded")
        return f"/api/v1/evals/runs/{run.pk}/accept"


class TestReviewList(ApiContract):
    url_name = "eval-review-list"
    scope = Scope.READ

    def path(self, cast: Cast) -> str:
        return "/api/v1/evals/reviews"


class TestReviewCreate(ApiContract):
    url_name = "eval-review-list"
    method = "post"
    object_scoped = True  # the reviewed result is Acme's: Globex gets 404 for it

    def path(self, cast: Cast) -> str:
        return "/api/v1/evals/reviews"

    def body(self, cast: Cast) -> Any:
        result = seeded_run(cast).results.first()
        assert result is not None
        return {"result": str(result.pk), "score": 3, "comment": "fine"}


class TestGateDetail(ApiContract):
    url_name = "eval-gate-detail"
    scope = Scope.READ
    object_scoped = True

    def path(self, cast: Cast) -> str:
        return f"/api/v1/evals/pin-changes/{open_change(cast).pk}"


class TestGateOverride(ApiContract):
    url_name = "eval-gate-override"
    method = "post"
    object_scoped = True
    ok_statuses = (201, 409)  # a second override of the same change is refused

    def path(self, cast: Cast) -> str:
        return f"/api/v1/evals/pin-changes/{open_change(cast).pk}/override"

    def body(self, cast: Cast) -> Any:
        return {"reason": "The classifier change is low risk."}


# --- Behaviour ------------------------------------------------------------------------------------


@pytest.fixture
def admin(api: Callable[..., ApiClient]) -> ApiClient:
    return api(Scope.ADMIN)


def test_the_demo_suite_is_listed_with_its_cases_and_baseline(admin: ApiClient, cast: Cast) -> None:
    body = admin.get("/api/v1/evals/suites").json()
    [suite] = body["results"]
    assert suite["name"] == "Support agent: the ten must-dos"
    assert suite["agent_name"] == "Support agent" and suite["case_count"] == 10
    cases = admin.get(f"/api/v1/evals/suites/{suite['id']}/cases").json()["results"]
    assert len(cases) == 10 and sum(c["critical"] for c in cases) == 4


def test_suites_and_cases_are_created_changed_and_deleted_with_clear_errors(admin: ApiClient, cast: Cast) -> None:
    assert_error(admin.post("/api/v1/evals/suites", {"name": "x", "agent": "Nobody"}), 400, "validation_error")
    created = admin.post("/api/v1/evals/suites", {"name": "Smoke", "agent": "Support agent", "tags": ["ci"]})
    assert created.status_code == 201, created.content
    suite_id = created.json()["id"]
    assert_error(admin.post("/api/v1/evals/suites", {"name": "Smoke", "agent": "Support agent"}), 409)
    error = assert_error(
        admin.post(
            f"/api/v1/evals/suites/{suite_id}/cases",
            {"input": "hi", "assertions": [{"type": "contains", "value": "x"}, {"type": "regex", "pattern": "["}]},
        ),
        400,
        "validation_error",
    )
    assert error["fields"]["assertions"][0].startswith("assertion 2 (regex): the pattern does not compile")
    assert_error(admin.post(f"/api/v1/evals/suites/{suite_id}/cases", {"assertions": []}), 400)
    case = admin.post(
        f"/api/v1/evals/suites/{suite_id}/cases",
        {"input": "hi", "context": {"channel": "chat"}, "critical": True, "assertions": [{"type": "refused"}]},
    )
    assert case.status_code == 201, case.content
    assert case.json()["context"] == {"channel": "chat"}
    changed = admin.patch(f"/api/v1/evals/cases/{case.json()['id']}", {"approval": "reject"})
    assert changed.json()["approval"] == "reject" and changed.json()["critical"] is True
    assert admin.patch(f"/api/v1/evals/suites/{suite_id}", {"tolerance": 0.05}).json()["tolerance"] == 0.05
    assert_error(admin.patch(f"/api/v1/evals/suites/{suite_id}", {"tolerance": 2}), 400)
    assert admin.delete(f"/api/v1/evals/cases/{case.json()['id']}").status_code == 204
    assert admin.delete(f"/api/v1/evals/suites/{suite_id}").status_code == 204
    assert_error(admin.get(f"/api/v1/evals/suites/{suite_id}"), 404, "not_found")
    assert_error(admin.get("/api/v1/evals/suites/not-an-id"), 404, "not_found")


def test_cases_import_and_export_as_jsonl(admin: ApiClient, cast: Cast, client: Any) -> None:
    suite = demo_suite(cast)
    exported = admin.get(f"/api/v1/evals/suites/{suite.pk}/cases/export")
    assert exported["Content-Type"].startswith("application/x-ndjson")
    lines = exported.content.decode().splitlines()
    assert len(lines) == 10 and json.loads(lines[2])["approval"] == "approve"
    other = admin.post("/api/v1/evals/suites", {"name": "Copy", "agent": "Support agent"}).json()
    raw = client.post(
        f"/api/v1/evals/suites/{other['id']}/cases/import",
        data=exported.content,
        content_type="application/x-ndjson",
        headers={"Authorization": f"Bearer {admin.key}"},
    )
    assert raw.status_code == 201, raw.content
    assert len(raw.json()) == 10
    error = assert_error(
        admin.post(f"/api/v1/evals/suites/{other['id']}/cases/import", {"jsonl": '{"input": "a"}\n[1]\n'}), 400
    )
    assert error["fields"]["jsonl"] == ["line 2: a case must be a JSON object."]


def test_a_run_is_started_and_read_with_its_per_case_results(admin: ApiClient, cast: Cast) -> None:
    suite = demo_suite(cast)
    started = admin.post(f"/api/v1/evals/suites/{suite.pk}/runs", {})
    assert started.status_code == 202, started.content
    body = started.json()
    assert body["status"] == "queued" and body["progress"] == {"completed": 0, "total": 10}
    run_cases(EvalRun.objects.select_related("tenant").get(pk=body["id"]))
    detail = admin.get(f"/api/v1/evals/runs/{body['id']}").json()
    assert detail["status"] == "succeeded" and detail["pass_rate"] == 1.0
    assert len(detail["results"]) == 10
    first = detail["results"][0]
    assert first["status"] == "passed" and first["run_link"] == f"/api/v1/runs/{first['run']}"
    assert first["trace_link"] == f"/api/v1/traces/{first['trace_id']}"
    assert {v["type"] for v in first["verdicts"]} == {"tool_called", "contains", "judge"}
    assert first["judge_score"] == 1.0 and first["latency_ms"] is not None
    assert detail["comparison"] is None  # it is the baseline
    listed = admin.get(f"/api/v1/evals/runs?suite={suite.pk}&status=succeeded").json()["results"]
    assert [r["id"] for r in listed] == [body["id"]]
    assert_error(admin.get("/api/v1/evals/runs?suite=nope"), 400)


def test_starting_a_run_on_a_model_names_it_exactly(admin: ApiClient, cast: Cast) -> None:
    suite = demo_suite(cast)
    assert_error(admin.post(f"/api/v1/evals/suites/{suite.pk}/runs", {"model": "gpt-9"}), 400, "validation_error")
    candidate_model(cast)
    started = admin.post(f"/api/v1/evals/suites/{suite.pk}/runs", {"model": "demo-support-2025-09-01"})
    assert started.status_code == 202 and started.json()["candidate"] is True
    assert started.json()["model_id"] == "demo-support-2025-09-01"


def test_reviews_need_a_target_of_the_tenant(admin: ApiClient, cast: Cast, api: Callable[..., ApiClient]) -> None:
    result = seeded_run(cast).results.first()
    assert result is not None
    assert_error(admin.post("/api/v1/evals/reviews", {"score": 3}), 400)
    assert_error(admin.post("/api/v1/evals/reviews", {"result": str(result.pk), "score": 9}), 400)
    globex = api(Scope.ADMIN, tenant=cast.globex)
    assert_error(globex.post("/api/v1/evals/reviews", {"result": str(result.pk), "score": 3}), 404)
    assert admin.post("/api/v1/evals/reviews", {"result": str(result.pk), "score": 5}).status_code == 201


def test_a_finished_run_cannot_be_cancelled(admin: ApiClient, cast: Cast) -> None:
    run = seeded_run(cast)
    services.eval_run_cancel(actor=Actor.system_actor("tests"), eval_run=run)
    assert_error(admin.post(f"/api/v1/evals/runs/{run.pk}/cancel"), 409, "conflict")


def test_a_trace_becomes_a_case_over_the_api(admin: ApiClient, cast: Cast) -> None:
    from traces.tests.factories import make_trace

    trace = make_trace(cast.acme, input="Where is A-1005?", output="Delivered.")
    suite = demo_suite(cast)
    created = admin.post(f"/api/v1/evals/suites/{suite.pk}/cases/from-trace", {"trace_id": trace.trace_id})
    assert created.status_code == 201, created.content
    assert created.json()["input"] == "Where is A-1005?" and created.json()["expected_output"] == "Delivered."
    error = assert_error(
        admin.post(f"/api/v1/evals/suites/{suite.pk}/cases/from-trace", {"trace_id": "f" * 32}), 400, "validation_error"
    )
    assert error["fields"] == {"trace_id": ["no such trace in this tenant."]}
