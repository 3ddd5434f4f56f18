"""`manage.py evals run --suite <id|name> [--tenant <slug>] [--model <exact id>] [--fail-under <rate>]`

Runs every case of a suite in this process (no worker needed; a running worker may take some of
the cases too), prints a summary with the comparison against the suite's baseline, and exits:

    0  the run completed, no critical case regressed, and the pass rate is at least --fail-under
    1  a critical case regressed, or the pass rate is under --fail-under
    2  the run did not complete (budget exceeded, cancelled, every case an error) or bad arguments

so that any CI can gate on it.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from catalog.models import LanguageModel
from evals import selectors, services
from evals.models import EvalRun, Suite
from tenants import rls
from tenants.audit import Actor
from tenants.errors import ServiceError
from tenants.models import Tenant

EXIT_REGRESSION = 1
EXIT_INCOMPLETE = 2


class Command(BaseCommand):
    help = "Run an eval suite and exit non-zero on a critical regression or a pass rate under the bar."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        run = sub.add_parser("run", help="Run every case of a suite and print a summary.")
        run.add_argument("--suite", required=True, help="The suite's id, or its name (with --tenant if ambiguous).")
        run.add_argument("--tenant", default="", help="The tenant's slug (needed when a suite name is ambiguous).")
        run.add_argument("--model", default="", help="An exact model id to evaluate instead of the pinned model.")
        run.add_argument("--fail-under", type=float, default=None, help="Fail when the pass rate is below this (0-1).")

    def handle(self, *args: Any, **options: Any) -> None:
        # Under row-level security (tenants.rls) a command starts with no tenant: the suite is
        # looked for across tenants, then the run is the suite's tenant's.
        with rls.across_tenants("manage.py evals: finding the suite"):
            suite = self._suite(options["suite"], options["tenant"])
        with rls.tenant_context(suite.tenant_id):
            self._run(suite, options)

    def _run(self, suite: Suite, options: dict[str, Any]) -> None:
        fail_under = options["fail_under"]
        if fail_under is not None and fail_under < 0:
            raise CommandError("--fail-under is a pass rate from 0 to 1.")
        model = self._model(suite.tenant, options["model"]) if options["model"] else None
        try:
            eval_run = services.eval_run_start(
                actor=Actor.system_actor("manage.py evals"),
                suite=suite,
                model=model,
                trigger=EvalRun.Trigger.CLI,
                dispatch=False,
            )
        except ServiceError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(
            f"Eval run {eval_run.pk}: {eval_run.total_cases} cases of {suite.name!r} on {eval_run.model.model_id}"
            + (" (candidate)" if eval_run.candidate else "")
        )
        eval_run = self._execute(eval_run)
        raise SystemExit(self._report(eval_run, fail_under))

    def _suite(self, ref: str, slug: str) -> Suite:
        tenants = Tenant.objects.filter(slug=slug) if slug else Tenant.objects.all()
        if slug and not tenants.exists():
            raise CommandError(f"No tenant {slug!r}.")
        found: list[Suite] = []
        for tenant in tenants:
            suite = selectors.find_suite(tenant=tenant, ref=ref)
            if suite is not None:
                found.append(suite)
        if not found:
            raise CommandError(f"No suite {ref!r}" + (f" in {slug}" if slug else "") + ".")
        if len(found) > 1:
            raise CommandError(f"Several tenants have a suite {ref!r}; name one with --tenant.")
        return found[0]

    def _model(self, tenant: Tenant, model_id: str) -> LanguageModel:
        models = list(LanguageModel.objects.for_tenant(tenant).select_related("provider").filter(model_id=model_id)[:2])
        if len(models) != 1:
            raise CommandError(
                f"No model {model_id!r} in {tenant.slug}." if not models else f"Several providers serve {model_id!r}."
            )
        return models[0]

    def _execute(self, eval_run: EvalRun) -> EvalRun:
        while True:
            result = services.eval_result_claim(eval_run=eval_run)
            if result is not None:
                result = services.eval_result_execute(result=result, dispatch_next=False)
                mark = {"passed": "PASS", "failed": "FAIL", "error": "ERROR", "skipped": "SKIP"}.get(result.status, "?")
                critical = " [critical]" if result.critical else ""
                self.stdout.write(f"  {mark:<5} {result.label}{critical}")
                for verdict in result.verdicts:
                    if not verdict["passed"]:
                        self.stdout.write(f"        ✗ {verdict['type']}: {verdict['message']}")
                if result.error:
                    self.stdout.write(f"        ! {result.error}")
                continue
            eval_run = selectors.get_eval_run_for_tenant(eval_run.tenant, eval_run.pk)
            if eval_run.is_finished:
                return eval_run
            time.sleep(0.5)  # cases a worker took are still running

    def _report(self, eval_run: EvalRun, fail_under: float | None) -> int:
        rate = eval_run.pass_rate
        score = f"{eval_run.mean_score:.2f}" if eval_run.mean_score is not None else "-"
        rate_text = f" (pass rate {rate:.1%})" if rate is not None else ""
        self.stdout.write(
            f"{eval_run.get_status_display()}: {eval_run.passed_cases}/{eval_run.total_cases} passed{rate_text}"
            f"; mean judge score {score}; cost {eval_run.spent_micros / 1e6:.6f} USD;"
            f" latency p50 {eval_run.p50_latency_ms} ms, p95 {eval_run.p95_latency_ms} ms"
        )
        baseline = selectors.baseline_for(eval_run.suite)
        regressions = []
        if baseline is not None and baseline.pk != eval_run.pk:
            comparison = selectors.compare(eval_run, baseline)
            regressions = comparison.critical_regressions
            delta = comparison.pass_rate_delta
            self.stdout.write(
                f"Against the baseline {baseline.pk}: {len(comparison.regressions)} regressions "
                f"({len(regressions)} critical), {len(comparison.fixes)} fixes"
                + (f", pass rate {delta:+.1%}" if delta is not None else "")
            )
            for case in comparison.regressions:
                self.stdout.write(f"  REGRESSION {case.label}" + (" [critical]" if case.critical else ""))
            # Not the model's doing: a tool answered otherwise than for the baseline.
            for case in comparison.data_changes:
                self.stdout.write(
                    f"  DATA CHANGED {case.label}"
                    + (" [critical]" if case.critical else "")
                    + ": tool results differed from the baseline's, not counted as a regression"
                )
        if eval_run.status != EvalRun.Status.SUCCEEDED:
            self.stderr.write(f"The eval run did not complete: {eval_run.error_message or eval_run.status}")
            return EXIT_INCOMPLETE
        if regressions:
            self.stderr.write(f"{len(regressions)} critical case(s) regressed.")
            return EXIT_REGRESSION
        if fail_under is not None and (rate is None or rate < fail_under):
            self.stderr.write(f"The pass rate {rate or 0:.1%} is under the bar of {fail_under:.1%}.")
            return EXIT_REGRESSION
        return 0
