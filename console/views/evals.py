"""Evals in the console: suites with their case editor (assertions validated by the service), eval
runs with live progress and the comparison with the baseline, quality over time (online evals
and their alerts), the review queue, and the eval gate's override on a pin change. Every member
reads; reviewers start and cancel runs and review outputs; admins change suites, cases, baselines
and online evals, and override the gate."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from agents.models import Run
from catalog.models import LanguageModel, PinChange
from console import live
from console.access import ConsoleRequest, render_page, role_required
from console.forms import act, done, submit
from console.forms.evals import CaseForm, OnlineEvalForm, SuiteForm
from evals import online, selectors, services
from evals.models import EvalRun, OnlineEval, Suite
from tenants.audit import Actor
from tenants.errors import FieldError, ServiceError
from tenants.models import Membership, Role, Tenant
from tenants.selectors import get_for_tenant


def usd(micros: int | None) -> str:
    return f"{(micros or 0) / 1_000_000:.6f}"


# --- Suites -------------------------------------------------------------------------------------------


def _suite_url(request: ConsoleRequest, pk: Any) -> str:
    return reverse("console:eval_suite", kwargs={"tenant_slug": request.tenant.slug, "pk": pk})


@role_required(Role.VIEWER)
@require_http_methods(["GET", "POST"])
def evals(request: ConsoleRequest) -> HttpResponse:
    """Suites (admins create them here), quality over time and its alerts, online evals."""
    is_admin = request.membership.has_role(Role.ADMIN)
    form = SuiteForm(request.POST if request.method == "POST" else None, tenant=request.tenant)
    status = 200
    if request.method == "POST":
        if not is_admin:
            return HttpResponse("Only admins create suites.", status=403)
        submitted = submit(
            form,
            lambda _: services.suite_create(actor=Actor.from_request(request), tenant=request.tenant, **form.values()),
        )
        if (suite := submitted.value) is not None:
            return done(request, f"Suite {suite.name} was created; add its cases.", to=_suite_url(request, suite.pk))
        status = submitted.status
    suites = list(selectors.suites_of(tenant=request.tenant))
    latest: dict[Any, EvalRun] = {}
    for run in selectors.eval_runs_of(tenant=request.tenant).filter(suite__in=suites):
        latest.setdefault(run.suite_id, run)
    rows = [{"suite": s, "latest": latest.get(s.pk)} for s in suites]
    context = {
        "rows": rows,
        "form": form,
        "is_admin": is_admin,
        "online_form": OnlineEvalForm(tenant=request.tenant),
        "online_evals": OnlineEval.objects.for_tenant(request.tenant).select_related("agent").order_by("agent__name"),
        "alerts": selectors.quality_alerts(tenant=request.tenant)[:20],
        "chart": selectors.quality_series(tenant=request.tenant),
    }
    return render_page(request, "evals/index.html", context, status=status)


@role_required(Role.ADMIN)
@require_POST
def eval_online(request: ConsoleRequest) -> HttpResponse:
    form = OnlineEvalForm(request.POST, tenant=request.tenant)
    if not form.is_valid():
        messages.error(request, "; ".join(f"{k}: {' '.join(str(e) for e in v)}" for k, v in form.errors.items()))
        return redirect("console:evals", tenant_slug=request.tenant.slug)
    act(
        request,
        lambda: online.online_eval_configure(
            actor=Actor.from_request(request), tenant=request.tenant, **form.cleaned_data
        ),
        success=f"Online eval of {form.cleaned_data['agent'].name} saved.",
    )
    return redirect("console:evals", tenant_slug=request.tenant.slug)


def _suite_context(request: ConsoleRequest, suite: Suite, **extra: Any) -> dict[str, Any]:
    models = LanguageModel.objects.for_tenant(request.tenant).select_related("provider").order_by("model_id")
    return {
        "suite": suite,
        "cases": list(selectors.cases_of(suite=suite)),
        "runs": list(selectors.eval_runs_of(tenant=request.tenant, suite=suite)[:20]),
        "baseline": selectors.baseline_for(suite),
        "budget_usd": usd(suite.run_budget_micros),
        "models": [m for m in models if m.is_priced],
        "is_admin": request.membership.has_role(Role.ADMIN),
        "can_run": request.membership.has_role(Role.REVIEWER),
        "case_form": extra.pop("case_form", None) or CaseForm(initial={"approval": "approve"}),
        "suite_form": extra.pop("suite_form", None)
        or SuiteForm(
            initial={
                "name": suite.name,
                "agent": suite.agent_id,
                "description": suite.description,
                "tags": ", ".join(suite.tags),
                "tolerance": suite.tolerance,
                "gates_pin_changes": suite.gates_pin_changes,
                "run_budget_usd": suite.run_budget_micros / 1_000_000,
                "fixtures": json.dumps(suite.fixtures, indent=2) if suite.fixtures else "",
            },
            tenant=request.tenant,
        ),
        **extra,
    }


@role_required(Role.VIEWER)
@require_http_methods(["GET", "POST"])
def eval_suite(request: ConsoleRequest, pk: str) -> HttpResponse:
    """A suite: its cases (admins add them here), its runs, settings (admins), start a run."""
    suite = selectors.get_suite_for_tenant(request.tenant, pk)
    if request.method == "GET":
        return render_page(request, "evals/suite.html", _suite_context(request, suite))
    if not request.membership.has_role(Role.ADMIN):
        return HttpResponse("Only admins change suites.", status=403)
    if request.POST.get("form") == "settings":
        suite_form = SuiteForm(request.POST, tenant=request.tenant)
        saved = submit(
            suite_form,
            lambda _: services.suite_update(actor=Actor.from_request(request), suite=suite, **suite_form.values()),
        )
        if saved.ok:
            return done(request, "Suite saved.", to=_suite_url(request, suite.pk))
        return render_page(
            request, "evals/suite.html", _suite_context(request, suite, suite_form=suite_form), status=saved.status
        )
    case_form = CaseForm(request.POST)
    added = submit(
        case_form, lambda _: services.case_create(actor=Actor.from_request(request), suite=suite, **case_form.values())
    )
    if added.ok:
        return done(request, "Case added.", to=_suite_url(request, suite.pk))
    return render_page(
        request, "evals/suite.html", _suite_context(request, suite, case_form=case_form), status=added.status
    )


@role_required(Role.ADMIN)
@require_POST
def eval_suite_import(request: ConsoleRequest, pk: str) -> HttpResponse:
    suite = selectors.get_suite_for_tenant(request.tenant, pk)
    upload = request.FILES.get("file")
    text = upload.read().decode("utf-8", errors="replace") if upload else request.POST.get("jsonl", "")
    try:
        cases = services.cases_import(actor=Actor.from_request(request), suite=suite, text=text)
    except ServiceError as exc:
        messages.error(request, f"Nothing was imported: {getattr(exc, 'detail', exc.message)}")
    else:
        messages.success(request, f"{len(cases)} cases imported.")
    return redirect("console:eval_suite", tenant_slug=request.tenant.slug, pk=suite.pk)


@role_required(Role.REVIEWER)
@require_POST
def eval_suite_run(request: ConsoleRequest, pk: str) -> HttpResponse:
    """Start a run of every case, on the pinned model or the one chosen."""
    suite = selectors.get_suite_for_tenant(request.tenant, pk)
    model = None
    if ref := request.POST.get("model", "").strip():
        model = get_for_tenant(
            LanguageModel.objects.for_tenant(request.tenant).select_related("provider"), request.tenant, pk=ref
        )
    started = act(
        request,
        lambda: services.eval_run_start(
            actor=Actor.from_request(request), suite=suite, model=model, trigger=EvalRun.Trigger.CONSOLE
        ),
    )
    if (eval_run := started.value) is None:
        return redirect("console:eval_suite", tenant_slug=request.tenant.slug, pk=suite.pk)
    return redirect("console:eval_run", tenant_slug=request.tenant.slug, pk=eval_run.pk)


@role_required(Role.VIEWER)
@require_http_methods(["GET", "POST"])
def eval_case(request: ConsoleRequest, pk: str) -> HttpResponse:
    """One case's editor (admins save; the assertions are validated and a bad one is named)."""
    case = selectors.get_case_for_tenant(request.tenant, pk)
    is_admin = request.membership.has_role(Role.ADMIN)
    status = 200
    if request.method == "POST":
        if not is_admin:
            return HttpResponse("Only admins edit cases.", status=403)
        form = CaseForm(request.POST)
        submitted = submit(
            form, lambda _: services.case_update(actor=Actor.from_request(request), case=case, **form.values())
        )
        if submitted.ok:
            return done(request, "Case saved.", to=_suite_url(request, case.suite_id))
        status = submitted.status
    else:
        form = CaseForm(initial=CaseForm.initial_for(case))
    return render_page(request, "evals/case.html", {"case": case, "form": form, "is_admin": is_admin}, status=status)


