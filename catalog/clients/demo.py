"""The offline `demo` provider: a deterministic, scripted model, so that the console shows real
agent runs (tool calls, approvals, answers) and evals with no network and no API key.

Script, read from the conversation since the latest user message:
1. the user names an order (A-1001, or "order 1001" meaning A-1001) and `lookup_order` is offered:
   look it up;
2. the user asks for a refund and the lookup found the order: `refund_order`;
3. the user asks to email or notify: `send_email` to the customer email the lookup returned;
4. then a final answer summarising the tool results.
Without tools or an order number it answers from the input. A system prompt asking for JSON with
a `score` makes it a judge that answers `{"score": 0.0 | 1.0, "reason": ...}`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from catalog.clients.base import ChatRequest, ChatResponse, Message, ToolCall, estimate_usage

ORDER_NUMBER = re.compile(r"\b([A-Z]{1,3}-\d{3,})\b|\border\s*(?:number|no\.?)?\s*#?\s*(\d{3,})\b", re.IGNORECASE)
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
WANTS_EMAIL = re.compile(r"\b(e-?mail|notify|notification)", re.IGNORECASE)
# Words that make the judge fail an answer: it could not help.
JUDGE_FAILS = ("error", "could not", "couldn't", "cannot", "unable", "not found", "sorry")


class DemoClient:
    def chat(self, request: ChatRequest) -> ChatResponse:
        system = " ".join(m["content"] for m in request.messages if m["role"] == "system").lower()
        if "json" in system and "score" in system:
            return _answer(request, _judge(request.messages))
        step = 1 + sum(m["role"] == "assistant" for m in request.messages)
        call = _next_tool_call(request, step)
        if call is not None:
            return ChatResponse(
                content="",
                tool_calls=[call],
                usage=estimate_usage(request, "", [call], estimated=False),
                model_id=request.model_id,
                finish_reason="tool_calls",
            )
        return _answer(request, _final_answer(request))


def _answer(request: ChatRequest, content: str) -> ChatResponse:
    limit = request.max_output_tokens * 4  # the same four characters a token as the usage estimate
    finish_reason = "length" if len(content) > limit else "stop"
    content = content[:limit]
    return ChatResponse(
        content=content,
        tool_calls=[],
        usage=estimate_usage(request, content, [], estimated=False),
        model_id=request.model_id,
        finish_reason=finish_reason,
    )


def _latest_user_turn(messages: list[Message]) -> tuple[str, list[Message]]:
    """The latest user message's text and the messages after it."""
    for index in range(len(messages) - 1, -1, -1):
        if messages[index]["role"] == "user":
            return messages[index]["content"], messages[index + 1 :]
    return "", messages


def _order_number(text: str) -> str | None:
    match = ORDER_NUMBER.search(text)
    if match is None:
        return None
    # A bare "order 1001" means the demo shop's A-1001, as a model reading the tool's example would.
    return match.group(1).upper() if match.group(1) else f"A-{match.group(2)}"


def _results(since: list[Message]) -> dict[str, Any]:
    """Each tool called since the user's turn, by name: its result (parsed JSON, else the text)."""
    names = {c["id"]: c["name"] for m in since for c in m.get("tool_calls", [])}
    results: dict[str, Any] = {name: None for name in names.values()}
    for message in since:
        if message["role"] == "tool":
            name = names.get(message.get("tool_call_id", ""), message.get("name", ""))
            try:
                results[name] = json.loads(message["content"])
            except ValueError:
                results[name] = message["content"]
    return results


def _succeeded(result: Any) -> bool:
    if isinstance(result, dict):
        return "error" not in result and result.get("ok", True) is not False and result.get("status") != "error"
    return result is not None and not (isinstance(result, str) and "error" in result.lower())


def _find_email(result: Any) -> str | None:
    """The customer's address in a lookup result: a key naming an email first, else any address."""
    if isinstance(result, dict):
        for key, value in result.items():
            if "email" in key.lower() and isinstance(value, str) and EMAIL.fullmatch(value):
                return value
        for value in result.values():
            if isinstance(value, dict) and (found := _find_email(value)):
                return found
    match = EMAIL.search(json.dumps(result))
    return match.group(0) if match else None


