"""The run engine against real PostgreSQL, with a scripted model at the provider edge."""

from __future__ import annotations

import secrets
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from agents import hooks, runtime
from agents.models import Agent, AgentVersion, AgentVersionTool, DemoOrder, Run, Step, Tool, ToolExecution
from catalog.clients import ChatRequest, ChatResponse, ProviderError, ToolCall, Usage
from catalog.models import LanguageModel, ModelPin, Provider
from tenants.errors import ConflictError
from tenants.models import Tenant
from tenants.testing import make_key

EXACT_MODEL_ID = "gpt-4o-2024-08-06"

# --- Support shared with test_tools and test_crash ------------------------------------------------

BUILTIN_SCHEMAS: dict[str, dict[str, Any]] = {
    "lookup_order": {
        "type": "object",
        "properties": {"order_number": {"type": "string"}},
        "required": ["order_number"],
        "additionalProperties": False,
    },
    "refund_order": {
        "type": "object",
        "properties": {"order_number": {"type": "string"}, "reason": {"type": "string"}},
        "required": ["order_number"],
        "additionalProperties": False,
    },
    "send_email": {
        "type": "object",
        "properties": {
            "to": {"type": "string", "format": "email"},
            "subject": {"type": "string", "minLength": 1},
            "body": {"type": "string", "minLength": 1},
        },
        "required": ["to", "subject", "body"],
    },
}
RISKS = {"lookup_order": Tool.Risk.READ, "refund_order": Tool.Risk.IRREVERSIBLE, "send_email": Tool.Risk.WRITE}


@dataclass
class Setup:
    """A fresh tenant with a provider, a priced model pinned as `alias`, and an agent version."""

    tenant: Tenant
    provider: Provider
    model: LanguageModel
    agent: Agent
    version: AgentVersion
    tools: dict[str, Tool] = field(default_factory=dict)

    def start(self, text: str = "Please refund order T-1001.", **extra: Any) -> Run:
        return Run.objects.create(tenant=self.tenant, agent=self.agent, agent_version=self.version, input=text, **extra)

    def order(self, number: str = "T-1001", email: str = "ana@example.com") -> DemoOrder:
        return DemoOrder.objects.create(
            tenant=self.tenant, number=number, customer_email=email, item="Kettle", amount_cents=2500
        )


def no_human_review(tenant: Tenant) -> None:
    """A tenant rule that never asks a reviewer: engine tests about tools, not about approvals
    (irreversible tools, such as refunds, need a human by default; see approvals/)."""
    from approvals.models import ApprovalRule

    ApprovalRule.objects.create(tenant=tenant, mode=ApprovalRule.Mode.NEVER)


def build(
    *,
    tools: tuple[str, ...] = ("lookup_order", "refund_order", "send_email"),
    scopes: tuple[str, ...] = ("orders:refund",),
    max_steps: int = 8,
    priced: bool = True,
    pin: bool = True,
    provider_kind: str = Provider.Kind.DEMO,
    base_url: str = "",
    model_id: str = EXACT_MODEL_ID,
    instructions: str = "You are a support agent.",
) -> Setup:
    slug = f"eng-{secrets.token_hex(4)}"
    tenant = Tenant.objects.create(slug=slug, name=f"Engine {slug}")
    provider = Provider.objects.create(tenant=tenant, name="p", kind=provider_kind, base_url=base_url, max_retries=0)
    model = LanguageModel.objects.create(
        tenant=tenant,
        provider=provider,
        model_id=model_id,
        input_price=2_500_000 if priced else None,  # $2.50 per million input tokens
        output_price=10_000_000 if priced else None,
        context_window=128_000,
        max_output_tokens=4096,
    )
    if pin:
        ModelPin.objects.create(tenant=tenant, alias="support", model=model)
    agent = Agent.objects.create(tenant=tenant, name="Support")
    version = AgentVersion.objects.create(
        tenant=tenant,
        agent=agent,
        number=1,
        instructions=instructions,
        model_alias="support",
        scopes=list(scopes),
        max_steps=max_steps,
    )
    agent.current_version = version
    agent.save(update_fields=["current_version"])
    made = {}
    for name in tools:
        made[name] = Tool.objects.create(
            tenant=tenant,
            name=name,
            description=f"The {name} demo tool.",
            parameters=BUILTIN_SCHEMAS[name],
            risk=RISKS[name],
            required_scope="orders:refund" if name == "refund_order" else "",
            executor=Tool.Executor.BUILTIN,
            builtin=name,
        )
        AgentVersionTool.objects.create(tenant=tenant, agent_version=version, tool=made[name])
    return Setup(tenant=tenant, provider=provider, model=model, agent=agent, version=version, tools=made)


