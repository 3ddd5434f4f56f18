"""Executing an eval run case by case: the per-tenant dispatch, each case's agent run, its scoring
(assertions and judge), the run's totals when its last case finishes, and beat's sweep of lost
cases."""

from __future__ import annotations

import logging
import math
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from agents.models import Run, Step
from catalog.clients import ChatClient
from evals import assertions as checks
from evals import events, hooks, judge
from evals.models import EvalResult, EvalRun, Suite
from tenants import queue
from tenants.models import Tenant

logger = logging.getLogger(__name__)


def concurrency_per_tenant() -> int:
    return max(1, int(getattr(settings, "EVAL_CONCURRENCY_PER_TENANT", 4)))


def _skip_pending(eval_run: EvalRun, why: str) -> int:
    skipped = (
        EvalResult.objects.for_tenant(eval_run.tenant)
        .filter(eval_run=eval_run, status=EvalResult.Status.PENDING)
        .update(status=EvalResult.Status.SKIPPED, error=why, finished_at=timezone.now())
    )
    return skipped


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
    elif (
        eval_run.budget_exhausted
        or EvalRun.objects.for_tenant(eval_run.tenant).filter(pk=eval_run.pk, budget_exhausted=True).exists()
    ):
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


# --- The sweep ----------------------------------------------------------------------------------------

STUCK_AFTER_SECONDS = 60


def eval_sweep(*, resend: Any) -> int:
    """Re-send cases whose task was lost (running for a minute with no agent run, or with an agent
    run that finished or whose lease expired), and dispatch every tenant with pending cases.
    `resend(tenant_id, result_id)` sends the case's task. Returns how many cases were re-sent."""
    now = timezone.now()
    # Each task re-fetches through its tenant.
    stuck = (
        EvalResult.objects.across_tenants("beat's sweep of lost cases")
        .filter(status=EvalResult.Status.RUNNING, started_at__lt=now - timedelta(seconds=STUCK_AFTER_SECONDS))
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
    pending = (
        EvalResult.objects.across_tenants("beat's sweep: the tenants with pending cases")
        .filter(status=EvalResult.Status.PENDING)
        .values_list("tenant_id", flat=True)
        .distinct()
    )
    for tenant in Tenant.objects.filter(pk__in=pending):
        eval_dispatch(tenant=tenant)
    return count
