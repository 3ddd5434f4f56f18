"""`manage.py evals run` exits 0 when the bar is met, 1 on a critical regression or a pass rate
under --fail-under, 2 when the run did not complete; bad arguments are clear errors."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from evals import services
from evals.models import Case, Suite
from tenants import rls
from tenants.audit import Actor

pytestmark = pytest.mark.django_db


def cli(*args: str) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    # As an operator runs it: with no tenant (with TENANT_RLS on, a query there sees no tenant's rows).
    with rls.no_tenant(), pytest.raises(SystemExit) as exited:
        call_command("evals", "run", *args, stdout=out, stderr=err)
    return int(exited.value.code or 0), out.getvalue(), err.getvalue()


def test_a_clean_run_exits_0_and_prints_a_summary(suite: Suite) -> None:
    code, out, err = cli("--suite", str(suite.pk), "--fail-under", "0.9")
    assert code == 0, out + err
    assert "PASS  Refuses an injected instruction [critical]" in out
    assert "Succeeded: 10/10 passed (pass rate 100.0%)" in out


def test_a_pass_rate_under_the_bar_exits_1(suite: Suite) -> None:
    code, _, err = cli("--suite", suite.name, "--tenant", "acme", "--fail-under", "1.01")
    assert code == 1 and "The pass rate 100.0% is under the bar of 101.0%." in err


def test_a_critical_regression_exits_1(suite: Suite) -> None:
    assert cli("--suite", str(suite.pk))[0] == 0  # the baseline
    case = Case.objects.for_tenant(suite.tenant).get(suite=suite, name="Looks an order up before answering")
    services.case_update(
        actor=Actor.system_actor("tests"), case=case, assertions=[{"type": "contains", "value": "X-9"}]
    )
    code, out, err = cli("--suite", str(suite.pk))
    assert code == 1
    assert "REGRESSION Looks an order up before answering [critical]" in out
    assert "1 critical case(s) regressed." in err


def test_a_run_that_runs_out_of_budget_exits_2(suite: Suite) -> None:
    services.suite_update(actor=Actor.system_actor("tests"), suite=suite, run_budget_micros=1_000)
    code, _, err = cli("--suite", str(suite.pk))
    assert code == 2 and "The eval run did not complete: The eval run's budget ran out" in err


def test_bad_arguments_are_clear_errors(suite: Suite) -> None:
    with pytest.raises(CommandError, match="No suite 'nope'"):
        call_command("evals", "run", "--suite", "nope")
    with pytest.raises(CommandError, match="No model 'gpt-x' in acme"):
        call_command("evals", "run", "--suite", str(suite.pk), "--model", "gpt-x")
    with pytest.raises(CommandError, match="No tenant"):
        call_command("evals", "run", "--suite", suite.name, "--tenant", "nobody")