Reply = ChatResponse | BaseException | Callable[[ChatRequest], ChatResponse]


class ScriptedClient:
    """A model that answers from a script, in order, and records every request it was sent."""

    def __init__(self, *replies: Reply) -> None:
        self.replies: deque[Reply] = deque(replies)
        self.requests: list[ChatRequest] = []

    def chat(self, request: ChatRequest) -> ChatResponse:
        self.requests.append(request)
        if not self.replies:
            raise AssertionError(f"the model was called {len(self.requests)} times, more than scripted")
        reply = self.replies.popleft()
        if isinstance(reply, BaseException):
            raise reply
        if callable(reply):
            return reply(request)
        return reply


def answer(text: str, *, input_tokens: int = 100, output_tokens: int = 20) -> ChatResponse:
    return ChatResponse(
        content=text,
        tool_calls=[],
        usage=Usage(input_tokens=input_tokens, output_tokens=output_tokens),
        model_id=EXACT_MODEL_ID,
        finish_reason="stop",
    )


def calls(*tool_calls: tuple[str, dict[str, Any]], ids: list[str] | None = None) -> ChatResponse:
    ids = ids or [f"call_{secrets.token_hex(3)}" for _ in tool_calls]
    return ChatResponse(
        content="",
        tool_calls=[ToolCall(id=i, name=n, arguments=a) for i, (n, a) in zip(ids, tool_calls, strict=True)],
        usage=Usage(input_tokens=100, output_tokens=10),
        model_id=EXACT_MODEL_ID,
        finish_reason="tool_calls",
    )


class Crash(BaseException):
    """Stands for the worker dying: not an Exception, so the engine cannot record it."""


def steps_of(run: Run) -> list[Step]:
    return list(Step.objects.for_tenant(run.tenant).filter(run=run).order_by("index"))


# --- Fixtures -------------------------------------------------------------------------------------


class Announced:
    """The live events pushed after commit (commits are simulated by `capture()` in db tests)."""

    def __init__(self, capture: Any) -> None:
        self.events: list[dict] = []
        self.capture = lambda: capture(execute=True)

    def all(self, run: Run) -> list[str]:
        """Every announcement's status: one per status change and one per committed step."""
        return [e["status"] for e in self.events if e["type"] == "run.changed" and e["run_id"] == str(run.pk)]

    def statuses(self, run: Run) -> list[str]:
        """The status transitions announced (repeats of the same status collapsed)."""
        seen = self.all(run)
        return [s for i, s in enumerate(seen) if i == 0 or seen[i - 1] != s]


@pytest.fixture
def announced(monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any) -> Announced:
    seen = Announced(django_capture_on_commit_callbacks)
    monkeypatch.setattr("tenants.events.send_now", lambda group, event: seen.events.append(dict(event)))
    return seen


# --- The loop ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_final_answer_succeeds_with_the_exact_model_id_tokens_and_cost(announced: Announced) -> None:
    setup = build()
    run = setup.start("Hello")
    client = ScriptedClient(answer("Hi! How can I help?", input_tokens=1000, output_tokens=200))

    with announced.capture():
        run = runtime.execute(run, client=client)

    assert run.status == Run.Status.SUCCEEDED
    assert run.output == "Hi! How can I help?"
    assert client.requests[0].model_id == EXACT_MODEL_ID
    assert [m["role"] for m in client.requests[0].messages] == ["system", "user"]
    [step] = steps_of(run)
    assert step.kind == Step.Kind.MODEL and step.model_id == EXACT_MODEL_ID
    assert step.request["alias"] == "support" and step.request["model_id"] == EXACT_MODEL_ID
    # 1000 x $2.50/M + 200 x $10/M = $0.0025 + $0.002 = 4500 micro-USD
    assert step.cost_micros == 4500 and run.cost_micros == 4500
    assert (run.input_tokens, run.output_tokens, run.step_count) == (1000, 200, 1)
    assert [m["role"] for m in run.messages] == ["system", "user", "assistant"]
    assert run.lease_owner == "" and run.lease_expires_at is None and run.finished_at is not None
    assert len(run.trace_id) == 32
    assert announced.statuses(run) == ["running", "succeeded"]
    # The claim, then the model step committed with the run's end (the output guardrails check a final
    # answer before its step commits): pages see each commit.
    assert announced.all(run) == ["running", "succeeded"]


