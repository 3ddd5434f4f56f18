"""Tool calls held for a reviewer (gateway.holds), through the openai SDK against the live ASGI
server and the local fake upstream: a reviewer decides through the approvals service (or the REST
decision endpoint) while the SDK's call waits in another thread."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest

from agents.models import Agent, AgentVersion, AgentVersionTool, Tool
from approvals import services
from approvals.models import ApprovalRequest, ApprovalRule
from catalog.fake_upstream import FakeUpstream, Scripted
from gateway.tests.setup import Gateway, gateway_tenant
from tenants.audit import Actor
from tenants.models import Membership, Role, Scope, User
from tenants.testing import make_key

pytestmark = pytest.mark.django_db(transaction=True)

REFUND = {"order_number": "A-1004", "amount_cents": 8999}
LOOKUP = {"order_number": "A-1004"}
ORDER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "order_number": {"type": "string"},
        "amount_cents": {"type": "integer"},
        "note": {"type": "string"},
    },
    "required": ["order_number"],
    "additionalProperties": False,
}
TOOLS: Any = [
    {"type": "function", "function": {"name": name, "description": name, "parameters": ORDER_SCHEMA}}
    for name in ("refund_order", "lookup_order", "my_own_tool")
]
ASK: Any = [{"role": "user", "content": "Refund order A-1004 please."}]


@pytest.fixture
def fake(settings) -> Iterator[FakeUpstream]:
    settings.PROVIDER_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.GATEWAY_APPROVAL_KEEPALIVE_SECONDS = 0.2
    with FakeUpstream() as server:
        yield server


@pytest.fixture
def gw(fake: FakeUpstream) -> Gateway:
    """A tenant whose catalog has an irreversible refund (the built-in rule asks a human) and a
    read-only lookup (nobody asked)."""
    gw = gateway_tenant(fake.base_url)
    _catalog(gw)
    return gw


@pytest.fixture
def claude(fake: FakeUpstream) -> Gateway:
    """A tenant whose `default` is an Anthropic model, with the same catalog tools."""
    from catalog.models import Provider

    gw = gateway_tenant(fake.root_url, kind=Provider.Kind.ANTHROPIC, model_id="claude-test-20250101")
    _catalog(gw)
    return gw


def _catalog(gw: Gateway) -> None:
    for name, risk in (("refund_order", Tool.Risk.IRREVERSIBLE), ("lookup_order", Tool.Risk.READ)):
        Tool.objects.create(
            tenant=gw.tenant,
            name=name,
            description=name,
            parameters=ORDER_SCHEMA,
            risk=risk,
            executor=Tool.Executor.BUILTIN,
            builtin=name,
        )


@pytest.fixture
def reviewer(gw: Gateway) -> Actor:
    user = User.objects.create_user(f"rita-{gw.tenant.slug}@example.test", "pw-123456789", name="Rita")
    Membership.objects.create(tenant=gw.tenant, user=user, role=Role.REVIEWER)
    return Actor(user=user)


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(2) as executor:
        yield executor


def sdk(live_asgi: str, key: str, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live_asgi}/v1", api_key=key, max_retries=0, default_headers=headers, timeout=30)


def pending(gw: Gateway, count: int = 1, *, within: float = 15.0) -> list[ApprovalRequest]:
    """The tenant's pending requests, once `count` of them wait (the SDK's call is held meanwhile)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        rows = list(
            ApprovalRequest.objects.for_tenant(gw.tenant)
            .filter(status=ApprovalRequest.Status.PENDING)
            .select_related("tenant", "tool", "agent")
            .order_by("created_at")
        )
        if len(rows) >= count:
            return rows
        time.sleep(0.05)
    raise AssertionError(f"no {count} pending approval request(s) within {within} s")


def decide(approval: ApprovalRequest, actor: Actor, decision: str, note: str = "", **extra: Any) -> None:
    services.approval_decide(approval=approval, actor=actor, decision=decision, note=note, **extra)


def held(pool: ThreadPoolExecutor, create: Callable[..., Any], **kwargs: Any) -> Future[Any]:
    """The SDK's call, made in another thread: it waits there while the test decides."""
    future = pool.submit(create, **kwargs)
    time.sleep(0.05)
    assert not future.done() or future.exception() is None, future.exception()
    return future


def names_of(tool_calls: Any) -> list[str]:
    return [call.function.name for call in tool_calls or []]


