"""Tool executors: the built-in demo tools and the webhook executor, behind one entry point,
`execute_tool`, that validates arguments and runs a side-effecting tool at most once per
(run, step, call).

At most once. Before a side-effecting tool (risk write or irreversible) runs, its ToolExecution
row for (run, step_index, call_id) is inserted and committed on its own (status started). A retry
of the same call (a worker died, the task was redelivered, the run resumed) finds the row and
does not run the tool again:
- succeeded / failed: the stored result is returned;
- started, webhook: the request may or may not have reached the receiver before the crash; the
  model is told "outcome unknown" rather than risking a second effect (the receiver can use the
  Idempotency-Key header to tell us apart from a duplicate, but we do not assume it does);
- started, built-in: a built-in's effect and its row's completion commit in ONE transaction
  (the row is locked first), so a row still `started` proves the effect never committed, and the
  call is safely run now. Two workers racing the same call serialise on the row lock; the second
  finds it succeeded and reuses the result.

Call `execute_tool` outside any transaction: the started row must be committed before a webhook
request leaves the process.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import httpx
import jsonschema
from django.db import transaction
from django.utils import timezone

from agents.models import AgentVersion, DemoEmail, DemoOrder, Run, Tool, ToolExecution
from catalog import crypto
from tenants.net import UnsafeUrlError, pinned
from tenants.webhooks import check_webhook_url, signed_headers

logger = logging.getLogger(__name__)

MAX_WEBHOOK_RESPONSE_BYTES = 1_000_000


@dataclass(frozen=True)
class ToolResult:
    """What a tool call produced: `content` is the JSON value the model sees; a failed call has
    `error` set and content {"error": error}."""

    content: Any
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error

    @classmethod
    def failure(cls, message: str) -> ToolResult:
        return cls(content={"error": message}, error=message)

    def as_text(self) -> str:
        """The tool message's content: the JSON of `content`."""
        return json.dumps(self.content, ensure_ascii=False, default=str)


def arguments_hash(arguments: dict[str, Any]) -> str:
    """SHA-256 of the arguments' canonical JSON: equal for equal arguments, whatever the key order."""
    return hashlib.sha256(canonical_json(arguments).encode()).hexdigest()


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


# --- Permission and validation ------------------------------------------------------------------


def permission_error(*, run: Run, version: AgentVersion, tool: Tool, granted: set[Any]) -> str:
    """Why `run` may not call `tool`, or "" when it may: the tool must be granted to the agent
    version, and its required scope held by the version and by the API key that started the run."""
    if tool.pk not in granted:
        return f"The tool {tool.name!r} is not granted to this agent."
    scope = tool.required_scope
    if scope and scope not in version.scopes:
        return f"The tool {tool.name!r} needs the scope {scope!r}, which this agent does not hold."
    if scope and run.api_key is not None and not run.api_key.has_scope(scope):
        return f"The tool {tool.name!r} needs the scope {scope!r}, which the API key that started this run lacks."
    return ""


@functools.lru_cache(maxsize=512)
def _validator(schema_json: str) -> Any:
    """A validator of the schema (given as JSON text), or why the schema itself is invalid: checking
    a schema against its metaschema costs more than validating the arguments, and a tool's schema
    changes only when an admin edits it (a new text, a new entry; 512 distinct schemas kept)."""
    schema = json.loads(schema_json)
    validator_class = jsonschema.validators.validator_for(schema)
    try:
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as exc:
        return exc.message
    return validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)


def validation_error(tool: Tool, arguments: Any) -> str:
    """Why `arguments` do not satisfy the tool's JSON Schema, or "" when they do."""
    if not isinstance(arguments, dict):
        return f"The arguments of {tool.name!r} must be a JSON object."
    validator = _validator(json.dumps(tool.parameters or {}, sort_keys=True))
    if isinstance(validator, str):
        return f"The tool {tool.name!r} has an invalid argument schema ({validator}); it cannot be called."
    errors = sorted(validator.iter_errors(arguments), key=lambda e: [str(p) for p in e.path])
    if not errors:
        return ""
    first = jsonschema.exceptions.best_match(errors) or errors[0]
    where = "/".join(str(p) for p in first.absolute_path)
    return f"Invalid arguments for {tool.name!r}" + (f" at {where}" if where else "") + f": {first.message}"


# --- The entry point ----------------------------------------------------------------------------


