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
   The floor beside it (unless --no-floor): the same runs with no hook registered, one of each
   alternately, so both see the same machine load.
2. One real worker: `celery worker --pool prefork --concurrency 1`, runs enqueued with
   execute_run.delay; steps/s = steps / (first enqueue → last run finished).
Figures are medians over runs (after warm-up runs that are not counted). Statements per step are
every statement sent to PostgreSQL in one run (after the warm-up), divided by its steps: what Django
sends (BEGIN, COMMIT and savepoints included) and what goes through raw psycopg cursors (span
ingestion sends a step's savepoint, write and release in one pipeline); round trips per step count
such a pipeline once. Redis commands per step likewise (the configuration cache's
version, live pushes are not counted: they go through the channel layer's own client). The load
average is printed before and after, since the figures move with it on a shared machine.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
        self.cpu_seconds = 0.0

    def chat(self, request: Any) -> Any:
        start, cpu = time.perf_counter(), time.thread_time()
        try:
            return self.inner.chat(request)
        finally:
            self.seconds += time.perf_counter() - start
            self.cpu_seconds += time.thread_time() - cpu


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


class Counted:
    """Every SQL statement and Redis command sent while the block runs (see the module docstring)."""

    def __enter__(self) -> Counted:
        import psycopg
        import redis
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        self.raw = 0
        self.raw_trips = 0
        self.redis = 0
        self._django = CaptureQueriesContext(connection)
        self._django.__enter__()
        self._patched: list[tuple[Any, str, Any]] = []

        def counting(cls: Any, name: str, attribute: str, exact: bool) -> None:
            original = getattr(cls, name)

            def wrapper(inner: Any, *args: Any, **kwargs: Any) -> Any:
                if not exact or type(inner) is cls:  # Django's cursors are subclasses, counted above
                    setattr(self, attribute, getattr(self, attribute) + 1)
                    if attribute == "raw" and not self._pipelined:
                        self.raw_trips += 1
                return original(inner, *args, **kwargs)

            setattr(cls, name, wrapper)
            self._patched.append((cls, name, original))

        # Statements sent in one pipeline (span ingestion's savepoint, write and release) are one
        # round trip.
        self._pipelined = False
        pipeline = psycopg.Connection.pipeline

        @contextmanager
        def pipelined(inner: Any) -> Iterator[Any]:
            self.raw_trips += 1
            self._pipelined = True
            try:
                with pipeline(inner) as each:
                    yield each
            finally:
                self._pipelined = False

        psycopg.Connection.pipeline = pipelined  # type: ignore[method-assign,assignment]
        self._patched.append((psycopg.Connection, "pipeline", pipeline))
        counting(psycopg.Cursor, "execute", "raw", True)
        counting(psycopg.Cursor, "executemany", "raw", True)
        counting(psycopg.Cursor, "copy", "raw", True)
        counting(redis.Redis, "execute_command", "redis", False)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._django.__exit__(*exc)
        for cls, name, original in self._patched:
            setattr(cls, name, original)

    @property
    def statements(self) -> int:
        return len(self._django.captured_queries) + self.raw

    @property
    def round_trips(self) -> int:
        return len(self._django.captured_queries) + self.raw_trips


@contextmanager
def hooks_off() -> Iterator[None]:
    """No hook registered in the block (no budget, guardrail, approval, trace or eval hook)."""
    from agents import hooks

    registered = list(hooks._registered)
    for each in registered:
        hooks.unregister(each)
    try:
        yield
    finally:
        for each in registered:
            hooks.register(each)


def in_process(
    tenant: Any, agent: Any, version: Any, provider: Any, runs: int, warmup: int, *, floor: bool
) -> dict[str, dict[str, float]]:
    """Runs with every hook on ("hooks") and, with `floor`, the same runs with none ("floor"),
    alternating one of each so that both see the same load."""
    from agents import runtime
    from catalog.clients import client_for
    from catalog.selectors import provider_config

    modes: dict[str, Callable[[], contextlib.AbstractContextManager[None]]] = {"hooks": contextlib.nullcontext}
    if floor:
        modes["floor"] = hooks_off
    seen: dict[str, dict[str, list[float]]] = {mode: defaultdict(list) for mode in modes}
    for i in range(warmup + runs):
        for mode, context in modes.items():
            run = new_run(tenant, agent, version)
            client = TimedClient(client_for(provider_config(provider)))
            with context():
                start, cpu = time.perf_counter(), time.thread_time()
                run = runtime.execute(run, client=client)
                wall, cpu = time.perf_counter() - start, time.thread_time() - cpu
            assert run.status == "succeeded", (run.status, run.error_type, run.error_message)
            if i >= warmup:
                figures = seen[mode]
                figures["walls"].append(wall * 1000 / run.step_count)
                figures["overheads"].append((wall - client.seconds) * 1000 / run.step_count)
                figures["cpu"].append((cpu - client.cpu_seconds) * 1000 / run.step_count)
                model_calls = sum(1 for m in run.messages if m["role"] == "assistant")
                figures["model_ms"].append(client.seconds * 1000 / model_calls)
                figures["steps"].append(run.step_count)
    out = {}
    for mode, context in modes.items():
        # One more run, counted (warm: what every run costs, not a first run's cache misses).
        run = new_run(tenant, agent, version)
        with context(), Counted() as counted:
            one = runtime.execute(run, client=client_for(provider_config(provider)))
        figures = seen[mode]
        out[mode] = {
            "steps_per_run": statistics.median(figures["steps"]),
            "engine_ms_per_step": statistics.median(figures["overheads"]),
            "engine_cpu_ms_per_step": statistics.median(figures["cpu"]),
            "wall_ms_per_step": statistics.median(figures["walls"]),
            "model_call_ms": statistics.median(figures["model_ms"]),
            "steps_per_s": 1000 / statistics.median(figures["walls"]),
            "statements_per_step": counted.statements / one.step_count,
            "round_trips_per_step": counted.round_trips / one.step_count,
            "redis_per_step": counted.redis / one.step_count,
        }
    return out


def vacuum_tables() -> None:
    """VACUUM ANALYZE the tables every step writes, as autovacuum keeps them in production (this
    machine's PostgreSQL runs without it, and the bench tenant's rows accumulate run after run)."""
    import psycopg

    tables = ["agents_run", "agents_step", "budgets_budgetcounter", "budgets_reservation"]
    tables += ["budgets_reservationline", "budgets_ledgerentry", "traces_span", "traces_trace"]
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) " + ", ".join(tables))


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
                while Run.objects.for_tenant(tenant).filter(pk__in=ids, status__in=Run.FINAL_STATUSES).count() < count:
                    if time.perf_counter() - start > 300:
                        sys.exit("runs did not finish within 300 s")
                    time.sleep(0.02)
                return time.perf_counter() - start, list(Run.objects.for_tenant(tenant).filter(pk__in=ids))

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
    parser.add_argument("--no-floor", action="store_true", help="skip the measurement without hooks")
    args = parser.parse_args()
    if not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")):
        sys.exit("DATABASE_URL and REDIS_URL must be set: run through `python scripts/devenv.py exec --`.")
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "--verbosity", "0"], cwd=ROOT, check=True)

    import django

    django.setup()
    from tenants import rls

    rls.across_tenants_from_here("bench/engine_steps.py sets up and checks its own tenants")
    from agents.models import Run
    from catalog.fake_openai import FakeOpenAI

    load_before = os.getloadavg()
    with FakeOpenAI(handler=scripted(args.tools)) as fake:
        tenant, agent, version, provider = setup(fake.base_url, args.tools)
        vacuum_tables()
        try:
            measured = in_process(tenant, agent, version, provider, args.runs, args.warmup, floor=not args.no_floor)
            local, floor = measured["hooks"], measured.get("floor")
            worker = None if args.no_worker else through_worker(tenant, agent, version, args.runs, args.warmup)
        finally:
            Run.objects.for_tenant(tenant).delete()  # the bench tenant keeps its setup, not its runs
    load_after = os.getloadavg()

    print(f"\nRun engine, FakeOpenAI at zero latency on loopback, {local['steps_per_run']:.0f} steps a run")
    print(f"({args.tools} tool calls), median of {args.runs} runs after {args.warmup} warm-up runs")
    print(f"in-process   engine ms/step (excl. model call)  {local['engine_ms_per_step']:6.2f}")
    print(f"in-process   engine CPU ms/step (this thread)    {local['engine_cpu_ms_per_step']:6.2f}")
    print(f"in-process   wall ms/step (incl. model call)    {local['wall_ms_per_step']:6.2f}")
    print(f"in-process   model call ms (HTTP to the fake)   {local['model_call_ms']:6.2f}")
    print(f"in-process   steps/s                            {local['steps_per_s']:6.0f}")
    print(f"in-process   SQL statements/step                {local['statements_per_step']:6.1f}")
    print(f"in-process   SQL round trips/step               {local['round_trips_per_step']:6.1f}")
    print(f"in-process   Redis commands/step                {local['redis_per_step']:6.1f}")
    if floor is not None:
        print("floor: the same runs with no hook registered, alternating with the runs above")
        print(f"no hooks     engine ms/step (excl. model call)  {floor['engine_ms_per_step']:6.2f}")
        print(f"no hooks     engine CPU ms/step (this thread)    {floor['engine_cpu_ms_per_step']:6.2f}")
        print(f"no hooks     steps/s                            {floor['steps_per_s']:6.0f}")
        print(f"no hooks     SQL statements/step                {floor['statements_per_step']:6.1f}")
        print(f"no hooks     SQL round trips/step               {floor['round_trips_per_step']:6.1f}")
    if worker is not None:
        print(f"1 worker     steps/s (enqueue → all finished)  {worker['steps_per_s']:6.0f}")
        print(f"1 worker     run ms/step (started → finished)  {worker['run_ms_per_step']:6.2f}")
        print(f"1 worker     runs, steps                       {worker['runs']:>6} {worker['steps']:>5}")
    before, after = (" ".join(f"{x:.2f}" for x in load) for load in (load_before, load_after))
    print(f"load average (1, 5, 15 min): before {before}, after {after}; {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