@pytest.mark.django_db
def test_a_tool_loop_runs_the_tool_and_feeds_its_result_back_to_the_model() -> None:
    setup = build()
    setup.order("T-1001")
    run = setup.start("Where is order T-1001?")
    client = ScriptedClient(
        calls(("lookup_order", {"order_number": "T-1001"}), ids=["call_1"]),
        answer("Your kettle is paid."),
    )

    run = runtime.execute(run, client=client)

    assert run.status == Run.Status.SUCCEEDED, run.error_message
    model1, tool, model2 = steps_of(run)
    assert (model1.kind, tool.kind, model2.kind) == ("model", "tool", "model")
    assert tool.tool_name == "lookup_order" and tool.call_id == "call_1" and tool.index == 1
    assert tool.request == {"arguments": {"order_number": "T-1001"}}
    assert tool.response["result"]["status"] == "paid" and tool.error == ""
    sent = client.requests[1].messages
    assert sent[-1]["role"] == "tool" and sent[-1]["tool_call_id"] == "call_1"
    assert '"customer_email": "ana@example.com"' in sent[-1]["content"]
    assert [t.name for t in client.requests[0].tools] == ["lookup_order", "refund_order", "send_email"]
    assert run.step_count == 3 and run.input_tokens == 200
    # A read tool leaves no at-most-once record; only side effects need one.
    assert not ToolExecution.objects.for_tenant(setup.tenant).exists()


@pytest.mark.django_db
def test_an_irreversible_tool_runs_once_and_is_recorded_as_a_tool_execution() -> None:
    setup = build()
    no_human_review(setup.tenant)
    order = setup.order("T-1001")
    run = setup.start()
    client = ScriptedClient(calls(("refund_order", {"order_number": "T-1001"}), ids=["call_r"]), answer("Refunded."))

    run = runtime.execute(run, client=client)

    order.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED
    assert order.status == "refunded" and order.refund_count == 1
    execution = ToolExecution.objects.for_tenant(setup.tenant).get(run=run)
    assert (execution.step_index, execution.call_id, execution.status) == (1, "call_r", "succeeded")


@pytest.mark.django_db
def test_it_fails_with_max_steps_when_the_model_never_answers() -> None:
    setup = build(max_steps=2)
    run = setup.start()
    client = ScriptedClient(
        calls(("lookup_order", {"order_number": "T-1"})), calls(("lookup_order", {"order_number": "T-2"}))
    )

    run = runtime.execute(run, client=client)

    assert run.status == Run.Status.FAILED and run.error_type == "max_steps"
    assert "2 model calls" in run.error_message
    assert len(client.requests) == 2 and run.step_count == 4


@pytest.mark.django_db
def test_the_same_tool_call_asked_again_after_it_ran_is_a_loop() -> None:
    setup = build()
    run = setup.start()
    client = ScriptedClient(
        calls(("lookup_order", {"order_number": "T-1"})),
        calls(("lookup_order", {"order_number": "T-1"})),
    )

    run = runtime.execute(run, client=client)

    assert run.status == Run.Status.FAILED and run.error_type == "loop_detected"
    assert "lookup_order" in run.error_message and "T-1" in run.error_message
    assert [s.kind for s in steps_of(run)] == ["model", "tool", "model"]


@pytest.mark.django_db
def test_a_cancel_request_stops_the_run_before_the_next_step() -> None:
    setup = build()
    order = setup.order("T-1001")
    run = setup.start()

    def slow_model(request: ChatRequest) -> ChatResponse:
        Run.objects.for_tenant(setup.tenant).filter(pk=run.pk).update(cancel_requested_at=timezone.now())
        return calls(("refund_order", {"order_number": "T-1001"}))

    run = runtime.execute(run, client=ScriptedClient(slow_model))

    order.refresh_from_db()
    assert run.status == Run.Status.CANCELLED and run.error_type == "cancelled"
    assert order.refund_count == 0
    assert [s.kind for s in steps_of(run)] == ["model"]  # the model's answer is kept, the tool never ran


@pytest.mark.django_db
def test_a_provider_error_fails_the_run_with_its_type_and_message() -> None:
    setup = build()
    run = setup.start()
    error = ProviderError("rate_limited", "Rate limit reached for gpt-4o.", status=429, retryable=True)

    run = runtime.execute(run, client=ScriptedClient(error))

    assert run.status == Run.Status.FAILED
    assert run.error_type == "provider_rate_limited"
    assert run.error_message == "Rate limit reached for gpt-4o."
    [step] = steps_of(run)
    assert step.model_id == EXACT_MODEL_ID and step.error == "rate_limited: Rate limit reached for gpt-4o."


