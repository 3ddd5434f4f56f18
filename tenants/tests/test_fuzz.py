"""Schemathesis over the whole REST API (issue 18): cases generated from the OpenAPI schema the app
serves, valid and invalid, sent to the real WSGI application (real PostgreSQL and Redis) with an
admin key and with a narrow one (`read`), then chained through the links schemathesis infers (what
one call creates, the next reads, changes or deletes). Every answer must be below 500 and, where the
schema describes its status, match the schema (body and content type).

Bounded: generation is deterministic (the same cases each run, so CI does not flake on a new
random find), each operation gets a few examples besides the sweep of valid boundary values
and an OPTIONS; the demo data is seeded
once for the module and each operation's writes are rolled back. `-m fuzz` selects the module.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from django.core import signals
from django.core.management import call_command
from django.core.serializers.json import DjangoJSONEncoder
from django.db import close_old_connections, transaction
from drf_spectacular.generators import SchemaGenerator
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from config.wsgi import application
from tenants import rls
from tenants.demo import seed_demo
from tenants.models import Scope, Tenant
from tenants.testing import make_key
from tenants.throttling import ApiKeyRateThrottle

pytestmark = pytest.mark.fuzz

MAX_EXAMPLES = 6  # per operation (each sent with both keys): 114 operations
STATEFUL_EXAMPLES = 25  # scenarios per key, each up to STATEFUL_STEPS chained calls
STATEFUL_STEPS = 8
# The long-poll's `wait` goes up to 60 s; a fuzzed one is held to this (approvals/tests test the poll).
MAX_WAIT = 0.2
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
SETTINGS = hypothesis.settings(
    deadline=None,
    derandomize=True,
    database=None,
    # The keys and the seeded data are made once, not per example: what one example creates, the next may read.
    suppress_health_check=list(hypothesis.HealthCheck),
)


@schemathesis.serializer("application/x-ndjson")
def _jsonl(ctx: Any, value: Any) -> bytes:
    """Case import's JSONL body: the `jsonl` text the schema's object names, else the value itself."""
    if isinstance(value, dict) and isinstance(value.get("jsonl"), str):
        return value["jsonl"].encode("utf-8", "surrogatepass")
    return json.dumps(value).encode()


def _raw_schema() -> dict[str, Any]:
    """The schema /api/v1/schema/ serves (built here, at collection, without a request)."""
    raw = json.loads(json.dumps(SchemaGenerator().get_schema(request=None, public=True), cls=DjangoJSONEncoder))
    for operation in raw["paths"].values():
        for parameter in (operation.get("get") or {}).get("parameters", []):
            if parameter["name"] == "wait":
                parameter["schema"]["maximum"] = MAX_WAIT
    return raw


def _load() -> Any:
    config = SchemathesisConfig.from_dict(
        {
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
            "phases": {
                # The deterministic sweep of valid boundary values, and an OPTIONS to every path.
                "coverage": {"generation": {"mode": "positive"}, "unexpected-methods": ["options"]},
                "stateful": {"max-steps": STATEFUL_STEPS},
            },
        }
    )
    loaded = schemathesis.openapi.from_dict(_raw_schema(), config=config)
    loaded.app = application
    loaded.location = "/api/v1/schema/"
    return loaded


schema = _load()


@pytest.fixture(scope="module")
def keys(django_db_setup: None, django_db_blocker: Any) -> Iterator[dict[str, str]]:
    """The demo data and two keys of Acme, committed once for the module (seeding per operation
    would cost more than the fuzzing); the database is emptied after, as transactional tests do.

    The per-key throttle is lifted for the module: its counters live in Redis by key id, which the
    flush hands out again, so earlier tests' requests (or this module's own, in the same minute)
    could turn a call into a 429 in one run and not in its replay, and a stateful scenario that
    replays differently is a FlakyStrategyDefinition, not a finding."""
    original_rates = ApiKeyRateThrottle.THROTTLE_RATES
    ApiKeyRateThrottle.THROTTLE_RATES = {**original_rates, "api_key": None}
    with django_db_blocker.unblock():
        try:
            # Set up across tenants, as the tests' own setup is (conftest): the requests each set theirs.
            with rls.across_tenants("the fuzz module's setup"):
                seed_demo(first_eval_run=False)
                acme = Tenant.objects.get(slug="acme")
                made = {
                    "admin": make_key(acme, [Scope.ADMIN], name="fuzz admin")[1],
                    "narrow": make_key(acme, [Scope.READ], name="fuzz narrow")[1],
                }
            yield made
        finally:
            ApiKeyRateThrottle.THROTTLE_RATES = original_rates
            call_command("flush", interactive=False, verbosity=0)


@pytest.fixture
def wsgi_in_transaction(db: None) -> Iterator[None]:
    """Requests sent straight to the WSGI app run in this test's transaction (rolled back after);
    Django's end-of-request cleanup would close the connection under it (its test client
    disconnects it too)."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@schema.parametrize()