def spans_of(gw: Gateway, trace_id: str, *kinds: str) -> list[Any]:
    """The trace's spans, once it has one of each of `kinds` (a call's own spans may be written
    just after its answer is sent)."""
    from traces.models import Span

    deadline = time.monotonic() + 10
    while True:
        spans = list(Span.objects.for_tenant(gw.tenant).filter(trace_id=trace_id).order_by("started_at"))
        if set(kinds) <= {s.kind for s in spans} or time.monotonic() > deadline:
            return spans
        time.sleep(0.05)


# --- chat completions, not streamed ----------------------------------------------------------------


def test_an_approved_call_reaches_the_client_as_the_model_proposed_it(
    live_asgi: str, fake: FakeUpstream, gw: Gateway, reviewer: Actor, pool: ThreadPoolExecutor
) -> None:
    fake.queue(Scripted("I will refund it.", tool_calls=[("refund_order", REFUND)]))
    create = sdk(live_asgi, gw.secret).chat.completions.with_raw_response.create
    future = held(pool, create, model="default", messages=ASK, tools=TOOLS)
    (approval,) = pending(gw)
    assert approval.action == "refund_order" and approval.arguments == REFUND and approval.run is None
    assert approval.gateway_request_id.startswith("req_") and approval.reason == "irreversible"
    assert approval.context["messages"][0] == {"role": "user", "content": "Refund order A-1004 please."}
    assert "refund_order" in approval.context["messages"][-1]["content"], "the proposed call ends the conversation"
    assert not future.done(), "the answer is held while the reviewer decides"
    decide(approval, reviewer, "approve")
    raw = future.result(timeout=20)
    message = raw.parse().choices[0]
    assert message.finish_reason == "tool_calls" and message.message.content == "I will refund it."
    (call,) = message.message.tool_calls or []
    assert call.function.name == "refund_order" and json.loads(call.function.arguments) == REFUND
    assert raw.headers["x-request-id"] == approval.gateway_request_id
    assert approval.context["trace_id"] == raw.headers["x-aoc-trace-id"]


def test_a_reviewers_edited_arguments_are_what_the_client_receives(
    live_asgi: str, fake: FakeUpstream, gw: Gateway, reviewer: Actor, pool: ThreadPoolExecutor
) -> None:
    fake.queue(Scripted(tool_calls=[("refund_order", REFUND)]))
    future = held(pool, sdk(live_asgi, gw.secret).chat.completions.create, model="default", messages=ASK, tools=TOOLS)
    (approval,) = pending(gw)
    edited = {"order_number": "A-1004", "amount_cents": 5000}
    decide(approval, reviewer, "edit", "Half now, the rest after the return.", arguments=edited)
    (call,) = future.result(timeout=20).choices[0].message.tool_calls
    assert json.loads(call.function.arguments) == edited


def test_an_edit_that_breaks_the_tools_schema_is_refused_to_the_reviewer(
    live_asgi: str, fake: FakeUpstream, gw: Gateway, reviewer: Actor, pool: ThreadPoolExecutor
) -> None:
    from tenants.errors import FieldError

    fake.queue(Scripted(tool_calls=[("refund_order", REFUND)]))
    future = held(pool, sdk(live_asgi, gw.secret).chat.completions.create, model="default", messages=ASK, tools=TOOLS)
    (approval,) = pending(gw)
    with pytest.raises(FieldError, match="amount_cents"):
        decide(approval, reviewer, "edit", arguments={"order_number": "A-1004", "amount_cents": "lots"})
    decide(approval, reviewer, "approve")
    (call,) = future.result(timeout=20).choices[0].message.tool_calls
    assert json.loads(call.function.arguments) == REFUND


def test_a_rejected_call_becomes_text_saying_why_and_the_model_is_said_to_have_stopped(
    live_asgi: str, fake: FakeUpstream, gw: Gateway, pool: ThreadPoolExecutor
) -> None:
    """The reviewer decides through the REST decision endpoint, as a reviewer's tool would."""
    _, decider = make_key(gw.tenant, [Scope.APPROVALS_DECIDE])
    fake.queue(Scripted("Refunding now.", tool_calls=[("refund_order", REFUND)]))
    future = held(pool, sdk(live_asgi, gw.secret).chat.completions.create, model="default", messages=ASK, tools=TOOLS)
    (approval,) = pending(gw)
    response = httpx.post(
        f"{live_asgi}/api/v1/approvals/{approval.pk}/decision",
        json={"decision": "reject", "note": "Over the refund limit for this customer."},
        headers={"Authorization": f"Bearer {decider}"},
    )
    assert response.status_code == 200, response.text
    choice = future.result(timeout=20).choices[0]
    assert choice.finish_reason == "stop" and not choice.message.tool_calls
    assert choice.message.content == (
        "Refunding now.\n\nThe call to refund_order was refused by a reviewer: Over the refund limit for this customer."
    )


