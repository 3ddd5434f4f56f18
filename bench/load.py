"""The whole product at once, for minutes, at stated rates (issue 18, item 5): agent runs started
over the REST API and executed by a Celery worker, some pausing for a reviewer; a reviewer listing
and deciding them over the API; gateway calls (`POST /v1/chat/completions`, plain and streamed);
span ingestion (`POST /api/v1/traces/ingest`, and OTLP protobuf on `POST /v1/traces`); a logged-in
reviewer's console pages, and live sockets held open on some of them. One web process (`uvicorn
config.asgi:application`, as `make run` serves it) and one Celery worker (prefork, concurrency 2)
serve it all; the provider behind the gateway is a local fake that answers at once.

Arrivals are open-loop: each kind sends at its fixed rate whatever the server answers, so overload
shows as latency and errors, not as a lower rate. Latency is measured from the moment a request was
due (so a late start counts against it) to the full answer (`[DONE]` for a stream). The reviewer
polls: every --review-every seconds it lists the pending approvals and decides each (approves, or
rejects --reject-share of them with a note), and goes on after the load until every run finished.
Before the clock starts, one request of each kind warms the web process up (not counted).

At the end it prints, per kind: requests, answers by status, errors, p50/p95/p99/max, the stated and
achieved rates; the runs by status and their time to finish (for runs that paused, also from the
decision to the end); and the books of the tenant: once the load and the runs are done and every
reservation settled (the gateway's recorder writes settlements just after each answer), every
budget counter must equal its ledger (`budgets_verify`), nothing may be left reserved, and no
counter of a blocking budget may have settled more than its limit. The tenant has a daily budget
the load approaches but need not reach, and a per-end-user budget small enough to refuse about a
quarter of the gateway calls (402 `budget_exceeded`: expected answers, not errors). Also the
machine's load average at start and end, and the CPU of each server process and of the bench.

    python scripts/devenv.py exec -- .venv/bin/python bench/load.py [--seconds 20]   # embedded servers
    python bench/load.py [--seconds 120] [--runs 1] [--gateway 8] [--streams 2]      # URLs set
        [--ingest 1] [--otlp 0.5] [--spans 100] [--pages 2] [--sockets 3] [--max-error-rate 0.01]

Exit status 1 when a check fails: a kind's error rate above --max-error-rate (the runs too: a run
that ends other than `succeeded` is an error, one not finished --drain seconds after the load a
failure), a counter unlike its ledger, anything left reserved (a reservation still open, or
expired: its settlement never came), or an overspent budget. Each invocation uses a tenant of its
own (`bench-load-<time>`), so its budgets start at zero; the servers' logs stay in the directory it
prints.

Reused from the other benches: bench/gateway.py (the fake provider as a raw ASGI app under uvicorn
`--serve-fake`; `setup()` of a tenant whose provider points at it, with a gateway key and a daily
budget; `start`/`stop`/`wait_up`/`free_port` for the processes, `cpu_seconds`, `pct`,
`budget_books`), bench/traces.py (`batch()`: native batches) and bench/traces_hot.py
(`otlp_batch()`), bench/approvals.py (the web and worker command lines, and its way to a reviewer's
session cookie, `force_login`; keys by `make_key`; the demo catalog and Support agent, whose
refunds pause for approval).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
BIN = Path(sys.executable).parent


def _bench(name: str) -> Any:
    """bench/<name>.py under the name bench_<name> (`traces` and `approvals` are Django apps)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[f"bench_{name}"] = module
    spec.loader.exec_module(module)
    return module


gw = _bench("gateway")
bench_traces = _bench("traces")
bench_approvals = _bench("approvals")
bench_traces_hot = _bench("traces_hot")

GATEWAY_ALIAS = "bench-gateway"  # the fake's model; `default` stays the demo model the agent uses
# The fake answers 12 prompt and 4 completion tokens; gw.setup prices them 2.5 and 10 USD a million.
CALL_MICROS = 12 * 2_500_000 // 1_000_000 + 4 * 10_000_000 // 1_000_000
WORST_MICROS = 700  # what the gateway reserves for one call before it (its worst case: 64 output tokens)
RUN_MICROS = 700  # a Support run on the demo model (measured: ~665 µUSD), for the daily budget's size
EXPECTED = ("402 budget_exceeded",)  # answers that are the product working, not errors
SOCKET_PAGES = ("dashboard", "runs", "approvals", "budgets")


