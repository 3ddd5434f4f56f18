"""Eval cases per minute through real Celery workers at a per-tenant concurrency of 1, 4 and 8,
and the per-case overhead beyond the agent run itself, with the model (agent and judge) answered
at once by FakeOpenAI over real HTTP on loopback.

    with DATABASE_URL and REDIS_URL set:  python bench/evals.py [--cases 24] [--concurrency 1 4 8]
    or:  python scripts/devenv.py exec -- .venv/bin/python bench/evals.py

Each case asks the agent to look an order up: the model calls `lookup_order` (a built-in doing
one SELECT), then answers; the case checks tool_called, contains and max_steps, and asks the judge
(one more model call, strict JSON). The bench tenant keeps the default guardrail policy, so every
input and output is checked as in production.

1. In-process: `evals.services.eval_result_execute` in this process. Overhead per case = case wall
   time - the agent run's time inside `agents.runtime.execute`; the judge's HTTP call is shown
   apart (it is part of the overhead).
2. Workers: `celery worker --pool prefork --concurrency C` with EVAL_CONCURRENCY_PER_TENANT=C; an
   eval run of every case is started as the API starts it; cases/min = cases / (start → finished).
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("PROVIDER_ALLOWED_HOSTS", "127.0.0.1")  # FakeOpenAI listens on loopback
os.environ.setdefault("LOG_LEVEL", "WARNING")

JUDGE_MARK = "strict evaluator"


class TimedClient:
    """A ChatClient that adds up the time inside the wrapped client's chat(), judge calls apart."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.judge_seconds = 0.0

    def chat(self, request: Any) -> Any:
        start = time.perf_counter()
        try:
            return self.inner.chat(request)
        finally:
            if JUDGE_MARK in request.messages[0]["content"]:
                self.judge_seconds += time.perf_counter() - start


def handler(body: dict[str, Any]) -> dict[str, Any]:
    from catalog.fake_openai import completion

    messages = body["messages"]
    if JUDGE_MARK in (messages[0].get("content") or ""):
        return completion('{"score": 1, "reason": "The answer gives the order."}')
    if not any(m["role"] == "tool" for m in messages):
        user = next(m["content"] for m in messages if m["role"] == "user")
        return completion(tool_calls=[("lookup_order", {"order_number": user.split()[-1].rstrip("?")})])
    return completion("Your order is paid and on its way.")


def setup(base_url: str, cases: int) -> Any:
    """A bench tenant (reused): provider at the fake, a priced model pinned as `bench` and
    `judge`, an agent with the lookup tool, its orders, and a suite of `cases` cases."""
    from agents.models import Agent, AgentVersion, AgentVersionTool, DemoOrder
    from bench.fake_tenant import fake_provider_tenant, lookup_tool
    from evals import services
    from evals.models import Case, EvalRun, Suite
    from tenants.audit import Actor

    tenant, provider, _ = fake_provider_tenant(
        slug="bench-evals", name="Bench: evals", base_url=base_url, aliases=("bench", "judge")
    )
    tool = lookup_tool(tenant)
    agent, _ = Agent.objects.get_or_create(tenant=tenant, name="Bench agent")
    if agent.current_version is None:
        version = AgentVersion.objects.create(tenant=tenant, agent=agent, number=1, model_alias="bench", max_steps=4)
        AgentVersionTool.objects.create(tenant=tenant, agent_version=version, tool=tool)
        agent.current_version = version
        agent.save(update_fields=["current_version"])
    EvalRun.objects.for_tenant(tenant).delete()
    Suite.objects.for_tenant(tenant).delete()
    actor = Actor.system_actor("bench")
    suite = services.suite_create(
        actor=actor, tenant=tenant, name="Bench suite", agent=agent, run_budget_micros=10_000_000
    )
    for i in range(cases):
        number = f"E-{1000 + i}"
        DemoOrder.objects.get_or_create(
            tenant=tenant,
            number=number,
            defaults={"customer_email": "e@example.com", "item": "Item", "amount_cents": 100},
        )
    Case.objects.bulk_create(
        [
            Case(
                tenant=tenant,
                suite=suite,
                input=f"Where is my order E-{1000 + i}?",
                assertions=[
                    {"type": "tool_called", "name": "lookup_order", "arguments": {"order_number": f"E-{1000 + i}"}},
                    {"type": "contains", "value": "paid", "case_sensitive": False},
                    {"type": "max_steps", "value": 3},
                    {
                        "type": "judge",
                        "rubric": "Gives the order's status.",
                        "scale": [0.0, 1.0],
                        "threshold": 0.5,
                        "model": "judge",
                    },
                ],
            )
            for i in range(cases)
        ]
    )
    return tenant, suite, provider