def test_other_calls_in_the_same_answer_go_out_unchanged(
    live_asgi: str, fake: FakeUpstream, gw: Gateway, reviewer: Actor, pool: ThreadPoolExecutor
) -> None:
    own = '{"order_number": "A-1004"}'  # the client's own tool: its arguments byte for byte
    fake.queue(Scripted(tool_calls=[("lookup_order", LOOKUP), ("refund_order", REFUND), ("my_own_tool", own)]))
    future = held(pool, sdk(live_asgi, gw.secret).chat.completions.create, model="default", messages=ASK, tools=TOOLS)
    (approval,) = pending(gw)
    decide(approval, reviewer, "reject", "Not before the lookup.")
    choice = future.result(timeout=20).choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert [(c.function.name, c.function.arguments) for c in calls] == [
        ("lookup_order", json.dumps(LOOKUP, separators=(",", ":"))),
        ("my_own_tool", own),
    ]
    assert choice.message.content == "The call to refund_order was refused by a reviewer: Not before the lookup."


def test_a_call_nobody_decides_expires_after_the_clients_wait_recorded_as_expiry(
    live_asgi: str, fake: FakeUpstream, gw: Gateway
) -> None:
    fake.queue(Scripted(tool_calls=[("refund_order", REFUND)]))
    started = time.monotonic()
    client = sdk(live_asgi, gw.secret, **{"X-AOC-Approval-Wait": "1"})
    choice = client.chat.completions.create(model="default", messages=ASK, tools=TOOLS).choices[0]
    assert 1 <= time.monotonic() - started < 10
    assert choice.finish_reason == "stop" and not choice.message.tool_calls
    assert choice.message.content == (
        "The call to refund_order was refused: the approval request expired without a decision."
    )
    approval = ApprovalRequest.objects.for_tenant(gw.tenant).get()
    assert approval.status == ApprovalRequest.Status.EXPIRED and approval.decided_by_id is None
    assert approval.decided_by_label == "expiry" and approval.votes.count() == 0
    assert (approval.expires_at - approval.created_at).total_seconds() == pytest.approx(1, abs=0.01)


def test_the_request_expires_at_the_rules_timeout_when_the_client_would_wait_longer(
    live_asgi: str, fake: FakeUpstream, gw: Gateway, pool: ThreadPoolExecutor, reviewer: Actor
) -> None:
    ApprovalRule.objects.create(tenant=gw.tenant, mode=ApprovalRule.Mode.ALWAYS, timeout_seconds=60)
    fake.queue(Scripted(tool_calls=[("lookup_order", LOOKUP)]))
    client = sdk(live_asgi, gw.secret, **{"X-AOC-Approval-Wait": "3600"})
    future = held(pool, client.chat.completions.create, model="default", messages=ASK, tools=TOOLS)
    (approval,) = pending(gw)
    assert approval.reason == "policy" and approval.quorum == 1
    assert (approval.expires_at - approval.created_at).total_seconds() == pytest.approx(60, abs=0.01)
    decide(approval, reviewer, "approve")
    assert future.result(timeout=20).choices[0].message.tool_calls


def test_a_bad_approval_wait_header_is_a_400_in_each_endpoints_shape(
    live_asgi: str, gw: Gateway, claude: Gateway
) -> None:
    for value in ("soon", "0", "-5", "inf", "nan", "1e9"):
        response = httpx.post(
            f"{live_asgi}/v1/chat/completions",
            json={"model": "default", "messages": ASK},
            headers={"Authorization": f"Bearer {gw.secret}", "X-AOC-Approval-Wait": value},
        )
        assert response.status_code == 400, (value, response.text)
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error" and "X-AOC-Approval-Wait" in error["message"], value
    response = httpx.post(
        f"{live_asgi}/v1/messages",
        json={"model": "default", "max_tokens": 10, "messages": ASK},
        headers={"x-api-key": claude.secret, "X-AOC-Approval-Wait": "later"},
    )
    assert response.status_code == 400 and response.json()["type"] == "error"
    assert "X-AOC-Approval-Wait" in response.json()["error"]["message"]


