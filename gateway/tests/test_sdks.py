"""The agent frameworks against the live ASGI server, their model calls answered by the local fake
upstream (catalog/fake_upstream.py): the OpenAI Agents SDK (a Runner with a function tool, on Chat
Completions and on the Responses API) and LangChain's ChatOpenAI (invoke, stream, bind_tools).

The Agents SDK's top-level package is `agents`, the name of this repository's Django app, so its
agent (gateway/tests/agents_sdk_client.py) runs in a subprocess: `python -I` from a temporary
directory, where neither the repository nor the script's directory is on sys.path."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from importlib.metadata import distribution
from pathlib import Path
from typing import Any

import openai
import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from budgets.models import Budget, Reservation
from catalog.fake_upstream import FakeUpstream, Scripted
from gateway.models import GatewayRequest
from gateway.tests.setup import EXACT, Gateway, gateway_tenant
from traces.models import Span

pytestmark = pytest.mark.django_db(transaction=True)

AGENT_SCRIPT = Path(__file__).with_name("agents_sdk_client.py")
QUESTION = "Where is my order A-1001?"
TOOL_RESULT = "Order A-1001 shipped on Monday and arrives on Thursday."  # what the script's tool returns
ANSWER = "Your order A-1001 shipped on Monday and arrives on Thursday."
CALL_USAGE = {"input_tokens": 60, "output_tokens": 14}
# Long enough that the output guardrails' window (96 characters, checked every 160) releases it in
# more than one piece on a stream.
LONG_ANSWER = (
    "Your order A-1001 shipped on Monday from our warehouse and is now with the courier. It should arrive"
    " on Thursday, and the courier leaves it at the door if nobody answers. You can follow it on the"
    " courier's page with the order number; the page updates every few hours while the parcel moves."
    " If it has not arrived by Friday evening, reply here and we will send a replacement the same day,"
    " at no cost to you. If it arrives damaged, keep the box and the packing, take a picture, and we"
    " will arrange a collection and a refund. Thank you for your patience, and sorry for the wait."
)
ANSWER_USAGE = {"input_tokens": 95, "output_tokens": 12}


@pytest.fixture
def fake(settings) -> Iterator[FakeUpstream]:
    settings.PROVIDER_ALLOWED_HOSTS = ["127.0.0.1"]
    with FakeUpstream() as server:
        yield server


@pytest.fixture
def gw(fake: FakeUpstream) -> Gateway:
    return gateway_tenant(fake.base_url)


@pytest.fixture(autouse=True)
def _no_langsmith(monkeypatch: pytest.MonkeyPatch) -> None:
    """LangChain sends nothing to LangSmith unless told to; make sure nothing here tells it."""
    for name in ("LANGSMITH_TRACING", "LANGCHAIN_TRACING_V2", "LANGSMITH_API_KEY", "LANGCHAIN_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def _budget(gw: Gateway, limit: int = 1_000_000) -> None:
    Budget.objects.create(tenant=gw.tenant, name="Agents daily", period=Budget.Period.DAY, limit=limit)


def _traceparent() -> tuple[str, str, str]:
    """A W3C traceparent as an instrumented agent would send it: (header, trace id, parent span id)."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def _cost(gw: Gateway, *usages: dict[str, int]) -> list[int]:
    return [gw.model.cost_micros(input_tokens=u["input_tokens"], output_tokens=u["output_tokens"]) for u in usages]


def _logged(gw: Gateway, calls: int) -> list[GatewayRequest]:
    """The request log once it holds `calls` rows: the gateway writes what it keeps of a call (the
    row, its spans, the settlement, together) just after the answer, so a client can be done first."""
    deadline = time.monotonic() + 10
    while True:
        rows = list(GatewayRequest.objects.for_tenant(gw.tenant).order_by("created_at", "id"))
        if len(rows) >= calls:
            return rows
        assert time.monotonic() < deadline, f"{len(rows)} of {calls} calls logged after 10 s"
        time.sleep(0.05)