def execute_tool(*, run: Run, tool: Tool, step_index: int, call_id: str, arguments: dict[str, Any]) -> ToolResult:
    """Run one tool call of `run` (permission is the caller's job). Read tools run every time;
    side-effecting tools at most once per (run, step_index, call_id), see the module docstring."""
    problem = validation_error(tool, arguments)
    if problem:
        return ToolResult.failure(problem)
    idempotency_key = f"{run.pk}:{step_index}:{call_id}"
    if not tool.has_side_effects:
        return _perform(run=run, tool=tool, arguments=arguments, idempotency_key=idempotency_key)

    execution, created = _claim(run=run, tool=tool, step_index=step_index, call_id=call_id, arguments=arguments)
    if not created:
        if execution.arguments_hash != arguments_hash(arguments):
            return ToolResult.failure(
                f"This call ({call_id}) was already made with other arguments; it is not run again."
            )
        if execution.status != ToolExecution.Status.STARTED:
            return _stored(execution)
        if tool.executor != Tool.Executor.BUILTIN:
            logger.warning("tool %s of run %s: outcome unknown after a crash", tool.name, run.pk)
            return ToolResult.failure(
                f"The outcome of {tool.name!r} is unknown: the worker stopped while it was running. "
                "It is not run again, to avoid doing it twice."
            )
        # A started built-in never committed its effect (see the module docstring): run it now.

    if tool.executor == Tool.Executor.BUILTIN:
        with transaction.atomic():
            execution = ToolExecution.objects.for_tenant(run.tenant_id).select_for_update().get(pk=execution.pk)
            if execution.status != ToolExecution.Status.STARTED:
                return _stored(execution)  # another worker finished it while we waited for the lock
            result = _perform(run=run, tool=tool, arguments=arguments, idempotency_key=idempotency_key)
            _complete(execution, result)
        return result

    result = _perform(run=run, tool=tool, arguments=arguments, idempotency_key=idempotency_key)
    with transaction.atomic():
        _complete(execution, result)
    return result


def _claim(
    *, run: Run, tool: Tool, step_index: int, call_id: str, arguments: dict[str, Any]
) -> tuple[ToolExecution, bool]:
    """The call's ToolExecution row, inserted (status started) and committed if new."""
    with transaction.atomic():
        return ToolExecution.objects.get_or_create(
            tenant_id=run.tenant_id,
            run=run,
            step_index=step_index,
            call_id=call_id,
            defaults={"tool": tool, "arguments": arguments, "arguments_hash": arguments_hash(arguments)},
        )


def _complete(execution: ToolExecution, result: ToolResult) -> None:
    execution.status = ToolExecution.Status.SUCCEEDED if result.ok else ToolExecution.Status.FAILED
    execution.result = result.content
    execution.error = result.error
    execution.finished_at = timezone.now()
    execution.save(update_fields=["status", "result", "error", "finished_at"])


def _stored(execution: ToolExecution) -> ToolResult:
    return ToolResult(content=execution.result, error=execution.error)


def _perform(*, run: Run, tool: Tool, arguments: dict[str, Any], idempotency_key: str) -> ToolResult:
    if tool.executor == Tool.Executor.BUILTIN:
        builtin = BUILTINS.get(tool.builtin)
        if builtin is None:
            return ToolResult.failure(f"The tool {tool.name!r} names no known built-in ({tool.builtin!r}).")
        return builtin(run, arguments)
    if tool.executor == Tool.Executor.WEBHOOK:
        return call_webhook(tool=tool, arguments=arguments, idempotency_key=idempotency_key)
    return ToolResult.failure(f"The tool {tool.name!r} has an unknown executor {tool.executor!r}.")


# --- Webhooks -----------------------------------------------------------------------------------


def call_webhook(
    *, tool: Tool, arguments: dict[str, Any], idempotency_key: str, http: httpx.Client | None = None
) -> ToolResult:
    """POST the arguments as JSON to the tool's URL, signed; the answer's JSON is the result.
    The URL is checked right before the request and the request goes to the address that check
    approved (with the original Host and TLS server name), so a DNS answer that changes between the
    check and the connection (rebinding) cannot redirect it. Redirects are not followed."""
    try:
        addresses = check_webhook_url(tool.webhook_url)
    except UnsafeUrlError as exc:
        return ToolResult.failure(f"The webhook of {tool.name!r} was not called: {exc}")
    body = canonical_json(arguments).encode()
    headers = signed_headers(
        crypto.decrypt(tool.webhook_secret_encrypted), body, **{"Idempotency-Key": idempotency_key}
    )
    url, extensions = pinned(tool.webhook_url, addresses[0], headers)
    client = http or httpx.Client(timeout=tool.timeout_seconds, follow_redirects=False, trust_env=False)
    try:
        with client.stream("POST", url, content=body, headers=headers, extensions=extensions) as response:
            raw = b""
            for chunk in response.iter_bytes():
                raw += chunk
                if len(raw) > MAX_WEBHOOK_RESPONSE_BYTES:
                    return ToolResult.failure(
                        f"The webhook of {tool.name!r} answered more than {MAX_WEBHOOK_RESPONSE_BYTES} bytes."
                    )
    except httpx.TimeoutException:
        return ToolResult.failure(f"The webhook of {tool.name!r} did not answer within {tool.timeout_seconds:g} s.")
    except httpx.HTTPError as exc:
        return ToolResult.failure(f"The webhook of {tool.name!r} could not be reached: {type(exc).__name__}: {exc}")
    finally:
        if http is None:
            client.close()
    text = raw.decode("utf-8", errors="replace")
    if not 200 <= response.status_code < 300:
        return ToolResult.failure(f"The webhook of {tool.name!r} answered HTTP {response.status_code}: {text[:500]}")
    try:
        return ToolResult(content=json.loads(text) if text.strip() else {})
    except ValueError:
        return ToolResult(content={"text": text})


