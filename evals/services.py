"""Writes of evals: suites and cases (audited), eval runs (start, execute case by case, cancel,
finish, accept as baseline), the pin-change gate's override, reviews and cases made from runs.

Execution. `eval_run_start` stores the run and one pending EvalResult per case (with a snapshot
of the case), then, after commit, asks `eval_dispatch` for the tenant. Dispatch holds a per-tenant
advisory lock, counts the tenant's results already running and marks pending ones running up to
EVAL_CONCURRENCY_PER_TENANT, sending one Celery task per result; each finished case dispatches
again. A case is a real agent run of the eval run's agent version on its model (evals/hooks.py
says what differs from production), executed in-process by the case's task, then scored by its
assertions and judge. The last case to finish computes the totals.

Budget. Every model call of the cases and of the judge is reserved on the eval run's own budget
(`budget_micros`, from the suite) besides the tenant's budgets. When a call is refused the case is
an error, no further case starts (pending ones are skipped), and the eval run ends
`budget_exceeded` with the results it has.
"""

from __future__ import annotations

import json
import logging
import math
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from agents import services as agent_services
from agents.models import Agent, AgentVersion, Run, Step
from catalog.clients import ChatClient
from catalog.models import LanguageModel, PinChange
from catalog.selectors import PinNotFoundError, pinned_model
from evals import assertions as checks
from evals import events, hooks, judge, sandbox
from evals.models import Case, EvalResult, EvalRun, GateOverride, Review, Suite
from tenants import queue
from tenants.audit import Actor
from tenants.errors import ConflictError, FieldConflictError, FieldError, ServiceError
from tenants.models import Membership, Role, Tenant
from tenants.services import audit_record

logger = logging.getLogger(__name__)

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


def concurrency_per_tenant() -> int:
    return max(1, int(getattr(settings, "EVAL_CONCURRENCY_PER_TENANT", 4)))


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


@transaction.atomic
def cases_import(*, actor: Actor, suite: Suite, text: str) -> list[Case]:
    """Add the cases of a JSONL document (one case object per line, blank lines ignored), all or
    none: FieldError("jsonl", "line N: …") names the first bad line."""
    parsed: list[dict[str, Any]] = []
    lines = text.splitlines()
    if len(lines) > MAX_IMPORT_LINES:
        raise FieldError("jsonl", f"at most {MAX_IMPORT_LINES} lines.")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise FieldError("jsonl", f"line {number}: not JSON ({exc.msg}).") from None
        if not isinstance(value, dict):
            raise FieldError("jsonl", f"line {number}: a case must be a JSON object.")
        value = {k: v for k, v in value.items() if k not in ("id", "suite", "created_at", "updated_at")}
        try:
            parsed.append(_clean_case({"input": value.pop("input", None), **value}))
        except FieldError as exc:
            raise FieldError("jsonl", f"line {number}: {exc.message}") from None
    if not parsed:
        raise FieldError("jsonl", "no cases: give one JSON object per line.")
    existing = Case.objects.for_tenant(suite.tenant).filter(suite=suite).count()
    if existing + len(parsed) > MAX_CASES:
        raise ConflictError(f"A suite holds at most {MAX_CASES} cases ({existing} already).")
    now = timezone.now()
    cases = Case.objects.bulk_create(
        [
            Case(tenant=suite.tenant, suite=suite, created_at=now + timedelta(microseconds=i), updated_at=now, **c)
            for i, c in enumerate(parsed)
        ]
    )
    audit_record(
        tenant=suite.tenant,
        actor=actor,
        action="eval_case.import",
        target=suite,
        after={"cases": len(cases)},
    )
    return cases


def case_as_json_line(case: Case) -> str:
    """A case as one JSONL line of an export, newline included (importable as it is)."""
    return json.dumps({"id": str(case.pk), **_case_state(case)}, ensure_ascii=False) + "\n"


@transaction.atomic
def case_from_run(*, actor: Actor, suite: Suite, run: Run) -> Case:
    """A new case from a production run (its input, end user, session and, as the expected output,
    what it answered), to pin down a behaviour seen in production."""
    if run.tenant_id != suite.tenant_id:
        raise FieldError("run", "no such run in this tenant.")
    case = case_create(
        actor=actor,
        suite=suite,
        input=run.input,
        name=f"From run {str(run.pk)[:8]}",
        end_user_id=run.end_user_id,
        session_id=run.session_id,
        expected_output=run.output,
        tags=["from-production"],
    )
    case.source_run = run
    case.save(update_fields=["source_run"])
    return case