@pytest.mark.django_db
def test_a_missing_pin_fails_the_run_before_any_model_call() -> None:
    setup = build(pin=False)
    client = ScriptedClient()

    run = runtime.execute(setup.start(), client=client)

    assert run.status == Run.Status.FAILED and run.error_type == "pin_not_found"
    assert "'support'" in run.error_message
    assert client.requests == []


@pytest.mark.django_db
def test_an_unpriced_model_cannot_be_used() -> None:
    setup = build(priced=False)
    client = ScriptedClient()

    run = runtime.execute(setup.start(), client=client)

    assert run.status == Run.Status.FAILED and run.error_type == "model_unpriced"
    assert EXACT_MODEL_ID in run.error_message and client.requests == []


@pytest.mark.django_db
def test_a_disabled_provider_fails_the_run() -> None:
    setup = build()
    Provider.objects.for_tenant(setup.tenant).update(enabled=False)

    run = runtime.execute(setup.start(), client=ScriptedClient())

    assert run.status == Run.Status.FAILED and run.error_type == "provider_disabled"


@pytest.mark.django_db
def test_a_finished_run_is_left_as_it_is() -> None:
    setup = build()
    run = runtime.execute(setup.start(), client=ScriptedClient(answer("Done.")))
    client = ScriptedClient()

    again = runtime.execute(run, client=client)

    assert again.status == Run.Status.SUCCEEDED and client.requests == [] and again.step_count == 1


@pytest.mark.django_db
def test_a_bug_in_the_engine_fails_the_run_as_an_internal_error() -> None:
    setup = build()

    run = runtime.execute(setup.start(), client=ScriptedClient(ValueError("boom")))

    assert run.status == Run.Status.FAILED and run.error_type == "internal_error"
    assert run.error_message == "ValueError: boom"


# --- Resuming after a crash ----------------------------------------------------------------------


@pytest.mark.django_db
def test_a_run_resumes_from_its_persisted_steps_after_its_worker_died() -> None:
    setup = build()
    setup.order("T-1001")
    run = setup.start("Where is T-1001?")
    with pytest.raises(Crash):
        runtime.execute(
            run,
            client=ScriptedClient(calls(("lookup_order", {"order_number": "T-1001"}), ids=["c1"]), Crash()),
        )
    run.refresh_from_db()
    assert run.status == Run.Status.RUNNING and run.step_count == 2  # model + tool persisted
    # A live lease keeps a second execution out...
    with pytest.raises(runtime.RunLeaseHeldError):
        runtime.execute(run, client=ScriptedClient())
    # ...until it expires, as it does when no heartbeat renews it.
    Run.objects.for_tenant(setup.tenant).filter(pk=run.pk).update(lease_expires_at=timezone.now() - timedelta(1))
    client = ScriptedClient(answer("It is paid."))

    run = runtime.execute(run, client=client)

    assert run.status == Run.Status.SUCCEEDED and run.output == "It is paid."
    assert [m["role"] for m in client.requests[0].messages] == ["system", "user", "assistant", "tool"]
    assert [(s.index, s.kind) for s in steps_of(run)] == [(0, "model"), (1, "tool"), (2, "model")]


class CrashAfterTool(hooks.RunHooks):
    """The worker dies right after a tool ran, before its step is persisted."""

    def check_tool_result(self, *, call: hooks.CallContext, tool: Tool | None, result: Any) -> hooks.Verdict:
        if tool is not None and tool.name == "refund_order":
            raise Crash
        return hooks.ALLOW


@pytest.mark.django_db
def test_a_refund_interrupted_before_its_step_was_saved_is_not_made_twice() -> None:
    setup = build()
    no_human_review(setup.tenant)
    order = setup.order("T-1001")
    run = setup.start()
    with hooks.registered(CrashAfterTool()), pytest.raises(Crash):
        runtime.execute(run, client=ScriptedClient(calls(("refund_order", {"order_number": "T-1001"}), ids=["c1"])))
    order.refresh_from_db()
    assert order.refund_count == 1 and run.steps.count() == 1  # refunded, but the tool step is not saved
    Run.objects.for_tenant(setup.tenant).filter(pk=run.pk).update(lease_expires_at=timezone.now())
    client = ScriptedClient(answer("Refunded."))

    run = runtime.execute(run, client=client)

    order.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED
    assert order.refund_count == 1
    tool_message = client.requests[0].messages[-1]
    assert tool_message["tool_call_id"] == "c1" and '"refunded": true' in tool_message["content"]


