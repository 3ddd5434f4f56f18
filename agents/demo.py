"""The demo agents: the three built-in tools, five demo orders and a "Support agent" that uses
them, so the first `make run` lets someone ask for a refund in "Try it" and watch the run."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from agents import services
from agents.models import Agent, DemoOrder, Tool
from tenants.audit import Actor
from tenants.models import Tenant

SUPPORT_AGENT = "Support agent"
REFUND_SCOPE = "orders:refund"

_ORDER_NUMBER: dict[str, Any] = {
    "type": "string",
    "pattern": "^[A-Z]{1,3}-[0-9]{3,}$",
    "description": "The order number, e.g. A-1001.",
}

DEMO_TOOLS: list[dict[str, Any]] = [
    {
        "name": "lookup_order",
        "description": "Look up a customer order by its number: item, amount, status and the customer's email.",
        "parameters": {
            "type": "object",
            "properties": {"order_number": _ORDER_NUMBER},
            "required": ["order_number"],
            "additionalProperties": False,
        },
        "risk": Tool.Risk.READ,
        "required_scope": "",
    },
    {
        "name": "refund_order",
        "description": "Refund a paid order in full. Irreversible: the money goes back to the customer.",
        "parameters": {
            "type": "object",
            "properties": {
                "order_number": _ORDER_NUMBER,
                "reason": {"type": "string", "maxLength": 500, "description": "Why the order is refunded."},
            },
            "required": ["order_number"],
            "additionalProperties": False,
        },
        "risk": Tool.Risk.IRREVERSIBLE,
        "required_scope": REFUND_SCOPE,
    },
    {
        "name": "send_email",
        "description": "Send an email to a customer (it lands in the demo outbox, never on the network).",
        "parameters": {
            "type": "object",
            "properties": {
                "to": {"type": "string", "format": "email", "description": "The recipient's address."},
                "subject": {"type": "string", "minLength": 1, "maxLength": 300},
                "body": {"type": "string", "minLength": 1, "maxLength": 10000},
            },
            "required": ["to", "subject", "body"],
            "additionalProperties": False,
        },
        "risk": Tool.Risk.WRITE,
        "required_scope": "",
    },
]

# number, customer email, item, amount in cents
DEMO_ORDERS = [
    ("A-1001", "maria.lopez@example.com", "Noise-cancelling headphones", 19_900),
    ("A-1002", "kenji.sato@example.com", "Espresso machine", 34_950),
    ("A-1003", "amara.okafor@example.com", "Trail running shoes", 12_400),
    ("A-1004", "lukas.novak@example.com", "Mechanical keyboard", 8_999),
    ("A-1005", "sofia.rossi@example.com", "Standing desk", 45_000),
]

SUPPORT_INSTRUCTIONS = (
    "You are the customer support agent of a small online shop. Look orders up before acting on "
    "them. Refund an order only when the customer asks for it and the order is paid. When you "
    "refund or when asked to, email the customer a short, friendly note. Answer briefly."
)


@transaction.atomic
def seed_agents(tenant: Tenant) -> Agent:
    """Create the built-in tools, the demo orders and the Support agent where missing
    (idempotent: rows an admin has since edited are left as they are). Returns the agent."""
    actor = Actor.system_actor("demo seed")
    existing = {t.name: t for t in Tool.objects.for_tenant(tenant).filter(name__in=[t["name"] for t in DEMO_TOOLS])}
    tools = []
    for spec in DEMO_TOOLS:
        tool = existing.get(spec["name"])
        if tool is None:
            tool = services.tool_create(
                actor=actor, tenant=tenant, executor=Tool.Executor.BUILTIN, builtin=spec["name"], **spec
            ).tool
        tools.append(tool)
    known = set(DemoOrder.objects.for_tenant(tenant).values_list("number", flat=True))
    DemoOrder.objects.bulk_create(
        [
            DemoOrder(tenant=tenant, number=number, customer_email=email, item=item, amount_cents=cents)
            for number, email, item, cents in DEMO_ORDERS
            if number not in known
        ]
    )
    agent = Agent.objects.for_tenant(tenant).filter(name=SUPPORT_AGENT).first()
    if agent is None:
        agent = services.agent_create(
            actor=actor,
            tenant=tenant,
            name=SUPPORT_AGENT,
            instructions=SUPPORT_INSTRUCTIONS,
            model_alias="default",
            tools=tools,
            scopes=[REFUND_SCOPE],
            max_steps=8,
            max_tokens_per_request=1024,
            temperature=0.0,
        )
    return agent