@SETTINGS
def test_every_operation_answers_below_500_and_as_the_schema_says(
    case: Any, keys: dict[str, str], wsgi_in_transaction: None
) -> None:
    for key in keys.values():
        case.call_and_validate(headers={"Authorization": f"Bearer {key}"}, checks=CHECKS)


@pytest.mark.parametrize("who", ["admin", "narrow"])
def test_chained_calls_answer_below_500_and_as_the_schema_says(
    who: str, keys: dict[str, str], wsgi_in_transaction: None
) -> None:
    headers = {"Authorization": f"Bearer {keys[who]}"}

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            # Each scenario starts from the seeded data (a savepoint rolled back after it), so a
            # failing one replays the same way while Hypothesis shrinks it.
            self.scenario = transaction.atomic()
            self.scenario.__enter__()

        def teardown(self) -> None:
            transaction.set_rollback(True)
            self.scenario.__exit__(None, None, None)

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": headers}

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS, headers=headers)

    Workflow.run(
        settings=hypothesis.settings(SETTINGS, max_examples=STATEFUL_EXAMPLES, stateful_step_count=STATEFUL_STEPS)
    )


# --- What the fuzzing found, pinned down -------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/evals/suites/0/", "/api/v1/guardrails/check", "/api/v1/agents/"])
def test_options_answers_the_views_description_not_a_500(path: str, api: Any) -> None:
    response = api(Scope.ADMIN).client.options(path, headers={"Authorization": f"Bearer {api(Scope.ADMIN).key}"})
    assert response.status_code == 200, response.content
    assert set(response.json()) == {"name", "description", "renders", "parses"}


def test_the_schema_says_what_a_blank_url_and_a_missing_relation_answer() -> None:
    components = _raw_schema()["components"]["schemas"]
    # "" for no webhook or the vendor's default endpoint; null when there is no agent or creator.
    for component, name in [("Tool", "webhook_url"), ("Budget", "webhook_url"), ("Provider", "base_url")]:
        assert {"type": "string", "maxLength": 0} in components[component]["properties"][name]["anyOf"]
    for component, name in [("ApiKey", "created_by"), ("ApprovalRule", "agent_name"), ("Policy", "agent_name")]:
        assert components[component]["properties"][name]["nullable"] is True


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/traces/", "/api/v1/approvals/"])
def test_a_time_filter_with_an_offset_postgresql_refuses_is_read_in_utc(path: str, api: Any) -> None:
    client = api(Scope.ADMIN)
    # +19:30 parses in Python; PostgreSQL refuses offsets past 15:59 (it was a DataError, a 500).
    assert client.get(f"{path}?since=1144-11-25T19%3A53%3A59%2B19%3A30").status_code == 200
    refused = client.get(f"{path}?until=9999-12-31T23:59:59-05:00")
    assert refused.status_code == 400 and "out of the range" in refused.json()["error"]["message"]