def test_a_client_that_leaves_while_its_call_is_held_has_the_request_cancelled(
    live_asgi: str, fake: FakeUpstream, gw: Gateway
) -> None:
    fake.queue(Scripted(tool_calls=[("refund_order", REFUND)]))
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{live_asgi}/v1/chat/completions",
            json={"model": "default", "messages": ASK, "tools": TOOLS},
            headers={"Authorization": f"Bearer {gw.secret}"},
            timeout=httpx.Timeout(10, read=1.5),
        )
    deadline = time.monotonic() + 10
    approval = ApprovalRequest.objects.for_tenant(gw.tenant).get()
    while approval.is_pending and time.monotonic() < deadline:
        time.sleep(0.1)
        approval.refresh_from_db()
    assert approval.status == ApprovalRequest.Status.CANCELLED
    assert approval.decided_by_label == "gateway: the client left"


# --- chat completions, streamed ----------------------------------------------------------------


def test_a_held_stream_sends_keep_alive_comments_until_the_reviewer_approves(
    live_asgi: str, fake: FakeUpstream, gw: Gateway, reviewer: Actor, pool: ThreadPoolExecutor
) -> None:
    fake.queue(Scripted("Refunding.", tool_calls=[("refund_order", REFUND)], chunks=4))
    lines: list[str] = []

    def read() -> None:
        with httpx.stream(
            "POST",
            f"{live_asgi}/v1/chat/completions",
            json={"model": "default", "messages": ASK, "tools": TOOLS, "stream": True},
            headers={"Authorization": f"Bearer {gw.secret}"},
            timeout=30,
        ) as response:
            assert response.status_code == 200
            lines.extend(line for line in response.iter_lines() if line)

    future = pool.submit(read)
    (approval,) = pending(gw)
    time.sleep(0.7)  # a few keep-alive periods (0.2 s in these tests)
    decide(approval, reviewer, "approve")
    future.result(timeout=20)
    comments = [line for line in lines if line.startswith(": waiting for approval of refund_order")]
    assert len(comments) >= 3, lines
    data = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in data if c["choices"])
    assert text == "Refunding."
    first_comment = lines.index(comments[0])
    calls = [(i, c) for i, c in enumerate(lines) if '"tool_calls":[' in c]
    assert len(calls) == 1 and calls[0][0] > first_comment, "the call goes out only once approved"
    (delta,) = json.loads(calls[0][1][6:])["choices"][0]["delta"]["tool_calls"]
    assert delta["function"]["name"] == "refund_order" and json.loads(delta["function"]["arguments"]) == REFUND
    assert [c["choices"][0]["finish_reason"] for c in data if c["choices"]][-1] == "tool_calls"
    assert lines[-1] == "data: [DONE]"


def test_a_rejected_call_in_a_stream_is_replaced_by_text_through_the_sdk(
    live_asgi: str, fake: FakeUpstream, gw: Gateway, reviewer: Actor, pool: ThreadPoolExecutor
) -> None:
    fake.queue(Scripted("Let me check.", tool_calls=[("lookup_order", LOOKUP), ("refund_order", REFUND)]))

    def read() -> tuple[str, list[tuple[str, str]], str]:
        stream = sdk(live_asgi, gw.secret).chat.completions.create(
            model="default", messages=ASK, tools=TOOLS, stream=True
        )
        text, finish = "", ""
        calls: dict[int, list[str]] = {}
        for chunk in stream:
            for choice in chunk.choices:
                text += choice.delta.content or ""
                for call in choice.delta.tool_calls or []:
                    slot = calls.setdefault(call.index, ["", ""])
                    slot[0] += (call.function and call.function.name) or ""
                    slot[1] += (call.function and call.function.arguments) or ""
                finish = choice.finish_reason or finish
        return text, [(name, arguments) for name, arguments in calls.values()], finish

    future = pool.submit(read)
    (approval,) = pending(gw)
    decide(approval, reviewer, "reject", "Refunds over $50 need a manager.")
    text, calls, finish = future.result(timeout=20)
    assert (
        text == "Let me check.\n\nThe call to refund_order was refused by a reviewer: Refunds over $50 need a manager."
    )
    assert [(name, json.loads(arguments)) for name, arguments in calls] == [("lookup_order", LOOKUP)]
    assert finish == "tool_calls"