@role_required(Role.ADMIN)
@require_POST
def eval_case_delete(request: ConsoleRequest, pk: str) -> HttpResponse:
    case = selectors.get_case_for_tenant(request.tenant, pk)
    services.case_delete(actor=Actor.from_request(request), case=case)
    messages.success(request, "Case deleted.")
    return redirect("console:eval_suite", tenant_slug=request.tenant.slug, pk=case.suite_id)


# --- Runs ---------------------------------------------------------------------------------------------


def eval_run_context(eval_run: EvalRun, membership: Membership) -> dict[str, Any]:
    """What the run page (and its live fragment) shows."""
    baseline = selectors.baseline_for(eval_run.suite)
    comparison = selectors.compare(eval_run, baseline if baseline and baseline.pk != eval_run.pk else None)
    deltas = {
        "pass_rate": f"{comparison.pass_rate_delta * 100:+.0f} points"
        if comparison.pass_rate_delta is not None
        else "",
        "score": f"{comparison.score_delta:+.2f}" if comparison.score_delta is not None else "",
        "cost": f"{comparison.cost_delta / 1_000_000:+.6f} USD" if comparison.cost_delta is not None else "",
    }
    return {
        "eval_run": eval_run,
        "comparison": comparison,
        "deltas": deltas,
        "baseline": comparison.baseline,
        "spent_usd": usd(eval_run.spent_micros),
        "budget_usd": usd(eval_run.budget_micros),
        "can_cancel": membership.has_role(Role.REVIEWER) and not eval_run.is_finished,
        "can_accept": membership.has_role(Role.ADMIN)
        and eval_run.status == EvalRun.Status.SUCCEEDED
        and (baseline is None or baseline.pk != eval_run.pk),
    }