def _next_tool_call(request: ChatRequest, step: int) -> ToolCall | None:
    text, since = _latest_user_turn(request.messages)
    order = _order_number(text)
    results = _results(since)
    offered = {tool.name for tool in request.tools}

    def may_call(name: str) -> bool:
        return name in offered and name not in results

    def call(name: str, arguments: dict[str, Any]) -> ToolCall:
        return ToolCall(id=f"call_{step}_1", name=name, arguments=arguments)

    if order is None:
        return None
    if may_call("lookup_order"):
        return call("lookup_order", {"order_number": order})
    lookup = results.get("lookup_order")
    if not _succeeded(lookup):
        return None
    if "refund" in text.lower() and _status(lookup) != "refunded" and may_call("refund_order"):
        return call("refund_order", {"order_number": order, "reason": f"Customer request: {text.strip()[:200]}"})
    to = _find_email(lookup)
    if WANTS_EMAIL.search(text) and to and may_call("send_email"):
        if _succeeded(results.get("refund_order")):
            news = f"your order {order} has been refunded."
        else:
            news = f"here is an update on your order {order}: its status is {_status(lookup) or 'unknown'}."
        return call(
            "send_email", {"to": to, "subject": f"Your order {order}", "body": f"Hello,\n\n{news}\n\nDemo Support"}
        )
    return None


def _status(lookup: Any) -> str:
    """The order's status in a lookup result ({"status": ...} or {"order": {"status": ...}})."""
    if not isinstance(lookup, dict):
        return ""
    order = lookup.get("order")
    status = lookup.get("status") or (order.get("status") if isinstance(order, dict) else None)
    return str(status or "")


def _final_answer(request: ChatRequest) -> str:
    text, since = _latest_user_turn(request.messages)
    order = _order_number(text)
    results = _results(since)
    if not text.strip():
        return "Hello! I am the demo support assistant. How can I help?"
    if order is None:
        return (
            f'You wrote: "{text.strip()[:200]}". I am the demo support assistant: give me an order number '
            "(like A-1001) and I can look the order up, refund it or email the customer."
        )
    if "lookup_order" not in results:
        return f"You asked about order {order}, but I have no tool to look orders up here."
    lookup = results["lookup_order"]
    if not _succeeded(lookup):
        return f"I could not find order {order}: {_describe(lookup)}"
    lines = [f"Order {order}: {_describe(lookup)}"]
    if "refund_order" in results:
        refund = results["refund_order"]
        lines.append(
            f"I refunded order {order}." if _succeeded(refund) else f"The refund was not made: {_describe(refund)}"
        )
    elif "refund" in text.lower() and _status(lookup) == "refunded":
        lines.append(f"Order {order} was already refunded.")
    if "send_email" in results:
        mail = results["send_email"]
        lines.append("I emailed the customer." if _succeeded(mail) else f"The email was not sent: {_describe(mail)}")
    return "\n".join(lines)


def _describe(result: Any) -> str:
    """A tool result in a sentence: its error, or its fields (one nested object deep)."""
    if not isinstance(result, dict):
        return str(result)
    if "error" in result:
        return str(result["error"])
    fields = {**result}
    for value in result.values():
        if isinstance(value, dict):
            fields.update(value)
    return "; ".join(
        f"{k.replace('_', ' ')}: {v}" for k, v in fields.items() if v is not None and not isinstance(v, dict | list)
    )


def _judge(messages: list[Message]) -> str:
    """Pass (1.0) an answer that is there and does not read as a failure; fail (0.0) otherwise."""
    text, _ = _latest_user_turn(messages)
    failed = [word for word in JUDGE_FAILS if word in text.lower()]
    if not text.strip():
        return json.dumps({"score": 0.0, "reason": "There is nothing to judge."})
    if failed:
        return json.dumps({"score": 0.0, "reason": f"The answer reads as a failure ({failed[0]!r})."})
    return json.dumps({"score": 1.0, "reason": "The answer addresses the request."})
