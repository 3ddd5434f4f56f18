"""The eval sandbox: what the built-in tools act on in an eval case, instead of the tenant's live data.

An eval run is hermetic by construction. At its start it copies its suite's fixtures (the suite's
own `fixtures`, else the demo orders as the seed creates them, all paid) into `EvalRun.fixtures`;
each case's agent run then gets its own copy of that state (`EvalResult.sandbox`, made the first
time a built-in tool touches it): `lookup_order` reads it, `refund_order` changes it, `send_email`
adds to its outbox. A refund made in production never shows in an eval, an eval's refund never
reaches production, and no case sees another case's effects, however the cases are scheduled.

Time stands still in a sandbox (`clock`, fixed per fixture), so the same action gives the same
result in every run: the comparison with the baseline can then tell a changed tool result (the
data differed) from a changed answer (the model differed).

Registered in agents.tools.SANDBOXES from EvalsConfig.ready(). Webhook tools are not built-ins:
a side-effecting one is never called in an eval (evals/hooks.py simulates it), a read-only one is
called live and its results are compared with the baseline's like any other.
"""

from __future__ import annotations

import copy
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import transaction

from agents.tools import DemoOrderState, DemoStore
from evals.models import EvalResult, Suite
from tenants.errors import FieldError

if TYPE_CHECKING:
    from agents.models import Run

# The sandbox's time: refunds made in a sandbox are stamped with it, whenever the run happens.
DEFAULT_CLOCK = "2026-01-01T09:00:00+00:00"
MAX_FIXTURE_ORDERS = 500
ORDER_NUMBER = re.compile(r"^[A-Z]{1,3}-[0-9]{3,}$")
ORDER_STATUSES = ("paid", "refunded")


def demo_fixtures() -> dict[str, Any]:
    """The default fixtures: the demo seed's orders, all paid, and an empty outbox."""
    from agents.demo import DEMO_ORDERS

    return {
        "clock": DEFAULT_CLOCK,
        "orders": [
            {"order_number": number, "customer_email": email, "item": item, "amount_cents": cents, "status": "paid"}
            for number, email, item, cents in DEMO_ORDERS
        ],
    }


def fixtures_for(suite: Suite) -> dict[str, Any]:
    """What an eval run of `suite` starts from (copied into EvalRun.fixtures at its start)."""
    if suite.fixtures:
        return {"clock": DEFAULT_CLOCK, **copy.deepcopy(suite.fixtures)}
    return demo_fixtures()


def validated_fixtures(value: Any) -> dict[str, Any]:
    """A suite's fixtures checked and normalised; FieldError("fixtures", …) names the first problem.
    Shape: {"orders": [{"order_number", "customer_email", "item", "amount_cents", "status"?}],
    "clock"?: ISO 8601 time}; {} means the demo orders."""
    if value is None or value == {}:
        return {}
    if not isinstance(value, dict):
        raise FieldError("fixtures", 'a JSON object such as {"orders": [...]} ({} for the demo orders).')
    unknown = set(value) - {"orders", "clock"}
    if unknown:
        raise FieldError("fixtures", f"unknown key {sorted(unknown)[0]!r} (use orders and clock).")
    clean: dict[str, Any] = {}
    if "clock" in value:
        try:
            clock = datetime.fromisoformat(str(value["clock"]))
        except ValueError:
            raise FieldError("fixtures", "clock must be an ISO 8601 time, e.g. 2026-01-01T09:00:00+00:00.") from None
        if clock.tzinfo is None:
            raise FieldError("fixtures", "clock needs a UTC offset, e.g. 2026-01-01T09:00:00+00:00.")
        clean["clock"] = clock.isoformat()
    orders = value.get("orders", [])
    if not isinstance(orders, list) or len(orders) > MAX_FIXTURE_ORDERS:
        raise FieldError("fixtures", f"orders must be a list of at most {MAX_FIXTURE_ORDERS} orders.")
    seen: set[str] = set()
    clean_orders = []
    for i, order in enumerate(orders):
        where = f"orders[{i}]"
        if not isinstance(order, dict):
            raise FieldError("fixtures", f"{where} must be an object.")
        number = str(order.get("order_number", "")).strip().upper()
        if not ORDER_NUMBER.match(number):
            raise FieldError("fixtures", f"{where}.order_number must look like A-1001.")
        if number in seen:
            raise FieldError("fixtures", f"{where}: order {number} is listed twice.")
        seen.add(number)
        email, item, cents = order.get("customer_email"), order.get("item"), order.get("amount_cents")
        if not isinstance(email, str) or "@" not in email or len(email) > 254:
            raise FieldError("fixtures", f"{where}.customer_email must be an email address.")
        if not isinstance(item, str) or not item.strip() or len(item) > 200:
            raise FieldError("fixtures", f"{where}.item must be a name of at most 200 characters.")
        if isinstance(cents, bool) or not isinstance(cents, int) or cents < 0:
            raise FieldError("fixtures", f"{where}.amount_cents must be a whole number of cents.")
        status = order.get("status", "paid")
        if status not in ORDER_STATUSES:
            raise FieldError("fixtures", f"{where}.status must be paid or refunded.")
        clean_orders.append(
            {
                "order_number": number,
                "customer_email": email,
                "item": item.strip(),
                "amount_cents": cents,
                "status": status,
            }
        )
    clean["orders"] = clean_orders
    return clean


