"""Each instrumentation library, unmodified, sends its spans through its real OTLP exporter to the
live server, with its model calls answered by the local fake OpenAI (catalog/fake_openai.py, never
the network); the trace is then read back through the API (and once on the trace page in
Chromium): kind, model asked for and model that answered, tokens, cost (ours, and the client's
where it sends one), end user, session and errors.

The fake answers for the floating alias `default` with the dated, priced demo model
`demo-support-2025-06-01` (input $0.50, output $1.50 per million tokens): 2,000 tokens in and
1,000 out cost 2,500 µ$.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from catalog.demo import DEMO_MODEL_ID
from catalog.fake_openai import FakeOpenAI, completion, error
from tenants.models import Scope
from tenants.testing import Cast, make_key

pytestmark = pytest.mark.django_db(transaction=True)

USAGE = {
    "prompt_tokens": 2000,
    "completion_tokens": 1000,
    "total_tokens": 3000,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
}
COST_MICROS = 2500  # 2,000 x $0.50/M + 1,000 x $1.50/M


@dataclass
class Console:
    url: str
    write_key: str
    read_key: str

    def trace(self, trace_id: str, *, spans: int, timeout: float = 10.0) -> dict[str, Any]:
        """The trace as the API gives it, once it holds `spans` spans."""
        deadline = time.monotonic() + timeout
        while True:
            answer = requests.get(
                f"{self.url}/api/v1/traces/{trace_id}",
                headers={"Authorization": f"Bearer {self.read_key}"},
                timeout=10,
            )
            if answer.status_code == 200 and len(answer.json()["spans"]) >= spans:
                return answer.json()
            assert time.monotonic() < deadline, f"trace {trace_id} not whole: {answer.status_code} {answer.text[:500]}"
            time.sleep(0.05)

    def traces(self, **params: str) -> list[dict[str, Any]]:
        answer = requests.get(
            f"{self.url}/api/v1/traces",
            params=params,
            headers={"Authorization": f"Bearer {self.read_key}"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        return answer.json()["results"]


@pytest.fixture
def console(live_asgi: str, cast: Cast) -> Console:
    _, write_key = make_key(cast.acme, [Scope.TRACES_WRITE])
    _, read_key = make_key(cast.acme, [Scope.READ])
    return Console(live_asgi, write_key, read_key)


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(models=(DEMO_MODEL_ID,)) as server:
        yield server


def answered(content: str = "Your order ships tomorrow.") -> dict[str, Any]:
    return completion(content, model=DEMO_MODEL_ID, usage=USAGE)


def otlp_provider(console: Console, service: str) -> Any:
    """A TracerProvider exporting through the real OTLP/HTTP (protobuf) exporter to the console,
    span by span; every export must succeed."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult

    exporter = OTLPSpanExporter(
        endpoint=f"{console.url}/v1/traces", headers={"Authorization": f"Bearer {console.write_key}"}
    )
    export = exporter.export

    def checked_export(spans: Any) -> SpanExportResult:
        result = export(spans)
        assert result == SpanExportResult.SUCCESS, [s.name for s in spans]
        return result

    exporter.export = checked_export  # type: ignore[method-assign]
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def words(locator: Any) -> str:
    """A locator's visible text with its line breaks and runs of spaces as single spaces."""
    return " ".join(locator.inner_text().split())


def hex_trace_id(span: Any) -> str:
    return format(span.get_span_context().trace_id, "032x")


def by_name(trace: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in trace["spans"]}


def assert_priced_call(span: dict[str, Any], *, reported: int | None = None, requested: str = "default") -> None:
    assert span["kind"] == "llm"
    assert span["model"] == DEMO_MODEL_ID
    assert span["request_model"] == requested
    assert span["usage"]["input_tokens"] == 2000 and span["usage"]["output_tokens"] == 1000
    assert span["usage"]["cost_micros"] == COST_MICROS
    assert span["usage"]["reported_cost_micros"] == reported


# --- Plain OTLP, configured by OpenTelemetry's standard environment variables (the README's) ------