def _as_text(value: Any) -> str:
    """A span's input or output as a case's text: a string as it is, the last user message of a
    chat-style list, else its JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("messages"), list):
        value = value["messages"]
    if isinstance(value, list):
        users = [m.get("content") for m in value if isinstance(m, dict) and m.get("role") == "user"]
        if users and isinstance(users[-1], str):
            return users[-1]
    return json.dumps(value, ensure_ascii=False)


@transaction.atomic
def case_from_trace(*, actor: Actor, suite: Suite, trace_id: str) -> Case:
    """A new case from any production trace: the run behind it when the engine wrote it, else
    the root span's input (and its output as the expected output). FieldError for an unknown trace."""
    from traces.models import Span, Trace

    tenant = suite.tenant
    trace = Trace.objects.for_tenant(tenant).filter(trace_id=str(trace_id).strip().lower()).first()
    if trace is None:
        raise FieldError("trace_id", "no such trace in this tenant.")
    run = Run.objects.for_tenant(tenant).filter(trace_id=trace.trace_id).order_by("created_at").first()
    if run is not None:
        return case_from_run(actor=actor, suite=suite, run=run)
    root = (
        Span.objects.for_tenant(tenant)
        .filter(trace_id=trace.trace_id, parent_span_id="")
        .order_by("started_at")
        .first()
    )
    text = _as_text(root.input if root is not None else None)
    if not text.strip():
        raise FieldError("trace_id", "the trace's root span has no input to replay.")
    return case_create(
        actor=actor,
        suite=suite,
        input=text[:MAX_INPUT_CHARS],
        name=f"From trace {trace.trace_id[:8]}",
        end_user_id=trace.end_user_id,
        session_id=trace.session_id,
        expected_output=_as_text(root.output if root is not None else None),
        tags=["from-production"],
    )


# --- Eval runs: start, cancel, accept ---------------------------------------------------------------


def _snapshot(case: Case) -> dict[str, Any]:
    return {"id": str(case.pk), **_case_state(case)}


@transaction.atomic
def eval_run_start(
    *,
    actor: Actor,
    suite: Suite,
    model: LanguageModel | None = None,
    trigger: str = EvalRun.Trigger.API,
    pin_change: PinChange | None = None,
    dispatch: bool = True,
) -> EvalRun:
    """Queue an eval run of every case of `suite` on its agent's current version and `model` (by
    default the model the agent's alias is pinned to); the cases start after commit on the
    workers (without `dispatch`, the caller executes them itself: the CLI)."""
    tenant = suite.tenant
    agent = (
        Agent.objects.select_for_update(of=("self",))
        .select_related("current_version")
        .get(pk=suite.agent_id, tenant=tenant)
    )
    if agent.archived:
        raise ConflictError(f"The agent {agent.name} is archived; restore it to evaluate it.")
    version: AgentVersion | None = agent.current_version
    if version is None:
        raise ConflictError(f"The agent {agent.name} has no version yet.")
    try:
        pinned: LanguageModel | None = pinned_model(tenant=tenant, alias=version.model_alias)
    except PinNotFoundError:
        pinned = None
    target = model or pinned
    if target is None:
        raise ConflictError(f"No model is pinned as {version.model_alias!r}; pin one or name a model.")
    if target.tenant_id != tenant.pk:
        raise FieldError("model", "no such model in this tenant.")
    if not target.is_priced:
        raise FieldError("model", f"{target} has no prices; an unpriced model cannot be evaluated.")
    if not target.provider.enabled:
        raise FieldError("model", f"the provider {target.provider.name} is disabled.")
    cases = list(Case.objects.for_tenant(tenant).filter(suite=suite).order_by("created_at", "id"))
    if not cases:
        raise ConflictError("The suite has no cases yet; add some first.")
    eval_run = EvalRun.objects.create(
        tenant=tenant,
        suite=suite,
        agent_version=version,
        model=target,
        candidate=pinned is None or target.pk != pinned.pk,
        pin_change=pin_change,
        trigger=trigger,
        total_cases=len(cases),
        budget_micros=suite.run_budget_micros,
        fixtures=sandbox.fixtures_for(suite),
        started_by=actor.user,
        started_by_label=actor.label[:200],
    )
    EvalResult.objects.bulk_create(
        [
            EvalResult(
                tenant=tenant,
                eval_run=eval_run,
                case=case,
                position=position,
                case_snapshot=_snapshot(case),
                critical=case.critical,
            )
            for position, case in enumerate(cases)
        ]
    )
    audit_record(
        tenant=tenant,
        actor=actor,
        action="eval_run.start",
        target=eval_run,
        after={"suite": suite.name, "model": str(target), "candidate": eval_run.candidate, "cases": len(cases)},
    )
    events.send_eval_run_changed(eval_run)
    if dispatch:
        tenant_id = str(tenant.pk)
        queue.enqueue("evals.tasks.dispatch", tenant_id)
    return eval_run