@role_required(Role.VIEWER)
def eval_run(request: ConsoleRequest, pk: str) -> HttpResponse:
    """An eval run: progress (live), totals, each case's verdicts, and the comparison with the baseline."""
    run = selectors.get_eval_run_for_tenant(request.tenant, pk)
    context = {**eval_run_context(run, request.membership), "live_query": f"page=eval_run&eval_run={run.pk}"}
    return render_page(request, "evals/run.html", context, fragment="eval_run_live")


@role_required(Role.REVIEWER)
@require_POST
def eval_run_cancel(request: ConsoleRequest, pk: str) -> HttpResponse:
    run = selectors.get_eval_run_for_tenant(request.tenant, pk)
    act(request, lambda: services.eval_run_cancel(actor=Actor.from_request(request), eval_run=run))
    return redirect("console:eval_run", tenant_slug=request.tenant.slug, pk=run.pk)


@role_required(Role.ADMIN)
@require_POST
def eval_run_accept(request: ConsoleRequest, pk: str) -> HttpResponse:
    run = selectors.get_eval_run_for_tenant(request.tenant, pk)
    act(
        request,
        lambda: services.eval_run_accept(actor=Actor.from_request(request), eval_run=run),
        success="This run is now the suite's baseline.",
    )
    return redirect("console:eval_run", tenant_slug=request.tenant.slug, pk=run.pk)


@live.page
class LiveEvalRun(live.LivePage):
    """An eval run's page: progress, totals and results redrawn as each case finishes."""

    name = "eval_run"
    events = frozenset({"eval_run.changed"})

    def render(self, membership: Membership, event: dict[str, Any]) -> str:
        if str(event.get("eval_run_id")) != self.params.get("eval_run"):
            return ""
        try:
            run = selectors.get_eval_run_for_tenant(self.tenant, self.params.get("eval_run", ""))
        except Http404:
            return ""
        context = {**eval_run_context(run, membership), "tenant": self.tenant, "live": True}
        return render_to_string("evals/run.html#eval_run_live", context)


@live.everywhere("evals.quality_alert")
def quality_alert_banner(tenant: Tenant, membership: Membership, event: dict[str, Any]) -> str:
    """A banner on every page of the tenant when an agent's online pass rate drops (like a budget alert)."""
    return render_to_string("evals/_quality_alert_banner.html", {"tenant": tenant, "alert": event})


# --- Reviews ------------------------------------------------------------------------------------------


@role_required(Role.REVIEWER)
@require_http_methods(["GET", "POST"])
def eval_reviews(request: ConsoleRequest) -> HttpResponse:
    """The review queue: score outputs 1-5 with a comment; turn a production run into a case."""
    if request.method == "POST":
        result = run = None
        try:
            score = int(request.POST.get("score", ""))
        except ValueError:
            score = 0
        if request.POST.get("result"):
            result = selectors.get_result_for_tenant(request.tenant, request.POST["result"])
        elif request.POST.get("run"):
            run = get_for_tenant(Run.objects.for_tenant(request.tenant), request.tenant, pk=request.POST["run"])
        act(
            request,
            lambda: services.review_create(
                actor=Actor.from_request(request),
                tenant=request.tenant,
                score=score,
                comment=request.POST.get("comment", ""),
                result=result,
                run=run,
            ),
            success="Review saved.",
        )
        return redirect("console:eval_reviews", tenant_slug=request.tenant.slug)
    queue = selectors.review_queue(tenant=request.tenant, limit=30)
    context = {
        "queue": queue,
        "reviews": selectors.reviews_of(tenant=request.tenant)[:30],
        "suites": Suite.objects.for_tenant(request.tenant).order_by("name"),
        "is_admin": request.membership.has_role(Role.ADMIN),
    }
    return render_page(request, "evals/reviews.html", context)


