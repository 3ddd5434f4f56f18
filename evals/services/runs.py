"""Eval runs: start (one pending result per case, then dispatch after commit), cancel, accept as
the suite's baseline."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from agents import services as agent_services
from agents.models import Agent, AgentVersion, Run
from catalog.models import LanguageModel, PinChange
from catalog.selectors import PinNotFoundError, pinned_model
from evals import events, sandbox
from evals.models import Case, EvalResult, EvalRun, Suite
from evals.services.execution import _finish_if_done, _skip_pending
from evals.services.suites import _case_state
from tenants import queue
from tenants.audit import Actor
from tenants.errors import ConflictError, FieldError
from tenants.services import audit_record

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
        Agent.objects.for_tenant(tenant)
        .select_for_update(of=("self",))
        .select_related("current_version")
        .get(pk=suite.agent_id)
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