def stop_on_sigterm() -> None:
    """SIGTERM as Ctrl-C: the `finally` that stops the servers runs either way."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


# --- setup ---------------------------------------------------------------------------------------


def setup(fake_url: str, args: argparse.Namespace) -> dict[str, Any]:
    """A new tenant: the fake provider behind the `bench-gateway` alias and a daily tenant budget
    (bench/gateway.py's setup, with its gateway key), the demo catalog and Support agent (`default`
    is the offline demo model), a pool of paid demo orders for refunds, a per-end-user budget, a
    reviewer with a session cookie, and keys for runs, decisions and ingestion."""
    slug = f"bench-load-{time.time():.0f}"
    _, gateway_key = gw.setup(fake_url, slug=slug, limit=args.tenant_limit)
    from django.conf import settings
    from django.test import Client

    from agents.demo import REFUND_SCOPE, seed_agents
    from agents.models import DemoOrder
    from budgets.models import Budget
    from catalog.demo import seed_catalog
    from catalog.models import LanguageModel, ModelPin
    from tenants.models import Membership, Role, Scope, Tenant, User
    from tenants.testing import make_key

    tenant = Tenant.objects.get(slug=slug)
    demo = seed_catalog(tenant)
    ModelPin.objects.update_or_create(tenant=tenant, alias="default", defaults={"model": demo})
    fake = LanguageModel.objects.for_tenant(tenant).get(model_id=gw.EXACT)
    ModelPin.objects.update_or_create(tenant=tenant, alias=GATEWAY_ALIAS, defaults={"model": fake})
    agent = seed_agents(tenant)
    refunds = int(args.runs * args.seconds * args.pause_share) + 50
    DemoOrder.objects.bulk_create(
        DemoOrder(
            tenant=tenant,
            number=f"L-{10_000 + i}",
            customer_email=f"customer{i}@example.com",
            item="Bench item",
            amount_cents=1_000,
        )
        for i in range(refunds)
    )
    Budget.objects.create(
        tenant=tenant,
        name="Bench per end user",
        scope=Budget.Scope.END_USER,
        period=Budget.Period.DAY,
        limit=args.end_user_limit,
    )
    email = f"reviewer@{slug}.test"
    user = User.objects.filter(email=email).first() or User.objects.create_user(email, None, name="Load Reviewer")
    Membership.objects.get_or_create(tenant=tenant, user=user, defaults={"role": Role.REVIEWER})
    client = Client()
    client.force_login(user)
    return {
        "slug": slug,
        "tenant": tenant,
        "agent": agent.name,
        "cookie": f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}",
        "gateway": gateway_key,
        "runs": make_key(tenant, [Scope.RUNS_WRITE, REFUND_SCOPE], name="load runs")[1],
        "decider": make_key(tenant, [Scope.APPROVALS_DECIDE], name="load reviewer")[1],
        "ingest": make_key(tenant, [Scope.TRACES_WRITE], name="load ingest")[1],
    }


# --- load ----------------------------------------------------------------------------------------


def ok(label: str) -> bool:
    return (label.isdigit() and label.startswith("2")) or label in EXPECTED


@dataclass
class Kind:
    name: str
    rate: float  # stated arrivals a second (0 for the reviewer's own pace)
    sent: int = 0
    answers: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # seconds from due to the outcome, every arrival sent
    in_flight: int = 0

    @property
    def errors(self) -> int:
        """Answers other than a bare 2xx status ("200 without [DONE]" is one) or an expected refusal."""
        return sum(n for label, n in self.answers.items() if not ok(label))


@dataclass
class State:
    base: str
    ctx: dict[str, Any]
    args: argparse.Namespace
    kinds: dict[str, Kind]
    lag: list[float] = field(default_factory=list)  # how late each arrival was sent, seconds
    runs: list[str] = field(default_factory=list)
    traces: list[str] = field(default_factory=list)
    deciding: set[str] = field(default_factory=set)
    socket_frames: int = 0
    socket_drops: Counter[str] = field(default_factory=Counter)
    loading: bool = True  # False once the load phase is over (reviewers keep deciding)


async def arrivals(state: State, kind: Kind, seconds: float, send: Any) -> None:
    """`kind.rate` calls of `send(i)` a second for `seconds`, each started when due, whatever the
    others are doing (up to --max-in-flight at once; past that an arrival is counted as refused by
    the client)."""
    if kind.rate <= 0:
        return
    loop = asyncio.get_running_loop()
    start = loop.time()
    tasks: set[asyncio.Task[None]] = set()

    async def one(i: int, due: float) -> None:
        kind.in_flight += 1
        try:
            label = await send(i)
        except Exception as exc:
            label = f"client {type(exc).__name__}"
        finally:
            kind.in_flight -= 1
        kind.answers[label] += 1
        kind.latencies.append(loop.time() - due)  # to the answer, or to the client giving up

    i = 0
    while True:
        if i / kind.rate >= seconds:
            break
        due = start + i / kind.rate
        if (wait := due - loop.time()) > 0:
            await asyncio.sleep(wait)
        state.lag.append(max(0.0, loop.time() - due))
        kind.sent += 1
        if kind.in_flight >= state.args.max_in_flight:
            kind.answers["client: too many in flight"] += 1
        else:
            task = asyncio.create_task(one(i, due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        i += 1
    if tasks:
        await asyncio.gather(*tasks)


def run_input(i: int, args: argparse.Namespace) -> str:
    """Every 1/pause_share-th run asks for a refund of a paid order (it pauses for a reviewer);
    some of those also ask for an email (a third tool call); the rest ask where an order is."""
    share = args.pause_share
    if share > 0 and int((i + 1) * share) > int(i * share):
        order = f"L-{10_000 + int(i * share)}"
        return f"Please refund order {order} and email the customer." if i % 3 == 0 else f"Please refund {order}."
    return f"Where is my order A-100{1 + i % 5}?"


async def drive(state: State) -> None:
    import aiohttp

    args, ctx, k = state.args, state.ctx, state.kinds
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    json_type = {"Content-Type": "application/json"}
    stop = asyncio.Event()
    async with aiohttp.ClientSession(base_url=state.base, connector=connector, timeout=timeout) as http:

        async def post_json(path: str, key: str, body: Any, extra: dict[str, str] | None = None) -> tuple[int, Any]:
            headers = {"Authorization": f"Bearer {key}", **json_type, **(extra or {})}
            async with http.post(path, data=json.dumps(body), headers=headers) as response:
                raw = await response.read()
                try:
                    return response.status, json.loads(raw)
                except ValueError:
                    return response.status, raw[:200]

        def label(status: int, body: Any) -> str:
            if status == 402 and isinstance(body, dict):
                return f"402 {body.get('error', {}).get('code', '')}"
            return str(status)

        async def start_run(i: int) -> str:
            body = {"agent": ctx["agent"], "input": run_input(i, args), "session_id": f"load-{i % 20}"}
            status, answer = await post_json("/api/v1/runs", ctx["runs"], body)
            if status == 202:
                state.runs.append(answer["id"])
            return label(status, answer)

        def gateway_body(i: int, stream: bool) -> tuple[dict[str, Any], dict[str, str]]:
            body = {**gw.BODY, "model": GATEWAY_ALIAS}
            if stream:
                body["stream"] = True
            return body, {"x-aoc-end-user": f"end-user-{i % args.end_users}"}

        async def gateway(i: int) -> str:
            body, headers = gateway_body(i, False)
            status, answer = await post_json("/v1/chat/completions", ctx["gateway"], body, headers)
            if status == 200 and not (isinstance(answer, dict) and answer.get("choices")):
                return "200 without choices"
            return label(status, answer)

        async def gateway_stream(i: int) -> str:
            body, extra = gateway_body(i + 7, True)
            headers = {"Authorization": f"Bearer {ctx['gateway']}", **json_type, **extra}
            async with http.post("/v1/chat/completions", data=json.dumps(body), headers=headers) as response:
                raw = await response.read()
                if response.status != 200:
                    try:
                        return label(response.status, json.loads(raw))
                    except ValueError:
                        return str(response.status)
            text = raw.decode(errors="replace")
            if '"error"' in text:
                return "200 error event"
            return "200" if text.rstrip().endswith("data: [DONE]") else "200 without [DONE]"

        async def ingest(i: int) -> str:
            batch = bench_traces.batch(args.spans)
            headers = {"Authorization": f"Bearer {ctx['ingest']}", **json_type}
            async with http.post("/api/v1/traces/ingest", data=batch, headers=headers) as response:
                raw = await response.read()
            if response.status != 200:
                return str(response.status)
            if json.loads(raw).get("accepted") != args.spans:
                return "200 not all accepted"
            state.traces.append(json.loads(batch)["spans"][0]["trace_id"])
            return "200"

        async def otlp(i: int) -> str:
            from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

            headers = {"Authorization": f"Bearer {ctx['ingest']}", "Content-Type": "application/x-protobuf"}
            body = bench_traces_hot.otlp_batch(args.spans)
            async with http.post("/v1/traces", data=body, headers=headers) as response:
                raw = await response.read()
            if response.status != 200:
                return str(response.status)
            answer = ExportTraceServiceResponse()
            answer.ParseFromString(raw)
            return "200 partly rejected" if answer.partial_success.rejected_spans else "200"

        slug = ctx["slug"]
        pages = [
            "/",
            "/runs/",
            "/runs/{run}/",
            "/approvals/",
            "/traces/",
            "/traces/{trace}/",
            "/budgets/",
        ]

        async def page(i: int) -> str:
            path = pages[i % len(pages)]
            if "{run}" in path:  # the latest run started (the runs list until there is one)
                path = path.format(run=state.runs[-1]) if state.runs else "/runs/"
            if "{trace}" in path:  # a trace of the latest batch ingested
                path = path.format(trace=state.traces[-1]) if state.traces else "/traces/"
            headers = {"Cookie": ctx["cookie"], "Accept": "text/html"}
            async with http.get(f"/t/{slug}{path}", headers=headers, allow_redirects=False) as response:
                await response.read()
                return str(response.status)

        async def review() -> None:
            """List the pending approvals, decide each (concurrently), sleep, again; until the load
            is over and every run has finished (or --drain passed)."""
            list_kind, decide_kind = k["approvals list"], k["decide"]
            headers = {"Authorization": f"Bearer {ctx['decider']}"}
            loop = asyncio.get_running_loop()
            decided = 0

            async def decide(approval_id: str) -> None:
                nonlocal decided
                reject = int((decided + 1) * args.reject_share) > int(decided * args.reject_share)
                decided += 1
                body = {"decision": "reject", "note": "Load bench: rejected."} if reject else {"decision": "approve"}
                started = loop.time()
                decide_kind.sent += 1
                try:
                    status, answer = await post_json(f"/api/v1/approvals/{approval_id}/decision", ctx["decider"], body)
                    decide_kind.answers[label(status, answer)] += 1
                    decide_kind.latencies.append(loop.time() - started)
                except Exception as exc:
                    decide_kind.answers[f"client {type(exc).__name__}"] += 1

            while not stop.is_set():
                started = loop.time()
                list_kind.sent += 1
                try:
                    async with http.get("/api/v1/approvals?status=pending&page_size=200", headers=headers) as response:
                        raw = await response.read()
                        list_kind.answers[str(response.status)] += 1
                        list_kind.latencies.append(loop.time() - started)
                        pending = json.loads(raw).get("results", []) if response.status == 200 else []
                except Exception as exc:
                    list_kind.answers[f"client {type(exc).__name__}"] += 1
                    pending = []
                fresh = [a["id"] for a in pending if a["id"] not in state.deciding]
                state.deciding.update(fresh)
                await asyncio.gather(*(decide(pk) for pk in fresh))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=args.review_every)

        async def socket(name: str) -> None:
            """A console page's live socket, held open (reconnecting) for the load phase."""
            import websockets

            url = state.base.replace("http://", "ws://") + f"/ws/t/{slug}/live/?page={name}"
            headers = {"Cookie": ctx["cookie"], "Origin": state.base}
            while state.loading:
                try:
                    async with websockets.connect(url, additional_headers=headers, max_size=None) as ws:
                        while state.loading:
                            with contextlib.suppress(TimeoutError):
                                await asyncio.wait_for(ws.recv(), timeout=0.5)
                                state.socket_frames += 1
                except Exception as exc:
                    if state.loading:
                        state.socket_drops[type(exc).__name__] += 1
                        await asyncio.sleep(0.5)

        reviewer = asyncio.create_task(review())
        sockets = [asyncio.create_task(socket(SOCKET_PAGES[i % len(SOCKET_PAGES)])) for i in range(args.sockets)]
        load = [
            arrivals(state, k["runs start"], args.seconds, start_run),
            arrivals(state, k["gateway"], args.seconds, gateway),
            arrivals(state, k["gateway stream"], args.seconds, gateway_stream),
            arrivals(state, k["ingest"], args.seconds, ingest),
            arrivals(state, k["ingest otlp"], args.seconds, otlp),
            arrivals(state, k["pages"], args.seconds, page),
        ]
        await asyncio.gather(*load)
        state.loading = False
        await asyncio.gather(*sockets)
        # Reviewers go on until every run started has finished (or --drain seconds).
        deadline = time.monotonic() + args.drain
        while time.monotonic() < deadline and await asyncio.to_thread(unfinished_runs, state) > 0:
            await asyncio.sleep(0.5)
        stop.set()
        await reviewer