@pytest.mark.django_db
def test_an_execution_that_lost_its_lease_stops_without_writing() -> None:
    setup = build()
    run = setup.start()

    def taken_over(request: ChatRequest) -> ChatResponse:
        Run.objects.for_tenant(setup.tenant).filter(pk=run.pk).update(lease_owner="another-worker")
        return answer("Too late.")

    run = runtime.execute(run, client=ScriptedClient(taken_over))

    assert run.status == Run.Status.RUNNING and run.lease_owner == "another-worker"
    assert run.step_count == 0 and not run.steps.exists()


# --- Permissions ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_tool_the_agent_holds_no_scope_for_answers_an_error_and_does_not_run() -> None:
    setup = build(scopes=())
    order = setup.order("T-1001")
    client = ScriptedClient(calls(("refund_order", {"order_number": "T-1001"})), answer("I cannot refund."))

    run = runtime.execute(setup.start(), client=client)

    order.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED and order.refund_count == 0
    tool_step = steps_of(run)[1]
    assert "needs the scope 'orders:refund'" in tool_step.error
    assert "orders:refund" in client.requests[1].messages[-1]["content"]


@pytest.mark.django_db
def test_a_run_started_by_an_api_key_is_bounded_by_the_key_scopes() -> None:
    setup = build()
    order = setup.order("T-1001")
    key, _ = make_key(setup.tenant, ["runs:write"])
    client = ScriptedClient(calls(("refund_order", {"order_number": "T-1001"})), answer("No."))

    run = runtime.execute(setup.start(api_key=key), client=client)

    order.refresh_from_db()
    assert order.refund_count == 0
    assert "the API key that started this run lacks" in steps_of(run)[1].error


@pytest.mark.django_db
def test_a_tool_not_granted_to_the_agent_is_refused() -> None:
    setup = build(tools=("lookup_order",))
    Tool.objects.create(
        tenant=setup.tenant,
        name="refund_order",
        description="x",
        parameters=BUILTIN_SCHEMAS["refund_order"],
        risk=Tool.Risk.IRREVERSIBLE,
        executor=Tool.Executor.BUILTIN,
        builtin="refund_order",
    )
    order = setup.order("T-1001")
    client = ScriptedClient(calls(("refund_order", {"order_number": "T-1001"}), ("nope", {})), answer("Sorry."))

    run = runtime.execute(setup.start(), client=client)

    order.refresh_from_db()
    assert order.refund_count == 0
    errors = [s.error for s in steps_of(run) if s.kind == "tool"]
    assert errors == ["The tool 'refund_order' is not granted to this agent.", "There is no tool named 'nope'."]
    assert [t.name for t in client.requests[0].tools] == ["lookup_order"]


# --- Hook points ---------------------------------------------------------------------------------


class Recorder(hooks.RunHooks):
    """Records every hook point it is called at; refuses or blocks where told to."""

    def __init__(self, **behaviour: Any) -> None:
        self.behaviour = behaviour
        self.calls: list[str] = []
        self.spans: list[hooks.Span] = []
        self.settled: list[tuple[str, int]] = []

    def reserve_before_model_call(
        self, *, call: hooks.CallContext, model: LanguageModel, request: ChatRequest
    ) -> hooks.BudgetDecision:
        self.calls.append("reserve")
        if self.behaviour.get("refuse_budget"):
            return hooks.BudgetDecision(admitted=False, message="Daily budget of $1.00 for this agent is spent.")
        return hooks.BudgetDecision(reservation_id="r1")

    def settle_after_model_call(self, *, call, model, reservation, usage, cost_micros) -> None:
        self.calls.append("settle")
        self.settled.append((reservation.reservation_id, cost_micros if usage is not None else -1))

    def check_input(self, *, call: hooks.CallContext, text: str) -> hooks.Verdict:
        self.calls.append("check_input")
        return self.behaviour.get("input", hooks.ALLOW)

    def check_output(self, *, call: hooks.CallContext, text: str) -> hooks.Verdict:
        self.calls.append("check_output")
        return self.behaviour.get("output", hooks.ALLOW)

    def check_tool_call(self, *, call: hooks.CallContext, tool: Tool, arguments: dict[str, Any]) -> hooks.Verdict:
        self.calls.append("check_tool_call")
        return self.behaviour.get("tool_call", hooks.ALLOW)

    def check_tool_result(self, *, call: hooks.CallContext, tool: Tool | None, result: Any) -> hooks.Verdict:
        self.calls.append("check_tool_result")
        return self.behaviour.get("tool_result", hooks.ALLOW)

    def needs_approval(self, *, run: Run, tool: Tool, arguments: dict[str, Any]) -> bool:
        self.calls.append("needs_approval")
        return tool.risk == Tool.Risk.IRREVERSIBLE and self.behaviour.get("approve_irreversible", False)

    def approval_requested(self, *, run, tool, call_id, step_index, arguments, reason) -> None:
        self.calls.append(f"approval_requested:{tool.name}:{call_id}:{step_index}")

    def span_start(self, *, call: hooks.CallContext, span: hooks.Span) -> None:
        self.calls.append(f"span_start:{span.kind}")

    def span_end(self, *, call: hooks.CallContext, span: hooks.Span) -> None:
        self.calls.append(f"span_end:{span.kind}")
        self.spans.append(span)


