"""The pin-change gate's written override, reviews of results, and the suites a requested pin
change starts on its candidate."""

from __future__ import annotations

import logging

from django.db import transaction

from agents.models import Run
from catalog.models import PinChange
from evals.models import Case, EvalResult, EvalRun, GateOverride, Review
from evals.services.runs import eval_run_start
from tenants.audit import Actor
from tenants.errors import ConflictError, FieldError, ServiceError
from tenants.models import Membership, Role, Tenant
from tenants.services import audit_record

logger = logging.getLogger(__name__)


# --- The pin-change gate's override, reviews ------------------------------------------------------------


def _is_admin(actor: Actor, tenant: Tenant) -> bool:
    if actor.api_key is not None:
        return actor.api_key.tenant_id == tenant.pk and actor.api_key.has_scope("admin")
    if actor.user is None:
        return False
    return Membership.objects.for_tenant(tenant).filter(user=actor.user, role=Role.ADMIN).exists()


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
        PinChange.objects.for_tenant(change.tenant)
        .select_for_update(of=("self",))
        .select_related("tenant", "to_model")
        .get(pk=change.pk)
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
