"""Reads of evals: suites, runs and results, the baseline and the case-by-case comparison with
it, the pin-change gate's verdict, quality over time and the review queue."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Avg, Count, Q, QuerySet
from django.db.models.functions import TruncDay
from django.utils import timezone

from agents.models import Run
from catalog.models import PinChange
from catalog.selectors import PinNotFoundError, pinned_model
from evals.models import Case, EvalResult, EvalRun, GateOverride, OnlineScore, QualityAlert, Review, Suite
from tenants.models import Tenant
from tenants.selectors import get_for_tenant


def suites_of(*, tenant: Tenant) -> QuerySet[Suite]:
    return (
        Suite.objects.for_tenant(tenant)
        .select_related("agent", "baseline")
        .annotate(case_count=Count("cases", distinct=True))
        .order_by("name")
    )


def get_suite_for_tenant(tenant: Tenant, pk: Any) -> Suite:
    return get_for_tenant(Suite.objects.select_related("tenant", "agent", "baseline"), tenant, pk=pk)


def find_suite(*, tenant: Tenant, ref: str) -> Suite | None:
    """A suite by id or exact name."""
    suites = Suite.objects.for_tenant(tenant).select_related("tenant", "agent")
    try:
        found = suites.filter(pk=ref).first()
    except (ValueError, ValidationError):  # a malformed id is simply not an id
        found = None
    return found or suites.filter(name=ref).first()


def cases_of(*, suite: Suite) -> QuerySet[Case]:
    return Case.objects.for_tenant(suite.tenant).filter(suite=suite).order_by("created_at", "id")


def get_case_for_tenant(tenant: Tenant, pk: Any) -> Case:
    return get_for_tenant(Case.objects.select_related("tenant", "suite"), tenant, pk=pk)


def eval_runs_of(*, tenant: Tenant, suite: Suite | None = None) -> QuerySet[EvalRun]:
    runs = EvalRun.objects.for_tenant(tenant).select_related("suite", "model", "agent_version")
    if suite is not None:
        runs = runs.filter(suite=suite)
    return runs.order_by("-created_at")


def get_eval_run_for_tenant(tenant: Tenant, pk: Any) -> EvalRun:
    return get_for_tenant(
        EvalRun.objects.select_related("tenant", "suite__agent", "model", "agent_version", "pin_change"), tenant, pk=pk
    )


def results_of(*, eval_run: EvalRun) -> QuerySet[EvalResult]:
    return EvalResult.objects.for_tenant(eval_run.tenant).filter(eval_run=eval_run).order_by("position")


def get_result_for_tenant(tenant: Tenant, pk: Any) -> EvalResult:
    return get_for_tenant(EvalResult.objects.select_related("tenant", "eval_run__suite"), tenant, pk=pk)


def current_model_id(suite: Suite) -> Any:
    """The pk of the model the suite's agent's alias is pinned to now, or None."""
    version = suite.agent.current_version
    if version is None:
        return None
    try:
        return pinned_model(tenant=suite.tenant, alias=version.model_alias).pk
    except PinNotFoundError:
        return None


def baseline_for(suite: Suite) -> EvalRun | None:
    """The last accepted run on the current pin: the suite's baseline if it ran on the model the
    agent's alias is pinned to now, else the latest accepted run on that model, else None."""
    model_id = current_model_id(suite)
    if model_id is None:
        return None
    if suite.baseline_id is not None:
        baseline = EvalRun.objects.for_tenant(suite.tenant).filter(pk=suite.baseline_id).first()
        if baseline is not None and baseline.model_id == model_id:
            return baseline
    return (
        EvalRun.objects.for_tenant(suite.tenant)
        .filter(suite=suite, accepted=True, model_id=model_id, status=EvalRun.Status.SUCCEEDED)
        .order_by("-finished_at")
        .first()
    )


# --- Comparison ---------------------------------------------------------------------------------------


