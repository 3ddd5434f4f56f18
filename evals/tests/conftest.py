"""Fixtures of the evals tests: the demo suite without its seeded run, clients at the provider
edge, and a helper that executes an eval run's cases in this process."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from catalog.clients import ChatRequest, ChatResponse, DemoClient
from catalog.clients.base import estimate_usage
from catalog.models import LanguageModel
from evals import services
from evals.demo import DEMO_SUITE, seed_evals
from evals.models import EvalRun, Suite
from tenants.testing import Cast


def seeded_run(cast: Cast) -> EvalRun:
    """The first eval run the demo seed queues for `make run` (the cast leaves it out), seeded now
    if it is missing; a transactional test's worker receives it once this commits."""
    seed_evals(cast.acme)
    return EvalRun.objects.for_tenant(cast.acme).select_related("tenant").get(trigger=EvalRun.Trigger.SEED)


@pytest.fixture
def suite(cast: Cast) -> Suite:
    """The seeded demo suite of Acme (the cast seeds it without a run)."""
    return Suite.objects.for_tenant(cast.acme).select_related("tenant", "agent").get(name=DEMO_SUITE)


class JudgeSays(DemoClient):
    """The demo model, except that the judge answers `reply` (strict-JSON parsing tests)."""

    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.judge_calls = 0

    def chat(self, request: ChatRequest) -> ChatResponse:
        if "strict evaluator" in request.messages[0]["content"]:
            self.judge_calls += 1
            return ChatResponse(
                content=self.reply,
                tool_calls=[],
                usage=estimate_usage(request, self.reply, [], estimated=False),
                model_id=request.model_id,
            )
        return super().chat(request)


def run_cases(eval_run: EvalRun, *, client: Any = None, limit: int | None = None) -> EvalRun:
    """Execute pending cases of `eval_run` here (as the CLI does), at most `limit`; re-read it."""
    done = 0
    while limit is None or done < limit:
        result = services.eval_result_claim(eval_run=eval_run)
        if result is None:
            break
        services.eval_result_execute(result=result, client=client, dispatch_next=False)
        done += 1
    return EvalRun.objects.for_tenant(eval_run.tenant).select_related("tenant", "suite").get(pk=eval_run.pk)


@pytest.fixture
def execute() -> Callable[..., EvalRun]:
    return run_cases


def candidate_model(cast: Cast, model_id: str = "demo-support-2025-09-01") -> LanguageModel:
    demo = LanguageModel.objects.for_tenant(cast.acme).get(model_id="demo-support-2025-06-01")
    return LanguageModel.objects.create(
        tenant=cast.acme,
        provider=demo.provider,
        model_id=model_id,
        input_price=demo.input_price,
        output_price=demo.output_price,
        context_window=demo.context_window,
        max_output_tokens=demo.max_output_tokens,
    )