@transaction.atomic
def eval_run_cancel(*, actor: Actor, eval_run: EvalRun) -> EvalRun:
    """Stop an eval run: pending cases are skipped, running ones are cancelled between steps; the
    run ends `cancelled` with the results it has. ConflictError once it has finished."""
    eval_run = EvalRun.objects.for_tenant(eval_run.tenant).select_for_update().get(pk=eval_run.pk)
    if eval_run.is_finished:
        raise ConflictError(f"The eval run has already finished ({eval_run.get_status_display().lower()}).")
    now = timezone.now()
    eval_run.cancel_requested_at = eval_run.cancel_requested_at or now
    eval_run.save(update_fields=["cancel_requested_at"])
    _skip_pending(eval_run, "Cancelled before it ran.")
    running_runs = EvalResult.objects.for_tenant(eval_run.tenant).filter(
        eval_run=eval_run, status=EvalResult.Status.RUNNING, run__isnull=False
    )
    for run in (
        Run.objects.for_tenant(eval_run.tenant)
        .filter(pk__in=running_runs.values("run_id"))
        .exclude(status__in=Run.FINAL_STATUSES)
    ):
        # Queued: cancelled at once; running: its worker stops it before the next step.
        agent_services.run_cancel(actor=actor, run=run)
    audit_record(tenant=eval_run.tenant, actor=actor, action="eval_run.cancel", target=eval_run)
    _finish_if_done(eval_run)
    events.send_eval_run_changed(eval_run)
    return eval_run


def _skip_pending(eval_run: EvalRun, why: str) -> int:
    skipped = (
        EvalResult.objects.for_tenant(eval_run.tenant)
        .filter(eval_run=eval_run, status=EvalResult.Status.PENDING)
        .update(status=EvalResult.Status.SKIPPED, error=why, finished_at=timezone.now())
    )
    return skipped


@transaction.atomic
def eval_run_accept(*, actor: Actor, eval_run: EvalRun) -> Suite:
    """Make a finished run on the current pin the suite's baseline (audited)."""
    suite = Suite.objects.for_tenant(eval_run.tenant).select_for_update().get(pk=eval_run.suite_id)
    if eval_run.status != EvalRun.Status.SUCCEEDED:
        raise ConflictError("Only an eval run that ran every case (succeeded) can become the baseline.")
    before = {"baseline": str(suite.baseline_id) if suite.baseline_id else None}
    EvalRun.objects.for_tenant(eval_run.tenant).filter(pk=eval_run.pk).update(accepted=True)
    eval_run.accepted = True
    suite.baseline = eval_run
    suite.save(update_fields=["baseline"])
    audit_record(
        tenant=suite.tenant,
        actor=actor,
        action="eval_suite.baseline",
        target=suite,
        before=before,
        after={"baseline": str(eval_run.pk), "model": str(eval_run.model_id)},
    )
    return suite


# --- Dispatch and execution --------------------------------------------------------------------------