def _assert_recorded(gw: Gateway, *, endpoint: str, trace_id: str, parent: str, usages: list[dict[str, int]]) -> None:
    """The gateway logged one 200 per model call, all in the client's trace (a gateway span over a
    model span each), and settled each reservation at the provider's usage."""
    rows = _logged(gw, len(usages))
    assert [(r.endpoint, r.alias, r.model_id, r.status) for r in rows] == [(endpoint, "default", EXACT, 200)] * len(
        usages
    )
    assert [(r.input_tokens, r.output_tokens) for r in rows] == [
        (u["input_tokens"], u["output_tokens"]) for u in usages
    ]
    assert [r.cost_micros for r in rows] == _cost(gw, *usages)
    assert {r.trace_id for r in rows} == {trace_id}
    spans = list(Span.objects.for_tenant(gw.tenant).filter(trace_id=trace_id))
    gateway_spans = [s for s in spans if s.kind == "agent"]
    model_spans = [s for s in spans if s.kind == "llm"]
    assert len(gateway_spans) == len(model_spans) == len(usages)
    assert {s.parent_span_id for s in gateway_spans} == {parent}
    assert {s.parent_span_id for s in model_spans} == {s.span_id for s in gateway_spans}
    assert Counter(s.cost_micros for s in model_spans) == Counter(_cost(gw, *usages))
    reservations = Reservation.objects.for_tenant(gw.tenant)
    assert {r.status for r in reservations} == {Reservation.Status.SETTLED}
    assert Counter(r.actual_micros for r in reservations) == Counter(_cost(gw, *usages))


# --- the OpenAI Agents SDK ------------------------------------------------------------------------