def test_a_stream_without_governed_calls_is_not_held(live_asgi: str, fake: FakeUpstream, gw: Gateway) -> None:
    fake.queue(Scripted(tool_calls=[("lookup_order", LOOKUP), ("my_own_tool", LOOKUP)]))
    stream = sdk(live_asgi, gw.secret).chat.completions.create(model="default", messages=ASK, tools=TOOLS, stream=True)
    names = [
        c.function.name if c.function else ""
        for chunk in stream
        for choice in chunk.choices
        for c in choice.delta.tool_calls or []
    ]
    assert names == ["lookup_order", "my_own_tool"]
    assert not ApprovalRequest.objects.for_tenant(gw.tenant).exists()


# --- scopes and guardrails ---------------------------------------------------------------------


def _agent(gw: Gateway, *, tools: tuple[str, ...], scopes: tuple[str, ...] = ()) -> Agent:
    agent = Agent.objects.create(tenant=gw.tenant, name="Support")
    version = AgentVersion.objects.create(
        tenant=gw.tenant,
        agent=agent,
        number=1,
        instructions="Help.",
        model_alias="default",
        scopes=list(scopes),
        max_tokens_per_request=100_000,
    )
    for name in tools:
        AgentVersionTool.objects.create(
            tenant=gw.tenant, agent_version=version, tool=Tool.objects.for_tenant(gw.tenant).get(name=name)
        )
    agent.current_version = version
    agent.save(update_fields=["current_version"])
    return agent


def test_a_named_agent_may_call_only_its_granted_tools(live_asgi: str, fake: FakeUpstream, gw: Gateway) -> None:
    _agent(gw, tools=("lookup_order",))
    fake.queue(Scripted(tool_calls=[("refund_order", REFUND), ("my_own_tool", LOOKUP), ("lookup_order", LOOKUP)]))
    raw = sdk(live_asgi, gw.secret, **{"X-AOC-Agent": "Support"}).chat.completions.with_raw_response.create(
        model="default", messages=ASK, tools=TOOLS
    )
    choice = raw.parse().choices[0]
    assert names_of(choice.message.tool_calls) == ["lookup_order"]
    assert choice.message.content == (
        "The call to refund_order was refused: the tool 'refund_order' is not granted to this agent.\n"
        "The call to my_own_tool was refused: there is no tool named 'my_own_tool'."
    )
    assert not ApprovalRequest.objects.for_tenant(gw.tenant).exists(), "refused before anyone is asked"
    refused = [s for s in spans_of(gw, raw.headers["x-aoc-trace-id"], "agent", "tool") if s.kind == "tool"]
    assert sorted(s.name for s in refused) == ["my_own_tool (refused)", "refund_order (refused)"]
    assert all(s.status == "error" and s.error_type == "tool_not_allowed" for s in refused)


def test_a_tool_whose_scope_the_key_lacks_is_refused_and_a_key_that_holds_it_is_held(
    live_asgi: str, fake: FakeUpstream, gw: Gateway, pool: ThreadPoolExecutor, reviewer: Actor
) -> None:
    Tool.objects.for_tenant(gw.tenant).filter(name="refund_order").update(required_scope="orders:refund")
    fake.queue(Scripted(tool_calls=[("refund_order", REFUND)]))
    choice = sdk(live_asgi, gw.secret).chat.completions.create(model="default", messages=ASK, tools=TOOLS).choices[0]
    assert not choice.message.tool_calls and choice.finish_reason == "stop"
    assert choice.message.content == (
        "The call to refund_order was refused: the tool 'refund_order' needs the scope 'orders:refund', "
        "which this API key lacks."
    )
    _, holder = make_key(gw.tenant, [Scope.GATEWAY, "orders:refund"])
    fake.queue(Scripted(tool_calls=[("refund_order", REFUND)]))
    future = held(pool, sdk(live_asgi, holder).chat.completions.create, model="default", messages=ASK, tools=TOOLS)
    decide(pending(gw)[0], reviewer, "approve")
    assert future.result(timeout=20).choices[0].message.tool_calls