def eval_dispatch(*, tenant: Tenant) -> list[str]:
    """Start pending cases of the tenant's eval runs, oldest run first, while fewer than
    EVAL_CONCURRENCY_PER_TENANT are running. Returns the ids of the results started (their tasks
    are sent after commit)."""
    with transaction.atomic():
        # One dispatcher per tenant at a time, so two cannot both fill the same free slot.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"evals.dispatch:{tenant.pk}"])
        running = EvalResult.objects.for_tenant(tenant).filter(status=EvalResult.Status.RUNNING).count()
        free = concurrency_per_tenant() - running
        if free <= 0:
            return []
        live = EvalRun.objects.for_tenant(tenant).filter(
            status__in=[EvalRun.Status.QUEUED, EvalRun.Status.RUNNING],
            cancel_requested_at__isnull=True,
            budget_exhausted=False,
        )
        picked = list(
            EvalResult.objects.for_tenant(tenant)
            .filter(status=EvalResult.Status.PENDING, eval_run__in=live)
            .order_by("eval_run__created_at", "position")
            .select_for_update(skip_locked=True, of=("self",))
            .values_list("pk", "eval_run_id")[:free]
        )
        if not picked:
            return []
        now = timezone.now()
        ids = [pk for pk, _ in picked]
        EvalResult.objects.for_tenant(tenant).filter(pk__in=ids).update(
            status=EvalResult.Status.RUNNING, started_at=now
        )
        started = EvalRun.objects.for_tenant(tenant).filter(
            pk__in={run_id for _, run_id in picked}, status=EvalRun.Status.QUEUED
        )
        for eval_run in started.select_related("tenant"):
            eval_run.status = EvalRun.Status.RUNNING
            eval_run.started_at = now
            eval_run.save(update_fields=["status", "started_at"])
            events.send_eval_run_changed(eval_run)
        tenant_id, result_ids = str(tenant.pk), [str(pk) for pk in ids]
        transaction.on_commit(lambda: _send_cases(tenant_id, result_ids))
    return [str(pk) for pk in ids]


def _send_cases(tenant_id: str, result_ids: list[str]) -> None:
    for result_id in result_ids:
        queue.send("evals.tasks.execute_case", tenant_id, result_id)


def _create_case_run(result: EvalResult) -> Run:
    eval_run = result.eval_run
    case = result.case_snapshot
    metadata = {**(case.get("context") or {}), "eval_run": str(eval_run.pk), "eval_result": str(result.pk)}
    run = Run.objects.create(
        tenant=result.tenant,
        agent_id=eval_run.agent_version.agent_id,
        agent_version=eval_run.agent_version,
        status=Run.Status.QUEUED,
        input=case["input"],
        end_user_id=case.get("end_user_id") or "",
        session_id=case.get("session_id") or "",
        metadata=metadata,
        created_by=eval_run.started_by,
    )
    return run


def eval_result_claim(*, eval_run: EvalRun) -> EvalResult | None:
    """Mark the next pending case of `eval_run` running and return it, or None: for a caller that
    executes cases itself (the CLI), alongside any worker."""
    with transaction.atomic():
        result = (
            EvalResult.objects.for_tenant(eval_run.tenant)
            .filter(eval_run=eval_run, status=EvalResult.Status.PENDING)
            .select_for_update(skip_locked=True)
            .order_by("position")
            .first()
        )
        if result is None:
            return None
        result.status = EvalResult.Status.RUNNING
        result.started_at = timezone.now()
        result.save(update_fields=["status", "started_at"])
        EvalRun.objects.for_tenant(eval_run.tenant).filter(pk=eval_run.pk, status=EvalRun.Status.QUEUED).update(
            status=EvalRun.Status.RUNNING, started_at=result.started_at
        )
    result.tenant = eval_run.tenant
    return result


def eval_result_execute(
    *, result: EvalResult, client: ChatClient | None = None, dispatch_next: bool = True
) -> EvalResult:
    """Execute one case (its agent run, then its assertions and judge), record its result and
    the eval run's progress, finish the eval run after its last case, and start the next cases.
    Idempotent: a finished result is left as it is; a redelivered task continues the same agent
    run. `client` replaces the providers' clients of the agent and of the judge (tests, benchmarks).
    Raises agents.runtime.RunLeaseHeldError while another execution holds the run."""
    from agents import runtime  # the engine imports the provider clients; keep this module light

    tenant = result.tenant
    with transaction.atomic():
        result = (
            EvalResult.objects.for_tenant(tenant)
            .select_for_update(of=("self",))
            .select_related("tenant", "eval_run__agent_version", "eval_run__tenant")
            .get(pk=result.pk)
        )
        eval_run = result.eval_run
        if result.is_finished:
            return result
        stopping = eval_run.cancel_requested_at is not None or eval_run.budget_exhausted
        # A case whose agent run exists goes on: the engine stops it between steps if cancelled.
        if stopping and result.run_id is None:
            result.status = EvalResult.Status.SKIPPED
            result.error = (
                "Cancelled before it ran." if eval_run.cancel_requested_at else "The eval run's budget ran out."
            )
            result.finished_at = timezone.now()
            result.save(update_fields=["status", "error", "finished_at"])
            _count_done(result)
            run = None
        else:
            if result.status != EvalResult.Status.RUNNING:
                result.status = EvalResult.Status.RUNNING
                result.started_at = timezone.now()
            if result.reserved_micros and result.run_id is not None and not _executing_elsewhere(result.run_id, tenant):
                hooks.charge_lost_holds(result)
            if result.run_id is None:
                result.run = _create_case_run(result)
            result.save(update_fields=["status", "started_at", "run"])
            run = result.run
    if run is not None:
        run = runtime.execute(run, client=client)
        result = _score(result, run, client=client)
    _finish_if_done_by_id(tenant, result.eval_run_id)
    if dispatch_next:
        eval_dispatch(tenant=tenant)
    return result


