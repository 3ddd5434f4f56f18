"""LLM-as-judge: a rubric, a scale and a pass threshold, answered by the model pinned as `judge`
(or another alias the assertion names) in strict JSON.

The judge is asked for exactly `{"score": <number>, "reason": "<text>"}`. Its answer is parsed
strictly: the whole reply must be one JSON object (no prose, no code fence) with a numeric `score`
inside the scale and a string `reason`; anything else is a JudgeError whose message says what was
wrong, and the case is recorded as an error (not as a failure of the agent).

A judge call is made like any model call of the run being judged: its worst case is reserved on
every budget that applies (the agent's, the eval run's own), it is a `model` span of the run's
trace, and its cost is settled and recorded on the result.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agents import hooks, pipeline
from catalog.clients import ChatClient, ChatRequest, ProviderError, client_for
from catalog.clients.base import estimate_request_tokens
from catalog.selectors import provider_config

if TYPE_CHECKING:
    from agents.models import Run
    from catalog.models import LanguageModel

JUDGE_ALIAS = "judge"
JUDGE_MAX_OUTPUT_TOKENS = 300
MAX_RUBRIC_CHARS = 4000


class JudgeError(Exception):
    """The judge could not score: no usable model, a refused budget, a failed call, or a reply
    that is not the strict JSON asked for. `cost_micros` is what the call cost when it was made."""

    def __init__(self, message: str, *, cost_micros: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.cost_micros = cost_micros


@dataclass(frozen=True)
class JudgeScore:
    score: float
    reason: str
    passed: bool
    model_id: str
    cost_micros: int
    input_tokens: int
    output_tokens: int


def validated_judge(assertion: dict[str, Any]) -> dict[str, Any]:
    """A judge assertion normalised: {type, rubric, scale: [low, high], threshold, model}; ValueError."""
    rubric = assertion.get("rubric")
    if not isinstance(rubric, str) or not rubric.strip():
        raise ValueError("`rubric` must say what a good answer is.")
    if len(rubric) > MAX_RUBRIC_CHARS:
        raise ValueError(f"`rubric` is longer than {MAX_RUBRIC_CHARS} characters.")
    scale = assertion.get("scale", [0, 1])
    if (
        not isinstance(scale, list)
        or len(scale) != 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in scale)
        or not scale[0] < scale[1]
    ):
        raise ValueError("`scale` must be [low, high] with low < high, e.g. [0, 1] or [1, 5].")
    low, high = float(scale[0]), float(scale[1])
    threshold = assertion.get("threshold", (low + high) / 2)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not low <= threshold <= high:
        raise ValueError(f"`threshold` must be a number within the scale ({low:g} to {high:g}).")
    model = assertion.get("model", JUDGE_ALIAS)
    if not isinstance(model, str) or not model.strip():
        raise ValueError("`model` must be a pinned alias, e.g. judge.")
    return {
        "type": "judge",
        "rubric": rubric.strip(),
        "scale": [low, high],
        "threshold": float(threshold),
        "model": model,
    }


def build_request(
    *, model_id: str, assertion: dict[str, Any], case_input: str, expected: str, output: str
) -> ChatRequest:
    low, high = assertion["scale"]
    system = (
        "You are a strict evaluator of an AI support agent. Score the agent's answer (the user "
        f"message) against the rubric, on a scale from {low:g} (worst) to {high:g} (best).\n"
        f"Rubric: {assertion['rubric']}\n"
        f"The customer's request was: {case_input}\n"
        + (f"A reference answer: {expected}\n" if expected else "")
        + 'Reply with only a JSON object, exactly {"score": <number>, "reason": "<one sentence>"}.'
    )
    return ChatRequest(
        model_id=model_id,
        messages=[{"role": "system", "content": system}, {"role": "user", "content": output}],
        max_output_tokens=JUDGE_MAX_OUTPUT_TOKENS,
        temperature=0.0,
    )


def parse(content: str, *, scale: list[float]) -> tuple[float, str]:
    """(score, reason) from the judge's reply, or JudgeError saying exactly what is wrong."""
    text = content.strip()
    try:
        answer = json.loads(text)
    except json.JSONDecodeError as exc:
        raise JudgeError(
            f"The judge did not answer in JSON ({exc.msg} at character {exc.pos + 1}): {text[:120]!r}"
        ) from None
    if not isinstance(answer, dict):
        raise JudgeError(f"The judge answered {type(answer).__name__} JSON, not an object with score and reason.")
    score = answer.get("score")
    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
        raise JudgeError(f"The judge's `score` is {json.dumps(score)}, not a number.")
    low, high = scale
    if not low <= score <= high:
        raise JudgeError(f"The judge's score {score:g} is outside the scale {low:g} to {high:g}.")
    reason = answer.get("reason", "")
    if not isinstance(reason, str):
        raise JudgeError("The judge's `reason` is not a string.")
    return float(score), reason


def judge_model(run: Run, alias: str) -> LanguageModel:
    """The exact model the judge's alias is pinned to, refused as any model call is (the pipeline)."""
    try:
        return pipeline.resolve_model(tenant=run.tenant, alias=alias)
    except pipeline.CallRefusedError as exc:
        if exc.code == "pin_not_found":
            raise JudgeError(f"No model is pinned as {alias!r}: pin one to use the judge.") from None
        raise JudgeError(f"The judge cannot be called: {exc.message}") from None


def score(
    *,
    run: Run,
    assertion: dict[str, Any],
    case_input: str,
    expected: str,
    output: str,
    client: ChatClient | None = None,
) -> JudgeScore:
    """Ask the judge about `output` (the answer `run` gave), reserving, tracing and settling the
    call on `run`'s hooks. Raises JudgeError."""
    model = judge_model(run, assertion["model"])
    request = build_request(
        model_id=model.model_id, assertion=assertion, case_input=case_input, expected=expected, output=output
    )
    if estimate_request_tokens(request) + request.max_output_tokens > model.context_window:
        raise JudgeError("The answer is too long for the judge model's context window.")
    call = hooks.CallContext.of_run(run)
    reservations = pipeline.reserve(call=call, model=model, request=request)
    if (refusal := reservations.refusal) is not None:
        raise JudgeError(f"The judge call was refused by a budget: {refusal.message}")
    chat = client or client_for(provider_config(model.provider))
    response = None
    with hooks.span(call, "model", model.model_id, judge=True, alias=assertion["model"]) as span:
        try:
            response = chat.chat(request)
        except ProviderError as exc:
            span.status = "error"
            span.attributes.update({"error.type": exc.type, "error.message": exc.message})
            failure = exc
    if response is None:
        pipeline.settle(call=call, model=model, reservations=reservations, usage=None)
        raise JudgeError(f"The judge call failed ({failure.type}): {failure.message}")
    usage = response.usage
    cost = pipeline.settle(call=call, model=model, reservations=reservations, usage=usage)
    try:
        value, reason = parse(response.content, scale=assertion["scale"])
    except JudgeError as exc:
        raise JudgeError(exc.message, cost_micros=cost) from None
    return JudgeScore(
        score=value,
        reason=reason,
        passed=value >= assertion["threshold"],
        model_id=model.model_id,
        cost_micros=cost,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
    )