def test_arguments_that_break_the_tools_schema_are_blocked_by_the_tool_call_guardrail(
    live_asgi: str, fake: FakeUpstream, gw: Gateway
) -> None:
    from guardrails.models import GuardrailEvent

    fake.queue(Scripted(tool_calls=[("refund_order", {"order_number": 1004})]))
    choice = sdk(live_asgi, gw.secret).chat.completions.create(model="default", messages=ASK, tools=TOOLS).choices[0]
    assert not choice.message.tool_calls
    assert (choice.message.content or "").startswith("The call to refund_order was blocked by a guardrail: ")
    assert "order_number" in (choice.message.content or "")
    assert not ApprovalRequest.objects.for_tenant(gw.tenant).exists()
    event = GuardrailEvent.objects.for_tenant(gw.tenant).get(stage="tool_call")
    assert event.action == "block" and event.tool_name == "refund_order" and event.source == "gateway"


def test_a_guardrail_that_requires_approval_holds_a_call_the_rules_would_let_through(
    live_asgi: str, fake: FakeUpstream, gw: Gateway, pool: ThreadPoolExecutor, reviewer: Actor
) -> None:
    from guardrails.checks import DEFAULT_RULES
    from guardrails.models import Policy

    rules = [dict(r) for r in DEFAULT_RULES]
    rules.append({"stage": "tool_call", "detector": "pii", "parameters": {}, "action": "require_approval"})
    Policy.objects.update_or_create(tenant=gw.tenant, agent=None, defaults={"rules": rules})
    arguments = {"order_number": "A-1004", "note": "Write to ana.lopez@example.com about it."}
    fake.queue(Scripted(tool_calls=[("lookup_order", arguments)]))
    future = held(pool, sdk(live_asgi, gw.secret).chat.completions.create, model="default", messages=ASK, tools=TOOLS)
    (approval,) = pending(gw)
    assert approval.action == "lookup_order" and approval.reason == "guardrail"
    assert approval.context["guardrail_findings"] and approval.reason_detail
    decide(approval, reviewer, "approve")
    (call,) = future.result(timeout=20).choices[0].message.tool_calls or []
    assert call.function.name == "lookup_order"


def test_an_agents_earned_autonomy_lets_its_call_through_and_a_guardrail_block_revokes_it(
    live_asgi: str, fake: FakeUpstream, gw: Gateway
) -> None:
    from approvals.models import AutonomyGrant

    agent = _agent(gw, tools=("lookup_order",))
    lookup = Tool.objects.for_tenant(gw.tenant).get(name="lookup_order")
    ApprovalRule.objects.create(tenant=gw.tenant, mode=ApprovalRule.Mode.ALWAYS, autonomy_after=2)
    grant = AutonomyGrant.objects.create(
        tenant=gw.tenant, agent=agent, tool=lookup, streak=2, granted_by_label="earned: 2 consecutive approvals"
    )
    client = sdk(live_asgi, gw.secret, **{"X-AOC-Agent": "Support"})
    fake.queue(Scripted(tool_calls=[("lookup_order", LOOKUP)]))
    assert names_of(
        client.chat.completions.create(model="default", messages=ASK, tools=TOOLS).choices[0].message.tool_calls
    ) == ["lookup_order"]
    grant.refresh_from_db()
    assert grant.auto_approved == 1 and not ApprovalRequest.objects.for_tenant(gw.tenant).exists()
    fake.queue(Scripted(tool_calls=[("lookup_order", {"order_number": "A-1004", "note": "AKIAIOSFODNN7EXAMPLE"})]))
    choice = client.chat.completions.create(model="default", messages=ASK, tools=TOOLS).choices[0]
    assert (choice.message.content or "").startswith("The call to lookup_order was blocked by a guardrail: ")
    grant.refresh_from_db()
    assert grant.revoked_at is not None and "a guardrail blocked a call it proposed" in grant.revoke_reason


# --- the trace and the queue -------------------------------------------------------------------