def warm_up(base: str, ctx: dict[str, Any]) -> None:
    """One of each request before the clock starts (not counted): the web process's first gateway
    call, stream, ingestion batch (it loads the PII recognizers) and console pages pay one-off costs."""
    import httpx

    with httpx.Client(base_url=base, timeout=60) as http:
        for stream in (False, True):
            # An end user each: the first call's hold may not be settled yet when the second comes.
            gateway = {"Authorization": f"Bearer {ctx['gateway']}", "x-aoc-end-user": f"warm-up-{stream}"}
            body = {**gw.BODY, "model": GATEWAY_ALIAS, "stream": stream}
            http.post("/v1/chat/completions", json=body, headers=gateway).raise_for_status()
        batch = bench_traces.batch(10)
        ingest = {"Authorization": f"Bearer {ctx['ingest']}", "Content-Type": "application/json"}
        http.post("/api/v1/traces/ingest", content=batch, headers=ingest).raise_for_status()
        trace = json.loads(batch)["spans"][0]["trace_id"]
        otlp = {**ingest, "Content-Type": "application/x-protobuf"}
        http.post("/v1/traces", content=bench_traces_hot.otlp_batch(10), headers=otlp).raise_for_status()
        for path in ("/", "/runs/", "/approvals/", "/traces/", f"/traces/{trace}/", "/budgets/"):
            http.get(f"/t/{ctx['slug']}{path}", headers={"Cookie": ctx["cookie"]}).raise_for_status()
        decider = {"Authorization": f"Bearer {ctx['decider']}"}
        http.get("/api/v1/approvals?status=pending", headers=decider).raise_for_status()


