"""Approvals under the ASGI server (`uvicorn config.asgi:application`, as `make run` serves it)
with a real Celery worker:

1. queued -> visible: a client POSTs /api/v1/approvals; a reviewer's queue page (its websocket,
   `?page=approvals`) receives the new row. Latency from the POST's start to the frame holding it.
2. decision -> run resumed: runs of the demo Support agent pause on the irreversible refund; a
   reviewer POSTs the decision; latency from the decision's start until a worker has claimed the
   run again (its status leaves `queued`), polled every 2 ms.
3. N concurrent long-poll waiters (`GET /api/v1/approvals/{id}?wait=60`, one per request): the
   server's resident memory before and while they wait, the database connections it holds
   meanwhile, and how long each waiter takes to answer once its request is decided.

    python scripts/devenv.py exec -- .venv/bin/python bench/approvals.py
    python bench/approvals.py [--visible 100] [--resumes 40] [--waiters 500]   # URLs set

The bench uses a tenant of its own (`bench-approvals`, the demo catalog and agents), reused
across runs; every request and run it makes stays there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
BIN = Path(sys.executable).parent
SLUG = "bench-approvals"
WEB_ARGS = ["--lifespan", "off", "--log-level", "warning", "--loop", "uvloop"]
WORKER_ARGS = ["--pool", "prefork", "--concurrency", "2", "--without-gossip", "--without-mingle", "--loglevel", "INFO"]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, int(-(-p * len(ordered) // 1)) - 1))
    return ordered[index]


def summary(values: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values]
    return {
        "n": len(ms),
        "p50_ms": round(pct(ms, 0.50), 1),
        "p95_ms": round(pct(ms, 0.95), 1),
        "max_ms": round(max(ms), 1),
        "mean_ms": round(statistics.fmean(ms), 1),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Servers:
    """uvicorn (one process) and a Celery worker (prefork, 2 processes), each in its own group."""

    def __init__(self, port: int, logdir: Path) -> None:
        # One key holds every waiter here: lift the per-key rate and waiter cap for the measurement.
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "API_THROTTLE_RATE": "100000000/min",
            "APPROVAL_MAX_WAITERS_PER_KEY": "100000",
        }
        self.web = subprocess.Popen(
            [str(BIN / "uvicorn"), "config.asgi:application", "--host", "127.0.0.1", "--port", str(port), *WEB_ARGS],
            cwd=ROOT,
            env=env,
            stdout=(logdir / "web.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.worker = subprocess.Popen(
            [str(BIN / "celery"), "-A", "config", "worker", *WORKER_ARGS, "-n", f"bench-approvals-{port}@%h"],
            cwd=ROOT,
            env=env,
            stdout=(logdir / "worker.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.logdir = logdir
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or self.web.poll() is not None:
                    raise RuntimeError((logdir / "web.log").read_text()[-2000:]) from None
                time.sleep(0.2)
        while " ready." not in (logdir / "worker.log").read_text(errors="replace"):
            if time.monotonic() > deadline or self.worker.poll() is not None:
                raise RuntimeError((logdir / "worker.log").read_text()[-2000:])
            time.sleep(0.2)

    def stop(self) -> None:
        import signal

        for process in (self.web, self.worker):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in (self.web, self.worker):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def setup() -> dict[str, Any]:
    """The bench tenant, its reviewer (a session cookie) and API keys."""
    import django

    django.setup()
    from tenants import rls

    rls.across_tenants_from_here("bench/approvals.py sets up and checks its own tenants")
    from django.conf import settings
    from django.test import Client

    from agents.demo import seed_agents
    from catalog.demo import seed_catalog
    from tenants.models import Membership, Role, Tenant, User
    from tenants.testing import make_key

    tenant, _ = Tenant.objects.get_or_create(slug=SLUG, defaults={"name": "Bench approvals"})
    seed_catalog(tenant)
    agent = seed_agents(tenant)
    user = User.objects.filter(email="reviewer@bench-approvals.test").first() or User.objects.create_user(
        "reviewer@bench-approvals.test", None, name="Bench Reviewer"
    )
    Membership.objects.get_or_create(tenant=tenant, user=user, defaults={"role": Role.REVIEWER})
    client = Client()
    client.force_login(user)
    return {
        "tenant": tenant,
        "agent": agent,
        "user": user,
        "cookie": f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}",
        "writer": make_key(tenant, ["approvals:write", "runs:write"], name="bench writer")[1],
        "decider": make_key(tenant, ["approvals:decide"], name="bench reviewer")[1],
    }


# --- 1. queued -> visible -----------------------------------------------------------------------


async def visible(base: str, ctx: dict[str, Any], n: int) -> dict[str, Any]:
    import websockets

    ws_url = base.replace("http://", "ws://") + f"/ws/t/{SLUG}/live/?page=approvals"
    headers = {"Cookie": ctx["cookie"], "Origin": base}
    from_start, from_commit = [], []
    async with (
        websockets.connect(ws_url, additional_headers=headers) as ws,
        httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {ctx['writer']}"}) as http,
    ):
        await asyncio.sleep(0.5)
        for i in range(n):
            started = time.perf_counter()
            response = await http.post(
                "/api/v1/approvals",
                json={"action": "bench_action", "arguments": {"i": i}, "risk": "write", "reason": "policy"},
            )
            answered = time.perf_counter()
            marker = f'id="approval-{response.json()["id"]}"'
            while True:
                frame = await asyncio.wait_for(ws.recv(), timeout=10)
                if marker in str(frame):
                    break
            seen = time.perf_counter()
            from_start.append(seen - started)
            from_commit.append(seen - answered)
            await asyncio.sleep(0.02)
    return {"from_post_start": summary(from_start), "from_post_answer": summary(from_commit)}


# --- 2. decision -> run resumed ------------------------------------------------------------------


def resumes(base: str, ctx: dict[str, Any], n: int) -> dict[str, Any]:
    from django.db import transaction

    from agents.models import DemoOrder, Run
    from agents.services import run_create
    from approvals.models import ApprovalRequest
    from tenants.audit import Actor

    tenant = ctx["tenant"]
    decider = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ctx['decider']}"}, timeout=30)
    # The demo model refunds paid orders only: earlier runs of the bench refunded them.
    DemoOrder.objects.for_tenant(tenant).update(status="paid", refunded_at=None, refund_count=0)
    ids = []
    # Started by the reviewer in the console (an API key would also need the refund's scope).
    for i in range(n):
        with transaction.atomic():
            run = run_create(
                actor=Actor(user=ctx["user"]),
                tenant=tenant,
                agent=ctx["agent"],
                input=f"Please refund order A-100{1 + i % 5}.",
            )
        ids.append(str(run.pk))
    deadline = time.monotonic() + 120
    while Run.objects.for_tenant(tenant).filter(pk__in=ids, status="awaiting_approval").count() < n:
        if time.monotonic() > deadline:
            raise RuntimeError("the runs did not all pause")
        time.sleep(0.2)
    latencies = []
    for run_id in ids:
        approval = ApprovalRequest.objects.for_tenant(tenant).get(run_id=run_id, status="pending")
        started = time.perf_counter()
        response = decider.post(f"/api/v1/approvals/{approval.pk}/decision", json={"decision": "approve"})
        assert response.status_code == 200, response.text
        while Run.objects.for_tenant(tenant).filter(pk=run_id, status__in=["queued", "awaiting_approval"]).exists():
            time.sleep(0.002)
        latencies.append(time.perf_counter() - started)
    return summary(latencies)


# --- 3. long-poll waiters ------------------------------------------------------------------------


def waiters(base: str, ctx: dict[str, Any], n: int, web_pid: int) -> dict[str, Any]:
    from django.db import connection

    from approvals import services
    from tenants.audit import Actor

    tenant = ctx["tenant"]
    actor = Actor.system_actor("bench client")
    requests = [
        services.approval_request_create(
            actor=actor, tenant=tenant, action="bench_wait", arguments={"i": i}, risk="write", reason="policy"
        ).approval
        for i in range(n)
    ]
    answered: dict[str, float] = {}
    statuses: dict[str, str] = {}
    ready = threading.Event()

    async def wait_all() -> None:
        limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
        async with httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {ctx['writer']}"}, limits=limits, timeout=120
        ) as http:

            async def one(pk: str) -> None:
                response = await http.get(f"/api/v1/approvals/{pk}?wait=60")
                answered[pk] = time.perf_counter()
                try:
                    statuses[pk] = response.json().get("status", str(response.status_code))
                except ValueError:
                    statuses[pk] = f"{response.status_code} {response.content[:80]!r}"

            tasks = [asyncio.create_task(one(str(a.pk))) for a in requests]
            ready.set()
            await asyncio.gather(*tasks)

    rss_before = rss_kib(web_pid)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        connections_before = cursor.fetchone()[0]
    thread = threading.Thread(target=lambda: asyncio.run(wait_all()))
    thread.start()
    ready.wait()
    time.sleep(6)  # every waiter connected and parked
    rss_waiting = rss_kib(web_pid)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        connections_waiting = cursor.fetchone()[0]
    early = len(answered)
    decided: dict[str, float] = {}
    reviewer = Actor(user=ctx["user"])
    for approval in requests:
        services.approval_decide(approval=approval, actor=reviewer, decision="approve")
        decided[str(approval.pk)] = time.perf_counter()
    thread.join(timeout=120)
    wakes = [answered[pk] - decided[pk] for pk in decided if pk in answered]
    return {
        "waiters": n,
        "answered_before_decision": early,
        "approved_answers": sum(1 for s in statuses.values() if s == "approved"),
        "answers": dict(Counter(statuses.values())),
        "server_rss_mib_before": round(rss_before / 1024, 1),
        "server_rss_mib_waiting": round(rss_waiting / 1024, 1),
        "kib_per_waiter": round((rss_waiting - rss_before) / n, 1),
        "db_connections_before": connections_before,
        "db_connections_waiting": connections_waiting,
        "wake_after_decision": summary(wakes),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--visible", type=int, default=100)
    parser.add_argument("--resumes", type=int, default=40)
    parser.add_argument("--waiters", type=int, default=500)
    args = parser.parse_args()
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)
    if not os.environ.get("DATABASE_URL") or not os.environ.get("REDIS_URL"):
        sys.exit("Set DATABASE_URL and REDIS_URL (or run through scripts/devenv.py exec).")
    ctx = setup()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as logs:
        servers = Servers(port, Path(logs))
        try:
            results = {
                "queued_to_visible": asyncio.run(visible(base, ctx, args.visible)),
                "decision_to_resumed": resumes(base, ctx, args.resumes),
                "long_poll": waiters(base, ctx, args.waiters, servers.web.pid),
            }
        finally:
            servers.stop()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