def test_the_approval_is_a_span_under_the_gateway_span_with_decision_reviewer_and_wait(
    live_asgi: str, fake: FakeUpstream, gw: Gateway, reviewer: Actor, pool: ThreadPoolExecutor
) -> None:
    fake.queue(Scripted(tool_calls=[("refund_order", REFUND)]))
    create = sdk(live_asgi, gw.secret).chat.completions.with_raw_response.create
    future = held(pool, create, model="default", messages=ASK, tools=TOOLS)
    (approval,) = pending(gw)
    time.sleep(0.3)
    edited = {**REFUND, "amount_cents": 4500}
    decide(approval, reviewer, "edit", "Partial refund.", arguments=edited)
    trace_id = future.result(timeout=20).headers["x-aoc-trace-id"]
    spans = spans_of(gw, trace_id, "agent", "llm", "approval")
    (root,) = [s for s in spans if s.kind == "agent"]
    (span,) = [s for s in spans if s.kind == "approval"]
    assert span.parent_span_id == root.span_id and span.name == "approval refund_order"
    attributes = span.attributes
    assert attributes["approval.id"] == str(approval.pk) and attributes["approval.decision"] == "approved"
    assert attributes["approval.decided_by"] == reviewer.label and attributes["approval.edited"] is True
    assert attributes["approval.wait_ms"] >= 300 and attributes["approval.note"] == "Partial refund."
    assert span.input == REFUND and span.output == {"arguments": edited} and span.status == "ok"
    checks = [s for s in spans if s.kind == "guardrail" and s.name == "guardrail tool_call refund_order"]
    assert len(checks) == 3, "the proposed call, the edit when it is made and again when it goes out"
    assert all(s.parent_span_id == root.span_id for s in checks)
    assert {s.kind for s in spans} >= {"agent", "llm", "guardrail", "approval"}


def test_an_expired_or_rejected_hold_is_an_error_span_saying_so(
    live_asgi: str, fake: FakeUpstream, gw: Gateway
) -> None:
    fake.queue(Scripted(tool_calls=[("refund_order", REFUND)]))
    client = sdk(live_asgi, gw.secret, **{"X-AOC-Approval-Wait": "0.5"})
    trace_id = client.chat.completions.with_raw_response.create(model="default", messages=ASK, tools=TOOLS).headers[
        "x-aoc-trace-id"
    ]
    (span,) = [s for s in spans_of(gw, trace_id, "approval") if s.kind == "approval"]
    assert span.status == "error" and span.attributes["approval.decision"] == "expired"
    assert span.attributes["approval.decided_by"] == "expiry"
    assert span.output == {
        "refused": "The call to refund_order was refused: the approval request expired without a decision."
    }


def test_reviewers_see_the_held_call_in_the_queue_with_its_conversation(
    live_asgi: str, fake: FakeUpstream, gw: Gateway, reviewer: Actor, pool: ThreadPoolExecutor, client: Any
) -> None:
    from django.urls import reverse

    fake.queue(Scripted("Refunding.", tool_calls=[("refund_order", REFUND)]))
    gateway = sdk(live_asgi, gw.secret, **{"X-AOC-End-User": "customer-42"})
    future = held(pool, gateway.chat.completions.create, model="default", messages=ASK, tools=TOOLS)
    (approval,) = pending(gw)
    client.force_login(reviewer.user)
    queue = client.get(reverse("console:approvals", args=[gw.tenant.slug])).content.decode()
    assert f'id="approval-{approval.pk}"' in queue
    assert "customer-42" in queue and "gateway call: <q" in queue and "Refund order A-1004 please." in queue
    detail = client.get(reverse("console:approval", args=[gw.tenant.slug, approval.pk])).content.decode()
    assert approval.gateway_request_id in detail and "customer-42" in detail
    assert "Refund order A-1004 please." in detail and "Refunding." in detail
    decide(approval, reviewer, "approve")
    assert future.result(timeout=20).choices[0].message.tool_calls


# --- the Responses API -------------------------------------------------------------------------

FUNCTIONS: Any = [{"type": "function", "name": t["function"]["name"], "parameters": ORDER_SCHEMA} for t in TOOLS]


def test_a_responses_function_call_is_held_and_a_rejection_becomes_a_message_item(
    live_asgi: str, fake: FakeUpstream, gw: Gateway, reviewer: Actor, pool: ThreadPoolExecutor
) -> None:
    fake.queue(Scripted(tool_calls=[("lookup_order", LOOKUP), ("refund_order", REFUND)]))
    create = sdk(live_asgi, gw.secret).responses.create
    future = held(pool, create, model="default", input="Refund order A-1004 please.", tools=FUNCTIONS)
    (approval,) = pending(gw)
    assert approval.context["messages"][0]["content"] == "Refund order A-1004 please."
    decide(approval, reviewer, "reject", "Wrong order.")
    answer = future.result(timeout=20)
    kinds = [(item.type, getattr(item, "name", None)) for item in answer.output]
    assert kinds == [("function_call", "lookup_order"), ("message", None)]
    assert answer.output_text == "The call to refund_order was refused by a reviewer: Wrong order."