def run_agent(
    live_asgi: str,
    gw: Gateway,
    tmp_path: Path,
    *,
    api: str,
    model: str = "default",
    stream: bool = False,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run agents_sdk_client.py isolated from the repository (`-I`: no script directory, no
    PYTHON* variables, no user site; cwd a temporary directory) and return what it printed."""
    spec = {
        "base_url": f"{live_asgi}/v1",
        "api_key": gw.secret,
        "model": model,
        "api": api,
        "stream": stream,
        "input": QUESTION,
        "headers": headers or {},
    }
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "OPENAI_AGENTS_DISABLE_TRACING": "1"}
    done = subprocess.run(
        [sys.executable, "-I", str(AGENT_SCRIPT), json.dumps(spec)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    installed = Path(str(distribution("openai-agents").locate_file("agents/__init__.py")))
    assert Path(out["agents_module"]).resolve() == installed.resolve(), "the SDK, not the repository's app"
    assert not out["cwd_on_path"]
    return out


def test_an_agents_sdk_runner_calls_its_tool_and_answers_through_chat_completions(
    live_asgi: str, fake: FakeUpstream, gw: Gateway, tmp_path: Path
) -> None:
    _budget(gw)
    header, trace_id, parent = _traceparent()
    fake.queue(
        Scripted(tool_calls=[("lookup_order", {"order_number": "A-1001"})], usage=CALL_USAGE),
        Scripted(ANSWER, usage=ANSWER_USAGE),
    )
    out = run_agent(live_asgi, gw, tmp_path, api="chat_completions", headers={"traceparent": header})
    assert "error" not in out, out
    assert out["tool_calls"] == [{"order_number": "A-1001"}]
    assert out["final_output"] == ANSWER and out["model_responses"] == 2
    assert out["usage"] == {"requests": 2, "input_tokens": 155, "output_tokens": 26}
    first, second = fake.requests
    assert (first.path, second.path) == ("/v1/chat/completions", "/v1/chat/completions")
    assert first.body["model"] == EXACT and [t["function"]["name"] for t in first.body["tools"]] == ["lookup_order"]
    call_id = second.body["messages"][-2]["tool_calls"][0]["id"]
    assert second.body["messages"][-1] == {"role": "tool", "tool_call_id": call_id, "content": TOOL_RESULT}
    _assert_recorded(
        gw, endpoint="/v1/chat/completions", trace_id=trace_id, parent=parent, usages=[CALL_USAGE, ANSWER_USAGE]
    )


def test_an_agents_sdk_runner_calls_its_tool_and_answers_through_the_responses_api(
    live_asgi: str, fake: FakeUpstream, gw: Gateway, tmp_path: Path
) -> None:
    _budget(gw)
    header, trace_id, parent = _traceparent()
    fake.queue(
        Scripted(tool_calls=[("lookup_order", {"order_number": "A-1001"})], usage=CALL_USAGE),
        Scripted(ANSWER, usage=ANSWER_USAGE),
    )
    out = run_agent(live_asgi, gw, tmp_path, api="responses", headers={"traceparent": header})
    assert "error" not in out, out
    assert out["tool_calls"] == [{"order_number": "A-1001"}]
    assert out["final_output"] == ANSWER and out["model_responses"] == 2
    assert out["usage"] == {"requests": 2, "input_tokens": 155, "output_tokens": 26}
    first, second = fake.requests
    assert (first.path, second.path) == ("/v1/responses", "/v1/responses")
    assert first.body["model"] == EXACT and [t["name"] for t in first.body["tools"]] == ["lookup_order"]
    call, result = second.body["input"][-2:]
    assert call["type"] == "function_call" and json.loads(call["arguments"]) == {"order_number": "A-1001"}
    assert result == {"type": "function_call_output", "call_id": call["call_id"], "output": TOOL_RESULT}
    _assert_recorded(gw, endpoint="/v1/responses", trace_id=trace_id, parent=parent, usages=[CALL_USAGE, ANSWER_USAGE])


def test_an_agents_sdk_runner_streams_its_answer_through_the_responses_api(
    live_asgi: str, fake: FakeUpstream, gw: Gateway, tmp_path: Path
) -> None:
    _budget(gw)
    header, trace_id, parent = _traceparent()
    fake.queue(
        Scripted(tool_calls=[("lookup_order", {"order_number": "A-1001"})], usage=CALL_USAGE),
        Scripted(LONG_ANSWER, usage=ANSWER_USAGE, chunks=20),
    )
    out = run_agent(live_asgi, gw, tmp_path, api="responses", stream=True, headers={"traceparent": header})
    assert "error" not in out, out
    assert out["tool_calls"] == [{"order_number": "A-1001"}]
    assert out["final_output"] == LONG_ANSWER and "".join(out["deltas"]) == LONG_ANSWER and len(out["deltas"]) > 1
    assert all(r.body["stream"] is True for r in fake.requests)
    _assert_recorded(gw, endpoint="/v1/responses", trace_id=trace_id, parent=parent, usages=[CALL_USAGE, ANSWER_USAGE])
    assert {row.stream for row in _logged(gw, 2)} == {True}


def test_a_full_budget_stops_an_agents_sdk_run_with_the_sdks_own_error(
    live_asgi: str, fake: FakeUpstream, gw: Gateway, tmp_path: Path
) -> None:
    _budget(gw, limit=100)  # $0.0001: less than one call's worst case
    out = run_agent(live_asgi, gw, tmp_path, api="responses")
    error = out["error"]
    assert error["type"] == "openai.APIStatusError" and error["status_code"] == 402
    assert error["body"]["code"] == "budget_exceeded" and "Agents daily" in error["body"]["message"]
    assert out["tool_calls"] == [] and fake.requests == []
    (row,) = _logged(gw, 1)  # refused once: x-should-retry is false, the SDK does not retry
    assert (row.endpoint, row.status, row.error_code) == ("/v1/responses", 402, "budget_exceeded")
    assert not Reservation.objects.for_tenant(gw.tenant).filter(status=Reservation.Status.OPEN).exists()


def test_an_unknown_alias_stops_an_agents_sdk_run_with_the_sdks_not_found_error(
    live_asgi: str, fake: FakeUpstream, gw: Gateway, tmp_path: Path
) -> None:
    out = run_agent(live_asgi, gw, tmp_path, api="chat_completions", model="gpt-4o")
    error = out["error"]
    assert error["type"] == "openai.NotFoundError" and error["status_code"] == 404
    assert error["body"]["code"] == "model_not_found" and "'default'" in error["body"]["message"]
    assert out["tool_calls"] == [] and fake.requests == []


# --- LangChain's ChatOpenAI -------------------------------------------------------------------------


def chat(live_asgi: str, gw: Gateway, model: str = "default", **kwargs: Any) -> ChatOpenAI:
    """ChatOpenAI as the README shows it, with the openai client's default retries."""
    return ChatOpenAI(base_url=f"{live_asgi}/v1", api_key=SecretStr(gw.secret), model=model, **kwargs)


@tool
def lookup_order(order_number: str) -> str:
    """Look up an order's shipping status."""
    return f"Order {order_number} shipped on Monday and arrives on Thursday."


def test_langchain_invokes_the_pinned_model_and_reads_its_usage(
    live_asgi: str, fake: FakeUpstream, gw: Gateway
) -> None:
    _budget(gw)
    header, trace_id, parent = _traceparent()
    fake.queue(Scripted(ANSWER, usage=ANSWER_USAGE))
    answer = chat(live_asgi, gw, default_headers={"traceparent": header}).invoke(QUESTION)
    assert isinstance(answer, AIMessage) and answer.content == ANSWER
    assert answer.usage_metadata is not None
    assert (answer.usage_metadata["input_tokens"], answer.usage_metadata["output_tokens"]) == (95, 12)
    assert answer.response_metadata["model_name"] == EXACT
    assert fake.requests[-1].body["messages"] == [{"role": "user", "content": QUESTION}]
    _assert_recorded(gw, endpoint="/v1/chat/completions", trace_id=trace_id, parent=parent, usages=[ANSWER_USAGE])


def test_langchain_streams_the_answer_in_pieces_with_its_usage(live_asgi: str, fake: FakeUpstream, gw: Gateway) -> None:
    _budget(gw)
    header, trace_id, parent = _traceparent()
    fake.queue(Scripted(LONG_ANSWER, usage=ANSWER_USAGE, chunks=20))
    llm = chat(live_asgi, gw, stream_usage=True, default_headers={"traceparent": header})
    chunks = list(llm.stream(QUESTION))
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    assert sum(1 for c in chunks if c.content) > 1 and "".join(str(c.content) for c in chunks) == LONG_ANSWER
    whole = chunks[0]
    for c in chunks[1:]:
        whole += c
    assert whole.usage_metadata is not None
    assert (whole.usage_metadata["input_tokens"], whole.usage_metadata["output_tokens"]) == (95, 12)
    assert fake.requests[-1].body["stream"] is True
    _assert_recorded(gw, endpoint="/v1/chat/completions", trace_id=trace_id, parent=parent, usages=[ANSWER_USAGE])
    assert [row.stream for row in _logged(gw, 1)] == [True]


def test_langchain_binds_a_tool_gets_its_call_and_answers_from_its_result(
    live_asgi: str, fake: FakeUpstream, gw: Gateway
) -> None:
    _budget(gw)
    header, trace_id, parent = _traceparent()
    fake.queue(
        Scripted(tool_calls=[("lookup_order", {"order_number": "A-1001"})], usage=CALL_USAGE),
        Scripted(ANSWER, usage=ANSWER_USAGE),
    )
    llm = chat(live_asgi, gw, default_headers={"traceparent": header}).bind_tools([lookup_order])
    messages: list[Any] = [HumanMessage(QUESTION)]
    ai = llm.invoke(messages)
    assert isinstance(ai, AIMessage) and ai.content == ""
    (call,) = ai.tool_calls
    assert (call["name"], call["args"]) == ("lookup_order", {"order_number": "A-1001"})
    (sent_tool,) = fake.requests[0].body["tools"]
    assert sent_tool["function"]["name"] == "lookup_order"
    assert sent_tool["function"]["parameters"]["properties"] == {"order_number": {"type": "string"}}
    result = lookup_order.invoke(call)
    assert isinstance(result, ToolMessage) and result.content == TOOL_RESULT
    final = llm.invoke([*messages, ai, result])
    assert final.content == ANSWER
    assert fake.requests[1].body["messages"][-1] == {"role": "tool", "tool_call_id": call["id"], "content": TOOL_RESULT}
    _assert_recorded(
        gw, endpoint="/v1/chat/completions", trace_id=trace_id, parent=parent, usages=[CALL_USAGE, ANSWER_USAGE]
    )


def test_an_unknown_alias_raises_the_openai_not_found_error_through_langchain(
    live_asgi: str, fake: FakeUpstream, gw: Gateway
) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        chat(live_asgi, gw, model="gpt-4o").invoke(QUESTION)
    assert "'default'" in raised.value.message
    assert isinstance(raised.value.body, dict) and raised.value.body["code"] == "model_not_found"
    assert fake.requests == []


def test_a_full_budget_raises_a_402_through_a_langchain_stream_before_any_chunk(
    live_asgi: str, fake: FakeUpstream, gw: Gateway
) -> None:
    _budget(gw, limit=100)
    stream = chat(live_asgi, gw).stream(QUESTION)
    with pytest.raises(openai.APIStatusError) as raised:
        next(stream)  # the first chunk: the refusal comes instead
    assert raised.value.status_code == 402
    assert isinstance(raised.value.body, dict) and raised.value.body["code"] == "budget_exceeded"
    assert fake.requests == []
    (row,) = _logged(gw, 1)  # refused once: x-should-retry is false, the SDK does not retry
    assert (row.status, row.error_code, row.stream) == (402, "budget_exceeded", True)
