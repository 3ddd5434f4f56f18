"""The judge's reply is parsed strictly: valid JSON inside the scale is a score; anything else is
a clear case error (never a silent pass or fail)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from agents.models import Step
from evals import services
from evals.judge import JudgeError, parse
from evals.models import EvalResult, EvalRun, Suite
from evals.tests.conftest import JudgeSays
from tenants.audit import Actor


def test_a_valid_reply_is_a_score_and_a_reason() -> None:
    assert parse(' {"score": 4, "reason": "Clear and correct."}\n', scale=[1, 5]) == (4.0, "Clear and correct.")
    assert parse('{"score": 0.0}', scale=[0, 1]) == (0.0, "")


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        ("Score: 4/5, nice answer", "The judge did not answer in JSON (Expecting value at character 1)"),
        ('```json\n{"score": 4}\n```', "The judge did not answer in JSON"),
        ('{"score": 4} and more', "The judge did not answer in JSON (Extra data at character 14)"),
        ("[4, 5]", "The judge answered list JSON, not an object with score and reason."),
        ('{"reason": "fine"}', "The judge's `score` is null, not a number."),
        ('{"score": "4"}', 'The judge\'s `score` is "4", not a number.'),
        ('{"score": true}', "The judge's `score` is true, not a number."),
        ('{"score": 7, "reason": "great"}', "The judge's score 7 is outside the scale 1 to 5."),
        ('{"score": 0, "reason": "bad"}', "The judge's score 0 is outside the scale 1 to 5."),
        ('{"score": 3, "reason": ["a"]}', "The judge's `reason` is not a string."),
    ],
)
def test_an_unusable_reply_is_a_clear_error(reply: str, message: str) -> None:
    with pytest.raises(JudgeError) as exc:
        parse(reply, scale=[1, 5])
    assert exc.value.message.startswith(message), exc.value.message


def _judged_suite(suite: Suite, scale: list[int]) -> Suite:
    actor = Actor.system_actor("tests")
    for case in suite.cases.all():
        services.case_delete(actor=actor, case=case)
    services.case_create(
        actor=actor,
        suite=suite,
        input="Where is order A-1001?",
        assertions=[{"type": "judge", "rubric": "Helpful.", "scale": scale, "threshold": 3}],
    )
    return suite


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("reply", "status", "error"),
    [
        ('{"score": 4, "reason": "Helpful."}', "passed", ""),
        ('{"score": 2, "reason": "Vague."}', "failed", ""),
        ("It is fine.", "error", "The judge did not answer in JSON"),
        ('{"score": 9, "reason": "Wow."}', "error", "The judge's score 9 is outside the scale 1 to 5."),
    ],
)
def test_a_case_records_the_judge_verdict_or_its_error_and_what_the_judge_cost(
    suite: Suite, execute: Callable[..., EvalRun], reply: str, status: str, error: str
) -> None:
    _judged_suite(suite, [1, 5])
    eval_run = services.eval_run_start(actor=Actor.system_actor("tests"), suite=suite, dispatch=False)
    client = JudgeSays(reply)
    eval_run = execute(eval_run, client=client)
    [result] = EvalResult.objects.for_tenant(suite.tenant).filter(eval_run=eval_run)
    assert client.judge_calls == 1
    assert result.status == status
    assert result.error.startswith(error)
    assert result.judge_cost_micros > 0  # the judge call is costed even when its reply is unusable
    assert eval_run.spent_micros == result.cost_micros + result.judge_cost_micros
    if status != "error":
        assert result.judge_score == float(reply.split(":")[1].split(",")[0])
        assert result.verdicts[0]["type"] == "judge" and result.verdicts[0]["passed"] is (status == "passed")
    # The judge is reserved, traced and settled on the judged run, but adds no step to the agent's conversation.
    assert Step.objects.for_tenant(suite.tenant).filter(run=result.run, kind="model").count() == 2


@pytest.mark.django_db
def test_a_missing_judge_pin_is_a_case_error_naming_the_alias(suite: Suite, execute: Callable[..., EvalRun]) -> None:
    from catalog.models import ModelPin

    _judged_suite(suite, [1, 5])
    ModelPin.objects.for_tenant(suite.tenant).filter(alias="judge").delete()
    eval_run = execute(services.eval_run_start(actor=Actor.system_actor("tests"), suite=suite, dispatch=False))
    [result] = EvalResult.objects.for_tenant(suite.tenant).filter(eval_run=eval_run)
    assert result.status == "error"
    assert result.error == "No model is pinned as 'judge': pin one to use the judge."
    assert eval_run.status == "failed"  # every case an error
