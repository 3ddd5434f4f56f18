"""The run engine's own cost per step, with the model answered at once by FakeOpenAI over real
HTTP on loopback: milliseconds per step excluding the model call, and steps/s for one worker.

    make bench-style:  python scripts/devenv.py exec -- .venv/bin/python bench/engine_steps.py
    with DATABASE_URL and REDIS_URL set:  python bench/engine_steps.py [--runs 40] [--tools 5]

Each run asks the model, which calls a read tool (`lookup_order`, a built-in doing one SELECT)
`--tools` times with different arguments, one call per answer, then answers: 2 x tools + 1 steps.
Every step is persisted before the next, as in production (two or three transactions a step: the
checkpoint that checks cancel and renews the lease, the step itself, and the tool's query).

1. In-process: `agents.runtime.execute` in this process, the provider's real OpenAI-compatible
   client wrapped in a timer. Engine overhead = run wall time - time inside client.chat(), per step.
2. One real worker: `celery worker --pool prefork --concurrency 1`, runs enqueued with
   execute_run.delay; steps/s = steps / (first enqueue → last run finished).
Figures are medians over runs (after warm-up runs that are not counted).
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
os.environ.setdefault("LOG_LEVEL", "WARNING")  # httpx logs every request at INFO


class TimedClient:
    """A ChatClient that adds up the time spent inside the wrapped client's chat()."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seconds = 0.0

    def chat(self, request: Any) -> Any:
        start = time.perf_counter()
        try:
            return self.inner.chat(request)
        finally:
            self.seconds += time.perf_counter() - start


def scripted(tools: int) -> Any:
    from catalog.fake_openai import completion

    def handler(body: dict[str, Any]) -> dict[str, Any]:
        done = sum(1 for m in body["messages"] if m["role"] == "tool")
        if done < tools:
            return completion(tool_calls=[("lookup_order", {"order_number": f"B-{1000 + done}"})])
        return completion(f"Looked up {done} orders.")

    return handler


def setup(base_url: str, tools: int) -> Any:
    """A bench tenant (reused across invocations): provider at the fake server, a priced model
    pinned as `bench`, an agent version with the lookup tool, and the orders it looks up."""
    from agents.models import Agent, AgentVersion, AgentVersionTool, DemoOrder
    from bench.fake_tenant import fake_provider_tenant, lookup_tool

    tenant, provider, _ = fake_provider_tenant(
        slug="bench-engine", name="Bench: engine", base_url=base_url, aliases=("bench",)
    )
    tool = lookup_tool(tenant)
    agent, _ = Agent.objects.get_or_create(tenant=tenant, name="Bench agent")
    version = agent.current_version
    if version is None or version.max_steps < tools + 1:
        number = (version.number + 1) if version else 1
        version = AgentVersion.objects.create(
            tenant=tenant, agent=agent, number=number, model_alias="bench", max_steps=min(tools + 1, 50)
        )
        AgentVersionTool.objects.create(tenant=tenant, agent_version=version, tool=tool)
        agent.current_version = version
        agent.save(update_fields=["current_version"])
    for i in range(tools):
        DemoOrder.objects.get_or_create(
            tenant=tenant,
            number=f"B-{1000 + i}",
            defaults={"customer_email": "b@example.com", "item": "Bench item", "amount_cents": 100},
        )
    return tenant, agent, version, provider


def new_run(tenant: Any, agent: Any, version: Any) -> Any:
    from agents.models import Run

    return Run.objects.create(tenant=tenant, agent=agent, agent_version=version, input="Look the orders up.")


def in_process(tenant: Any, agent: Any, version: Any, provider: Any, runs: int, warmup: int) -> dict[str, float]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from agents import runtime
    from catalog.clients import client_for
    from catalog.selectors import provider_config

    overheads, walls, model_ms, steps_seen = [], [], [], []
    with CaptureQueriesContext(connection) as queries:
        counted = runtime.execute(new_run(tenant, agent, version), client=client_for(provider_config(provider)))
    statements = len(queries.captured_queries) / counted.step_count
    for i in range(warmup + runs):
        run = new_run(tenant, agent, version)
        client = TimedClient(client_for(provider_config(provider)))
        start = time.perf_counter()
        run = runtime.execute(run, client=client)
        wall = time.perf_counter() - start
        assert run.status == "succeeded", (run.status, run.error_type, run.error_message)
        if i >= warmup:
            walls.append(wall * 1000 / run.step_count)
            overheads.append((wall - client.seconds) * 1000 / run.step_count)
            model_calls = sum(1 for m in run.messages if m["role"] == "assistant")
            model_ms.append(client.seconds * 1000 / model_calls)
            steps_seen.append(run.step_count)
    return {
        "steps_per_run": statistics.median(steps_seen),
        "engine_ms_per_step": statistics.median(overheads),
        "wall_ms_per_step": statistics.median(walls),
        "model_call_ms": statistics.median(model_ms),
        "steps_per_s": 1000 / statistics.median(walls),
        "statements_per_step": statements,
    }