def in_process(suite: Any, provider: Any) -> dict[str, float]:
    from agents import runtime
    from catalog.clients import client_for
    from catalog.selectors import provider_config
    from evals import judge, services

    agent_seconds: list[float] = []
    judge_seconds: list[float] = []
    real_execute, real_score = runtime.execute, judge.score

    def timed_score(**kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return real_score(**kwargs)
        finally:
            judge_seconds.append(time.perf_counter() - start)

    def timed_execute(run: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return real_execute(run, **kwargs)
        finally:
            agent_seconds.append(time.perf_counter() - start)

    runtime.execute = timed_execute
    judge.score = timed_score
    walls, overheads, judges, judged = [], [], [], []
    try:
        eval_run = services.eval_run_start(actor=_actor(), suite=suite, dispatch=False)
        while True:
            result = services.eval_result_claim(eval_run=eval_run)
            if result is None:
                break
            client = TimedClient(client_for(provider_config(provider)))
            agent_seconds.clear()
            judge_seconds.clear()
            start = time.perf_counter()
            result = services.eval_result_execute(result=result, client=client, dispatch_next=False)
            wall = time.perf_counter() - start
            assert result.status == "passed", (result.status, result.error, result.verdicts)
            walls.append(wall * 1000)
            overheads.append((wall - sum(agent_seconds)) * 1000)
            judges.append(client.judge_seconds * 1000)
            judged.append(sum(judge_seconds) * 1000)
    finally:
        runtime.execute, judge.score = real_execute, real_score
    # The first cases warm up.
    walls, overheads, judges, judged = walls[2:], overheads[2:], judges[2:], judged[2:]
    return {
        "case_ms": statistics.median(walls),
        "overhead_ms": statistics.median(overheads),
        "judge_ms": statistics.median(judges),
        "judge_total_ms": statistics.median(judged),
        "cases": len(walls),
    }


def _actor() -> Any:
    from tenants.audit import Actor

    return Actor.system_actor("bench")


def through_workers(suite: Any, concurrency: int) -> dict[str, float]:
    from django.conf import settings
    from django.db import connection

    from evals import services
    from evals.models import EvalRun

    env = {**os.environ, "SECRET_KEY": settings.SECRET_KEY, "LOG_LEVEL": "WARNING"}
    env["EVAL_CONCURRENCY_PER_TENANT"] = str(concurrency)
    celery = str(Path(sys.executable).parent / "celery")
    name = f"bench-{secrets.token_hex(3)}"
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "worker.log"
        command = [celery, "-A", "config", "worker", "--pool", "prefork", "--concurrency", str(concurrency)]
        command += ["--loglevel", "INFO", "--without-gossip", "--without-mingle", "-n", f"{name}@%h"]
        worker = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 90
            while " ready." not in log.read_text(errors="replace"):
                if worker.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"the worker did not start:\n{log.read_text(errors='replace')}")
                time.sleep(0.1)

            def one_run() -> tuple[float, Any]:
                settings.EVAL_CONCURRENCY_PER_TENANT = concurrency  # the dispatch this process makes
                start = time.perf_counter()
                eval_run = services.eval_run_start(actor=_actor(), suite=suite)
                while (
                    not EvalRun.objects.for_tenant(suite.tenant_id)
                    .filter(pk=eval_run.pk, status__in=EvalRun.FINAL_STATUSES)
                    .exists()
                ):
                    if time.perf_counter() - start > 600:
                        sys.exit("the eval run did not finish within 600 s")
                    time.sleep(0.05)
                return time.perf_counter() - start, EvalRun.objects.for_tenant(suite.tenant_id).get(pk=eval_run.pk)

            one_run()  # warm-up: every pool process imports and connects once
            elapsed, done = one_run()
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
            connection.close()
    assert done.status == "succeeded" and done.passed_cases == done.total_cases, (done.status, done.passed_cases)
    return {"cases": done.total_cases, "seconds": elapsed, "per_minute": done.total_cases * 60 / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=24)
    parser.add_argument("--concurrency", type=int, nargs="*", default=[1, 4, 8])
    args = parser.parse_args()
    if not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")):
        sys.exit("DATABASE_URL and REDIS_URL must be set: run through `python scripts/devenv.py exec --`.")
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "--verbosity", "0"], cwd=ROOT, check=True)

    import django

    django.setup()
    from tenants import rls

    rls.across_tenants_from_here("bench/evals.py sets up and checks its own tenants")
    from agents.models import Run
    from catalog.fake_openai import FakeOpenAI
    from evals.models import EvalRun

    with FakeOpenAI(handler=handler) as fake:
        tenant, suite, provider = setup(fake.base_url, args.cases)
        try:
            local = in_process(suite, provider)
            workers = {c: through_workers(suite, c) for c in args.concurrency}
        finally:
            EvalRun.objects.for_tenant(tenant).delete()
            Run.objects.for_tenant(tenant).delete()

    print(f"\nEval cases, FakeOpenAI at zero latency on loopback, {os.cpu_count()} cores; each case = agent run")
    print("(model → lookup_order → model) + 3 binary assertions + 1 judge call; default guardrails on")
    print(f"in-process   case wall ms                          {local['case_ms']:7.1f}   (median of {local['cases']})")
    print(f"in-process   overhead beyond the agent run, ms     {local['overhead_ms']:7.1f}")
    print(
        f"in-process     of which the judge call, ms         {local['judge_total_ms']:7.1f}   (reserve, span, settle)"
    )
    print(f"in-process       of which its HTTP request, ms     {local['judge_ms']:7.1f}")
    for concurrency, figures in workers.items():
        print(
            f"workers      concurrency {concurrency}: {figures['per_minute']:7.0f} cases/min"
            f"   ({figures['cases']:.0f} cases in {figures['seconds']:.1f} s)"
        )


if __name__ == "__main__":
    main()
