"""The approval queue as a reviewer reads it: rows a reviewer can tell apart without opening them
(a short id, a one-line summary of the arguments, the run's end user and input, age and expiry),
and pending requests for the same call (one action, one argument hash) grouped together.

Everything here is read from the rows as they are now (the run's current status and input, the
demo order's current amount), never from the snapshot a request stored when it was created, so two
requests for one call show the same, current facts."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from agents.models import DemoOrder, Tool
from approvals.models import ApprovalRequest
from tenants.models import Tenant

SUMMARY_CHARS = 140
VALUE_CHARS = 48
PREVIEW_CHARS = 90
FINDING_CHARS = 40
# Under this many seconds left the countdown is marked (console.css: .countdown.is-soon).
SOON_SECONDS = 120
# How far back a decided request for the same call is mentioned ("approved 17 s ago by bob").
RECENT_DECISION = timedelta(hours=24)
# Built-in tools whose `order_number` argument names a demo order: the summary states the order's
# amount and customer, which the arguments alone do not carry.
ORDER_TOOLS = {"refund_order": "refund", "lookup_order": "look up"}


def short_id(approval: ApprovalRequest) -> str:
    """Six hex digits from the random end of the UUIDv7 (its start is a timestamp, so requests
    created within a minute would share it)."""
    return approval.pk.hex[-6:]


def group_key(action: str, arguments_hash: str) -> str:
    """A DOM-safe id for one call (action and argument hash)."""
    return hashlib.sha256(f"{action}\0{arguments_hash}".encode()).hexdigest()[:16]


def clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _value(value: Any) -> str:
    if isinstance(value, str):
        return clip(value, VALUE_CHARS)
    return clip(json.dumps(value, ensure_ascii=False, sort_keys=True), VALUE_CHARS)


def _keys_in_order(arguments: dict[str, Any], tool: Tool | None) -> list[str]:
    """Required parameters first, then the schema's order, then the rest; short values before
    long ones within each, so the identifying ones (ids, amounts) come first."""
    schema = tool.parameters if tool is not None and isinstance(tool.parameters, dict) else {}
    properties = list(schema.get("properties") or {}) if isinstance(schema.get("properties"), dict) else []
    required = [k for k in schema.get("required") or [] if isinstance(k, str)]

    def rank(key: str) -> tuple[int, int, int]:
        position = properties.index(key) if key in properties else len(properties)
        return (0 if key in required else 1, len(_value(arguments[key])), position)

    return sorted(arguments, key=rank)


def money(cents: int) -> str:
    return f"${cents / 100:,.2f}"


def argument_summary(action: str, arguments: Any, tool: Tool | None, orders: dict[str, DemoOrder]) -> str:
    """One line: "refund $89.99 on A-1004 to lukas.novak@example.com · reason: …" for a demo
    order tool, else "key: value · key: value" (values clipped), at most SUMMARY_CHARS long."""
    if not isinstance(arguments, dict):
        return clip(_value(arguments), SUMMARY_CHARS)
    parts: list[str] = []
    keys = _keys_in_order(arguments, tool)
    verb = ORDER_TOOLS.get(action) if tool is not None and tool.executor == Tool.Executor.BUILTIN else None
    number = str(arguments.get("order_number", "")).strip().upper()
    if verb and number:
        order = orders.get(number)
        if order is not None:
            parts.append(f"{verb} {money(order.amount_cents)} on {number} to {order.customer_email}")
        else:
            parts.append(f"{verb} {number} (no such order)")
        keys = [k for k in keys if k != "order_number"]
    parts.extend(f"{key}: {_value(arguments[key])}" for key in keys)
    return clip(" · ".join(parts), SUMMARY_CHARS) if parts else "no arguments"


def _orders(tenant: Tenant, pairs: list[tuple[str, Any]]) -> dict[str, DemoOrder]:
    """The demo orders that (action, arguments) pairs of order tools name: one query, or none."""
    numbers = {
        str(arguments.get("order_number", "")).strip().upper()
        for action, arguments in pairs
        if action in ORDER_TOOLS and isinstance(arguments, dict)
    }
    numbers.discard("")
    if not numbers:
        return {}
    return {o.number: o for o in DemoOrder.objects.for_tenant(tenant).filter(number__in=numbers)}


def summarize(tenant: Tenant, action: str, arguments: Any, tool: Tool | None) -> str:
    """argument_summary for one call (one query for a demo order tool)."""
    return argument_summary(action, arguments, tool, _orders(tenant, [(action, arguments)]))


def expiry_text(seconds: float) -> str:
    """ "expires in 42 s", "expires in 14 min 3 s", "expires in 2 h 5 min", "expires in 1 d 3 h",
    or "expired": to the second under an hour. static/console/approvals.js counts down in the
    same words."""
    left = int(seconds)
    if left <= 0:
        return "expired"
    if left < 60:
        text = f"{left} s"
    elif left < 3600:
        minutes, rest = divmod(left, 60)
        text = f"{minutes} min {rest} s" if rest else f"{minutes} min"
    else:
        hours, minutes = divmod(left // 60, 60)
        if hours < 24:
            text = f"{hours} h {minutes} min" if minutes else f"{hours} h"
        else:
            days, hours = divmod(hours, 24)
            text = f"{days} d {hours} h" if hours else f"{days} d"
    return f"expires in {text}"


@dataclass(frozen=True)
class Countdown:
    """A request's expiry as a row shows it: `seconds` left when rendered (the browser counts
    down from there, so its clock's skew does not matter) and the same in words."""

    seconds: int
    text: str
    soon: bool

    @classmethod
    def until(cls, expires_at: datetime | None, now: datetime) -> Countdown | None:
        if expires_at is None:
            return None
        left = max(0, int((expires_at - now).total_seconds()))
        return cls(seconds=left, text=expiry_text(left), soon=left < SOON_SECONDS)