def unfinished_runs(state: State) -> int:
    from django.db import close_old_connections

    from agents.models import Run

    close_old_connections()
    return Run.objects.for_tenant(state.ctx["tenant"]).exclude(status__in=Run.FINAL_STATUSES).count()


# --- figures -------------------------------------------------------------------------------------


def ms(values: list[float], p: float) -> str:
    return f"{gw.pct(values, p) * 1000:.0f}" if values else "-"


def print_kinds(state: State, elapsed: float) -> list[str]:
    failures = []
    print(f"{'kind':16s} {'stated/s':>8s} {'sent':>6s} {'answered/s':>10s} {'errors':>6s} "
          f"{'p50 ms':>7s} {'p95 ms':>7s} {'p99 ms':>7s} {'max ms':>7s}  answers")  # fmt: skip
    for kind in state.kinds.values():
        answered = sum(kind.answers.values())
        stated = f"{kind.rate:g}" if kind.rate else "-"
        print(
            f"{kind.name:16s} {stated:>8s} {kind.sent:6d} {answered / elapsed:10.2f} {kind.errors:6d} "
            f"{ms(kind.latencies, 0.5):>7s} {ms(kind.latencies, 0.95):>7s} {ms(kind.latencies, 0.99):>7s} "
            f"{ms(kind.latencies, 1.0):>7s}  {dict(sorted(kind.answers.items()))}"
        )
        if answered and kind.errors / answered > state.args.max_error_rate:
            failures.append(f"{kind.name}: {kind.errors} errors of {answered} (> {state.args.max_error_rate:.1%})")
    late = sorted(state.lag)
    if late:
        print(
            f"arrivals sent late by the client: p50 {ms(late, 0.5)} ms, p99 {ms(late, 0.99)} ms, "
            f"max {ms(late, 1.0)} ms (the load generator keeping its schedule)"
        )
    print(
        f"live sockets: {state.args.sockets} held open on {', '.join(SOCKET_PAGES[: state.args.sockets])}; "
        f"{state.socket_frames} frames received; drops {dict(state.socket_drops) or 0}"
    )
    return failures


