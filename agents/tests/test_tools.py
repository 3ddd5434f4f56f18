"""Tool executors: argument validation, the built-in demo tools, at-most-once side effects, and
webhooks against a real HTTP receiver on 127.0.0.1 (the only host tests allow-list)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from agents import runtime, tools
from agents.models import AgentVersionTool, DemoEmail, Run, Tool, ToolExecution
from agents.tests.test_runtime import ScriptedClient, Setup, answer, build, calls
from catalog import crypto

SECRET = "whsec_test_secret"


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1: answers `status` with `reply` after `delay` seconds."""

    status: int = 200
    reply: bytes = b'{"ticket": "T-77", "ok": true}'
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.received.append(Received({k.lower(): v for k, v in self.headers.items()}, body))
            time.sleep(state.delay)
            try:
                self.send_response(state.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(state.reply)))
                self.end_headers()
                self.wfile.write(state.reply)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/ticket?src=aoc"
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def allow_loopback(settings: Any) -> None:
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]


def webhook_tool(setup: Setup, url: str, *, risk: str = Tool.Risk.WRITE, timeout: float = 2.0) -> Tool:
    tool = Tool.objects.create(
        tenant=setup.tenant,
        name="open_ticket",
        description="Open a support ticket.",
        parameters={
            "type": "object",
            "properties": {"subject": {"type": "string", "minLength": 3}, "priority": {"enum": ["low", "high"]}},
            "required": ["subject"],
            "additionalProperties": False,
        },
        risk=risk,
        executor=Tool.Executor.WEBHOOK,
        webhook_url=url,
        webhook_secret_encrypted=crypto.encrypt(SECRET),
        timeout_seconds=timeout,
    )
    AgentVersionTool.objects.create(tenant=setup.tenant, agent_version=setup.version, tool=tool)
    return tool


def call(setup: Setup, run: Run, name: str, arguments: dict[str, Any], *, step: int = 1, call_id: str = "c1") -> Any:
    return tools.execute_tool(run=run, tool=setup.tools[name], step_index=step, call_id=call_id, arguments=arguments)


# --- Validation --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_arguments_that_break_the_schema_are_refused_before_the_tool_runs() -> None:
    setup = build()
    order = setup.order("T-1001")
    run = setup.start()

    missing = call(setup, run, "refund_order", {"reason": "no number"})
    extra = call(setup, run, "refund_order", {"order_number": "T-1001", "amount": 5}, call_id="c2")
    bad_email = call(setup, run, "send_email", {"to": "not-an-email", "subject": "s", "body": "b"}, call_id="c3")

    assert "'order_number' is a required property" in missing.error
    assert "Additional properties are not allowed ('amount'" in extra.error
    assert bad_email.error.startswith("Invalid arguments for 'send_email' at to:")
    assert missing.content == {"error": missing.error}
    order.refresh_from_db()
    assert order.refund_count == 0 and not ToolExecution.objects.for_tenant(setup.tenant).exists()
    assert not DemoEmail.objects.for_tenant(setup.tenant).exists()


@pytest.mark.django_db
def test_a_tool_with_an_invalid_schema_cannot_be_called() -> None:
    setup = build()
    Tool.objects.for_tenant(setup.tenant).filter(name="lookup_order").update(parameters={"type": "nonsense"})
    setup.tools["lookup_order"].refresh_from_db()

    result = call(setup, setup.start(), "lookup_order", {"order_number": "T-1"})

    assert "has an invalid argument schema" in result.error


# --- Built-ins -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_lookup_finds_only_the_runs_own_tenants_orders() -> None:
    acme, globex = build(), build()
    globex.order("T-2002")
    acme.order("T-1001")
    run = acme.start()

    found = call(acme, run, "lookup_order", {"order_number": "t-1001"})
    other = call(acme, run, "lookup_order", {"order_number": "T-2002"})

    assert found.ok and found.content["order_number"] == "T-1001" and found.content["status"] == "paid"
    assert other.error == "There is no order T-2002."