@dataclass(frozen=True)
class Finding:
    """One guardrail finding as a badge: a short label, the whole reason on hover."""

    label: str
    reason: str


def findings(approval: ApprovalRequest) -> list[Finding]:
    """The guardrail findings in the request's context, one badge per reason (a guardrail joins
    several with "; "), at most five."""
    context = approval.context if isinstance(approval.context, dict) else {}
    raw = context.get("guardrail_findings")
    reasons: list[str] = []
    for item in raw if isinstance(raw, list) else []:
        text = item.get("reason") if isinstance(item, dict) else item
        if text is None:
            continue
        for part in str(text).split("; "):
            part = " ".join(part.split())
            if part:
                reasons.append(part)
    unique = list(dict.fromkeys(reasons))
    return [Finding(label=clip(reason, FINDING_CHARS), reason=reason) for reason in unique[:5]]


@dataclass
class QueueRow:
    approval: ApprovalRequest
    short_id: str
    summary: str
    end_user: str
    run_input: str
    run_status: str
    findings: list[Finding] = field(default_factory=list)
    expires: Countdown | None = None


@dataclass
class QueueGroup:
    """The pending requests for one call, oldest first, and the latest decision on the same call."""

    key: str
    action: str
    rows: list[QueueRow] = field(default_factory=list)
    last_decided: ApprovalRequest | None = None

    @property
    def first(self) -> QueueRow:
        return self.rows[0]


def pending_rows(qs: QuerySet[ApprovalRequest]) -> QuerySet[ApprovalRequest]:
    """The queue's queryset with what a row shows: the run (without its conversation)."""
    return qs.select_related("run").defer("run__messages", "run__approval_decisions", "run__metadata")


def _gateway_call(approval: ApprovalRequest) -> tuple[str, str]:
    """The end user and the last user message of a gateway call's request ("" for other requests)."""
    context = approval.context if isinstance(approval.context, dict) else {}
    if not approval.gateway_request_id:
        return "", ""
    messages = context.get("messages")
    said = [
        str(m.get("content", ""))
        for m in (messages if isinstance(messages, list) else [])
        if isinstance(m, dict) and m.get("role") == "user"
    ]
    return str(context.get("end_user_id") or ""), said[-1] if said else ""


def build_groups(tenant: Tenant, approvals: list[ApprovalRequest]) -> list[QueueGroup]:
    """Rows grouped by call, groups in the order of their oldest request. Two queries at most:
    the demo orders named and the latest decision on each call."""
    orders = _orders(tenant, [(a.action, a.arguments) for a in approvals])
    now = timezone.now()
    groups: dict[str, QueueGroup] = {}
    for a in approvals:
        key = group_key(a.action, a.arguments_hash)
        group = groups.setdefault(key, QueueGroup(key=key, action=a.action))
        run = a.run
        end_user, asked = (run.end_user_id, run.input) if run is not None else _gateway_call(a)
        group.rows.append(
            QueueRow(
                approval=a,
                short_id=short_id(a),
                summary=argument_summary(a.action, a.arguments, a.tool, orders),
                end_user=end_user,
                run_input=clip(asked, PREVIEW_CHARS),
                run_status=run.get_status_display() if run is not None else "",
                findings=findings(a),
                expires=Countdown.until(a.expires_at, now),
            )
        )
    if groups:
        decided = (
            ApprovalRequest.objects.for_tenant(tenant)
            .filter(
                arguments_hash__in={a.arguments_hash for a in approvals},
                action__in={a.action for a in approvals},
                decided_at__gte=now - RECENT_DECISION,
            )
            .exclude(status=ApprovalRequest.Status.PENDING)
            .only("action", "arguments_hash", "status", "decided_at", "decided_by_label")
            .order_by("-decided_at")[:200]
        )
        for d in decided:
            twin = groups.get(group_key(d.action, d.arguments_hash))
            if twin is not None and twin.last_decided is None:
                twin.last_decided = d
    return list(groups.values())