def print_runs(state: State) -> list[str]:
    from django.db.models import Count

    from agents.models import Run
    from approvals.models import ApprovalRequest

    tenant = state.ctx["tenant"]
    runs = Run.objects.for_tenant(tenant)
    by_status = dict(runs.values_list("status").annotate(n=Count("id")).order_by("status"))
    approvals = ApprovalRequest.objects.for_tenant(tenant).filter(run__isnull=False)
    by_decision = dict(approvals.values_list("status").annotate(n=Count("id")).order_by("status"))
    paused = set(approvals.values_list("run_id", flat=True))
    decided_at = dict(approvals.exclude(decided_at=None).values_list("run_id", "decided_at"))
    straight: list[float] = []
    whole: list[float] = []
    after_decision: list[float] = []
    waited: list[float] = []
    for pk, created, finished in runs.values_list("id", "created_at", "finished_at"):
        if finished is None:
            continue
        if pk in paused:
            whole.append((finished - created).total_seconds())
            if (decided := decided_at.get(pk)) is not None:
                after_decision.append((finished - decided).total_seconds())
        else:
            straight.append((finished - created).total_seconds())
    for created, decided in approvals.values_list("created_at", "decided_at"):
        if decided is not None:
            waited.append((decided - created).total_seconds())
    final = sum(n for status, n in by_status.items() if status in Run.FINAL_STATUSES)
    total = sum(by_status.values())  # a start the client gave up on may have been created all the same
    print(
        f"runs: created {total} ({len(state.runs)} answered 202), finished {final}, paused for approval "
        f"{len(paused)}; by status {by_status}; approvals by status {by_decision}"
    )

    def line(label: str, values: list[float]) -> None:
        print(f"  {label:44s} n {len(values):5d}  p50 {ms(values, 0.5):>6s} ms  p95 {ms(values, 0.95):>6s} ms  "
              f"p99 {ms(values, 0.99):>6s} ms  max {ms(values, 1.0):>6s} ms")  # fmt: skip

    line("run without approval: created -> finished", straight)
    line("run that paused: created -> finished", whole)
    line("approval created -> decided (reviewer poll)", waited)
    line("decision -> run finished", after_decision)
    failures = []
    unfinished = total - final
    bad = sum(n for status, n in by_status.items() if status != "succeeded" and status in Run.FINAL_STATUSES)
    if unfinished:
        failures.append(f"runs: {unfinished} not finished {state.args.drain:g} s after the load")
    if total and bad / total > state.args.max_error_rate:
        failures.append(f"runs: {bad} of {total} ended other than succeeded")
    return failures