def test_plain_otlp_configured_by_the_standard_environment_variables(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{console.url}/v1/traces")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"Authorization=Bearer%20{console.write_key}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter()))
    with provider.get_tracer("billing-bot").start_as_current_span("chat default") as span:
        span.set_attributes(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "default",
                "gen_ai.response.model": "fake-model-2024-01-01",  # not in the catalog
                "gen_ai.usage.input_tokens": 20,
                "gen_ai.usage.output_tokens": 10,
                "gen_ai.usage.cost": 0.00004,
                "enduser.id": "fay",
            }
        )
        trace_id = hex_trace_id(span)
    provider.shutdown()

    trace = console.trace(trace_id, spans=1)
    (chat,) = trace["spans"]
    assert (chat["kind"], chat["model"], chat["request_model"]) == ("llm", "fake-model-2024-01-01", "default")
    assert chat["usage"]["cost_micros"] is None and chat["usage"]["reported_cost_micros"] == 40
    assert trace["priced"] is False and trace["reported_cost_micros"] == 40 and trace["end_user_id"] == "fay"


# --- (a) the OpenAI SDK with OpenTelemetry's GenAI instrumentation ------------------------------


@pytest.fixture
def genai_instrumented(console: Console) -> Iterator[Any]:
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    provider = otlp_provider(console, "support-bot")
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    yield provider
    instrumentor.uninstrument()
    provider.shutdown()


def test_openai_sdk_with_the_genai_instrumentation(genai_instrumented: Any, console: Console, fake: FakeOpenAI) -> None:
    import openai

    fake.queue(answered(), error(500, "The upstream is down"))
    client = openai.OpenAI(base_url=fake.base_url, api_key="sk-fake", max_retries=0)
    tracer = genai_instrumented.get_tracer("support-bot")
    with tracer.start_as_current_span("invoke_agent support-bot") as agent:
        agent.set_attribute("gen_ai.operation.name", "invoke_agent")
        agent.set_attribute("gen_ai.agent.name", "support-bot")
        agent.set_attribute("gen_ai.conversation.id", "conv-a")
        agent.set_attribute("enduser.id", "ann")
        client.chat.completions.create(model="default", messages=[{"role": "user", "content": "Where is A-1001?"}])
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="default", messages=[{"role": "user", "content": "And A-1002?"}])
        trace_id = hex_trace_id(agent)

    trace = console.trace(trace_id, spans=3)
    agent_span = by_name(trace)["invoke_agent support-bot"]
    calls = sorted((s for s in trace["spans"] if s["kind"] == "llm"), key=lambda s: s["started_at"])
    assert agent_span["kind"] == "agent" and agent_span["agent_id"] == "support-bot"
    assert_priced_call(calls[0])
    failed = calls[1]
    assert failed["status"] == "error" and failed["request_model"] == "default"
    assert failed["error"]["type"] == "openai.InternalServerError"  # the library wrote "<class '…'>"
    assert "The upstream is down" in failed["error"]["message"]
    for span in calls:  # inherited from the agent span
        assert (span["end_user_id"], span["session_id"], span["agent_id"]) == ("ann", "conv-a", "support-bot")
    assert trace["status"] == "error" and trace["error_count"] == 1
    assert (trace["end_user_id"], trace["session_id"]) == ("ann", "conv-a")
    assert trace["cost_micros"] == COST_MICROS and trace["priced"] is True
    assert DEMO_MODEL_ID in trace["models_used"]  # and "default", all the failed call knew


# --- (b) the OpenAI SDK with OpenInference's instrumentation (Arize Phoenix) ---------------------


@pytest.fixture
def openinference_instrumented(console: Console) -> Iterator[Any]:
    from openinference.instrumentation.openai import OpenAIInstrumentor

    provider = otlp_provider(console, "support-bot")
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    yield provider
    instrumentor.uninstrument()
    provider.shutdown()