def _executing_elsewhere(run_id: Any, tenant: Tenant) -> bool:
    """Whether an execution holds the agent run's lease now (a live worker: leave its holds alone)."""
    return (
        Run.objects.for_tenant(tenant)
        .filter(pk=run_id, status=Run.Status.RUNNING, lease_expires_at__gt=timezone.now())
        .exists()
    )


def _outcome(run: Run) -> tuple[checks.Outcome, list[dict[str, Any]]]:
    """What the run did, for the assertions, and its tool calls with their results (recorded on
    the result for the comparison with the baseline)."""
    steps = list(Step.objects.for_tenant(run.tenant).filter(run=run).order_by("index"))
    latency = 0
    if run.started_at and run.finished_at:
        latency = round((run.finished_at - run.started_at).total_seconds() * 1000)
    approvals = [
        str(d.get("tool", "")) for d in (run.approval_decisions or {}).values() if isinstance(d, dict) and d.get("tool")
    ]
    tool_names = {
        call["id"]: call["name"] for m in run.messages for call in m.get("tool_calls", []) if isinstance(call, dict)
    }
    # A call paused for a real reviewer (outside evals) is still an approval request.
    for call_id in run.approval_decisions or {}:
        if call_id in tool_names and tool_names[call_id] not in approvals:
            approvals.append(tool_names[call_id])
    tool_calls = [
        {
            "name": s.tool_name,
            "arguments": s.request.get("arguments") or {},
            "result": s.response.get("result"),
            "error": s.error,
        }
        for s in steps
        if s.kind == Step.Kind.TOOL
    ]
    outcome = checks.Outcome(
        output=run.output,
        run_status=run.status,
        error_type=run.error_type,
        tool_calls=[
            checks.ToolCallSeen(name=s.tool_name, arguments=dict(s.request.get("arguments") or {}))
            for s in steps
            if s.kind == Step.Kind.TOOL
        ],
        approvals=approvals,
        model_calls=sum(s.kind == Step.Kind.MODEL for s in steps),
        tokens=run.input_tokens + run.output_tokens,
        cost_micros=run.cost_micros,
        latency_ms=latency,
    )
    return outcome, tool_calls


# Run endings that are the environment's fault rather than the agent's: the case is an error.
ERROR_TYPES_OF_RUNS = ("internal_error", "pin_not_found", "model_unpriced", "provider_disabled", "budget_exceeded")