@pytest.mark.django_db
def test_refunding_an_already_refunded_order_is_an_error_result_not_an_exception() -> None:
    setup = build()
    order = setup.order("T-1001")
    run = setup.start()

    first = call(setup, run, "refund_order", {"order_number": "T-1001"}, call_id="a")
    second = call(setup, run, "refund_order", {"order_number": "T-1001"}, step=3, call_id="b")

    order.refresh_from_db()
    assert first.ok and first.content["refunded"] is True
    assert second.error == "Order T-1001 was already refunded."
    assert order.refund_count == 1
    statuses = dict(ToolExecution.objects.for_tenant(setup.tenant).values_list("call_id", "status"))
    assert statuses == {"a": "succeeded", "b": "failed"}


@pytest.mark.django_db
def test_send_email_lands_in_the_tenants_outbox() -> None:
    setup = build()
    run = setup.start()

    result = call(setup, run, "send_email", {"to": "ana@example.com", "subject": "Hi", "body": "Refunded."})

    email = DemoEmail.objects.for_tenant(setup.tenant).get()
    assert result.ok and result.content["id"] == str(email.pk)
    assert (email.to, email.subject, email.run_id) == ("ana@example.com", "Hi", run.pk)


# --- At most once --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_same_side_effecting_call_twice_returns_the_stored_result_without_running_again() -> None:
    setup = build()
    order = setup.order("T-1001")
    run = setup.start()

    first = call(setup, run, "refund_order", {"order_number": "T-1001"})
    again = call(setup, run, "refund_order", {"order_number": "T-1001"})

    order.refresh_from_db()
    assert again == first and order.refund_count == 1
    assert ToolExecution.objects.for_tenant(setup.tenant).count() == 1


@pytest.mark.django_db
def test_a_started_builtin_whose_effect_never_committed_is_run_on_retry() -> None:
    """A built-in's effect and its row's completion commit together, so `started` means no effect."""
    setup = build()
    order = setup.order("T-1001")
    run = setup.start()
    arguments = {"order_number": "T-1001"}
    ToolExecution.objects.create(
        tenant=setup.tenant,
        run=run,
        step_index=1,
        call_id="c1",
        tool=setup.tools["refund_order"],
        arguments=arguments,
        arguments_hash=tools.arguments_hash(arguments),
    )

    result = call(setup, run, "refund_order", arguments)

    order.refresh_from_db()
    assert result.ok and order.refund_count == 1
    assert ToolExecution.objects.for_tenant(setup.tenant).get().status == "succeeded"


@pytest.mark.django_db
def test_a_started_webhook_reports_an_unknown_outcome_and_is_not_called_again(
    receiver: Receiver, allow_loopback: None
) -> None:
    setup = build()
    tool = webhook_tool(setup, receiver.url)
    run = setup.start()
    arguments = {"subject": "Broken kettle"}
    ToolExecution.objects.create(
        tenant=setup.tenant,
        run=run,
        step_index=1,
        call_id="c1",
        tool=tool,
        arguments=arguments,
        arguments_hash=tools.arguments_hash(arguments),
    )

    result = tools.execute_tool(run=run, tool=tool, step_index=1, call_id="c1", arguments=arguments)

    assert "outcome of 'open_ticket' is unknown" in result.error
    assert receiver.received == []


@pytest.mark.django_db
def test_the_same_call_id_with_other_arguments_is_refused() -> None:
    setup = build()
    setup.order("T-1001")
    setup.order("T-1002")
    run = setup.start()
    call(setup, run, "refund_order", {"order_number": "T-1001"})

    other = call(setup, run, "refund_order", {"order_number": "T-1002"})

    assert "already made with other arguments" in other.error