@dataclass
class CaseComparison:
    label: str
    critical: bool
    before: EvalResult | None
    now: EvalResult | None

    @property
    def regression(self) -> bool:
        return (
            self.before is not None
            and self.before.passed
            and self.now is not None
            and self.now.is_finished
            and not (self.now.passed or self.now.status == EvalResult.Status.SKIPPED)
        )

    @property
    def fix(self) -> bool:
        return self.before is not None and not self.before.passed and self.now is not None and self.now.passed

    @property
    def score_delta(self) -> float | None:
        if self.before is None or self.now is None or self.before.judge_score is None or self.now.judge_score is None:
            return None
        return self.now.judge_score - self.before.judge_score

    @property
    def cost_delta(self) -> int | None:
        if self.before is None or self.now is None:
            return None
        return (self.now.cost_micros + self.now.judge_cost_micros) - (
            self.before.cost_micros + self.before.judge_cost_micros
        )

    @property
    def latency_delta(self) -> int | None:
        if self.before is None or self.now is None or self.before.latency_ms is None or self.now.latency_ms is None:
            return None
        return self.now.latency_ms - self.before.latency_ms

    def as_dict(self) -> dict[str, Any]:
        return {
            "case": self.label,
            "critical": self.critical,
            "before": self.before.status if self.before else None,
            "now": self.now.status if self.now else None,
            "regression": self.regression,
            "fix": self.fix,
            "score_delta": self.score_delta,
            "cost_delta_micros": self.cost_delta,
            "latency_delta_ms": self.latency_delta,
            "output_before": self.before.output if self.before else None,
            "output_now": self.now.output if self.now else None,
        }


@dataclass
class Comparison:
    run: EvalRun
    baseline: EvalRun | None
    cases: list[CaseComparison] = field(default_factory=list)

    @property
    def regressions(self) -> list[CaseComparison]:
        return [c for c in self.cases if c.regression]

    @property
    def critical_regressions(self) -> list[CaseComparison]:
        return [c for c in self.cases if c.regression and c.critical]

    @property
    def fixes(self) -> list[CaseComparison]:
        return [c for c in self.cases if c.fix]

    @property
    def pass_rate_delta(self) -> float | None:
        if self.baseline is None or self.baseline.pass_rate is None or self.run.pass_rate is None:
            return None
        return self.run.pass_rate - self.baseline.pass_rate

    @property
    def score_delta(self) -> float | None:
        if self.baseline is None or self.baseline.mean_score is None or self.run.mean_score is None:
            return None
        return self.run.mean_score - self.baseline.mean_score

    @property
    def cost_delta(self) -> int | None:
        return None if self.baseline is None else self.run.spent_micros - self.baseline.spent_micros

    def as_dict(self) -> dict[str, Any]:
        return {
            "baseline": str(self.baseline.pk) if self.baseline else None,
            "pass_rate_delta": self.pass_rate_delta,
            "score_delta": self.score_delta,
            "cost_delta_micros": self.cost_delta,
            "regressions": len(self.regressions),
            "critical_regressions": len(self.critical_regressions),
            "fixes": len(self.fixes),
            "cases": [c.as_dict() for c in self.cases],
        }


def compare(run: EvalRun, baseline: EvalRun | None) -> Comparison:
    """`run` case by case against `baseline` (matched by case, else by input). Two queries."""
    comparison = Comparison(run=run, baseline=baseline)
    now = list(results_of(eval_run=run))
    before = list(results_of(eval_run=baseline)) if baseline is not None and baseline.pk != run.pk else []

    def key(result: EvalResult) -> str:
        return str(result.case_id or "") or f"input:{result.case_snapshot.get('input', '')}"

    previous = {key(r): r for r in before}
    by_input = {f"input:{r.case_snapshot.get('input', '')}": r for r in before}
    for result in now:
        match = previous.pop(key(result), None) or by_input.get(f"input:{result.case_snapshot.get('input', '')}")
        comparison.cases.append(CaseComparison(label=result.label, critical=result.critical, before=match, now=result))
    return comparison


# --- The pin-change gate ------------------------------------------------------------------------------


def gating_suites(*, tenant: Tenant, alias: str) -> list[Suite]:
    """Suites that gate a change of `alias`: those of live agents whose current version uses it."""
    return list(
        Suite.objects.for_tenant(tenant)
        .filter(gates_pin_changes=True, agent__archived=False, agent__current_version__model_alias=alias)
        .select_related("tenant", "agent__current_version", "baseline")
        .order_by("name")
    )


@dataclass
class SuiteGate:
    suite: Suite
    run: EvalRun | None
    baseline: EvalRun | None
    comparison: Comparison | None
    problem: str  # "" when this suite lets the change through


@dataclass
class GateReport:
    change: PinChange
    suites: list[SuiteGate]
    override: GateOverride | None

    @property
    def problems(self) -> list[str]:
        return [s.problem for s in self.suites if s.problem]

    @property
    def passes(self) -> bool:
        return self.override is not None or not self.problems