def test_openai_sdk_with_openinference(openinference_instrumented: Any, console: Console, fake: FakeOpenAI) -> None:
    import openai
    from openinference.instrumentation import using_attributes

    fake.queue(answered(), error(400, "Unsupported parameter: 'temprature'"))
    client = openai.OpenAI(base_url=fake.base_url, api_key="sk-fake", max_retries=0)
    tracer = openinference_instrumented.get_tracer("support-bot")
    with using_attributes(session_id="conv-b", user_id="bea"), tracer.start_as_current_span("support-bot") as agent:
        agent.set_attribute("openinference.span.kind", "AGENT")
        agent.set_attribute("agent.name", "support-bot")
        client.chat.completions.create(model="default", messages=[{"role": "user", "content": "Wo ist A-1001?"}])
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="default", messages=[{"role": "user", "content": "Und A-1002?"}])
        trace_id = hex_trace_id(agent)

    trace = console.trace(trace_id, spans=3)
    agent_span = by_name(trace)["support-bot"]
    calls = sorted((s for s in trace["spans"] if s["kind"] == "llm"), key=lambda s: s["started_at"])
    assert agent_span["kind"] == "agent" and agent_span["agent_id"] == "support-bot"
    assert_priced_call(calls[0])
    assert calls[0]["input"] is not None and "Wo ist A-1001?" in str(calls[0]["input"])
    failed = calls[1]
    assert failed["status"] == "error" and failed["request_model"] == "default"
    assert failed["error"]["type"] == "openai.BadRequestError"
    assert "temprature" in failed["error"]["message"]
    for span in calls:
        assert (span["end_user_id"], span["session_id"], span["agent_id"]) == ("bea", "conv-b", "support-bot")
    assert (trace["end_user_id"], trace["session_id"]) == ("bea", "conv-b")
    assert trace["status"] == "error" and trace["cost_micros"] == COST_MICROS


# --- (c) the Langfuse SDK (v3 and later export OTLP to /api/public/otel/v1/traces) ---------------