@pytest.fixture
def recorder() -> Iterator[Callable[..., Recorder]]:
    made: list[Recorder] = []

    def make(**behaviour: Any) -> Recorder:
        made.append(recorder := Recorder(**behaviour))
        hooks.register(recorder)
        return recorder

    yield make
    for r in made:
        hooks.unregister(r)


@pytest.mark.django_db
def test_the_engine_calls_every_hook_point_in_order(recorder: Callable[..., Recorder]) -> None:
    setup = build()
    setup.order("T-1001")
    hook = recorder()
    client = ScriptedClient(calls(("lookup_order", {"order_number": "T-1001"})), answer("Paid."))

    run = runtime.execute(setup.start(), client=client)

    assert run.status == Run.Status.SUCCEEDED
    assert hook.calls == [
        "span_start:run",
        "check_input",
        # The model span is the step: it holds the reservation, the call and the settlement (the
        # budget hook, registered first, records each as a budget span under it).
        "span_start:model",
        "span_start:budget",
        "span_end:budget",
        "reserve",
        "span_start:budget",
        "span_end:budget",
        "settle",
        "span_end:model",
        "check_tool_call",
        "needs_approval",
        "span_start:tool",
        "span_end:tool",
        "check_tool_result",
        "span_start:model",
        "span_start:budget",
        "span_end:budget",
        "reserve",
        "span_start:budget",
        "span_end:budget",
        "settle",
        "span_end:model",
        "check_output",
        "span_end:run",
    ]
    root = hook.spans[-1]
    assert root.kind == "run" and root.trace_id == run.trace_id and root.attributes["run.status"] == "succeeded"
    steps = [s for s in hook.spans[:-1] if s.kind != "budget"]
    assert all(s.parent_id == root.span_id for s in steps)
    models = {s.span_id for s in steps if s.kind == "model"}
    assert all(s.parent_id in models for s in hook.spans if s.kind == "budget")
    # 100 in x $2.50/M + 10 out x $10/M = 350 micro-USD; then 100 in + 20 out = 450
    assert hook.settled == [("r1", 350), ("r1", 450)]


@pytest.mark.django_db
def test_a_budget_refusal_ends_the_run_budget_exceeded_without_calling_the_model(
    recorder: Callable[..., Recorder],
) -> None:
    setup = build()
    recorder(refuse_budget=True)
    client = ScriptedClient()

    run = runtime.execute(setup.start(), client=client)

    assert run.status == Run.Status.BUDGET_EXCEEDED and run.error_type == "budget_exceeded"
    assert run.error_message == "Daily budget of $1.00 for this agent is spent."
    assert client.requests == []


@pytest.mark.django_db
def test_a_provider_error_releases_the_reservation(recorder: Callable[..., Recorder]) -> None:
    setup = build()
    hook = recorder()

    runtime.execute(setup.start(), client=ScriptedClient(ProviderError("timeout", "Timed out.")))

    assert hook.settled == [("r1", -1)]


@pytest.mark.django_db
def test_a_blocked_input_ends_the_run_blocked(recorder: Callable[..., Recorder]) -> None:
    setup = build()
    recorder(input=hooks.Verdict(action="block", reason="Prompt injection detected."))
    client = ScriptedClient()

    # A harmless input: the verdict comes from the recorder, not from the tenant's real guardrails.
    run = runtime.execute(setup.start("Hello there"), client=client)

    assert run.status == Run.Status.BLOCKED and run.error_type == "guardrail_input"
    assert run.error_message == "Prompt injection detected." and client.requests == []


