"""Suites and their cases: create, update, delete, audited; the limits a suite and a case are
checked against."""

from __future__ import annotations

import json
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from agents.models import Agent
from evals import assertions as checks
from evals import sandbox
from evals.models import Case, EvalRun, Suite
from tenants.audit import Actor
from tenants.errors import ConflictError, FieldConflictError, FieldError, ServiceError
from tenants.models import Tenant
from tenants.services import audit_record

MAX_CASES = 2000
MAX_INPUT_CHARS = 100_000
MAX_TAGS = 20
MAX_IMPORT_LINES = MAX_CASES
MAX_RUN_BUDGET_MICROS = 10_000 * 1_000_000  # $10,000
CASE_FIELDS = (
    "name",
    "input",
    "end_user_id",
    "session_id",
    "context",
    "expected_output",
    "critical",
    "tags",
    "assertions",
    "tool_results",
    "approval",
)


# --- Suites ---------------------------------------------------------------------------------------


def _suite_state(suite: Suite) -> dict[str, Any]:
    return {
        "name": suite.name,
        "agent": str(suite.agent_id),
        "description": suite.description,
        "tags": list(suite.tags),
        "tolerance": suite.tolerance,
        "gates_pin_changes": suite.gates_pin_changes,
        "run_budget_micros": suite.run_budget_micros,
        "fixtures": suite.fixtures,
    }


def _clean_tags(tags: Any) -> list[str]:
    if tags is None:
        return []
    if not isinstance(tags, list | tuple) or not all(isinstance(t, str) for t in tags):
        raise FieldError("tags", "a list of short labels.")
    clean = sorted({t.strip()[:50] for t in tags if t.strip()})
    if len(clean) > MAX_TAGS:
        raise FieldError("tags", f"at most {MAX_TAGS} tags.")
    return clean


def _clean_suite(values: dict[str, Any], tenant: Tenant) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    if "name" in values:
        name = str(values["name"] or "").strip()
        if not name:
            raise FieldError("name", "give the suite a name.")
        if len(name) > 100:
            raise FieldError("name", "use at most 100 characters.")
        clean["name"] = name
    if "agent" in values:
        agent = values["agent"]
        if not isinstance(agent, Agent) or agent.tenant_id != tenant.pk:
            raise FieldError("agent", "no such agent in this tenant.")
        clean["agent"] = agent
    if "description" in values:
        clean["description"] = str(values["description"] or "").strip()[:5000]
    if "tags" in values:
        clean["tags"] = _clean_tags(values["tags"])
    if "tolerance" in values:
        tolerance = values["tolerance"]
        if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) or not 0 <= tolerance <= 1:
            raise FieldError("tolerance", "a share of the pass rate between 0 and 1 (0.05 allows a 5-point drop).")
        clean["tolerance"] = float(tolerance)
    if "gates_pin_changes" in values:
        clean["gates_pin_changes"] = bool(values["gates_pin_changes"])
    if "run_budget_micros" in values:
        budget = values["run_budget_micros"]
        if isinstance(budget, bool) or not isinstance(budget, int) or not 0 < budget <= MAX_RUN_BUDGET_MICROS:
            raise FieldError("run_budget_micros", f"a whole number of micro-USD from 1 to {MAX_RUN_BUDGET_MICROS}.")
        clean["run_budget_micros"] = budget
    if "fixtures" in values:
        clean["fixtures"] = sandbox.validated_fixtures(values["fixtures"])
    return clean


def _save_suite(suite: Suite, fields: list[str] | None = None) -> None:
    try:
        with transaction.atomic():
            suite.save(update_fields=fields) if fields else suite.save()
    except IntegrityError:
        raise FieldConflictError("name", f"a suite named {suite.name!r} already exists.") from None


@transaction.atomic
def suite_create(*, actor: Actor, tenant: Tenant, name: str, agent: Agent, **options: Any) -> Suite:
    """A new suite for `agent` (audited). Options: description, tags, tolerance, gates_pin_changes,
    run_budget_micros, fixtures (the sandbox's starting state, evals/sandbox.py)."""
    unknown = set(options) - {"description", "tags", "tolerance", "gates_pin_changes", "run_budget_micros", "fixtures"}
    if unknown:
        raise ServiceError(f"unknown suite fields: {', '.join(sorted(unknown))}")
    clean = _clean_suite({"name": name, "agent": agent, **options}, tenant)
    suite = Suite(tenant=tenant, **clean)
    _save_suite(suite)
    audit_record(tenant=tenant, actor=actor, action="eval_suite.create", target=suite, after=_suite_state(suite))
    return suite


@transaction.atomic
def suite_update(*, actor: Actor, suite: Suite, **changes: Any) -> Suite:
    """Change a suite's fields (audited); the baseline is kept unless the agent changes."""
    before = _suite_state(suite)
    clean = _clean_suite(changes, suite.tenant)
    if "agent" in clean and clean["agent"].pk != suite.agent_id:
        suite.baseline = None
        clean["baseline"] = None
    for key, value in clean.items():
        setattr(suite, key, value)
    suite.updated_at = timezone.now()
    _save_suite(suite, [*clean, "updated_at"])
    audit_record(
        tenant=suite.tenant,
        actor=actor,
        action="eval_suite.update",
        target=suite,
        before=before,
        after=_suite_state(suite),
    )
    return suite