def books(slug: str) -> dict[str, Any]:
    """Every budget of the tenant: counters, their largest settled amount against the limit, what is
    still reserved; and bench/gateway.py's books of the daily tenant budget (counters against the
    ledger, budgets_verify)."""
    from django.db import close_old_connections
    from django.db.models import Max, Sum

    from budgets.models import Budget, BudgetCounter
    from tenants.models import Tenant

    close_old_connections()
    tenant = Tenant.objects.get(slug=slug)
    budgets = []
    for budget in Budget.objects.for_tenant(tenant).order_by("name"):
        counters = BudgetCounter.objects.for_tenant(tenant).filter(budget=budget)
        totals = counters.aggregate(total=Sum("settled"), held=Sum("reserved"), top=Max("settled"))
        budgets.append(
            {
                "name": budget.name,
                "scope": budget.scope,
                "limit": budget.limit,
                "blocks": budget.blocks,
                "counters": counters.count(),
                "settled": totals["total"] or 0,
                "reserved": totals["held"] or 0,
                "top": totals["top"] or 0,
                "over": counters.filter(settled__gt=budget.limit).count(),
                "at_limit": counters.filter(settled__gt=budget.limit * 0.9).count(),
            }
        )
    return {"budgets": budgets, "tenant": gw.budget_books(slug)}


