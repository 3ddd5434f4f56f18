"""Reads of evals: suites, runs and results, the baseline and the case-by-case comparison with
it, the pin-change gate's verdict, quality over time and the review queue."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import django_filters
from django.core.exceptions import ValidationError
from django.db.models import Avg, Count, Q, QuerySet
from django.db.models.functions import TruncDay
from django.utils import timezone

from agents.models import Run
from catalog.models import PinChange
from catalog.selectors import PinNotFoundError, pinned_model
from evals.models import Case, EvalResult, EvalRun, GateOverride, OnlineScore, QualityAlert, Review, Suite
from tenants.filters import StrictFilterSet
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
    return get_for_tenant(Suite.objects.for_tenant(tenant).select_related("tenant", "agent", "baseline"), tenant, pk=pk)


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
    return get_for_tenant(Case.objects.for_tenant(tenant).select_related("tenant", "suite"), tenant, pk=pk)


def eval_runs_of(*, tenant: Tenant, suite: Suite | None = None) -> QuerySet[EvalRun]:
    runs = EvalRun.objects.for_tenant(tenant).select_related("suite", "model", "agent_version")
    if suite is not None:
        runs = runs.filter(suite=suite)
    return runs.order_by("-created_at")


def get_eval_run_for_tenant(tenant: Tenant, pk: Any) -> EvalRun:
    return get_for_tenant(
        EvalRun.objects.for_tenant(tenant).select_related(
            "tenant", "suite__agent", "model", "agent_version", "pin_change"
        ),
        tenant,
        pk=pk,
    )


def results_of(*, eval_run: EvalRun) -> QuerySet[EvalResult]:
    return EvalResult.objects.for_tenant(eval_run.tenant).filter(eval_run=eval_run).order_by("position")


def get_result_for_tenant(tenant: Tenant, pk: Any) -> EvalResult:
    return get_for_tenant(
        EvalResult.objects.for_tenant(tenant).select_related("tenant", "eval_run__suite"), tenant, pk=pk
    )


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


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def tool_result_changes(before: EvalResult | None, now: EvalResult | None) -> list[dict[str, Any]]:
    """The tool calls `now` made with the same tool and arguments as a call of `before`, whose
    result differed: {"tool", "arguments", "before", "now"} each. A difference says the data the
    tools answered from differed between the runs (a live read, other fixtures), not the model."""
    if before is None or now is None:
        return []
    earlier: dict[tuple[str, str], list[Any]] = {}
    for call in before.tool_calls or []:
        earlier.setdefault((call.get("name", ""), _canonical(call.get("arguments"))), []).append(call.get("result"))
    changes = []
    for call in now.tool_calls or []:
        key = (call.get("name", ""), _canonical(call.get("arguments")))
        if key not in earlier:
            continue
        results = earlier[key]
        if all(_canonical(r) != _canonical(call.get("result")) for r in results):
            changes.append(
                {"tool": key[0], "arguments": call.get("arguments"), "before": results[0], "now": call.get("result")}
            )
    return changes


@dataclass
class CaseComparison:
    label: str
    critical: bool
    before: EvalResult | None
    now: EvalResult | None
    # Same calls, other results than the baseline's (tool_result_changes).
    tool_changes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def got_worse(self) -> bool:
        """Passed on the baseline, fails (or errs) now."""
        return (
            self.before is not None
            and self.before.passed
            and self.now is not None
            and self.now.is_finished
            and not (self.now.passed or self.now.status == EvalResult.Status.SKIPPED)
        )

    @property
    def regression(self) -> bool:
        """Got worse with the tools answering as they did for the baseline: the model's doing."""
        return self.got_worse and not self.tool_changes

    @property
    def data_changed(self) -> bool:
        """Got worse, but a tool answered otherwise than for the baseline: not the model's regression."""
        return self.got_worse and bool(self.tool_changes)

    @property
    def tool_change_summary(self) -> str:
        """One line per changed result: "lookup_order {"order_number": "A-1002"}: was …, now …"."""
        return "\n".join(
            f"{c['tool']} {_canonical(c['arguments'])}: was {_canonical(c['before'])[:300]}, "
            f"now {_canonical(c['now'])[:300]}"
            for c in self.tool_changes
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
            "data_changed": self.data_changed,
            "tool_result_changes": self.tool_changes,
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
    def data_changes(self) -> list[CaseComparison]:
        """Cases that got worse while a tool answered otherwise than for the baseline."""
        return [c for c in self.cases if c.data_changed]

    @property
    def comparable_pass_rates(self) -> tuple[float | None, float | None]:
        """The baseline's and this run's pass rates, over the cases whose tools answered alike when
        any did not (those say nothing about the model), else the runs' own pass rates."""
        if self.baseline is None:
            return None, self.run.pass_rate
        if not any(c.tool_changes for c in self.cases):
            return self.baseline.pass_rate, self.run.pass_rate
        alike = [
            c
            for c in self.cases
            if not c.tool_changes
            and c.before is not None
            and c.now is not None
            and c.before.status != EvalResult.Status.SKIPPED
            and c.now.status != EvalResult.Status.SKIPPED
        ]
        if not alike:
            return None, None
        return sum(c.before.passed for c in alike) / len(alike), sum(c.now.passed for c in alike) / len(alike)  # type: ignore[union-attr]

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
            "data_changes": len(self.data_changes),
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
        comparison.cases.append(
            CaseComparison(
                label=result.label,
                critical=result.critical,
                before=match,
                now=result,
                tool_changes=tool_result_changes(match, result),
            )
        )
    return comparison


# --- The pin-change gate ------------------------------------------------------------------------------


def _gating(tenant: Tenant) -> QuerySet[Suite]:
    """Suites that gate pin changes: those of live agents (of the alias their current version uses)."""
    return Suite.objects.for_tenant(tenant).filter(gates_pin_changes=True, agent__archived=False)


def gating_suites(*, tenant: Tenant, alias: str) -> list[Suite]:
    """Suites that gate a change of `alias`: those of live agents whose current version uses it."""
    return list(
        _gating(tenant)
        .filter(agent__current_version__model_alias=alias)
        .select_related("tenant", "agent__current_version", "baseline")
        .order_by("name")
    )


def gated_aliases(*, tenant: Tenant) -> set[str]:
    """The aliases a change of which some suite gates (one query)."""
    return set(_gating(tenant).values_list("agent__current_version__model_alias", flat=True))


@dataclass
class SuiteGate:
    suite: Suite
    # The run the gate judges: the newest complete (succeeded) run on the candidate, else the newest
    # finished one, else the newest still going; None when the suite has not run on the candidate.
    run: EvalRun | None
    baseline: EvalRun | None
    comparison: Comparison | None
    problem: str  # "" when this suite lets the change through
    # What happened on the candidate since the judged run: newer runs that did not complete, or
    # are still going. Each is said on the page; one that regresses or is still going refuses.
    newer: list[EvalRun] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # The newest finished run on the candidate, whatever its status: what the evidence is as of.
    latest: EvalRun | None = None


@dataclass
class GateReport:
    change: PinChange
    suites: list[SuiteGate]
    # The newest override of the change, whether or not it still holds.
    override: GateOverride | None

    @property
    def evidence(self) -> dict[str, Any]:
        """What the gate judges, per suite: the newest finished run on the candidate and the
        baseline. An override holds for this evidence only."""
        return {
            str(s.suite.pk): {
                "run": str(s.latest.pk) if s.latest else None,
                "baseline": str(s.baseline.pk) if s.baseline else None,
            }
            for s in self.suites
        }

    @property
    def override_holds(self) -> bool:
        return self.override is not None and self.override.evidence == self.evidence

    @property
    def stale_override(self) -> GateOverride | None:
        """An override made on older evidence (a newer run finished since): it no longer counts."""
        return self.override if self.override is not None and not self.override_holds else None

    @property
    def problems(self) -> list[str]:
        return [s.problem for s in self.suites if s.problem]

    @property
    def passes(self) -> bool:
        return self.override_holds or not self.problems


# Newer runs than the judged one looked at per suite (each is compared with the baseline).
NEWER_RUNS_SHOWN = 5


def _when(run: EvalRun) -> str:
    moment = run.finished_at or run.created_at
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S")


def gate_report(change: PinChange) -> GateReport:
    """For each suite gating `change`: the newest complete run on the candidate model (any trigger:
    a run started from the console after the change's own counts as much), compared with the
    baseline; newer runs that failed, stopped or are still going; and what refuses the change.
    About five queries per suite."""
    tenant = change.tenant
    override = (
        GateOverride.objects.for_tenant(tenant).filter(pin_change=change).order_by("-created_at").first()
        if change.pk
        else None
    )
    report = GateReport(change=change, suites=[], override=override)
    for suite in gating_suites(tenant=tenant, alias=change.alias):
        report.suites.append(_suite_gate(suite, change))
    return report


def _suite_gate(suite: Suite, change: PinChange) -> SuiteGate:
    tenant = suite.tenant
    runs = (
        EvalRun.objects.for_tenant(tenant)
        .filter(suite=suite, model=change.to_model, agent_version_id=suite.agent.current_version_id)
        .select_related("tenant", "model")
    )
    complete = runs.filter(status=EvalRun.Status.SUCCEEDED).order_by("-finished_at", "-created_at").first()
    incomplete = runs.filter(status__in=EvalRun.FINAL_STATUSES).exclude(status=EvalRun.Status.SUCCEEDED)
    if complete is not None:
        incomplete = incomplete.filter(finished_at__gt=complete.finished_at)
    newer_finished = list(incomplete.order_by("-finished_at")[:NEWER_RUNS_SHOWN])
    judged: EvalRun | None = complete
    if judged is None and newer_finished:
        # No run completed: the newest that finished at all is judged; older ones say nothing new.
        judged, newer_finished = newer_finished[0], []
    going_runs = runs.exclude(status__in=EvalRun.FINAL_STATUSES)
    if judged is not None:
        going_runs = going_runs.filter(created_at__gt=judged.created_at)
    going = list(going_runs.order_by("-created_at")[:NEWER_RUNS_SHOWN])
    if judged is None and going:
        judged, going = going[0], going[1:]
    latest = newer_finished[0] if newer_finished else (judged if judged is not None and judged.is_finished else None)
    baseline = baseline_for(suite)
    comparison = compare(judged, baseline) if judged is not None else None
    gate = SuiteGate(
        suite=suite,
        run=judged,
        baseline=baseline,
        comparison=comparison,
        problem="",
        newer=[*going, *newer_finished],
        latest=latest,
    )
    gate.problem = _suite_problem(gate)
    for run in newer_finished:
        gate.notes.append(
            f"A newer run on the candidate ({_when(run)}) ended {run.get_status_display().lower()}"
            + (f": {run.error_message[:200]}" if run.error_message else "")
            + f" ({run.passed_cases}/{run.total_cases} cases passed)."
        )
    for run in going:
        gate.notes.append(
            f"A newer run on the candidate is still going ({run.completed_cases}/{run.total_cases} cases)."
        )
    return gate


def _suite_problem(gate: SuiteGate) -> str:
    suite, run, baseline, comparison = gate.suite, gate.run, gate.baseline, gate.comparison
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
    # Evidence newer than the judged run counts first: a newer run's critical regression refuses
    # even though that run did not complete, and a run still going is waited for.
    for newer in gate.newer:
        if newer.is_finished:
            later = compare(newer, baseline)
            if later.critical_regressions:
                first = later.critical_regressions[0]
                return (
                    f"critical case {first.label!r} of {suite.name!r} regresses in the newest run on the candidate "
                    f"({_when(newer)}, {newer.get_status_display().lower()})"
                )
    if any(not r.is_finished for r in gate.newer):
        going = next(r for r in gate.newer if not r.is_finished)
        return (
            f"a newer run of {suite.name!r} on the candidate is still going "
            f"({going.completed_cases}/{going.total_cases} cases)"
        )
    if comparison.critical_regressions:
        first = comparison.critical_regressions[0]
        return (
            f"critical case {first.label!r} of {suite.name!r} regresses (passed on the baseline, fails in the "
            f"newest complete run on the candidate, {_when(run)})"
        )
    critical_changed = [c for c in comparison.data_changes if c.critical]
    if critical_changed:
        first = critical_changed[0]
        return (
            f"critical case {first.label!r} of {suite.name!r} cannot be compared: it fails now, but its tools "
            f"answered otherwise than for the baseline (the data changed, not necessarily the model)"
        )
    before, now = comparison.comparable_pass_rates
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


class EvalRunFilterSet(StrictFilterSet):
    """The eval runs list's filters: `suite` (its id), `status`."""

    suite = django_filters.UUIDFilter(field_name="suite_id")
    status = django_filters.ChoiceFilter(choices=EvalRun.Status.choices)

    class Meta:
        model = EvalRun
        fields: list[str] = []