# --- Webhooks ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_webhook_is_signed_and_its_answer_is_the_result(receiver: Receiver, allow_loopback: None) -> None:
    setup = build()
    tool = webhook_tool(setup, receiver.url)
    run = setup.start()

    result = tools.execute_tool(
        run=run, tool=tool, step_index=4, call_id="call_x", arguments={"subject": "Broken kettle", "priority": "high"}
    )

    assert result.ok and result.content == {"ticket": "T-77", "ok": True}
    [request] = receiver.received
    assert json.loads(request.body) == {"subject": "Broken kettle", "priority": "high"}
    signed = request.headers["x-aoc-timestamp"].encode() + b"." + request.body
    expected = "sha256=" + hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["x-aoc-signature"], expected)
    assert request.headers["idempotency-key"] == f"{run.pk}:4:call_x"
    assert abs(int(request.headers["x-aoc-timestamp"]) - time.time()) < 5
    assert request.headers["content-type"] == "application/json"
    assert request.headers["host"].startswith("127.0.0.1:")
    execution = ToolExecution.objects.for_tenant(setup.tenant).get()
    assert execution.status == "succeeded" and execution.result == {"ticket": "T-77", "ok": True}


@pytest.mark.django_db
def test_a_webhook_to_a_loopback_address_is_refused_without_the_allowlist(receiver: Receiver, settings: Any) -> None:
    settings.WEBHOOK_ALLOWED_HOSTS = []
    setup = build()
    tool = webhook_tool(setup, receiver.url.replace("http://", "https://"))

    result = tools.execute_tool(run=setup.start(), tool=tool, step_index=1, call_id="c1", arguments={"subject": "Hey"})

    assert "resolves to an internal address (127.0.0.1)" in result.error
    assert receiver.received == []


@pytest.mark.django_db
def test_plain_http_is_refused_for_a_host_not_on_the_allowlist(receiver: Receiver, settings: Any) -> None:
    settings.WEBHOOK_ALLOWED_HOSTS = []
    setup = build()
    tool = webhook_tool(setup, receiver.url)

    result = tools.execute_tool(run=setup.start(), tool=tool, step_index=1, call_id="c1", arguments={"subject": "Hey"})

    assert "must use https://" in result.error and receiver.received == []


@pytest.mark.django_db
def test_a_webhook_answering_an_error_status_is_an_error_result(receiver: Receiver, allow_loopback: None) -> None:
    receiver.status, receiver.reply = 503, b'{"detail": "maintenance"}'
    setup = build()
    tool = webhook_tool(setup, receiver.url)

    result = tools.execute_tool(run=setup.start(), tool=tool, step_index=1, call_id="c1", arguments={"subject": "Hey"})

    assert result.error == 'The webhook of \'open_ticket\' answered HTTP 503: {"detail": "maintenance"}'
    assert ToolExecution.objects.for_tenant(setup.tenant).get().status == "failed"


@pytest.mark.django_db
def test_a_webhook_that_does_not_answer_in_time_is_an_error_result(receiver: Receiver, allow_loopback: None) -> None:
    receiver.delay = 1.5
    setup = build()
    tool = webhook_tool(setup, receiver.url, timeout=0.3)
    started = time.monotonic()

    result = tools.execute_tool(run=setup.start(), tool=tool, step_index=1, call_id="c1", arguments={"subject": "Hey"})

    assert result.error == "The webhook of 'open_ticket' did not answer within 0.3 s."
    assert time.monotonic() - started < 1.4


@pytest.mark.django_db
def test_a_failing_webhook_is_recorded_on_the_step_and_the_model_sees_the_error(
    receiver: Receiver, allow_loopback: None
) -> None:
    receiver.status, receiver.reply = 500, b"oops"
    setup = build(tools=())
    webhook_tool(setup, receiver.url)
    client = ScriptedClient(calls(("open_ticket", {"subject": "Broken kettle"})), answer("I could not open a ticket."))

    run = runtime.execute(setup.start(), client=client)

    assert run.status == Run.Status.SUCCEEDED
    tool_step = run.steps.get(kind="tool")
    assert tool_step.error == "The webhook of 'open_ticket' answered HTTP 500: oops"
    assert "answered HTTP 500" in client.requests[1].messages[-1]["content"]
    assert len(receiver.received) == 1