def print_books(slug: str, settle_wait: float) -> list[str]:
    started = time.monotonic()
    found = books(slug)
    while any(b["reserved"] for b in found["budgets"]) and time.monotonic() - started < settle_wait:
        time.sleep(0.2)
        found = books(slug)
    waited = time.monotonic() - started
    failures = []
    for b in found["budgets"]:
        print(
            f"budget {b['name']!r} ({b['scope']}, limit {b['limit']} µUSD a day): {b['counters']} counter(s), "
            f"settled {b['settled']} µUSD (the largest counter {b['top']}, {b['top'] / b['limit']:.0%} of the limit; "
            f"{b['at_limit']} past 90 %), left reserved {b['reserved']}, overspent counters {b['over']}"
        )
        if b["reserved"]:
            failures.append(f"budget {b['name']!r}: {b['reserved']} µUSD still reserved {waited:.0f} s after the load")
        if b["blocks"] and b["over"]:
            failures.append(f"budget {b['name']!r}: {b['over']} counter(s) settled past the limit")
    t = found["tenant"]
    balanced = (t["settled"], t["reserved"]) == (t["ledger_settled"], t["ledger_reserved"])
    print(
        f"ledger of the daily budget: settled {t['ledger_settled']} reserved {t['ledger_reserved']}: "
        f"{'equal to' if balanced else 'DIFFERENT FROM'} its counters; reservations by status {t['reservations']}; "
        f"{t['discrepancies']} discrepancies over the tenant; budgets_verify: {t['verify']} "
        f"(settled {waited:.1f} s after the last run ended)"
    )
    if not balanced:
        failures.append("the daily budget's counters differ from its ledger")
    # Open: a hold still waiting for its settlement; expired: one whose settlement never came.
    if stuck := {status: n for status, n in t["reservations"].items() if status in ("open", "expired")}:
        failures.append(f"reservations not settled or released: {stuck}")
    if t["discrepancies"] or "every one equals its ledger" not in t["verify"]:
        failures.append(f"budgets_verify: {t['verify']}")
    return failures


# --- main ----------------------------------------------------------------------------------------