def gate_report(change: PinChange) -> GateReport:
    """For each suite gating `change`: its latest run on the candidate, compared with the baseline,
    and what (if anything) refuses the change."""
    tenant = change.tenant
    override = GateOverride.objects.for_tenant(tenant).filter(pin_change=change).first()
    report = GateReport(change=change, suites=[], override=override)
    for suite in gating_suites(tenant=tenant, alias=change.alias):
        run = (
            EvalRun.objects.for_tenant(tenant)
            .filter(suite=suite, pin_change=change, model=change.to_model)
            .select_related("tenant", "model")
            .order_by("-created_at")
            .first()
        )
        baseline = baseline_for(suite)
        comparison = compare(run, baseline) if run is not None else None
        problem = _suite_problem(suite, run, baseline, comparison)
        report.suites.append(SuiteGate(suite=suite, run=run, baseline=baseline, comparison=comparison, problem=problem))
    return report


def _suite_problem(suite: Suite, run: EvalRun | None, baseline: EvalRun | None, comparison: Comparison | None) -> str:
    if baseline is None:
        # Nothing to regress from: a suite gates once it has a baseline on the current pin.
        return ""
    if run is None:
        if not Case.objects.for_tenant(suite.tenant).filter(suite=suite).exists():
            return ""
        return f"the suite {suite.name!r} has not run on the candidate model"
    if not run.is_finished:
        done = f"{run.completed_cases}/{run.total_cases} cases"
        return f"the suite {suite.name!r} is still running on the candidate ({done})"
    if run.status != EvalRun.Status.SUCCEEDED:
        return f"the suite {suite.name!r} ended {run.get_status_display().lower()} on the candidate"
    assert comparison is not None
    if comparison.critical_regressions:
        first = comparison.critical_regressions[0]
        return f"critical case {first.label!r} of {suite.name!r} regresses (passed on the baseline, fails now)"
    before, now = baseline.pass_rate, run.pass_rate
    if before is not None and now is not None and now < before - suite.tolerance - 1e-9:
        return (
            f"the pass rate of {suite.name!r} falls from {before:.0%} to {now:.0%}, "
            f"more than its tolerance of {suite.tolerance:.0%}"
        )
    return ""


# --- Quality over time, reviews ---------------------------------------------------------------------------


def quality_series(*, tenant: Tenant, days: int = 30) -> list[dict[str, Any]]:
    """Per agent and model, per day: the online pass rate and mean judge score (sampled production
    runs), for the quality chart. One query."""
    since = timezone.now() - timedelta(days=days)
    rows = (
        OnlineScore.objects.for_tenant(tenant)
        .filter(created_at__gte=since, score__isnull=False)
        .annotate(day=TruncDay("created_at"))
        .values("agent__name", "model_id", "day")
        .annotate(scored=Count("id"), passed=Count("id", filter=Q(passed=True)), mean=Avg("score"))
        .order_by("agent__name", "model_id", "day")
    )
    return [
        {
            "agent": row["agent__name"],
            "model": row["model_id"],
            "day": row["day"].date().isoformat(),
            "pass_rate": row["passed"] / row["scored"] if row["scored"] else None,
            "mean_score": row["mean"],
            "scored": row["scored"],
        }
        for row in rows
    ]


def quality_alerts(*, tenant: Tenant) -> QuerySet[QualityAlert]:
    return QualityAlert.objects.for_tenant(tenant).select_related("agent").order_by("-created_at")


def review_queue(*, tenant: Tenant, limit: int = 50) -> dict[str, list[Any]]:
    """What reviewers have not scored yet: failed or errored eval results, and recent finished
    production runs (not eval cases), newest first."""
    reviewed_results = Review.objects.for_tenant(tenant).filter(result__isnull=False).values("result_id")
    reviewed_runs = Review.objects.for_tenant(tenant).filter(run__isnull=False).values("run_id")
    results = list(
        EvalResult.objects.for_tenant(tenant)
        .filter(status__in=[EvalResult.Status.FAILED, EvalResult.Status.PASSED])
        .exclude(pk__in=reviewed_results)
        .select_related("eval_run__suite")
        .order_by("status", "-finished_at")[:limit]
    )
    runs = list(
        Run.objects.for_tenant(tenant)
        .filter(status__in=[Run.Status.SUCCEEDED, Run.Status.FAILED, Run.Status.BLOCKED])
        .exclude(metadata__has_key="eval_result")
        .exclude(pk__in=reviewed_runs)
        .select_related("agent")
        .order_by("-created_at")[:limit]
    )
    return {"results": results, "runs": runs}


def reviews_of(*, tenant: Tenant) -> QuerySet[Review]:
    return (
        Review.objects.for_tenant(tenant)
        .select_related("result__eval_run__suite", "run__agent")
        .order_by("-created_at")
    )