@pytest.fixture
def langfuse_client(console: Console, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Langfuse pointed at the console, offline: its host is the live server, its secret key our API
    key (it sends Basic public:secret), so nothing goes to cloud.langfuse.com."""
    from langfuse import Langfuse
    from opentelemetry.sdk.trace import TracerProvider

    monkeypatch.delenv("LANGFUSE_HOST", raising=False)
    monkeypatch.setenv("LANGFUSE_BASE_URL", console.url)
    # Langfuse keeps one exporter per public key for the process: a new key per live server.
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", f"pk-lf-{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", console.write_key)
    # A provider of its own: Langfuse would otherwise install its provider as the process's global one.
    client = Langfuse(tracer_provider=TracerProvider())
    yield client
    client.shutdown()


def test_the_langfuse_sdk(langfuse_client: Any, console: Console, fake: FakeOpenAI) -> None:
    import openai
    from langfuse import propagate_attributes

    fake.queue(answered(), error(500, "The upstream is down"))
    client = openai.OpenAI(base_url=fake.base_url, api_key="sk-fake", max_retries=0)
    with langfuse_client.start_as_current_observation(as_type="agent", name="support-bot") as agent:
        with propagate_attributes(user_id="cem", session_id="conv-c"):
            for question in ("Où est A-1001 ?", "Et A-1002 ?"):
                with langfuse_client.start_as_current_observation(
                    as_type="generation", name="chat", model="default", input=[{"role": "user", "content": question}]
                ) as generation:
                    try:
                        reply = client.chat.completions.create(
                            model="default", messages=[{"role": "user", "content": question}]
                        )
                    except openai.InternalServerError as exc:
                        generation.update(level="ERROR", status_message=str(exc))
                    else:
                        assert reply.usage is not None
                        generation.update(
                            model=reply.model,
                            output=reply.choices[0].message.content,
                            usage_details={"input": reply.usage.prompt_tokens, "output": reply.usage.completion_tokens},
                            cost_details={"total": 0.0031},
                        )
        trace_id = agent.trace_id
    langfuse_client.flush()

    trace = console.trace(trace_id, spans=3)
    calls = sorted((s for s in trace["spans"] if s["kind"] == "llm"), key=lambda s: s["started_at"])
    assert by_name(trace)["support-bot"]["kind"] == "agent"
    assert len(calls) == 2
    # Langfuse has one model field, updated here to the model that answered.
    assert_priced_call(calls[0], reported=3100, requested="")
    failed = calls[1]
    assert failed["status"] == "error" and "The upstream is down" in failed["error"]["message"]
    for span in calls:
        assert (span["end_user_id"], span["session_id"]) == ("cem", "conv-c")
    assert (trace["end_user_id"], trace["session_id"]) == ("cem", "conv-c")
    assert trace["cost_micros"] == COST_MICROS and trace["reported_cost_micros"] == 3100
    assert trace["status"] == "error"


def test_the_langfuse_openai_integration(langfuse_client: Any, console: Console, fake: FakeOpenAI) -> None:
    """Langfuse's drop-in OpenAI client (`from langfuse.openai import OpenAI`) records each call as a
    generation by itself, the failed one at level ERROR."""
    from langfuse import propagate_attributes
    from langfuse.openai import OpenAI
    from openai import InternalServerError

    fake.queue(answered(), error(500, "The upstream is down"))
    client: Any = OpenAI(base_url=fake.base_url, api_key="sk-fake", max_retries=0)  # langfuse_* kwargs too
    with langfuse_client.start_as_current_observation(as_type="agent", name="support-bot") as agent:
        with propagate_attributes(user_id="eve", session_id="conv-f"):
            # Named: this test process holds a Langfuse client per live server, and the integration
            # traces nothing when it cannot tell which one is meant.
            project = {"langfuse_public_key": os.environ["LANGFUSE_PUBLIC_KEY"]}
            client.chat.completions.create(
                model="default", messages=[{"role": "user", "content": "Where is A-1001?"}], **project
            )
            with pytest.raises(InternalServerError):
                client.chat.completions.create(
                    model="default", messages=[{"role": "user", "content": "And A-1002?"}], **project
                )
        trace_id = agent.trace_id
    langfuse_client.flush()

    trace = console.trace(trace_id, spans=3)
    calls = sorted((s for s in trace["spans"] if s["kind"] == "llm"), key=lambda s: s["started_at"])
    assert by_name(trace)["support-bot"]["kind"] == "agent" and len(calls) == 2
    assert_priced_call(calls[0], requested="")  # Langfuse records the model that answered only
    failed = calls[1]
    assert failed["status"] == "error" and "The upstream is down" in failed["error"]["message"]
    for span in calls:
        assert (span["end_user_id"], span["session_id"]) == ("eve", "conv-f")
    assert trace["status"] == "error" and trace["cost_micros"] == COST_MICROS


# --- (d) LiteLLM's OpenTelemetry callback ----------------------------------------------------------


@pytest.fixture
def litellm_otel(console: Console, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    # Under an application's span LiteLLM writes onto that span unless told to make its own.
    monkeypatch.setenv("USE_OTEL_LITELLM_REQUEST_SPAN", "true")
    import litellm
    from litellm.integrations.opentelemetry import OpenTelemetry, OpenTelemetryConfig

    prices = {"input_cost_per_token": 6e-7, "output_cost_per_token": 1.8e-6, "litellm_provider": "openai"}
    litellm.register_model({DEMO_MODEL_ID: {**prices, "mode": "chat"}, "default": {**prices, "mode": "chat"}})
    # LiteLLM's own OTLP/HTTP exporter, configured as the README shows; skip_set_global keeps its
    # provider out of the process's global slot (which other tests' libraries would share).
    callback = OpenTelemetry(
        config=OpenTelemetryConfig(
            exporter="otlp_http",
            endpoint=f"{console.url}/v1/traces",
            headers=f"Authorization=Bearer {console.write_key}",
            skip_set_global=True,
        )
    )
    provider = callback._tracer_provider  # the application's spans go through the same exporter
    before = litellm.callbacks
    litellm.callbacks = [callback]
    yield provider
    litellm.callbacks = before
    for name in (DEMO_MODEL_ID, "default"):
        litellm.model_cost.pop(name, None)
    provider.shutdown()


def test_litellm_with_its_opentelemetry_callback(litellm_otel: Any, console: Console, fake: FakeOpenAI) -> None:
    """LiteLLM prices the call itself from its cost map (here the model registered at $0.60 and $1.80
    per million tokens: 3,000 µ$) and says so in gen_ai.cost.total_cost, shown beside ours. Its
    spans are children of the application's span, whose conversation id they inherit."""
    import litellm

    fake.queue(answered(), error(500, "The upstream is down"))
    tracer = litellm_otel.get_tracer("support-bot")
    with tracer.start_as_current_span("invoke_agent support-bot") as agent:
        agent.set_attribute("gen_ai.operation.name", "invoke_agent")
        agent.set_attribute("gen_ai.conversation.id", "conv-d")
        reply = litellm.completion(
            model="openai/default",
            api_base=fake.base_url,
            api_key="sk-fake",
            messages=[{"role": "user", "content": "Where is A-1001?"}],
            user="dan",
        )
        assert reply.choices[0].message.content == "Your order ships tomorrow."
        with pytest.raises(litellm.InternalServerError):
            litellm.completion(
                model="openai/default",
                api_base=fake.base_url,
                api_key="sk-fake",
                messages=[{"role": "user", "content": "And A-1002?"}],
                user="dan",
                num_retries=0,
                max_retries=0,
            )
        trace_id = hex_trace_id(agent)

    trace = console.trace(trace_id, spans=4)
    calls = sorted((s for s in trace["spans"] if s["name"] == "litellm_request"), key=lambda s: s["started_at"])
    assert len(calls) == 2
    assert_priced_call(calls[0], reported=3000)
    failed = calls[1]
    assert failed["kind"] == "llm" and failed["status"] == "error"
    assert failed["error"]["type"] == "litellm.exceptions.InternalServerError"
    assert "The upstream is down" in failed["error"]["message"]
    for span in calls:
        assert (span["end_user_id"], span["session_id"]) == ("dan", "conv-d")
    assert (trace["end_user_id"], trace["session_id"]) == ("dan", "conv-d")
    assert trace["cost_micros"] == COST_MICROS and trace["reported_cost_micros"] == 3000
    assert trace["status"] == "error" and trace["error_count"] == 1


# --- Once in Chromium: what LiteLLM sent, as the trace list and the trace page show it --------------


@pytest.mark.browser
def test_the_trace_pages_show_what_litellm_sent(
    litellm_otel: Any, console: Console, fake: FakeOpenAI, page_for: Callable[[], Any]
) -> None:
    """Our cost beside LiteLLM's, end user, session, the model asked for and the one that answered,
    the error; and a call answered by a model the catalog does not price shows "not priced"."""
    import litellm

    from console.templatetags.fmt import format_usd
    from console.tests.test_browser import sign_in

    fake.queue(answered(), error(500, "The upstream is down"), completion("Sure.", model="fake-model-2024-01-01"))
    tracer = litellm_otel.get_tracer("support-bot")
    call = {"model": "openai/default", "api_base": fake.base_url, "api_key": "sk-fake", "user": "dan"}
    with tracer.start_as_current_span("invoke_agent support-bot") as agent:
        agent.set_attribute("gen_ai.operation.name", "invoke_agent")
        agent.set_attribute("gen_ai.conversation.id", "conv-e")
        litellm.completion(messages=[{"role": "user", "content": "Where is A-1001?"}], **call)
        with pytest.raises(litellm.InternalServerError):
            litellm.completion(
                messages=[{"role": "user", "content": "And A-1002?"}], num_retries=0, max_retries=0, **call
            )
        priced_id = hex_trace_id(agent)
    with tracer.start_as_current_span("invoke_agent triage") as agent:
        agent.set_attribute("gen_ai.operation.name", "invoke_agent")
        litellm.completion(
            messages=[{"role": "user", "content": "Triage this"}], **{**call, "model": "openai/floating"}
        )
        unpriced_id = hex_trace_id(agent)
    console.trace(priced_id, spans=4)
    unpriced = console.trace(unpriced_id, spans=2)
    assert unpriced["priced"] is False and unpriced["cost_micros"] == 0 and unpriced["input_tokens"] == 20

    page = page_for()
    sign_in(page, "alice@acme.test")
    page.goto("/t/acme/traces/")
    priced_row, unpriced_row = page.locator(f"#trace-{priced_id}"), page.locator(f"#trace-{unpriced_id}")
    assert format_usd(COST_MICROS) in words(priced_row)
    assert f"{format_usd(3000)} reported" in words(priced_row)
    assert "not priced" in words(unpriced_row) and "$0" not in words(unpriced_row)
    assert "dan" in words(priced_row) and "conv-e" in words(priced_row)

    priced_row.locator("td:nth-child(2) a").first.click()
    page.wait_for_url(re.compile(f"/traces/{priced_id}/$"))
    cost = words(page.get_by_test_id("trace-cost"))
    assert f"{format_usd(COST_MICROS)} computed" in cost and f"{format_usd(3000)} reported by the client" in cost
    rollup = words(page.locator("#trace-rollup"))
    assert "2000 / 1000" in rollup and "1 errors" in rollup
    links = words(page.locator("main p").filter(has_text="Session"))
    assert "Session conv-e" in links and "End user dan" in links and DEMO_MODEL_ID in links

    spans = sorted(
        (s for s in console.trace(priced_id, spans=4)["spans"] if s["name"] == "litellm_request"),
        key=lambda s: s["started_at"],
    )
    page.locator(f'a[data-span="{spans[0]["span_id"]}"]').click()
    page.get_by_test_id("span-model").wait_for()
    assert words(page.get_by_test_id("span-model")) == f"{DEMO_MODEL_ID} asked for default"
    usage = words(page.get_by_test_id("span-usage"))
    assert "2000 in" in usage and "1000 out" in usage
    assert f"{format_usd(COST_MICROS)} computed" in usage and f"{format_usd(3000)} reported by the client" in usage
    page.locator(f'a[data-span="{spans[1]["span_id"]}"]').click()
    page.get_by_test_id("error-message").wait_for()
    assert "Error: litellm.exceptions.InternalServerError" in words(page.locator("#span-panel"))
    assert "The upstream is down" in words(page.get_by_test_id("error-message"))

    page.goto(f"/t/acme/traces/{unpriced_id}/")
    assert "not priced" in words(page.get_by_test_id("trace-cost"))
    assert "$0" not in words(page.get_by_test_id("trace-cost"))


# --- Every OTLP rejection counted per span on the ingestion card ------------------------------------


def test_every_otlp_rejection_is_counted_per_span_on_the_ingestion_card(
    client: Any, cast: Cast, alice_client: Any
) -> None:
    """Bad spans are refused one by one in OTLP/JSON as in protobuf and the card's "rejected" counts
    each; a log record that is not a GenAI event and a body that cannot be read are refused visibly
    and counted by reason (a body that cannot be read once: its spans cannot be counted)."""
    import json
    import secrets

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans
    from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan

    from traces.models import IngestRejection

    _, key = make_key(cast.acme, [Scope.TRACES_WRITE])
    auth = {"Authorization": f"Bearer {key}"}
    trace_id = secrets.token_hex(16)

    def json_span(span_id: str, name: str) -> dict[str, Any]:
        return {
            "traceId": trace_id,
            "spanId": span_id,
            "name": name,
            "startTimeUnixNano": "1764064800000000000",
            "endTimeUnixNano": "1764064801000000000",
        }

    document = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            json_span(secrets.token_hex(8), "fine"),
                            json_span("xyz", "bad id"),
                            json_span(secrets.token_hex(3), "short id"),
                        ]
                    }
                ]
            }
        ]
    }
    answer = client.post("/v1/traces", json.dumps(document), content_type="application/json", headers=auth)
    assert answer.status_code == 200 and answer.json()["partialSuccess"]["rejectedSpans"] == "2"
    request = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                scope_spans=[
                    ScopeSpans(
                        spans=[
                            ProtoSpan(
                                trace_id=bytes.fromhex(trace_id),
                                span_id=secrets.token_bytes(8),
                                name="fine too",
                                start_time_unix_nano=1764064800000000000,
                                end_time_unix_nano=1764064801000000000,
                            ),
                            ProtoSpan(
                                trace_id=bytes.fromhex(trace_id),
                                span_id=b"\x01\x02\x03",
                                name="bad id",
                                start_time_unix_nano=1764064800000000000,
                                end_time_unix_nano=1764064801000000000,
                            ),
                        ]
                    )
                ]
            )
        ]
    )
    answer = client.post("/v1/traces", request.SerializeToString(), content_type="application/x-protobuf", headers=auth)
    assert answer.status_code == 200
    assert ExportTraceServiceResponse.FromString(answer.content).partial_success.rejected_spans == 1
    logs = {
        "resourceLogs": [
            {"scopeLogs": [{"logRecords": [{"timeUnixNano": "1764064800000000000", "body": {"stringValue": "hi"}}]}]}
        ]
    }
    answer = client.post("/v1/logs", json.dumps(logs), content_type="application/json", headers=auth)
    assert answer.status_code == 200 and answer.json()["partialSuccess"]["rejectedLogRecords"] == "1"
    answer = client.post("/v1/traces", b"{not json", content_type="application/json", headers=auth)
    assert answer.status_code == 400 and "not a valid OTLP/JSON" in answer.json()["message"]

    page = alice_client.get("/t/acme/traces/").content.decode()
    # three spans refused one by one (two in JSON, one in protobuf) beside the two accepted
    assert re.findall(r'data-testid="(accepted|rejected)">(\d+)<', page) == [("accepted", "2"), ("rejected", "3")]
    reasons = dict(IngestRejection.objects.for_tenant(cast.acme).values_list("reason", "count"))
    assert reasons == {"invalid_id": 2, "invalid_span": 1, "log_not_genai_event": 1, "otlp_invalid_request": 1}
    for reason, count in reasons.items():
        assert re.search(rf'<tr data-reason="{reason}"><td><code>{reason}</code></td><td>{count}</td>', page)