def main() -> None:
    class Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
        pass

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=Formatter)
    parser.add_argument("--seconds", type=float, default=120.0, help="length of the load phase")
    parser.add_argument("--runs", type=float, default=1.0, help="agent runs started a second")
    parser.add_argument("--pause-share", type=float, default=0.5, help="share of runs that ask for a refund")
    parser.add_argument("--reject-share", type=float, default=0.2, help="share of decisions that reject")
    parser.add_argument("--review-every", type=float, default=1.0, help="seconds between a reviewer's polls")
    parser.add_argument("--gateway", type=float, default=8.0, help="gateway calls a second (not streamed)")
    parser.add_argument("--streams", type=float, default=2.0, help="streamed gateway calls a second")
    parser.add_argument("--end-users", type=int, default=10, help="end users the gateway calls name, in turn")
    parser.add_argument(
        "--end-user-limit", type=int, default=0, help="the per-end-user daily budget, µUSD (0: refuse ~1/4 of calls)"
    )
    parser.add_argument(
        "--tenant-limit", type=int, default=0, help="the tenant's daily budget, µUSD (0: 1.25x the expected spend)"
    )
    parser.add_argument("--ingest", type=float, default=1.0, help="span batches a second")
    parser.add_argument("--otlp", type=float, default=0.5, help="OTLP protobuf span batches a second (/v1/traces)")
    parser.add_argument("--spans", type=int, default=100, help="spans a batch (each in a trace of its own)")
    parser.add_argument("--pages", type=float, default=2.0, help="console page views a second")
    parser.add_argument("--sockets", type=int, default=3, help=f"live sockets held open (on {', '.join(SOCKET_PAGES)})")
    parser.add_argument("--max-in-flight", type=int, default=200, help="a kind's arrivals outstanding at once")
    parser.add_argument("--timeout", type=float, default=60.0, help="client timeout of one request, seconds")
    parser.add_argument("--drain", type=float, default=90.0, help="seconds to let runs finish after the load")
    parser.add_argument("--max-error-rate", type=float, default=0.01, help="errors allowed per kind (a share)")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL") or not os.environ.get("REDIS_URL"):
        sys.exit("Set DATABASE_URL and REDIS_URL (or run through scripts/devenv.py exec).")
    calls = (args.gateway + args.streams) * args.seconds
    if not args.end_user_limit:
        # Each end user's budget covers about 3/4 of its calls, plus one call's worst case (what the
        # gateway reserves before the call: ~660 µUSD for 64 output tokens): the last quarter is refused.
        args.end_user_limit = int(0.75 * calls / args.end_users * CALL_MICROS) + WORST_MICROS
    if not args.tenant_limit:
        # 1.25x the spend expected if no call were refused: the load takes it to about 70 %.
        args.tenant_limit = max(20_000, int(1.25 * (calls * CALL_MICROS + args.runs * args.seconds * RUN_MICROS)))
    stop_on_sigterm()
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    os.environ.update(
        {"PYTHONUNBUFFERED": "1", "API_THROTTLE_RATE": "100000000/min", "PROVIDER_ALLOWED_HOSTS": "127.0.0.1"}
    )
    logdir = Path(tempfile.mkdtemp(prefix="bench-load-"))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        fake_port, web_port = gw.free_port(), gw.free_port()
        fake = gw.start([sys.executable, str(ROOT / "bench" / "gateway.py"), "--serve-fake", str(fake_port)],
                        logdir / "fake.log")  # fmt: skip
        processes.append(fake)
        gw.wait_up(f"http://127.0.0.1:{fake_port}/", fake, logdir / "fake.log")
        ctx = setup(f"http://127.0.0.1:{fake_port}/v1", args)
        web_cmd = [str(BIN / "uvicorn"), "config.asgi:application", "--host", "127.0.0.1", "--port", str(web_port)]
        web = gw.start([*web_cmd, *bench_approvals.WEB_ARGS, "--http", "httptools"], logdir / "web.log")
        processes.append(web)
        worker_cmd = [str(BIN / "celery"), "-A", "config", "worker", *bench_approvals.WORKER_ARGS]
        worker = gw.start([*worker_cmd, "-n", f"bench-load-{web_port}@%h"], logdir / "worker.log")
        processes.append(worker)
        gw.wait_up(f"http://127.0.0.1:{web_port}/healthz", web, logdir / "web.log")
        deadline = time.monotonic() + 90
        while " ready." not in (logdir / "worker.log").read_text(errors="replace"):
            if time.monotonic() > deadline or worker.poll() is not None:
                raise RuntimeError((logdir / "worker.log").read_text()[-3000:])
            time.sleep(0.2)
        base = f"http://127.0.0.1:{web_port}"
        kinds = {
            name: Kind(name, rate)
            for name, rate in (
                ("runs start", args.runs),
                ("gateway", args.gateway),
                ("gateway stream", args.streams),
                ("ingest", args.ingest),
                ("ingest otlp", args.otlp),
                ("pages", args.pages),
                ("approvals list", 0.0),
                ("decide", 0.0),
            )
        }
        state = State(base, ctx, args, kinds)
        warm_up(base, ctx)
        print(
            f"# bench/load.py: {args.seconds:g} s at runs {args.runs:g}/s ({args.pause_share:.0%} pause for a refund, "
            f"{args.reject_share:.0%} of decisions reject, reviewer polls every {args.review_every:g} s), gateway "
            f"{args.gateway:g}/s + {args.streams:g} streams/s over {args.end_users} end users, ingestion "
            f"{args.ingest:g} native + {args.otlp:g} OTLP batches/s of {args.spans} spans, "
            f"pages {args.pages:g}/s, {args.sockets} live sockets"
        )
        print(
            f"# tenant {ctx['slug']}: daily budget {args.tenant_limit} µUSD, per end user {args.end_user_limit} µUSD "
            f"(a gateway call costs {CALL_MICROS} µUSD); error threshold {args.max_error_rate:.1%} a kind; "
            f"logs in {logdir}"
        )
        pids = {"web (uvicorn)": web.pid, "worker (celery, 2 children)": worker.pid, "fake provider": fake.pid}
        cpu = {name: gw.cpu_seconds(pid) for name, pid in pids.items()}
        own = resource.getrusage(resource.RUSAGE_SELF)
        print(f"# load average at start {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
        started = time.perf_counter()
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(drive(state))
        elapsed = time.perf_counter() - started
        load_end = os.getloadavg()
        used = {name: gw.cpu_seconds(pid) - cpu[name] for name, pid in pids.items()}
        mine = resource.getrusage(resource.RUSAGE_SELF)
        used["the bench (load generator)"] = mine.ru_utime + mine.ru_stime - own.ru_utime - own.ru_stime
        failures = print_kinds(state, args.seconds)
        failures += print_runs(state)
        failures += print_books(ctx["slug"], settle_wait=30)
        print(
            f"CPU over the {elapsed:.0f} s (load, then the runs' drain): "
            + ", ".join(f"{name} {seconds:.1f} s ({seconds / elapsed:.0%} of a core)" for name, seconds in used.items())
        )
        requests = sum(kind.sent for kind in kinds.values())
        print(
            f"web process CPU per request: {used['web (uvicorn)'] * 1000 / max(requests, 1):.1f} ms "
            f"({requests} requests of every kind, the run engine's work on the worker not included)"
        )
        print(f"# load average at end {' '.join(f'{x:.2f}' for x in load_end)}")
        if failures:
            print("FAILED:\n  " + "\n  ".join(failures))
            sys.exit(1)
        print("OK: every kind under its error threshold, every run finished, books balanced, no overspend")
    finally:
        for process in reversed(processes):
            gw.stop(process)


if __name__ == "__main__":
    main()