class CaseSandbox:
    """One eval case's state (EvalResult.sandbox), as a DemoStore. A locking read holds the
    result's row until the caller's transaction commits, which writes the effect and the tool
    call's completion together (agents.tools.execute_tool)."""

    def __init__(self, result: EvalResult) -> None:
        self.result = result
        self._state: dict[str, Any] | None = None

    def _load(self, *, lock: bool) -> dict[str, Any]:
        rows = EvalResult.objects.for_tenant(self.result.tenant).filter(pk=self.result.pk)
        if lock:
            rows = rows.select_for_update(of=("self",))
        sandbox, fixtures = rows.values_list("sandbox", "eval_run__fixtures").get()
        self._state = sandbox or {"emails": [], **copy.deepcopy(fixtures or demo_fixtures())}
        return self._state

    def _save(self) -> None:
        EvalResult.objects.for_tenant(self.result.tenant).filter(pk=self.result.pk).update(sandbox=self._state)

    def order(self, number: str, *, lock: bool = False) -> DemoOrderState | None:
        state = self._load(lock=lock)
        for order in state.get("orders", []):
            if order.get("order_number") == number:
                refunded_at = order.get("refunded_at")
                return DemoOrderState(
                    number=number,
                    customer_email=order["customer_email"],
                    item=order["item"],
                    amount_cents=order["amount_cents"],
                    status=order.get("status", "paid"),
                    refunded_at=datetime.fromisoformat(refunded_at) if refunded_at else None,
                    refund_count=int(order.get("refund_count", 0)),
                )
        return None

    def save_order(self, order: DemoOrderState) -> None:
        state = self._state if self._state is not None else self._load(lock=True)
        for row in state.get("orders", []):
            if row.get("order_number") == order.number:
                row["status"] = order.status
                row["refunded_at"] = order.refunded_at.isoformat() if order.refunded_at else None
                row["refund_count"] = order.refund_count
        self._save()

    def add_email(self, *, to: str, subject: str, body: str) -> str:
        with transaction.atomic():
            state = self._load(lock=True)
            emails = state.setdefault("emails", [])
            email_id = f"sandbox-email-{len(emails) + 1}"
            emails.append({"id": email_id, "to": to, "subject": subject, "body": body})
            self._save()
        return email_id

    def now(self) -> datetime:
        state = self._state if self._state is not None else self._load(lock=False)
        return datetime.fromisoformat(state.get("clock") or DEFAULT_CLOCK)


def sandbox_for(run: Run) -> DemoStore | None:
    """agents.tools' sandbox hook: the case's sandbox when `run` executes an eval case, else None
    (no query for a run whose metadata names no eval result)."""
    from evals.hooks import eval_result_of

    result = eval_result_of(run)
    return CaseSandbox(result) if result is not None else None
