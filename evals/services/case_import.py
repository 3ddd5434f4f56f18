"""Cases made from elsewhere: imported from JSON Lines (and exported as them), from a run or from
a trace, each audited."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from agents.models import Run
from evals.models import Case, Suite
from evals.services.suites import MAX_CASES, MAX_IMPORT_LINES, MAX_INPUT_CHARS, _case_state, _clean_case, case_create
from tenants.audit import Actor
from tenants.errors import ConflictError, FieldError
from tenants.services import audit_record


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
