"""Fixtures of the Python client's tests: a tenant with a priced model pinned as `default` and the
default guardrail policy, a key for the agent's calls and one for a reviewer, and the client
against the live ASGI server (the root conftest's `live_asgi`: uvicorn on a free port, the test
database, the real channel layer on Redis)."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from aoc_client import AsyncConsole, Console

from approvals.models import ApprovalRequest
from catalog.models import LanguageModel, ModelPin, Provider
from guardrails.services import policy_ensure_default
from tenants import rls
from tenants.models import Membership, Role, Scope, Tenant, User
from tenants.testing import make_key

# What an agent that runs its own tools needs: ask for approvals, reserve, check, send and read traces.
AGENT_SCOPES: list[str] = [
    Scope.APPROVALS_WRITE,
    Scope.BUDGETS_RESERVE,
    Scope.GUARDRAILS_CHECK,
    Scope.TRACES_WRITE,
    Scope.READ,
]
EXACT = "client-model-2025-01-01"


@dataclass
class Setup:
    tenant: Tenant
    model: LanguageModel
    agent_key: str
    reviewer: User
    reviewer_key: str


@pytest.fixture
def setup(transactional_db: None) -> Setup:
    slug = f"client-{secrets.token_hex(4)}"
    tenant = Tenant.objects.create(slug=slug, name=f"Client {slug}")
    provider = Provider.objects.create(
        tenant=tenant, name="fake", kind=Provider.Kind.OPENAI_COMPATIBLE, base_url="http://127.0.0.1:9/v1"
    )
    model = LanguageModel.objects.create(
        tenant=tenant,
        provider=provider,
        model_id=EXACT,
        input_price=2_500_000,  # $2.50 per million input tokens
        output_price=10_000_000,  # $10 per million output tokens
        context_window=128_000,
        max_output_tokens=4096,
    )
    ModelPin.objects.create(tenant=tenant, alias="default", model=model)
    policy_ensure_default(tenant=tenant)
    reviewer = User.objects.create_user(f"rita-{slug}@example.com", "pw", name="Rita Reviewer")
    Membership.objects.create(tenant=tenant, user=reviewer, role=Role.REVIEWER)
    _, agent_key = make_key(tenant, AGENT_SCOPES, name="agent")
    _, reviewer_key = make_key(tenant, [Scope.APPROVALS_DECIDE], name="reviewer bot")
    return Setup(tenant=tenant, model=model, agent_key=agent_key, reviewer=reviewer, reviewer_key=reviewer_key)


@pytest.fixture
def console(live_asgi: str, setup: Setup) -> Iterator[Console]:
    with Console(live_asgi, setup.agent_key) as client:
        yield client


@pytest.fixture
def async_console(live_asgi: str, setup: Setup) -> AsyncConsole:
    return AsyncConsole(live_asgi, setup.agent_key)


@pytest.fixture
def reviewer_thread() -> Iterator[Callable[..., Future[ApprovalRequest]]]:
    """reviewer_thread(tenant, decide) -> a future: in another thread (as a human would, while the
    client waits), wait for the tenant's first pending request, call decide(request) and resolve
    with the request as it ended."""
    pool = ThreadPoolExecutor(max_workers=1)
    stop = threading.Event()

    def start(tenant: Tenant, decide: Callable[[ApprovalRequest], None]) -> Future[ApprovalRequest]:
        def review() -> ApprovalRequest:
            from django.db import connection

            try:
                deadline = time.monotonic() + 15
                while not stop.is_set():
                    row = ApprovalRequest.objects.for_tenant(tenant).filter(status="pending").first()
                    if row is not None:
                        time.sleep(0.3)  # let the client's long-poll start waiting
                        decide(row)
                        return ApprovalRequest.objects.for_tenant(tenant).get(pk=row.pk)
                    assert time.monotonic() < deadline, "no approval request was created within 15 s"
                    time.sleep(0.05)
                raise RuntimeError("stopped")
            finally:
                connection.close()

        return pool.submit(rls.carried(review))  # the test's tenant context (row-level security)

    yield start
    stop.set()
    pool.shutdown(wait=True)