def through_worker(tenant: Any, agent: Any, version: Any, runs: int, warmup: int) -> dict[str, float]:
    from django.conf import settings
    from django.db import connection

    from agents.models import Run
    from agents.tasks import execute_run

    env = {**os.environ, "SECRET_KEY": settings.SECRET_KEY, "LOG_LEVEL": "WARNING"}
    env["DATABASE_URL"] = os.environ["DATABASE_URL"]
    celery = str(Path(sys.executable).parent / "celery")
    name = f"bench-{secrets.token_hex(3)}"
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "worker.log"
        command = [celery, "-A", "config", "worker", "--pool", "prefork", "--concurrency", "1"]
        command += ["--loglevel", "INFO", "--without-gossip", "--without-mingle", "-n", f"{name}@%h"]
        worker = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while " ready." not in log.read_text(errors="replace"):
                if worker.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"the worker did not start:\n{log.read_text(errors='replace')}")
                time.sleep(0.1)

            def batch(count: int) -> tuple[float, list[Any]]:
                created = [new_run(tenant, agent, version) for _ in range(count)]
                start = time.perf_counter()
                for run in created:
                    execute_run.delay(str(tenant.pk), str(run.pk))
                ids = [run.pk for run in created]
                while Run.objects.filter(pk__in=ids, status__in=Run.FINAL_STATUSES).count() < count:
                    if time.perf_counter() - start > 300:
                        sys.exit("runs did not finish within 300 s")
                    time.sleep(0.02)
                return time.perf_counter() - start, list(Run.objects.filter(pk__in=ids))

            batch(warmup)
            elapsed, done = batch(runs)
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
            connection.close()
    failed = [r for r in done if r.status != "succeeded"]
    assert not failed, [(r.status, r.error_type, r.error_message) for r in failed]
    steps = sum(r.step_count for r in done)
    per_run = [(r.finished_at - r.started_at).total_seconds() * 1000 / r.step_count for r in done]
    return {
        "runs": len(done),
        "steps": steps,
        "steps_per_s": steps / elapsed,
        "run_ms_per_step": statistics.median(per_run),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=40, help="measured runs per mode")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--tools", type=int, default=5, help="tool calls per run (steps = 2 x tools + 1)")
    parser.add_argument("--no-worker", action="store_true", help="skip the real-worker measurement")
    args = parser.parse_args()
    if not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")):
        sys.exit("DATABASE_URL and REDIS_URL must be set: run through `python scripts/devenv.py exec --`.")
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "--verbosity", "0"], cwd=ROOT, check=True)

    import django

    django.setup()
    from agents.models import Run
    from catalog.fake_openai import FakeOpenAI

    with FakeOpenAI(handler=scripted(args.tools)) as fake:
        tenant, agent, version, provider = setup(fake.base_url, args.tools)
        try:
            local = in_process(tenant, agent, version, provider, args.runs, args.warmup)
            worker = None if args.no_worker else through_worker(tenant, agent, version, args.runs, args.warmup)
        finally:
            Run.objects.for_tenant(tenant).delete()  # the bench tenant keeps its setup, not its runs

    print(f"\nRun engine, FakeOpenAI at zero latency on loopback, {local['steps_per_run']:.0f} steps a run")
    print(f"({args.tools} tool calls), median of {args.runs} runs after {args.warmup} warm-up runs")
    print(f"in-process   engine ms/step (excl. model call)  {local['engine_ms_per_step']:6.2f}")
    print(f"in-process   wall ms/step (incl. model call)    {local['wall_ms_per_step']:6.2f}")
    print(f"in-process   model call ms (HTTP to the fake)   {local['model_call_ms']:6.2f}")
    print(f"in-process   steps/s                            {local['steps_per_s']:6.0f}")
    print(f"in-process   SQL statements/step                {local['statements_per_step']:6.1f}")
    if worker is not None:
        print(f"1 worker     steps/s (enqueue → all finished)  {worker['steps_per_s']:6.0f}")
        print(f"1 worker     run ms/step (started → finished)  {worker['run_ms_per_step']:6.2f}")
        print(f"1 worker     runs, steps                       {worker['runs']:>6} {worker['steps']:>5}")


if __name__ == "__main__":
    main()