@pytest.mark.django_db
def test_a_blocked_tool_call_ends_the_run_blocked_and_the_tool_never_runs(recorder: Callable[..., Recorder]) -> None:
    setup = build()
    order = setup.order("T-1001")
    recorder(tool_call=hooks.Verdict(action="block", reason="Refunds over the limit."))

    run = runtime.execute(setup.start(), client=ScriptedClient(calls(("refund_order", {"order_number": "T-1001"}))))

    order.refresh_from_db()
    assert run.status == Run.Status.BLOCKED and run.error_type == "guardrail_tool_call"
    assert order.refund_count == 0
    assert steps_of(run)[-1].error == "Blocked: Refunds over the limit."


@pytest.mark.django_db
def test_a_redacted_output_replaces_the_answer(recorder: Callable[..., Recorder]) -> None:
    setup = build()
    recorder(output=hooks.Verdict(action="redact", reason="PII", redacted="Call me at [PHONE]."))

    run = runtime.execute(setup.start(), client=ScriptedClient(answer("Call me at 555-0100.")))

    assert run.status == Run.Status.SUCCEEDED and run.output == "Call me at [PHONE]."


@pytest.mark.django_db
def test_a_redacted_tool_result_is_what_the_model_sees(recorder: Callable[..., Recorder]) -> None:
    setup = build()
    setup.order("T-1001")
    recorder(tool_result=hooks.Verdict(action="redact", redacted={"status": "paid", "customer_email": "[EMAIL]"}))
    client = ScriptedClient(calls(("lookup_order", {"order_number": "T-1001"})), answer("ok"))

    runtime.execute(setup.start(), client=client)

    assert "ana@example.com" not in client.requests[1].messages[-1]["content"]
    assert "[EMAIL]" in client.requests[1].messages[-1]["content"]