def _score(result: EvalResult, run: Run, *, client: ChatClient | None) -> EvalResult:
    snapshot = result.case_snapshot
    outcome, tool_calls = _outcome(run)
    verdicts: list[dict[str, Any]] = []
    status = EvalResult.Status.PASSED
    error = ""
    judge_scores: list[float] = []
    judge_reasons: list[str] = []
    judge_cost = 0
    judge_passed: bool | None = None
    expects_refusal = any(a["type"] in ("refused", "blocked") for a in snapshot.get("assertions", []))

    if not run.is_finished:
        status, error = EvalResult.Status.ERROR, f"The run did not finish (it is {run.status})."
    elif run.status == Run.Status.CANCELLED:
        status, error = EvalResult.Status.SKIPPED, "Cancelled while it ran."
    elif run.error_type.startswith("provider_") or run.error_type in ERROR_TYPES_OF_RUNS:
        status, error = EvalResult.Status.ERROR, f"{run.error_type}: {run.error_message}"
    else:
        if run.status != Run.Status.SUCCEEDED and not (run.status == Run.Status.BLOCKED and expects_refusal):
            verdicts.append(
                {"type": "run", "passed": False, "message": f"the run ended {run.status}: {run.error_message}"[:500]}
            )
        for assertion in snapshot.get("assertions", []):
            if assertion["type"] != "judge":
                verdicts.append(checks.check(assertion, outcome).as_dict())
                continue
            try:
                scored = judge.score(
                    run=run,
                    assertion=assertion,
                    case_input=snapshot.get("input", ""),
                    expected=snapshot.get("expected_output", ""),
                    output=run.output,
                    client=client,
                )
            except judge.JudgeError as exc:
                judge_cost += exc.cost_micros
                status, error = EvalResult.Status.ERROR, exc.message
                verdicts.append({"type": "judge", "passed": False, "message": exc.message})
                continue
            judge_cost += scored.cost_micros
            judge_scores.append(scored.score)
            judge_reasons.append(scored.reason)
            judge_passed = scored.passed if judge_passed is None else judge_passed and scored.passed
            low, high = assertion["scale"]
            verdicts.append(
                {
                    "type": "judge",
                    "passed": scored.passed,
                    "message": f"score {scored.score:g} on {low:g}-{high:g} (pass ≥ {assertion['threshold']:g}): "
                    f"{scored.reason}"[:1000],
                    "score": scored.score,
                }
            )
        if status != EvalResult.Status.ERROR and not all(v["passed"] for v in verdicts):
            status = EvalResult.Status.FAILED
    if status == EvalResult.Status.ERROR and run.error_type == "budget_exceeded":
        # The eval run's own budget, or the agent's: either way no further case can spend.
        EvalRun.objects.for_tenant(result.tenant).filter(pk=result.eval_run_id).update(budget_exhausted=True)
    with transaction.atomic():
        result = (
            EvalResult.objects.for_tenant(result.tenant).select_for_update().select_related("tenant").get(pk=result.pk)
        )
        if result.is_finished:
            return result
        result.status = status
        result.error = error[:5000]
        result.run_status = run.status
        result.trace_id = run.trace_id
        result.output = run.output
        result.verdicts = verdicts
        result.tool_calls = tool_calls
        result.judge_score = sum(judge_scores) / len(judge_scores) if judge_scores else None
        result.judge_passed = judge_passed
        result.judge_reason = "\n".join(judge_reasons)
        result.input_tokens = run.input_tokens
        result.output_tokens = run.output_tokens
        result.cost_micros = run.cost_micros
        result.judge_cost_micros = judge_cost
        result.latency_ms = outcome.latency_ms if run.started_at else None
        result.finished_at = timezone.now()
        result.save()
        _count_done(result)
    return result


def _count_done(result: EvalResult) -> None:
    """Add a finished result to its eval run's progress (inside the result's transaction)."""
    EvalRun.objects.for_tenant(result.tenant).filter(pk=result.eval_run_id).update(
        completed_cases=F("completed_cases") + 1,
        passed_cases=F("passed_cases") + (1 if result.status == EvalResult.Status.PASSED else 0),
        errored_cases=F("errored_cases") + (1 if result.status == EvalResult.Status.ERROR else 0),
    )
    eval_run = EvalRun.objects.for_tenant(result.tenant).select_related("tenant").get(pk=result.eval_run_id)
    events.send_eval_run_changed(eval_run)


def _finish_if_done_by_id(tenant: Tenant, eval_run_id: Any) -> None:
    with transaction.atomic():
        eval_run = (
            EvalRun.objects.for_tenant(tenant).select_for_update().select_related("tenant", "suite").get(pk=eval_run_id)
        )
        if eval_run.budget_exhausted:
            _skip_pending(eval_run, "The eval run's budget ran out.")
        _finish_if_done(eval_run)