# --- Built-in demo tools ------------------------------------------------------------------------
#
# The built-ins act on a `DemoStore`: the tenant's demo tables (DemoOrder, DemoEmail) for every
# run, except where a registered sandbox claims the run. Evals register one (evals/sandbox.py), so
# an eval case's look-ups, refunds and emails read and change that case's own fixture state and
# never the tenant's live orders or outbox. A sandboxed side effect commits with its ToolExecution
# row like a live one (execute_tool), so it too happens at most once per call.


@dataclass
class DemoOrderState:
    """One demo order as the built-ins see and change it, wherever it is kept."""

    number: str
    customer_email: str
    item: str
    amount_cents: int
    status: str = "paid"
    refunded_at: datetime | None = None
    refund_count: int = 0

    def view(self) -> dict[str, Any]:
        """What the model sees of the order."""
        return {
            "order_number": self.number,
            "status": self.status,
            "item": self.item,
            "amount_cents": self.amount_cents,
            "customer_email": self.customer_email,
            "refunded_at": self.refunded_at.isoformat() if self.refunded_at else None,
        }


class DemoStore(Protocol):
    """Where the built-in demo tools read and write. `order(lock=True)` is called inside a
    transaction and holds the order until it commits; `save_order` writes it back."""

    def order(self, number: str, *, lock: bool = False) -> DemoOrderState | None: ...

    def save_order(self, order: DemoOrderState) -> None: ...

    def add_email(self, *, to: str, subject: str, body: str) -> str: ...

    def now(self) -> datetime: ...


class TenantDemoTables:
    """The live store: the run's tenant's DemoOrder and DemoEmail rows."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self._rows: dict[str, DemoOrder] = {}

    def order(self, number: str, *, lock: bool = False) -> DemoOrderState | None:
        orders = DemoOrder.objects.for_tenant(self.run.tenant)
        row = (orders.select_for_update() if lock else orders).filter(number=number).first()
        if row is None:
            return None
        self._rows[number] = row
        return DemoOrderState(
            number=row.number,
            customer_email=row.customer_email,
            item=row.item,
            amount_cents=row.amount_cents,
            status=row.status,
            refunded_at=row.refunded_at,
            refund_count=row.refund_count,
        )

    def save_order(self, order: DemoOrderState) -> None:
        row = self._rows[order.number]
        row.status, row.refunded_at, row.refund_count = order.status, order.refunded_at, order.refund_count
        row.save(update_fields=["status", "refunded_at", "refund_count"])

    def add_email(self, *, to: str, subject: str, body: str) -> str:
        email = DemoEmail.objects.create(tenant_id=self.run.tenant_id, run=self.run, to=to, subject=subject, body=body)
        return str(email.pk)

    def now(self) -> datetime:
        return timezone.now()


# Each takes a run and returns the store that claims it, or None; the first claim wins, and a run
# nobody claims uses the tenant's demo tables. Registered from an AppConfig.ready() (evals).
SANDBOXES: list[Callable[[Run], DemoStore | None]] = []


def demo_store(run: Run) -> DemoStore:
    """The store the built-ins act on for `run`: a sandbox that claims it, else the live tables."""
    for sandbox in SANDBOXES:
        store = sandbox(run)
        if store is not None:
            return store
    return TenantDemoTables(run)


def _order_number(arguments: dict[str, Any]) -> str:
    return str(arguments["order_number"]).strip().upper()


def lookup_order(run: Run, arguments: dict[str, Any]) -> ToolResult:
    number = _order_number(arguments)
    order = demo_store(run).order(number)
    if order is None:
        return ToolResult.failure(f"There is no order {number}.")
    return ToolResult(content=order.view())


def refund_order(run: Run, arguments: dict[str, Any]) -> ToolResult:
    """Refund a paid order. Locks the order: two refunds of one order cannot both succeed."""
    number = _order_number(arguments)
    store = demo_store(run)
    with transaction.atomic():
        order = store.order(number, lock=True)
        if order is None:
            return ToolResult.failure(f"There is no order {number}.")
        if order.status == DemoOrder.Status.REFUNDED:
            return ToolResult.failure(f"Order {number} was already refunded.")
        order.status = DemoOrder.Status.REFUNDED
        order.refunded_at = store.now()
        order.refund_count += 1
        store.save_order(order)
    return ToolResult(content={"ok": True, "refunded": True, **order.view()})


def send_email(run: Run, arguments: dict[str, Any]) -> ToolResult:
    """'Send' an email: it lands in the tenant's demo outbox (or the sandbox's), never on the network."""
    to = arguments["to"]
    email_id = demo_store(run).add_email(to=to, subject=arguments["subject"], body=arguments["body"])
    return ToolResult(content={"ok": True, "sent": True, "id": email_id, "to": to})


# Implementations by Tool.builtin; their Tool rows (description, JSON Schema, risk, scope) are
# defined where they are created (agents/demo.py), like any other tool's.
BUILTINS: dict[str, Callable[[Run, dict[str, Any]], ToolResult]] = {
    "lookup_order": lookup_order,
    "refund_order": refund_order,
    "send_email": send_email,
}
