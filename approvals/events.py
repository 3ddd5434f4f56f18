"""Live events of approvals, pushed after commit: to the tenant's console pages (the queue, the
navigation badge) and to the long-poll waiters of one request."""

from __future__ import annotations

from typing import Literal, TypedDict

from django.db import transaction

from approvals.models import ApprovalRequest
from tenants.events import send_after_commit, send_now


class ApprovalChanged(TypedDict):
    """A request was created or left `pending` (decided, expired, cancelled) or got a vote."""

    type: Literal["approval.changed"]
    approval_id: str
    status: str


def waiters_group(approval_id: object) -> str:
    """The channel-layer group the long-poll waiters of one request listen on."""
    return f"approval.{approval_id}"


def approval_changed(approval: ApprovalRequest) -> None:
    """Announce `approval` in its current state once the transaction commits: the tenant's pages
    re-render, and the clients long-polling it wake up."""
    event = ApprovalChanged(type="approval.changed", approval_id=str(approval.pk), status=approval.status)
    send_after_commit(approval.tenant, event)
    if not approval.is_pending:
        group = waiters_group(approval.pk)
        transaction.on_commit(lambda: send_now(group, event))