def percentile(values: list[int], share: float) -> int | None:
    """The nearest-rank percentile (share in 0-1) of `values`, or None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def _finish_if_done(eval_run: EvalRun) -> None:
    """Compute the totals and the final status once no case is pending or running (the eval run
    is locked by the caller)."""
    if eval_run.is_finished:
        return
    results = list(EvalResult.objects.for_tenant(eval_run.tenant).filter(eval_run=eval_run))
    if any(r.status in (EvalResult.Status.PENDING, EvalResult.Status.RUNNING) for r in results):
        return
    ran = [r for r in results if r.status in (EvalResult.Status.PASSED, EvalResult.Status.FAILED)]
    scores = [r.judge_score for r in results if r.judge_score is not None]
    latencies = [r.latency_ms for r in ran if r.latency_ms is not None]
    eval_run.completed_cases = sum(r.is_finished for r in results)
    eval_run.passed_cases = sum(r.passed for r in results)
    eval_run.errored_cases = sum(r.status == EvalResult.Status.ERROR for r in results)
    executed = [r for r in results if r.status != EvalResult.Status.SKIPPED]
    eval_run.pass_rate = eval_run.passed_cases / len(executed) if executed else None
    eval_run.mean_score = sum(scores) / len(scores) if scores else None
    eval_run.p50_latency_ms = percentile(latencies, 0.5)
    eval_run.p95_latency_ms = percentile(latencies, 0.95)
    eval_run.spent_micros = (
        EvalRun.objects.for_tenant(eval_run.tenant).values_list("spent_micros", flat=True).get(pk=eval_run.pk)
    )
    if eval_run.cancel_requested_at is not None:
        eval_run.status = EvalRun.Status.CANCELLED
    elif eval_run.budget_exhausted or EvalRun.objects.filter(pk=eval_run.pk, budget_exhausted=True).exists():
        eval_run.status = EvalRun.Status.BUDGET_EXCEEDED
        eval_run.budget_exhausted = True
        eval_run.error_message = "The eval run's budget ran out; the results so far are kept."
    elif executed and all(r.status == EvalResult.Status.ERROR for r in executed):
        eval_run.status = EvalRun.Status.FAILED
        eval_run.error_message = f"Every case ended in an error, e.g.: {executed[0].error[:300]}"
    else:
        eval_run.status = EvalRun.Status.SUCCEEDED
    eval_run.finished_at = timezone.now()
    eval_run.save(
        update_fields=[
            "completed_cases",
            "passed_cases",
            "errored_cases",
            "pass_rate",
            "mean_score",
            "p50_latency_ms",
            "p95_latency_ms",
            "spent_micros",
            "status",
            "budget_exhausted",
            "error_message",
            "finished_at",
        ]
    )
    _auto_baseline(eval_run)
    events.send_eval_run_changed(eval_run)


def _auto_baseline(eval_run: EvalRun) -> None:
    """The first complete run on the current pin becomes the suite's baseline when it has none on
    that pin (later ones are accepted by an admin)."""
    from evals.selectors import baseline_for

    if eval_run.status != EvalRun.Status.SUCCEEDED or eval_run.candidate:
        return
    suite = Suite.objects.for_tenant(eval_run.tenant).select_for_update().get(pk=eval_run.suite_id)
    if baseline_for(suite) is not None:
        return
    EvalRun.objects.for_tenant(eval_run.tenant).filter(pk=eval_run.pk).update(accepted=True)
    eval_run.accepted = True
    suite.baseline = eval_run
    suite.save(update_fields=["baseline"])


# --- The pin-change gate's override, reviews ------------------------------------------------------------


def _is_admin(actor: Actor, tenant: Tenant) -> bool:
    if actor.api_key is not None:
        return actor.api_key.tenant_id == tenant.pk and actor.api_key.has_scope("admin")
    if actor.user is None:
        return False
    return Membership.objects.filter(tenant=tenant, user=actor.user, role=Role.ADMIN).exists()


@transaction.atomic
def gate_override(*, actor: Actor, change: PinChange, reason: str) -> GateOverride:
    """Let an open pin change through the eval gate despite its results, with a written reason
    (admins only; audited with who, why, and the runs and problems overridden). It holds for the
    evidence it was made on: once a newer run on the candidate finishes, the gate judges that run
    and a refusal needs a new override. The change still needs an admin's approval."""
    from catalog.services import NotAllowedError
    from evals.selectors import gate_report

    if not _is_admin(actor, change.tenant):
        raise NotAllowedError("Only tenant admins can override the eval gate.")
    reason = (reason or "").strip()
    if len(reason) < 10:
        raise FieldError("reason", "write why the evals may be overridden (at least 10 characters).")
    # The change's row lock orders this after a decision in progress (pin_change_decide locks it).
    change = (
        PinChange.objects.select_for_update(of=("self",))
        .select_related("tenant", "to_model")
        .get(pk=change.pk, tenant=change.tenant)
    )
    if not change.is_open:
        raise ConflictError("The pin change is no longer open.")
    report = gate_report(change)
    if report.override_holds:
        raise ConflictError("The eval gate of this change was already overridden on the same evidence.")
    override = GateOverride.objects.create(
        tenant=change.tenant,
        pin_change=change,
        evidence=report.evidence,
        problems=report.problems,
        reason=reason,
        by=actor.user,
        by_label=actor.label[:200],
    )
    audit_record(
        tenant=change.tenant,
        actor=actor,
        action="eval_gate.override",
        target=change,
        after={
            "reason": reason,
            "by": actor.label[:200],
            "alias": change.alias,
            "model": str(change.to_model_id),
            "problems": report.problems,
            "runs": {s.suite.name: str(s.run.pk) if s.run else None for s in report.suites},
        },
    )
    return override


