"""An agent built on the OpenAI Agents SDK (`openai-agents`), run against the gateway by
gateway/tests/test_sdks.py. Executed, never imported: the SDK's top-level package is `agents`, the
name of this repository's Django app, so the test runs this file with `python -I` from a directory
outside the repository, where `import agents` can only find the SDK.

    python -I agents_sdk_client.py '{"base_url": ".../v1", "api_key": "...", "model": "default",
                                     "api": "responses", "stream": false, "input": "Where is A-1001?",
                                     "headers": {"traceparent": "..."}}'

`api` is `responses` (the SDK's default model, through set_default_openai_client) or
`chat_completions` (an OpenAIChatCompletionsModel). Prints one JSON object: which `agents` was
imported, the tool's calls, the final output and the usage the SDK counted, or the exception the
run raised (its class, status code and error body).
"""
# mypy: ignore-errors
# mypy resolves `agents` to this repository's app, not the SDK this script imports.

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import openai

# The SDK: ruff files it as first-party, after the repository's app of the same name.
import agents
from agents import (
    Agent,
    OpenAIChatCompletionsModel,
    Runner,
    function_tool,
    set_default_openai_api,
    set_default_openai_client,
    set_tracing_disabled,
)

calls: list[dict[str, Any]] = []


@function_tool
def lookup_order(order_number: str) -> str:
    """Look up an order's shipping status.

    Args:
        order_number: The order's number, e.g. A-1001.
    """
    calls.append({"order_number": order_number})
    return f"Order {order_number} shipped on Monday and arrives on Thursday."


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    # The SDK's own tracing would export to api.openai.com: this agent talks to loopback only.
    set_tracing_disabled(True)
    # The openai client's default retries, as an agent would have them: the gateway's refusals say
    # x-should-retry: false.
    client = openai.AsyncOpenAI(
        base_url=spec["base_url"], api_key=spec["api_key"], default_headers=spec.get("headers") or {}
    )
    if spec["api"] == "chat_completions":
        model: Any = OpenAIChatCompletionsModel(model=spec["model"], openai_client=client)
    else:
        set_default_openai_client(client, use_for_tracing=False)
        set_default_openai_api("responses")
        model = spec["model"]
    agent = Agent(
        name="Support",
        instructions="Answer questions about orders. Use lookup_order for an order's status.",
        model=model,
        tools=[lookup_order],
    )
    if spec.get("stream"):
        streamed = Runner.run_streamed(agent, spec["input"])
        deltas = []
        async for event in streamed.stream_events():
            if event.type == "raw_response_event" and event.data.type == "response.output_text.delta":
                deltas.append(event.data.delta)
        result: Any = streamed
        extra = {"deltas": deltas}
    else:
        result = await Runner.run(agent, spec["input"])
        extra = {}
    usage = result.context_wrapper.usage
    return {
        "final_output": result.final_output,
        "model_responses": len(result.raw_responses),
        "usage": {"requests": usage.requests, "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens},
        **extra,
    }


def main() -> None:
    spec = json.loads(sys.argv[1])
    out: dict[str, Any] = {"agents_module": agents.__file__, "cwd_on_path": "" in sys.path}
    try:
        out |= asyncio.run(run(spec))
    except Exception as exc:  # the test asserts which exception the SDK raised
        status = getattr(exc, "status_code", None)
        out["error"] = {
            "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
            "status_code": status,
            "body": getattr(exc, "body", None),
            "message": str(exc),
        }
    out["tool_calls"] = calls
    print(json.dumps(out))


if __name__ == "__main__":
    main()