def test_a_responses_stream_releases_the_edited_call_after_keep_alives(
    live_asgi: str, fake: FakeUpstream, gw: Gateway, reviewer: Actor, pool: ThreadPoolExecutor
) -> None:
    fake.queue(Scripted("Checking.", tool_calls=[("refund_order", REFUND)]))
    edited = {**REFUND, "amount_cents": 100}

    def read() -> tuple[list[Any], Any]:
        with sdk(live_asgi, gw.secret).responses.stream(
            model="default", input="Refund order A-1004 please.", tools=FUNCTIONS
        ) as stream:
            kinds = [event.type for event in stream]
            return kinds, stream.get_final_response()

    future = pool.submit(read)
    (approval,) = pending(gw)
    time.sleep(0.3)
    decide(approval, reviewer, "edit", arguments=edited)
    kinds, final = future.result(timeout=20)
    assert final.output_text == "Checking."
    (call,) = [item for item in final.output if item.type == "function_call"]
    assert call.name == "refund_order" and json.loads(call.arguments) == edited
    assert kinds[-1] == "response.completed" and "response.function_call_arguments.done" in kinds


def test_a_responses_stream_replaces_an_expired_call_with_a_message_item(
    live_asgi: str, fake: FakeUpstream, gw: Gateway
) -> None:
    fake.queue(Scripted(tool_calls=[("refund_order", REFUND)]))
    client = sdk(live_asgi, gw.secret, **{"X-AOC-Approval-Wait": "0.5"})
    with client.responses.stream(model="default", input="Refund it.", tools=FUNCTIONS) as stream:
        texts = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    expired = "The call to refund_order was refused: the approval request expired without a decision."
    assert texts == [expired] and final.output_text == expired
    assert [item.type for item in final.output] == ["message"]


# --- the Anthropic Messages API ----------------------------------------------------------------

ANTHROPIC_TOOLS: Any = [{"name": t["function"]["name"], "input_schema": ORDER_SCHEMA} for t in TOOLS]


def _claude_reviewer(claude: Gateway) -> Actor:
    user = User.objects.create_user(f"rita-{claude.tenant.slug}@example.test", "pw-123456789", name="Rita")
    Membership.objects.create(tenant=claude.tenant, user=user, role=Role.REVIEWER)
    return Actor(user=user)


def test_a_tool_use_block_is_held_and_approved_through_the_anthropic_sdk(
    live_asgi: str, fake: FakeUpstream, claude: Gateway, pool: ThreadPoolExecutor
) -> None:
    import anthropic

    fake.queue(Scripted("On it.", tool_calls=[("refund_order", REFUND)]))
    client = anthropic.Anthropic(base_url=live_asgi, api_key=claude.secret, max_retries=0)
    future = held(pool, client.messages.create, model="default", max_tokens=200, messages=ASK, tools=ANTHROPIC_TOOLS)
    (approval,) = pending(claude)
    decide(approval, _claude_reviewer(claude), "approve")
    answer = future.result(timeout=20)
    assert answer.stop_reason == "tool_use"
    assert [(b.type, getattr(b, "input", None)) for b in answer.content] == [("text", None), ("tool_use", REFUND)]


def test_a_rejected_tool_use_in_an_anthropic_stream_becomes_a_text_block(
    live_asgi: str, fake: FakeUpstream, claude: Gateway, pool: ThreadPoolExecutor
) -> None:
    import anthropic

    fake.queue(Scripted(tool_calls=[("lookup_order", LOOKUP), ("refund_order", REFUND)]))
    client = anthropic.Anthropic(base_url=live_asgi, api_key=claude.secret, max_retries=0)

    def read() -> Any:
        with client.messages.stream(model="default", max_tokens=200, messages=ASK, tools=ANTHROPIC_TOOLS) as s:
            return s.get_final_message()

    future = pool.submit(read)
    (approval,) = pending(claude)
    decide(approval, _claude_reviewer(claude), "reject", "Needs a manager.")
    final = future.result(timeout=20)
    assert final.stop_reason == "tool_use", "the lookup still goes out"
    assert [(b.type, getattr(b, "name", None) or getattr(b, "text", None)) for b in final.content] == [
        ("tool_use", "lookup_order"),
        ("text", "The call to refund_order was refused by a reviewer: Needs a manager."),
    ]
    assert final.content[0].input == LOOKUP