@role_required(Role.ADMIN)
@require_POST
def eval_case_from_trace(request: ConsoleRequest) -> HttpResponse:
    """One action: any production trace (by its id) becomes a case of the chosen suite."""
    suite = selectors.get_suite_for_tenant(request.tenant, request.POST.get("suite", ""))
    try:
        case = services.case_from_trace(
            actor=Actor.from_request(request), suite=suite, trace_id=request.POST.get("trace_id", "")
        )
    except FieldError as exc:
        messages.error(request, f"No case was made: {exc.detail}")
        return redirect("console:eval_reviews", tenant_slug=request.tenant.slug)
    messages.success(request, f"The trace is now a case of {suite.name}; add its assertions.")
    return redirect("console:eval_case", tenant_slug=request.tenant.slug, pk=case.pk)


@role_required(Role.ADMIN)
@require_POST
def eval_case_from_run(request: ConsoleRequest, pk: str) -> HttpResponse:
    """One action: a production run becomes a case of the chosen suite."""
    run = get_for_tenant(Run.objects.for_tenant(request.tenant), request.tenant, pk=pk)
    suite = selectors.get_suite_for_tenant(request.tenant, request.POST.get("suite", ""))
    case = services.case_from_run(actor=Actor.from_request(request), suite=suite, run=run)
    messages.success(request, f"The run is now a case of {suite.name}; add its assertions.")
    return redirect("console:eval_case", tenant_slug=request.tenant.slug, pk=case.pk)


# --- The pin-change gate --------------------------------------------------------------------------------


def gate_context(change: PinChange) -> dict[str, Any]:
    """What the pin change request page shows of the eval gate (console/views/catalog.py)."""
    return {"gate": selectors.gate_report(change), "live_query": f"page=pin_change&change={change.pk}"}


def _gate_signature(report: selectors.GateReport) -> tuple[Any, ...]:
    """What the gate's verdict rests on: the runs it judges and their statuses (not their progress)."""
    return (
        report.passes,
        report.override.pk if report.override else None,
        tuple((str(s.suite.pk), s.run.pk if s.run else None, s.run.status if s.run else None) for s in report.suites),
        tuple((r.pk, r.status) for s in report.suites for r in s.newer),
    )


@live.page
class LivePinChange(live.LivePage):
    """A pin change's page: when an eval run starts or finishes so that the gate's verdict or the
    runs it judges change, the gate is redrawn and the decision form gives way to "reload", so an
    open page never offers an approval on evidence that is no longer the newest."""

    name = "pin_change"
    events = frozenset({"eval_run.changed"})

    def __init__(self, tenant: Tenant, membership: Membership, params: dict[str, str]) -> None:
        super().__init__(tenant, membership, params)
        self.signature: tuple[Any, ...] | None = None
        change = self._change()
        if change is not None:
            self.signature = _gate_signature(selectors.gate_report(change))

    def _change(self) -> PinChange | None:
        try:
            return get_for_tenant(
                PinChange.objects.for_tenant(self.tenant).select_related(
                    "tenant", "to_model__provider", "from_model__provider"
                ),
                self.tenant,
                pk=self.params.get("change", ""),
            )
        except (Http404, ValueError, ValidationError):
            return None

    def render(self, membership: Membership, event: dict[str, Any]) -> str:
        change = self._change()
        if change is None or not change.is_open:
            return ""
        report = selectors.gate_report(change)
        signature = _gate_signature(report)
        if signature == self.signature:
            return ""
        self.signature = signature
        context = {
            "change": change,
            "gate": report,
            "tenant": self.tenant,
            "is_admin": membership.has_role(Role.ADMIN),
            "live": True,
        }
        return render_to_string("catalog/pin_change.html#gate_live", context)


@role_required(Role.ADMIN)
@require_POST
def eval_gate_override(request: ConsoleRequest, pk: str) -> HttpResponse:
    change = get_for_tenant(
        PinChange.objects.for_tenant(request.tenant).select_related("tenant", "to_model"), request.tenant, pk=pk
    )
    act(
        request,
        lambda: services.gate_override(
            actor=Actor.from_request(request), change=change, reason=request.POST.get("reason", "")
        ),
        success="The eval gate is overridden for this change (audited); it can be approved now.",
    )
    return redirect("console:pin_change", tenant_slug=request.tenant.slug, pk=change.pk)