@transaction.atomic
def review_create(
    *,
    actor: Actor,
    tenant: Tenant,
    score: int,
    comment: str = "",
    result: EvalResult | None = None,
    run: Run | None = None,
) -> Review:
    """A reviewer's 1-5 score, with a comment, of an eval result's output or a production run's."""
    if (result is None) == (run is None):
        raise ServiceError("Review either an eval result or a run.")
    target = result if result is not None else run
    assert target is not None
    if target.tenant_id != tenant.pk:
        raise FieldError("target", "no such output in this tenant.")
    if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 5:
        raise FieldError("score", "a whole number from 1 to 5.")
    review = Review.objects.create(
        tenant=tenant,
        result=result,
        run=run,
        score=score,
        comment=(comment or "").strip()[:5000],
        reviewer=actor.user,
        reviewer_label=actor.label[:200],
    )
    audit_record(tenant=tenant, actor=actor, action="eval_review.create", target=review, after={"score": score})
    return review


def pin_change_requested(change: PinChange) -> None:
    """catalog's request hook: start every gating suite of the agents on the changed alias on the
    candidate model, in the request's transaction (so they exist when anyone looks)."""
    from evals.selectors import gating_suites

    actor = Actor(user=change.requested_by, system="" if change.requested_by else "pin change request")
    for suite in gating_suites(tenant=change.tenant, alias=change.alias):
        if not Case.objects.for_tenant(change.tenant).filter(suite=suite).exists():
            continue
        try:
            eval_run_start(
                actor=actor, suite=suite, model=change.to_model, trigger=EvalRun.Trigger.PIN_CHANGE, pin_change=change
            )
        except ServiceError as exc:
            logger.warning("pin change %s: suite %s not started: %s", change.pk, suite.pk, exc.message)


# --- The sweep ----------------------------------------------------------------------------------------

STUCK_AFTER_SECONDS = 60


def eval_sweep(*, resend: Any) -> int:
    """Re-send cases whose task was lost (running for a minute with no agent run, or with an agent
    run that finished or whose lease expired), and dispatch every tenant with pending cases.
    `resend(tenant_id, result_id)` sends the case's task. Returns how many cases were re-sent."""
    now = timezone.now()
    # Across tenants on purpose: a system sweep. Each task re-fetches through its tenant.
    stuck = (
        EvalResult.objects.filter(
            status=EvalResult.Status.RUNNING, started_at__lt=now - timedelta(seconds=STUCK_AFTER_SECONDS)
        )
        .filter(
            Q(run__isnull=True)
            | Q(run__status__in=Run.FINAL_STATUSES)
            | Q(run__status=Run.Status.QUEUED)
            | Q(run__status=Run.Status.RUNNING, run__lease_expires_at__lt=now)
        )
        .values_list("tenant_id", "pk")[:500]
    )
    count = 0
    for tenant_id, result_id in stuck:
        logger.warning("eval result %s: its task was lost; re-sent", result_id)
        resend(str(tenant_id), str(result_id))
        count += 1
    pending = EvalResult.objects.filter(status=EvalResult.Status.PENDING).values_list("tenant_id", flat=True).distinct()
    for tenant in Tenant.objects.filter(pk__in=pending):
        eval_dispatch(tenant=tenant)
    return count