@pytest.mark.django_db
def test_a_tool_needing_approval_pauses_the_run_and_an_approval_resumes_it(
    recorder: Callable[..., Recorder], announced: Announced, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup = build()
    order = setup.order("T-1001")
    hook = recorder(approve_irreversible=True)
    sent_tasks: list[tuple[str, str]] = []
    monkeypatch.setattr("agents.tasks.execute_run.delay", lambda *args: sent_tasks.append(args))
    run = setup.start()

    with announced.capture():
        run = runtime.execute(
            run, client=ScriptedClient(calls(("refund_order", {"order_number": "T-1001"}), ids=["c9"]))
        )

    order.refresh_from_db()
    assert run.status == Run.Status.AWAITING_APPROVAL and order.refund_count == 0
    assert run.lease_owner == "" and "approval_requested:refund_order:c9:1" in hook.calls
    with pytest.raises(ConflictError):
        runtime.resume_after_approval(run=run, call_id="other", approved=True)

    with announced.capture():
        run = runtime.resume_after_approval(run=run, call_id="c9", approved=True, note="ok")
    assert run.status == Run.Status.QUEUED and sent_tasks == [(str(setup.tenant.pk), str(run.pk))]
    with announced.capture():
        run = runtime.execute(run, client=ScriptedClient(answer("Refunded.")))

    order.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED and order.refund_count == 1
    assert announced.statuses(run) == ["running", "awaiting_approval", "queued", "running", "succeeded"]


@pytest.mark.django_db
def test_a_rejected_call_is_reported_to_the_model_and_not_run(
    recorder: Callable[..., Recorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    setup = build()
    order = setup.order("T-1001")
    recorder(approve_irreversible=True)
    monkeypatch.setattr("agents.tasks.execute_run.delay", lambda *args: None)
    run = runtime.execute(
        setup.start(), client=ScriptedClient(calls(("refund_order", {"order_number": "T-1001"}), ids=["c9"]))
    )
    runtime.resume_after_approval(run=run, call_id="c9", approved=False, note="Not eligible.")
    client = ScriptedClient(answer("The refund was declined."))

    run = runtime.execute(run, client=client)

    order.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED and order.refund_count == 0
    assert "A reviewer rejected this call: Not eligible." in client.requests[0].messages[-1]["content"]


# --- The heartbeat --------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_keeps_the_lease_of_a_long_call_alive(settings: Any) -> None:
    settings.RUN_LEASE_SECONDS = 0.6
    setup = build()
    run = setup.start()
    seen: list[Any] = []
    release = threading.Event()

    def long_call(request: ChatRequest) -> ChatResponse:
        # Longer than the lease: only the heartbeat keeps another execution out meanwhile.
        for _ in range(3):
            release.wait(0.5)
            seen.append((timezone.now(), Run.objects.get(pk=run.pk).lease_expires_at))
        return answer("done")

    run = runtime.execute(run, client=ScriptedClient(long_call))

    assert run.status == Run.Status.SUCCEEDED
    # At every look during the 1.5 s call, the 0.6 s lease was still in the future.
    assert all(expires > looked for looked, expires in seen), seen
    connection.close()


# --- The demo, the stuck-run sweep ------------------------------------------------------------


@pytest.mark.django_db
def test_the_seeded_support_agent_refunds_through_the_offline_demo_provider() -> None:
    from agents.demo import seed_agents
    from catalog.demo import seed_catalog

    tenant = Tenant.objects.create(slug=f"demo-{secrets.token_hex(4)}", name="Demo shop")
    seed_catalog(tenant)
    agent = seed_agents(tenant)
    assert agent.current_version is not None
    run = Run.objects.create(
        tenant=tenant,
        agent=agent,
        agent_version=agent.current_version,
        input="Order A-1001 arrived broken, please refund it.",
    )

    run = runtime.execute(run)  # the provider's own client: the demo, offline and deterministic

    # A refund is irreversible: the run waits for a reviewer, then the approval resumes it.
    assert run.status == Run.Status.AWAITING_APPROVAL, (run.error_type, run.error_message)
    order = DemoOrder.objects.for_tenant(tenant).get(number="A-1001")
    assert order.refund_count == 0
    from approvals.models import ApprovalRequest
    from approvals.services import approval_decide
    from tenants.audit import Actor
    from tenants.testing import make_key

    approval = ApprovalRequest.objects.for_tenant(tenant).get(run=run)
    assert approval.action == "refund_order" and approval.arguments["order_number"] == "A-1001"
    reviewer, _ = make_key(tenant, "approvals:decide", "reviewer")
    approval_decide(approval=approval, actor=Actor(api_key=reviewer), decision="approve", note="ok")
    run = runtime.execute(Run.objects.for_tenant(tenant).get(pk=run.pk))

    order.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, (run.error_type, run.error_message)
    assert [s.tool_name for s in steps_of(run) if s.kind == "tool"] == ["lookup_order", "refund_order"]
    assert order.refund_count == 1 and "refunded" in run.output.lower()
    assert all(s.model_id == "demo-support-2025-06-01" for s in steps_of(run) if s.kind == "model")
    assert run.cost_micros > 0


@pytest.mark.django_db
def test_a_cancel_requested_when_a_call_needs_approval_cancels_instead_of_waiting(
    recorder: Callable[..., Recorder],
) -> None:
    setup = build()
    order = setup.order("T-1001")
    hook = recorder(approve_irreversible=True)
    run = setup.start()

    with hooks.registered(CancelOnToolCall(run)):
        run = runtime.execute(run, client=ScriptedClient(calls(("refund_order", {"order_number": "T-1001"}))))

    order.refresh_from_db()
    assert run.status == Run.Status.CANCELLED and run.error_type == "cancelled"
    assert order.refund_count == 0 and not any(c.startswith("approval_requested") for c in hook.calls)


class CancelOnToolCall(hooks.RunHooks):
    """Someone cancels the run while its guardrails look at a tool call."""

    def __init__(self, run: Run) -> None:
        self.run = run

    def check_tool_call(self, *, call: hooks.CallContext, tool: Tool, arguments: dict[str, Any]) -> hooks.Verdict:
        Run.objects.for_tenant(call.tenant).filter(pk=self.run.pk).update(cancel_requested_at=timezone.now())
        return hooks.ALLOW


@pytest.mark.django_db
def test_the_sweep_requeues_running_runs_whose_lease_expired_and_only_those(monkeypatch: pytest.MonkeyPatch) -> None:
    from agents import tasks

    setup = build()
    now = timezone.now()
    dead = setup.start(status=Run.Status.RUNNING, lease_owner="gone", lease_expires_at=now - timedelta(minutes=5))
    setup.start(status=Run.Status.RUNNING, lease_owner="alive", lease_expires_at=now + timedelta(seconds=20))
    setup.start(status=Run.Status.QUEUED)
    setup.start(status=Run.Status.SUCCEEDED, lease_expires_at=now - timedelta(minutes=5))
    sent: list[tuple[str, str]] = []
    monkeypatch.setattr(tasks.execute_run, "delay", lambda *args: sent.append(args))

    assert tasks.requeue_stuck_runs() == 1

    assert sent == [(str(setup.tenant.pk), str(dead.pk))]