@transaction.atomic
def suite_delete(*, actor: Actor, suite: Suite) -> None:
    """Delete a suite with its cases and eval runs (audited); refused while one of its runs is active."""
    if suite.runs.exclude(status__in=EvalRun.FINAL_STATUSES).exists():
        raise ConflictError("An eval run of this suite is still going; cancel it first.")
    audit_record(tenant=suite.tenant, actor=actor, action="eval_suite.delete", target=suite, before=_suite_state(suite))
    Suite.objects.for_tenant(suite.tenant).filter(pk=suite.pk).update(baseline=None)
    suite.delete()


# --- Cases ----------------------------------------------------------------------------------------


def _clean_case(values: dict[str, Any]) -> dict[str, Any]:
    """Case fields checked and normalised; FieldError names the first bad one."""
    unknown = set(values) - set(CASE_FIELDS)
    if unknown:
        raise FieldError(sorted(unknown)[0], "is not a case field.")
    clean: dict[str, Any] = {}
    if "input" in values:
        text = values["input"]
        if not isinstance(text, str) or not text.strip():
            raise FieldError("input", "give the case an input text.")
        if len(text) > MAX_INPUT_CHARS:
            raise FieldError("input", f"is longer than {MAX_INPUT_CHARS} characters.")
        clean["input"] = text
    for key, limit in (("name", 200), ("end_user_id", 200), ("session_id", 200)):
        if key in values:
            value = values[key] if values[key] is not None else ""
            if not isinstance(value, str):
                raise FieldError(key, "must be a string.")
            if len(value.strip()) > limit:
                raise FieldError(key, f"use at most {limit} characters.")
            clean[key] = value.strip()
    if "expected_output" in values:
        value = values["expected_output"] if values["expected_output"] is not None else ""
        if not isinstance(value, str):
            raise FieldError("expected_output", "must be a string.")
        clean["expected_output"] = value
    if "context" in values:
        context = values["context"] if values["context"] is not None else {}
        if not isinstance(context, dict):
            raise FieldError("context", "must be a JSON object (given to the run as metadata).")
        if len(json.dumps(context)) > 16_000:
            raise FieldError("context", "is larger than 16,000 bytes of JSON.")
        if {"eval_run", "eval_result"} & set(context):
            raise FieldError("context", "eval_run and eval_result are reserved keys.")
        clean["context"] = context
    if "critical" in values:
        if not isinstance(values["critical"], bool):
            raise FieldError("critical", "must be true or false.")
        clean["critical"] = values["critical"]
    if "tags" in values:
        clean["tags"] = _clean_tags(values["tags"])
    if "assertions" in values:
        clean["assertions"] = checks.validated(values["assertions"])
    if "tool_results" in values:
        results = values["tool_results"] if values["tool_results"] is not None else {}
        if not isinstance(results, dict) or not all(isinstance(k, str) and k for k in results):
            raise FieldError("tool_results", "a JSON object: tool name → the result it returns in this case.")
        clean["tool_results"] = results
    if "approval" in values:
        if values["approval"] not in Case.Approval.values:
            raise FieldError("approval", "approve or reject (what a call needing approval gets in this case).")
        clean["approval"] = values["approval"]
    return clean


def _case_state(case: Case) -> dict[str, Any]:
    return {key: getattr(case, key) for key in CASE_FIELDS}


@transaction.atomic
def case_create(*, actor: Actor, suite: Suite, input: str, **fields: Any) -> Case:
    """A new case in `suite` (assertions validated; audited)."""
    clean = _clean_case({"input": input, **fields})
    if Case.objects.for_tenant(suite.tenant).filter(suite=suite).count() >= MAX_CASES:
        raise ConflictError(f"A suite holds at most {MAX_CASES} cases.")
    case = Case.objects.create(tenant=suite.tenant, suite=suite, **clean)
    audit_record(tenant=suite.tenant, actor=actor, action="eval_case.create", target=case, after=_case_state(case))
    return case


@transaction.atomic
def case_update(*, actor: Actor, case: Case, **changes: Any) -> Case:
    before = _case_state(case)
    clean = _clean_case(changes)
    for key, value in clean.items():
        setattr(case, key, value)
    case.updated_at = timezone.now()
    case.save(update_fields=[*clean, "updated_at"])
    audit_record(
        tenant=case.tenant, actor=actor, action="eval_case.update", target=case, before=before, after=_case_state(case)
    )
    return case


@transaction.atomic
def case_delete(*, actor: Actor, case: Case) -> None:
    audit_record(tenant=case.tenant, actor=actor, action="eval_case.delete", target=case, before=_case_state(case))
    case.delete()
